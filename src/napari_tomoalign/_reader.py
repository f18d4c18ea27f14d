"""napari reader for marker files. It returns None for anything it cannot read, and never raises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .io import FileFormatError, read_markers

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


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], LayerData] | None:
    """Return a reader for a marker file, or None if this plugin cannot read ``path``."""
    try:
        if isinstance(path, list):
            if len(path) != 1:
                return None
            path = path[0]
        p = Path(path)
        if not p.is_file() or not _looks_like_markers(p):
            return None
    except Exception:
        return None
    return _read


def _read(path: str | list[str]) -> LayerData:
    from ._layers import markers_to_points

    p = Path(path[0] if isinstance(path, list) else path)
    try:
        table = read_markers(p)
    except FileFormatError as exc:
        from napari.utils.notifications import show_error

        show_error(str(exc))
        return []
    data, kwargs = markers_to_points(table, name=p.stem)
    return [(data, kwargs, "points")]
