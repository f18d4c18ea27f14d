"""napari writers: Image layers to MRC (with a .tlt beside), marker Points layers to IMOD .fid and CSV.

Every write goes to a temporary file that is renamed into place. A file that already exists is
never lost: it is first renamed to ``name~``, as IMOD does, and a notification says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.markers import write_imod_model, write_markers_csv
from ..io.mrc import write_mrc
from .layers import points_to_markers


def _backup_existing(paths: list[Path]) -> list[str]:
    """Rename existing targets to ``name~`` (replacing an older backup); return what was moved."""
    moved = []
    for p in paths:
        if p.exists():
            backup = p.with_name(p.name + "~")
            os.replace(p, backup)
            moved.append(f"{p.name} -> {backup.name}")
    if moved:
        from napari.utils.notifications import show_info

        show_info("kept the previous file(s) as backups: " + ", ".join(moved))
    return moved


def _marker_table(data: Any, meta: dict[str, Any]):
    features = meta.get("features")
    if features is None or "marker" not in getattr(features, "columns", features):
        raise ValueError("this Points layer has no 'marker' feature, so it does not hold fiducial markers")
    marker = np.asarray(features["marker"], dtype=np.int64)
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != 3:
        raise ValueError("marker points must be (view, y, x)")
    table = points_to_markers(data, marker)
    size = (meta.get("metadata") or {}).get("image_size")
    if size is not None:
        table.image_size = (int(size[0]), int(size[1]))
    return table


def _write_markers(path: str, data: Any, meta: dict[str, Any], write) -> list[str]:
    table = _marker_table(data, meta)
    p = Path(path)
    _backup_existing([p])
    write(p, table)
    return [str(p)]


def write_markers_fid(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A marker Points layer as an IMOD fiducial model."""
    return _write_markers(path, data, meta, write_imod_model)


def write_markers_table(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A marker Points layer as CSV ``view,marker,x,y``."""
    return _write_markers(path, data, meta, write_markers_csv)


def write_image_mrc(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """An Image layer as MRC, with the voxel size from its scale (nm) and its tilt angles as ``.tlt``."""
    p = Path(path)
    if p.suffix.lower() not in (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map"):
        p = p.with_suffix(".mrc")
    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or np.iscomplexobj(arr) or arr.dtype.kind == "b":
        raise ValueError(f"MRC holds real 2-D or 3-D images; this layer is {arr.ndim}-D {arr.dtype}")
    scale = meta.get("scale")
    voxel_a = float(scale[-1]) * 10.0 if scale is not None and float(scale[-1]) != 1.0 else None
    md = meta.get("metadata") or {}
    tilts = md.get("tilt_angles_deg")
    if tilts is not None and (arr.ndim != 3 or len(tilts) != arr.shape[0]):
        tilts = None
    targets = [p] + ([p.with_suffix(".tlt")] if tilts is not None else [])
    _backup_existing(targets)
    write_mrc(p, arr, voxel_a, tilt_angles_deg=tilts)
    return [str(t) for t in targets]
