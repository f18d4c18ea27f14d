"""The one settings type of a solve: a mapping per variable kind, start values, gauge and robust rounds.

`ModelSettings` describes every solve, the default model's and IMOD's full model's alike: the default
model is the preset of the full model in which only rotation, tilt and magnification are mapped (each
as `AlignmentOptions` asks) and X-stretch, skew, X-tilt, compression and beam tilt are held.
`settings_from_options` builds it from `AlignmentOptions`; `imod_options.settings_from_com` from an
``align.com``. Views are 0-based here; `mapping_summary` writes them 1-based, as IMOD prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import format_views
from .grouping import Mapping, block_mapping, fixed_mapping
from .model import COMP, MAG, N_FULL, ROT, TILT
from .options import AlignmentOptions, VariableOption

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

    def axis_z_shift_for(self, xyz_px: NDArray[np.float64]) -> float:
        """The axis Z shift for solved markers ``xyz_px`` (centroid at 0): ``axis_z_shift_px``, or for IMOD's
        ``AxisZShift 1000`` the middle of their z range."""
        if not self.centre_z_range:
            return float(self.axis_z_shift_px)
        z = xyz_px[np.all(np.isfinite(xyz_px), axis=1), 2]
        return float((z.min() + z.max()) / 2.0) if z.size else 0.0

    def held_views(self, kind: str) -> list[int]:
        """0-based views whose ``kind`` is held at its start value while other views of that kind are
        solved (empty when the kind is not solved at all)."""
        m = self.mappings[kind]
        if m.n_vars == 0:
            return []
        return [int(v) for v in np.flatnonzero((m.var_a < 0) & (m.var_b < 0))]

    def to_dict(self) -> dict[str, Any]:
        """A plain (JSON-ready) record of the run: where the settings came from, the command file's model
        options as given (``TiltOption``, groupings, reference views, ...), each variable kind's mapping
        (1-based views, as IMOD prints them), the excluded views and the count of geometric variables."""
        return {"origin": self.origin, "options": dict(self.com_options),
                "variables": {kind: mapping_summary(m) for kind, m in self.mappings.items()},
                "geometric_variables": self.n_geometric, "excluded_views": format_views(self.excluded_views),
                "rotation_angle_deg": self.rotation_angle_deg, "angle_offset_deg": self.angle_offset_deg,
                "axis_z_shift_px": self.axis_z_shift_px, "centre_z_range": self.centre_z_range,
                "beam_tilt_deg": self.beam_tilt_deg, "beam_tilt_free": self.beam_tilt_free,
                "local_alignments": self.local_alignments,
                "robust": {"on": self.robust, "scale": self.robust_scale, "tracks": self.robust_tracks,
                           "rounds": self.robust_rounds, "floor": self.robust_floor,
                           "min_group_points": self.robust_min_group_points, "group_views": self.robust_group_views}}


def mapping_summary(m: Mapping) -> dict[str, Any]:
    """How a mapping groups the views, 1-based: ``mode`` (fixed, per view, block or linear), the number of
    ``variables``, the ``groups`` (block: runs of views sharing a value) or ``anchors`` (linear: the views
    the unknowns sit at) and the ``held`` views."""
    held = format_views(np.flatnonzero((m.var_a < 0) & (m.var_b < 0))) if m.n_vars else ""
    out: dict[str, Any] = {"variables": m.n_vars}
    if m.n_vars == 0:
        return {"mode": "fixed", **out}
    if np.any(m.w_b > 0):
        return {"mode": "linear", **out, "anchors": format_views(m.anchor_view), "held": held}
    if m.n_vars == int(np.sum(m.var_a >= 0)):
        return {"mode": "per view", **out, "held": held}
    starts = np.flatnonzero(np.r_[True, m.var_a[1:] != m.var_a[:-1]])
    ends = np.r_[starts[1:], m.n_views] - 1
    groups = ",".join(f"{a + 1}-{b + 1}" if b > a else str(a + 1) for a, b in zip(starts, ends))
    return {"mode": "block", **out, "groups": groups, "held": held}


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
