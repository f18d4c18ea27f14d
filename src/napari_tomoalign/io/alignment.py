"""Write a solved alignment: JSON, CSV tables and IMOD's files, all atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..result import Alignment
from ..transforms import aligned_frame, aligned_marker_positions, imod_transforms
from .atomic import atomic_open, check_writable
from .imod import write_fid_xyz, write_resid, write_xf
from .tilts import write_tilt_angles


def output_names(stem: str) -> list[str]:
    """The files `write_alignment` writes for a markers file of this stem."""
    return ["alignment.json", "predicted.csv", "residuals.csv",
            f"{stem}.xf", f"{stem}.tlt", f"{stem}fid.xyz", f"{stem}.resid"]


def write_alignment(
    al: Alignment,
    directory: str | os.PathLike[str],
    stem: str,
    *,
    overwrite: bool = False,
    axis_z_shift_px: float = 0.0,
    extra: dict | None = None,
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
    info = al.to_dict()
    info["package_version"] = __version__
    info["aligned_frame"] = {
        "tilt_axis_x_px": frame.x0_px, "centre_row_y_px": frame.y0_px, "tilt_axis_z_px": frame.z0_px,
        "z_range_midpoint_px": frame.z_range_midpoint_px,
    }
    if extra:
        info["inputs"] = extra
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
