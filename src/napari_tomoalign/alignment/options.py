"""What a solve solves for: the user's options for the default model, and the one settings type of every solve.

`AlignmentOptions` (a `VariableOption` per variable kind, the tilt axis, the gauge, the robust fit) are the
user's choices. `ModelSettings` describes every solve, the default model's and IMOD's full model's alike: the
default model is the preset of the full model in which only rotation, tilt and magnification are mapped (each
as `AlignmentOptions` asks) and X-stretch, skew, X-tilt, compression and beam tilt are held.
`settings_from_options` builds it from `AlignmentOptions`; `imod_options.settings_from_com` from an
``align.com``. Views are 0-based here (the record, `io.alignment_record`, writes them 1-based, as IMOD prints them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .grouping import Mapping, block_mapping, fixed_mapping
from .model import COMP, MAG, N_FULL, ROT, TILT

MAX_COUNT = 1_000_000  # group sizes, iteration limits: far beyond any use, far below an overflow


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    """A whole number from 1 to `MAX_COUNT`."""
    return _whole(value) and 1 <= value <= MAX_COUNT


def _finite(value: Any, bound: float) -> bool:
    """A finite number no larger than ``bound`` in size."""
    return isinstance(value, (int, float, np.number)) and bool(np.isfinite(value)) and abs(value) <= bound


Mode = Literal["fixed", "one", "view", "group"]
MODES: tuple[str, ...] = ("fixed", "one", "view", "group")


@dataclass(frozen=True)
class VariableOption:
    """How one kind of per-view variable is solved.

    Parameters
    ----------
    mode
        ``"fixed"`` (held at its start value), ``"one"`` (one value for all views), ``"view"``
        (independent per view) or ``"group"`` (one value per block of ``group_size`` neighbouring
        views, in stack order).
    group_size
        Views per block when ``mode == "group"``.
    """

    mode: Mode = "view"
    group_size: int = 5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown variable mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.mode == "group" and not _count(self.group_size):
            raise ValueError(f"group size must be a whole number from 1 to {MAX_COUNT}, got {self.group_size}")

    @classmethod
    def parse(cls, text: str) -> VariableOption:
        """Read ``"fixed"``, ``"one"``, ``"view"``, ``"group"`` or ``"group:N"``."""
        mode, _, size = str(text).partition(":")
        if mode == "group" and size:
            try:
                n = int(size) if len(size) <= 20 else -1
            except ValueError:
                raise ValueError(f"group size in {text!r} is not a whole number; write e.g. group:5") from None
            return cls("group", n)
        if size:
            raise ValueError(f"only 'group' takes a size, got {text!r}")
        return cls(mode)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"group:{self.group_size}" if self.mode == "group" else self.mode


@dataclass(frozen=True)
class AlignmentOptions:
    """What the staged solver solves for, and how.

    Parameters
    ----------
    rotation, tilt, magnification
        How each per-view variable is solved (see `VariableOption`). The default, one value per
        view for all three, is the reference paper's model.
    tilt_axis_deg
        The tilt-axis angle from the image y axis, counter-clockwise, in degrees. With
        ``estimate_tilt_axis`` it only picks the branch (the axis or the axis + 180); without,
        it is the starting rotation of every view.
    estimate_tilt_axis
        Estimate the axis from the marker tracks before solving. When False, ``tilt_axis_deg``
        is required.
    reference_view
        The view whose tilt angle and magnification are held fixed (the gauge). Default: the
        view with the smallest absolute nominal tilt.
    initial_stage
        Run the initial stage (tilts nominal, magnifications 1, one rotation) before the main
        stage.
    max_iterations
        Iteration limit of each Levenberg–Marquardt stage.
    robust
        After the least-squares stages, refit with Tukey-bisquare weights (iteratively reweighted),
        so that mis-clicks and mistracked beads stop pulling the solution (see `stages`).
    robust_scale
        Multiplies Tukey's tuning constant 4.685: larger down-weights fewer points. The default,
        1.8, is for residual *lengths* normalised by their median and MADN: that one-sided statistic
        has a longer tail than the 1-D normal residuals 4.685 was designed for. With a factor of 1
        about 3% of good points get flagged, with 1.5 up to 1%, with 1.8 about 0.3%, while gross
        errors are still all flagged (measured on simulated data, ``benchmarks/bench_robust.py``).
    robust_tracks
        Weight whole marker tracks by their RMS residual instead of single points.
    robust_group_views
        Views per normalisation group (neighbours in tilt); groups also hold at least 40 residuals.
    axis_z_shift_px
        Where the aligned frame puts the tilt axis in Z, in pixels from the marker centroid (IMOD's
        ``AxisZShift``). The `Alignment` carries it; the transforms and writers read it from there.
    """

    rotation: VariableOption = field(default_factory=VariableOption)
    tilt: VariableOption = field(default_factory=VariableOption)
    magnification: VariableOption = field(default_factory=VariableOption)
    tilt_axis_deg: float | None = None
    estimate_tilt_axis: bool = True
    reference_view: int | None = None
    initial_stage: bool = True
    max_iterations: int = 200
    robust: bool = False
    robust_scale: float = 1.8
    robust_tracks: bool = False
    robust_group_views: int = 1
    axis_z_shift_px: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rotation", "tilt", "magnification"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, VariableOption.parse(value))
            elif not isinstance(value, VariableOption):
                raise TypeError(f"{name} must be a VariableOption or a string such as 'view', got {value!r}")
        for name in ("estimate_tilt_axis", "initial_stage", "robust", "robust_tracks"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r:.60}")
        if not self.estimate_tilt_axis and self.tilt_axis_deg is None:
            raise ValueError("estimate_tilt_axis=False needs a tilt_axis_deg to start from")
        if self.tilt_axis_deg is not None and not _finite(self.tilt_axis_deg, 360):
            raise ValueError(f"the tilt-axis angle must be a finite number of degrees (within +-360), "
                             f"got {self.tilt_axis_deg}")
        if self.reference_view is not None and not (_whole(self.reference_view) and 0 <= self.reference_view):
            raise ValueError(f"the reference view must be a view number (0 or more), got {self.reference_view}")
        if not _count(self.max_iterations):
            raise ValueError(f"max_iterations must be a whole number from 1 to {MAX_COUNT}, got {self.max_iterations}")
        if not (_finite(self.robust_scale, 100) and self.robust_scale >= 0.01):
            raise ValueError(f"robust_scale must be a number from 0.01 to 100, got {self.robust_scale}")
        if not _count(self.robust_group_views):
            raise ValueError(f"robust_group_views must be a whole number from 1 to {MAX_COUNT}, "
                             f"got {self.robust_group_views}")
        if not _finite(self.axis_z_shift_px, 1e6):
            raise ValueError(f"axis_z_shift_px must be a finite number of pixels (at most 1e6 in size), "
                             f"got {self.axis_z_shift_px}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("rotation", "tilt", "magnification"):
            d[name] = str(getattr(self, name))
        return d


KINDS = ("rotation", "tilt", "magnification", "compression", "x_stretch", "skew", "x_tilt")
# The robust rounds of the two presets: IMOD's (RobustFitting 1) and the default model's.
IMOD_ROUNDS, IMOD_FLOOR, IMOD_GROUP_POINTS = 30, 0.02, 100  # IMOD's MinWeightGroupSizes for the global fit
DEFAULT_ROUNDS, DEFAULT_FLOOR, DEFAULT_GROUP_POINTS = 15, 0.0, 40


@dataclass(frozen=True)
class ModelSettings:
    """One solve's model: one mapping per variable kind, start values, gauge and robust options.

    ``axis_z_shift_px`` is where the aligned frame puts the tilt axis in Z, from the marker centroid
    (IMOD's ``AxisZShift / ImagesAreBinned``); ``centre_z_range`` is True for IMOD's ``AxisZShift 1000``
    (the middle of the markers' z range; ``axis_z_shift_px`` is then 0). The robust rounds reweight
    at most ``robust_rounds`` times; ``robust_floor`` is added to every weight of a marker left with fewer
    than 4 weights above it (IMOD's rule; 0 for none); groups of neighbouring views hold at least
    ``robust_group_views`` views and ``robust_min_group_points`` points. ``origin`` is ``"align.com"``
    or ``"options"`` (built from `AlignmentOptions`).
    """

    mappings: dict[str, Mapping]
    rotation_angle_deg: float
    angle_offset_deg: float = 0.0
    axis_z_shift_px: float = 0.0
    beam_tilt_deg: float = 0.0
    beam_tilt_free: bool = False
    excluded_views: tuple[int, ...] = ()
    robust: bool = False
    robust_scale: float = 1.0  # KFactorScaling
    robust_tracks: bool = False  # WeightWholeTracks
    local_alignments: bool = False
    notes: list[str] = field(default_factory=list)
    centre_z_range: bool = False
    com_options: dict[str, int | float | str] = field(default_factory=dict)
    robust_rounds: int = IMOD_ROUNDS
    robust_floor: float = IMOD_FLOOR
    robust_min_group_points: int = IMOD_GROUP_POINTS
    robust_group_views: int = 1
    origin: str = "align.com"

    @property
    def n_geometric(self) -> int:
        """The number of geometric unknowns (IMOD's log: 'geometric variables')."""
        return sum(m.n_vars for m in self.mappings.values()) + int(self.beam_tilt_free)

    @property
    def from_com(self) -> bool:
        return self.origin == "align.com"



def option_mapping(option: VariableOption, included: NDArray[np.bool_], gauge_view: int | None = None) -> Mapping:
    """The `Mapping` of one `VariableOption` over the ``included`` views (the others are held); the group
    of ``gauge_view`` is held (the gauge of tilt and magnification)."""
    n = len(included)
    if option.mode == "fixed":
        return fixed_mapping(n)
    labels = {"one": np.zeros(n, dtype=np.intp), "view": np.arange(n, dtype=np.intp)}.get(
        option.mode, np.arange(n, dtype=np.intp) // max(1, int(option.group_size)))
    labels = np.where(np.asarray(included, dtype=bool), labels, -1)
    return block_mapping(labels, gauge_view if gauge_view is not None and labels[gauge_view] >= 0 else None)


def settings_from_options(options: AlignmentOptions, included: NDArray[np.bool_], reference_view: int,
                          rotation_angle_deg: float) -> ModelSettings:
    """The `ModelSettings` of `AlignmentOptions` for a series whose ``included`` views are in the fit:
    rotation, tilt and magnification mapped as the options ask, tilt and magnification held at
    ``reference_view`` (the gauge), everything else of the full model held."""
    inc = np.asarray(included, dtype=bool)
    n = len(inc)
    mappings = {kind: fixed_mapping(n) for kind in KINDS}
    mappings["rotation"] = option_mapping(options.rotation, inc)
    mappings["tilt"] = option_mapping(options.tilt, inc, reference_view)
    mappings["magnification"] = option_mapping(options.magnification, inc, reference_view)
    return ModelSettings(
        mappings=mappings, rotation_angle_deg=float(rotation_angle_deg),
        axis_z_shift_px=float(options.axis_z_shift_px), excluded_views=tuple(int(v) for v in np.flatnonzero(~inc)),
        robust=options.robust, robust_scale=options.robust_scale, robust_tracks=options.robust_tracks,
        robust_group_views=options.robust_group_views, com_options=options.to_dict(), origin="options",
        robust_rounds=DEFAULT_ROUNDS, robust_floor=DEFAULT_FLOOR, robust_min_group_points=DEFAULT_GROUP_POINTS)


def start_params(settings: ModelSettings, tilt_angles_deg: ArrayLike) -> NDArray[np.float64]:
    """``(n_views, 9)`` tiltalign's start values: tilt nominal + ``AngleOffset``, rotation
    ``RotationAngle``, magnification and compression 1, the rest 0."""
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    p = np.zeros((len(tilts), N_FULL))
    p[:, TILT] = np.radians(tilts + settings.angle_offset_deg)
    p[:, ROT] = np.radians(settings.rotation_angle_deg)
    p[:, MAG] = 1.0
    p[:, COMP] = 1.0
    return p
