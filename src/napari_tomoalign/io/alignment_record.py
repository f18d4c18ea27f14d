"""The schema of ``alignment.json``: every parameter and statistic of a solved alignment as JSON values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..alignment.result import Alignment


def alignment_to_dict(al: Alignment) -> dict[str, Any]:
    """Every parameter and statistic of ``al`` as plain JSON-ready values (NaN becomes None).

    This is the schema of ``alignment.json``.
    """

    def clean(a: Any) -> Any:
        arr = np.asarray(a, dtype=float)
        if arr.ndim != 1:
            return [clean(row) for row in arr]
        return [x if math.isfinite(x) else None for x in arr.tolist()]

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
            "n_flagged": int(al.flagged.sum()), "flagged_points": al.flagged_points(),
        },
        "options": al.options.to_dict(),
        "stages": [s.to_dict() for s in al.stages],
        "views": {
            "tilt_angle_deg": clean(al.tilt_angles_deg),
            "nominal_tilt_angle_deg": clean(al.nominal_tilt_angles_deg),
            "rotation_deg": clean(al.rotation_deg),
            "magnification": clean(al.magnification),
            "shift_x_px": clean(al.shifts_px[:, 0]),
            "shift_y_px": clean(al.shifts_px[:, 1]),
            "determined": [bool(b) for b in al.view_determined],
            "rms_residual_px": clean(view_rms),
            "mean_residual_px": clean(view_mean),
        },
        "markers": {
            "id": np.asarray(al.marker_ids, dtype=np.int64).tolist(),
            "x_px": clean(al.xyz_px[:, 0]),
            "y_px": clean(al.xyz_px[:, 1]),
            "z_px": clean(al.xyz_px[:, 2]),
            "rms_residual_px": clean(marker_rms),
            "mean_residual_px": clean(marker_mean),
        },
        "settings": al.settings.to_dict(),
        "imod_settings": al.settings.to_dict(),  # this session's name; "settings" is the one to read
        "axis_z_shift_px": al.axis_z_shift_px,
        "full_model": {
            "parameters": ["tilt_rad", "rotation_rad", "magnification", "shift_x_px", "shift_y_px", "x_stretch",
                           "skew_rad", "x_tilt_rad", "compression"],
            "per_view": clean(al.full_params),
            "beam_tilt_deg": al.beam_tilt_deg,
        },
    }
