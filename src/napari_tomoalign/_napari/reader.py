"""napari readers: MRC tilt series, MRC volumes (tomograms) and marker files. They return None for
anything they cannot read.

``napari_get_reader`` checks the file (the MRC header, the IMOD magic, the CSV header) before it
offers a reader, so that napari can try other plugins; it never raises.

- A tilt series opens memory-mapped with its pixel size as the scale of y and x (nm) and its tilt
  angles and their source in the metadata (`io.tilt_sources`: a raw stack takes ``.rawtlt`` first,
  an aligned ``.ali`` takes ``.tlt``).
- A volume (``.rec``, ``.map``, or an MRC whose header says volume) opens with its voxel size on all
  three axes and no tilt angles: it is not a tilt series.
- Marker files hold pixels; their layer gets scale 1 until the dock pairs it with its stack. The
  tilt angles beside the file (``.rawtlt``, then ``.tlt``) ride along in the metadata.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import FileFormatError, read_markers
from ..io.imod_model import marked_stack, placed_on_preali
from ..io.mrc import STACK_SUFFIXES, open_tilt_series
from ..io.tilt_sources import sibling_tilt_file
from ..io.tilts import read_tilt_angles

LayerData = list[tuple[Any, dict[str, Any], str]]
VOLUME_SUFFIXES = (".rec", ".map")
TILT_SERIES_SUFFIXES = (".st", ".ali", ".mrcs", ".preali")  # IMOD's and RELION's names for image stacks
MRC_ISPG_OFFSET = 88  # the space-group word: 0 for image stacks, 1 for volumes (MRC2014)


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
        cols = [c.strip().strip('"') for c in first.split(",")]
        ours = all(c in cols for c in ("view", "marker", "x", "y"))
        napari_points = all(c in cols for c in ("axis-0", "axis-1", "axis-2", "marker"))
        return ours or napari_points
    return False


def _single_path(path: str | list[str]) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    return p if p.is_file() else None


def is_volume(path: Path) -> bool:
    """A tomogram rather than a tilt series: by IMOD's suffixes (``.rec``, ``.map``); a tilt-series suffix
    or tilt angles beside it make it a tilt series; otherwise an MRC header that says volume.

    Many writers (mrcfile's ``set_data`` among them) mark any 3-D MRC as a volume, so the header alone
    would turn a ``.st`` tilt series into a tomogram.
    """
    ext = path.suffix.lower()
    if ext in VOLUME_SUFFIXES:
        return True
    if ext in TILT_SERIES_SUFFIXES or sibling_tilt_file(path) is not None:
        return False
    try:
        with open(path, "rb") as f:
            raw = f.read(1024)
        order = ">" if len(raw) > 212 and raw[212] == 0x11 else "<"
        (ispg,) = struct.unpack(order + "i", raw[MRC_ISPG_OFFSET : MRC_ISPG_OFFSET + 4])
    except (OSError, struct.error):
        return False
    return ispg == 1


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], LayerData] | None:
    """Return a reader for a tilt series, a volume or a marker file, or None if this plugin cannot read ``path``."""
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


def _contrast(stack: np.ndarray, k: int) -> tuple[float, float]:
    """Contrast limits from the 0.5 and 99.5 percentiles of section ``k``, read subsampled from the (memory-mapped)
    stack: a view of any size costs about a 1024² image."""
    step = max(1, max(stack.shape[1:]) // 1024)
    # Row by row: a checked stack reads whole rows from the file, and a strided index would read the whole view.
    sub = np.stack([np.asarray(stack[k, r], dtype=np.float32)[::step] for r in range(0, stack.shape[1], step)])
    sub = sub[np.isfinite(sub)]  # a damaged file's NaN or inf pixels say nothing about the contrast
    if sub.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sub, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (float(sub.min()), float(sub.min()) + 1.0)


def volume_layer(path: Path) -> tuple[Any, dict[str, Any], str]:
    """The Image layer tuple of a memory-mapped volume ``(z, y, x)`` with its voxel size on every axis."""
    ts = open_tilt_series(path, strict_tilts=False)
    voxel_nm = ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else 1.0
    meta = {"path": str(path), "volume": True,
            "pixel_size_nm": ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else None}
    kwargs = {"name": path.name, "scale": (voxel_nm,) * 3, "metadata": meta,
              "contrast_limits": _contrast(ts.data, ts.n_views // 2), "colormap": "gray", "multiscale": False}
    return ts.data, kwargs, "image"


def tilt_series_layer(path: Path) -> tuple[Any, dict[str, Any], str]:
    """The Image layer tuple of a memory-mapped tilt series, with its tilt angles in the metadata."""
    ts = open_tilt_series(path, strict_tilts=False)
    pixel_nm = ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else 1.0
    meta = {
        "path": str(path),
        "tilt_angles_deg": ts.tilt_angles_deg,
        "tilt_source": ts.tilt_source or (f"none: {ts.tilt_error}" if ts.tilt_error else "none found"),
        "pixel_size_nm": ts.pixel_size_angstrom / 10.0 if ts.pixel_size_angstrom else None,
    }
    kwargs = {"name": path.name, "scale": (1.0, pixel_nm, pixel_nm), "metadata": meta,
              "contrast_limits": _contrast(ts.data, ts.n_views // 2), "colormap": "gray", "multiscale": False}
    return ts.data, kwargs, "image"


def read_tilt_series(path: str | list[str]) -> LayerData:
    p = _single_path(path)
    if p is None:
        return []
    try:
        if is_volume(p):
            return [volume_layer(p)]
        layer = tilt_series_layer(p)
    except FileFormatError as exc:
        _notify(str(exc))
        return []
    if layer[1]["metadata"]["tilt_source"].startswith("none"):
        _notify(f"{p.name}: no tilt angles ({layer[1]['metadata']['tilt_source']}); "
                "give a tilt file in the Align widget", warning=True)
    return [layer]


def marker_file_layer(p: Path) -> tuple[Any, dict[str, Any], str]:
    """The Points layer tuple of a marker file, with the sibling tilt angles in its metadata."""
    from .layers import ON_PREALI, PLACED_ON, markers_to_points

    table = read_markers(p)
    data, kwargs = markers_to_points(table, name=p.stem)
    kwargs["metadata"][ON_PREALI] = placed_on_preali(p)  # etomo's model: its points are the .preali's (`writer`)
    if p.suffix.lower() in (".fid", ".mod") and (stack := marked_stack(p)) is not None:
        kwargs["metadata"][PLACED_ON] = stack  # saved again with no stack paired, it still names it (`writer`)
    pixel_nm = _sibling_stack_pixel_nm(p, table.image_size)
    if pixel_nm is not None:  # drawn on its stack's beads from the start, before the dock pairs them
        kwargs["scale"] = (1.0, pixel_nm, pixel_nm)
    tlt = sibling_tilt_file(p)
    if tlt is not None:
        try:
            kwargs["metadata"].update(tilt_angles_deg=read_tilt_angles(tlt), tilt_source=str(tlt))
        except FileFormatError as exc:
            kwargs["metadata"]["tilt_source"] = f"none: {exc}"
    return data, kwargs, "points"


def _sibling_stack_pixel_nm(p: Path, image_size: tuple[int, int] | None) -> float | None:
    """The pixel size of the stack beside a marker file (IMOD's names: ``.preali`` first, as etomo's markers
    are placed on it), when that stack has the markers' image size; else None."""
    for ext in (".preali", ".st", ".mrc", ".mrcs", ".ali"):
        cand = p.with_suffix(ext)
        if not cand.is_file():
            continue
        try:
            ts = open_tilt_series(cand, find_tilts=False)
        except FileFormatError:
            continue
        rows, cols = ts.data.shape[1:]
        if ts.pixel_size_angstrom and (image_size is None or tuple(image_size) == (cols, rows)):
            return ts.pixel_size_angstrom / 10.0
    return None


def read_marker_file(path: str | list[str]) -> LayerData:
    p = _single_path(path)
    if p is None:
        return []
    try:
        return [marker_file_layer(p)]
    except FileFormatError as exc:
        _notify(str(exc))
        return []


def _notify(message: str, warning: bool = False) -> None:
    from napari.utils.notifications import show_error, show_warning

    (show_warning if warning else show_error)(message)
