"""The user's choices for one alignment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

MAX_COUNT = 1_000_000  # group sizes, iteration limits: far beyond any use, far below an overflow


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


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
        if self.mode == "group" and not (_whole(self.group_size) and 1 <= self.group_size <= MAX_COUNT):
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
        so that mis-clicks and mistracked beads stop pulling the solution (see `robust`).
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
        if self.tilt_axis_deg is not None and not (
                isinstance(self.tilt_axis_deg, (int, float, np.number)) and np.isfinite(self.tilt_axis_deg)
                and abs(self.tilt_axis_deg) <= 360):
            raise ValueError(f"the tilt-axis angle must be a finite number of degrees (within +-360), "
                             f"got {self.tilt_axis_deg}")
        if self.reference_view is not None and not (_whole(self.reference_view) and 0 <= self.reference_view):
            raise ValueError(f"the reference view must be a view number (0 or more), got {self.reference_view}")
        if not (_whole(self.max_iterations) and 1 <= self.max_iterations <= MAX_COUNT):
            raise ValueError(f"max_iterations must be a whole number from 1 to {MAX_COUNT}, got {self.max_iterations}")
        if not (isinstance(self.robust_scale, (int, float, np.number)) and np.isfinite(self.robust_scale)
                and 0.01 <= self.robust_scale <= 100):
            raise ValueError(f"robust_scale must be a number from 0.01 to 100, got {self.robust_scale}")
        if not (_whole(self.robust_group_views) and 1 <= self.robust_group_views <= MAX_COUNT):
            raise ValueError(f"robust_group_views must be a whole number from 1 to {MAX_COUNT}, "
                             f"got {self.robust_group_views}")

        if not (isinstance(self.axis_z_shift_px, (int, float, np.number)) and np.isfinite(self.axis_z_shift_px)
                and abs(self.axis_z_shift_px) <= 1e6):
            raise ValueError(f"axis_z_shift_px must be a finite number of pixels (at most 1e6 in size), "
                             f"got {self.axis_z_shift_px}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("rotation", "tilt", "magnification"):
            d[name] = str(getattr(self, name))
        return d
