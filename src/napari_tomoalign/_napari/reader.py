"""napari readers: MRC tilt series and marker files. They return None for anything they cannot read.

``napari_get_reader`` checks the file (the MRC header, the IMOD magic, the CSV header) before it
offers a reader, so that napari can try other plugins; it never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import FileFormatError, read_markers
from ..io.mrc import STACK_SUFFIXES, open_tilt_series

LayerData = list[tuple[Any, dict[str, Any], str]]


def _looks_like_markers(path: Path) -> bool:
    ext = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if ext in (".fid", ".mod"):
        return head[:4] == b"IMOD"
    if ext == ".csv":
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
        cols = [c.strip() for c in first.split(",")]
        return all(c in cols for c in ("view", "marker", "x", "y"))
    return False


def _single_path(path: str | list[str]) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    return p if p.is_file() else None


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], LayerData] | None:
    """Return a reader for a tilt series or a marker file, or None if this plugin cannot read ``path``."""
    try:
        p = _single_path(path)
        if p is None:
            return None
        if p.suffix.lower() in STACK_SUFFIXES:
            open_tilt_series(p, strict_tilts=False)  # header and size check; cheap, the data stay on disk
            return read_tilt_series
        if _looks_like_markers(p):
            return read_marker_file
    except Exception:  # any failure means "not ours": napari moves on to other readers
        return None
    return None


def tilt_series_layer(path: Path) -> tuple[Any, dict[str, Any], str]:
    """The Image layer tuple of a memory-mapped tilt series, with its tilt angles in the metadata."""
    ts = open_tilt_series(path, strict_tilts=False)
    pixel_nm = ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else 1.0
    mid = np.asarray(ts.data[ts.n_views // 2], dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(mid, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = float(mid.min()), float(mid.min()) + 1.0
    meta = {
        "path": str(path),
        "tilt_angles_deg": ts.tilt_angles_deg,
        "tilt_source": ts.tilt_source or (f"none: {ts.tilt_error}" if ts.tilt_error else "none found"),
        "pixel_size_nm": ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else None,
    }
    kwargs = {"name": path.name, "scale": (1.0, pixel_nm, pixel_nm), "metadata": meta,
              "contrast_limits": (lo, hi), "colormap": "gray", "multiscale": False}
    return ts.data, kwargs, "image"


def read_tilt_series(path: str | list[str]) -> LayerData:
    p = _single_path(path)
    if p is None:
        return []
    try:
        layer = tilt_series_layer(p)
    except FileFormatError as exc:
        _notify(str(exc))
        return []
    if layer[1]["metadata"]["tilt_source"].startswith("none"):
        _notify(f"{p.name}: no tilt angles ({layer[1]['metadata']['tilt_source']}); "
                "give a .tlt file in the Align widget", warning=True)
    return [layer]


def read_marker_file(path: str | list[str]) -> LayerData:
    from .layers import markers_to_points

    p = _single_path(path)
    if p is None:
        return []
    try:
        table = read_markers(p)
    except FileFormatError as exc:
        _notify(str(exc))
        return []
    data, kwargs = markers_to_points(table, name=p.stem)
    return [(data, kwargs, "points")]


def _notify(message: str, warning: bool = False) -> None:
    from napari.utils.notifications import show_error, show_warning

    (show_warning if warning else show_error)(message)
