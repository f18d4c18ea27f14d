"""The schema of ``alignment.json``: every parameter and statistic of a solved alignment as JSON values.

`alignment_to_dict` is the whole record; its parts of other types are written here too (the settings, each
mapping, the flagged points, a leave-out error), so that the domain types hold facts and this module their JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..alignment.result import Alignment
from ..conventions import format_views

if TYPE_CHECKING:
    from ..alignment.grouping import Mapping
    from ..alignment.leaveout import LeaveOutError
    from ..alignment.options import ModelSettings


def _clean(a: Any) -> Any:
    """An array as nested lists of floats, NaN and infinities as None."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 1:
        return [_clean(row) for row in arr]
    return [x if math.isfinite(x) else None for x in arr.tolist()]


def alignment_to_dict(al: Alignment) -> dict[str, Any]:
    """Every parameter and statistic of ``al`` as plain JSON-ready values (NaN becomes None).

    This is the schema of ``alignment.json``.
    """
    view_rms, view_mean = al.per_view_residual_px()
    marker_rms, marker_mean = al.per_marker_residual_px()
    return {
        "image_size": list(al.image_size),
        "pixel_size_nm": al.pixel_size_nm,
        "rms_residual_px": al.rms_residual_px,
        "mean_residual_px": al.mean_residual_px,
        "converged": bool(al.converged),
        "reference_view": al.reference_view,
        "tilt_axis_deg": al.tilt_axis_deg,
        "tilt_axis_source": al.tilt_axis_source,
        "branch": al.branch,
        "n_observations_used": int(al.obs_used.sum()),
        "excluded_views": al.excluded_views,
        "excluded_markers": al.excluded_markers,
        "warnings": list(al.warnings),
        "robust": None if al.robust_weights is None else {
            "n_flagged": int(al.flagged.sum()), "flagged_points": flagged_points(al),
        },
        "options": al.options.to_dict(),
        "stages": [asdict(s) for s in al.stages],
        "views": {
            "tilt_angle_deg": _clean(al.tilt_angles_deg),
            "nominal_tilt_angle_deg": _clean(al.nominal_tilt_angles_deg),
            "rotation_deg": _clean(al.rotation_deg),
            "magnification": _clean(al.magnification),
            "shift_x_px": _clean(al.shifts_px[:, 0]),
            "shift_y_px": _clean(al.shifts_px[:, 1]),
            "determined": [bool(b) for b in al.view_determined],
            "rms_residual_px": _clean(view_rms),
            "mean_residual_px": _clean(view_mean),
        },
        "markers": {
            "id": np.asarray(al.marker_ids, dtype=np.int64).tolist(),
            "x_px": _clean(al.xyz_px[:, 0]),
            "y_px": _clean(al.xyz_px[:, 1]),
            "z_px": _clean(al.xyz_px[:, 2]),
            "rms_residual_px": _clean(marker_rms),
            "mean_residual_px": _clean(marker_mean),
        },
        "settings": settings_to_dict(al.settings),
        "imod_settings": settings_to_dict(al.settings),  # this session's name; "settings" is the one to read
        "axis_z_shift_px": al.axis_z_shift_px,
        "full_model": {
            "parameters": ["tilt_rad", "rotation_rad", "magnification", "shift_x_px", "shift_y_px", "x_stretch",
                           "skew_rad", "x_tilt_rad", "compression"],
            "per_view": _clean(al.full_params),
            "beam_tilt_deg": al.beam_tilt_deg,
        },
    }


def flagged_points(al: Alignment) -> list[dict[str, Any]]:
    """The points a robust fit flagged (`Alignment.flagged`), largest residual first: observation index, view
    (0-based), marker id, weight, residual length and its x and y."""
    idx = np.flatnonzero(al.flagged)
    weights = al.robust_weights if al.robust_weights is not None else np.ones(len(al.obs_view))
    length = np.hypot(*al.residuals_px[idx].T) if idx.size else np.zeros(0)
    out = []
    for k in np.argsort(-length, kind="stable"):
        i = int(idx[k])
        out.append({"index": i, "view": int(al.obs_view[i]), "marker": int(al.marker_ids[al.obs_marker[i]]),
                    "weight": float(weights[i]), "residual_px": float(length[k]),
                    "dx": float(al.residuals_px[i, 0]), "dy": float(al.residuals_px[i, 1])})
    return out


def settings_to_dict(s: ModelSettings) -> dict[str, Any]:
    """The record of a solve's settings: where they came from, the command file's model options as given
    (``TiltOption``, groupings, reference views, ...), each variable kind's mapping (`mapping_summary`), the
    excluded views (1-based, as IMOD prints them) and the count of geometric variables."""
    return {"origin": s.origin, "options": dict(s.com_options),
            "variables": {kind: mapping_summary(m) for kind, m in s.mappings.items()},
            "geometric_variables": s.n_geometric, "excluded_views": format_views(s.excluded_views),
            "rotation_angle_deg": s.rotation_angle_deg, "angle_offset_deg": s.angle_offset_deg,
            "axis_z_shift_px": s.axis_z_shift_px, "centre_z_range": s.centre_z_range,
            "beam_tilt_deg": s.beam_tilt_deg, "beam_tilt_free": s.beam_tilt_free,
            "local_alignments": s.local_alignments,
            "robust": {"on": s.robust, "scale": s.robust_scale, "tracks": s.robust_tracks,
                       "rounds": s.robust_rounds, "floor": s.robust_floor,
                       "min_group_points": s.robust_min_group_points, "group_views": s.robust_group_views}}


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


def leave_out_to_dict(lo: LeaveOutError) -> dict[str, Any]:
    """The record of a leave-out error (`alignment.leaveout`): overall and per-marker figures, None for NaN."""
    return {"overall_px": lo.overall_px, "overall_robust_px": lo.overall_robust_px,
            "marker_ids": [int(m) for m in lo.marker_ids], "per_marker_px": _clean(lo.per_marker_px),
            "per_marker_robust_px": None if lo.per_marker_robust_px is None else _clean(lo.per_marker_robust_px),
            "wall_time_s": lo.wall_time_s}
