"""Write a solved alignment: JSON, CSV tables and IMOD's files, all atomically."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..alignment.result import Alignment
from ..alignment.transforms import aligned_frame, aligned_marker_positions, imod_transforms
from .atomic import atomic_open, check_writable
from .errors import FileFormatError
from .imod import read_xf, write_fid_xyz, write_resid, write_xf
from .tilts import read_text, read_tilt_angles, write_tilt_angles


def output_names(stem: str) -> list[str]:
    """The files `write_alignment` writes for a markers file of this stem."""
    return ["alignment.json", "predicted.csv", "residuals.csv",
            f"{stem}.xf", f"{stem}.tlt", f"{stem}fid.xyz", f"{stem}.resid"]


def alignment_to_dict(al: Alignment) -> dict[str, Any]:
    """Every parameter and statistic of ``al`` as plain JSON-ready values (NaN becomes None).

    This is the schema of ``alignment.json``.
    """

    def clean(a: Any) -> Any:
        arr = np.asarray(a, dtype=float)
        return [None if not np.isfinite(x) else float(x) for x in arr.ravel()] if arr.ndim == 1 else [
            clean(row) for row in arr
        ]

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
            "id": [int(m) for m in al.marker_ids],
            "x_px": clean(al.xyz_px[:, 0]),
            "y_px": clean(al.xyz_px[:, 1]),
            "z_px": clean(al.xyz_px[:, 2]),
            "rms_residual_px": clean(marker_rms),
            "mean_residual_px": clean(marker_mean),
        },
    }


def write_alignment(
    al: Alignment,
    directory: str | os.PathLike[str],
    stem: str,
    *,
    overwrite: bool = False,
    axis_z_shift_px: float = 0.0,
    extra: dict | None = None,
    sections: dict | None = None,
) -> list[Path]:
    """Write every output of an alignment into ``directory``; return the paths.

    Nothing is written if any target exists and ``overwrite`` is False.
    """
    d = Path(directory)
    paths = [d / n for n in output_names(stem)]
    for p in paths:
        check_writable(p, overwrite)
    d.mkdir(parents=True, exist_ok=True)
    frame = aligned_frame(al, axis_z_shift_px)
    info = alignment_to_dict(al)
    info["package_version"] = __version__
    info["aligned_frame"] = {
        "tilt_axis_x_px": frame.x0_px, "centre_row_y_px": frame.y0_px, "tilt_axis_z_px": frame.z0_px,
        "z_range_midpoint_px": frame.z_range_midpoint_px,
    }
    if extra:
        info["inputs"] = extra
    info.update(sections or {})
    with atomic_open(paths[0], overwrite=overwrite) as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    pred = al.predicted_xy_px
    with atomic_open(paths[1], overwrite=overwrite) as f:
        f.write("view,marker,x,y\n")
        for v in range(al.n_views):
            for m in range(al.n_markers):
                f.write(f"{v},{int(al.marker_ids[m])},{pred[v, m, 0]:.4f},{pred[v, m, 1]:.4f}\n")
    with atomic_open(paths[2], overwrite=overwrite) as f:
        f.write("view,marker,x,y,dx,dy\n")
        for v, m, (x, y), (dx, dy) in zip(al.obs_view, al.obs_marker, al.obs_xy_px, al.residuals_px):
            f.write(f"{int(v)},{int(al.marker_ids[m])},{x:.4f},{y:.4f},{dx:.4f},{dy:.4f}\n")
    write_xf(paths[3], imod_transforms(al, axis_z_shift_px), overwrite=overwrite)
    tilts = np.where(al.view_determined, al.tilt_angles_deg, al.nominal_tilt_angles_deg)
    write_tilt_angles(paths[4], tilts, overwrite=overwrite)
    pix_a = 10.0 * al.pixel_size_nm if al.pixel_size_nm else 1.0
    write_fid_xyz(paths[5], al.marker_ids, aligned_marker_positions(al, axis_z_shift_px), al.image_size, pix_a,
                  overwrite=overwrite)
    used = al.obs_used
    write_resid(paths[6], al.obs_view[used], al.obs_xy_px[used], al.residuals_px[used], overwrite=overwrite)
    return paths


@dataclass(frozen=True)
class SavedAlignment:
    """What the reconstruction tools need from a directory written by `write_alignment`."""

    transforms: np.ndarray
    tilt_angles_deg: np.ndarray
    view_determined: np.ndarray
    image_size: tuple[int, int]
    pixel_size_nm: float | None


def read_alignment_dir(directory: str | os.PathLike[str]) -> SavedAlignment:
    """Read the transforms, solved tilts and image size from an alignment output directory."""
    d = Path(directory)
    info_path = d / "alignment.json"
    if not info_path.is_file():
        raise FileFormatError(f"{d}: no alignment.json here; give the --output directory of 'tomoalign align'")
    try:
        info = json.loads(read_text(info_path, "alignment"))
        size = tuple(int(v) for v in info["image_size"])
        determined = np.asarray(info["views"]["determined"], dtype=bool)
        pix = info.get("pixel_size_nm")
    except (ValueError, KeyError, TypeError):
        raise FileFormatError(f"{info_path}: not an alignment.json written by tomoalign") from None
    xfs = sorted(d.glob("*.xf"))
    if len(xfs) != 1:
        raise FileFormatError(f"{d}: expected one .xf file, found {len(xfs)}")
    xf = read_xf(xfs[0])
    tilts = read_tilt_angles(xfs[0].with_suffix(".tlt"))
    if not (len(xf) == tilts.size == determined.size):
        raise FileFormatError(f"{d}: the .xf ({len(xf)}), .tlt ({tilts.size}) and alignment.json "
                              f"({determined.size}) disagree on the number of views")
    xf[~determined] = np.nan
    return SavedAlignment(xf, tilts, determined, (size[0], size[1]), float(pix) if pix else None)
