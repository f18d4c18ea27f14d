"""napari writers: Image layers to MRC (voxel size kept, tilt angles beside), marker Points layers to
IMOD ``.fid`` or CSV.

An image the dock made from a stack of an integer mode (the aligned stack) is saved in that mode, as
``newstack`` keeps it (bytes stay MRC mode 0).

Marker points are pixels of their tilt series (`layers`), so they are written as they are. Each
marker writer writes the format the file name asks for (``.fid``/``.mod`` or ``.csv``), whichever of
the two napari called: a name and a filter that disagree never lose the save. Every write goes to a
temporary file that is renamed into place; a file that already exists is first renamed to ``name~``,
as IMOD does, and a notification says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.markers import write_imod_model, write_markers_csv
from ..io.mrc import write_mrc
from ..io.tilts import write_tilt_angles
from .layers import points_to_markers

IMAGE_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")
MODEL_SUFFIXES = (".fid", ".mod")


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
        raise ValueError("this Points layer has no 'marker' feature, so it does not hold fiducial markers; "
                         "use 'Use as markers' in the Align dock first")
    marker = np.asarray(features["marker"], dtype=np.int64)
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != 3:
        raise ValueError("marker points must be (view, y, x)")
    table = points_to_markers(data, marker)
    size = (meta.get("metadata") or {}).get("image_size")
    if size is not None:
        table.image_size = (int(size[0]), int(size[1]))
    return table


def write_markers(path: str | os.PathLike[str], data: Any, meta: dict[str, Any], default: str = ".fid") -> list[str]:
    """Write marker points in the format of ``path``'s suffix (``default`` when it has none)."""
    p = Path(path)
    if p.suffix.lower() not in (*MODEL_SUFFIXES, ".csv"):
        p = p.with_name(p.name + default)
    if p.suffix.lower() in MODEL_SUFFIXES:  # etomo's model shown through its .prexg: back on the .preali, as etomo's
        from .dock.prealigned import file_frame_points

        data = file_frame_points(data, meta.get("metadata"))
    table = _marker_table(data, meta)
    _backup_existing([p])
    if p.suffix.lower() == ".csv":
        write_markers_csv(p, table)
    else:
        write_imod_model(p, table, name=model_name(meta.get("metadata") or {}))
    return [str(p)]


def model_name(metadata: dict[str, Any]) -> str:
    """The name a saved model takes, which says what stack its points are placed on (`io.imod_model.placed_on_preali`):
    3dmod's default, as etomo's models have it, for points of the ``.preali`` (shown through a ``.prexg`` and put back,
    or read from etomo's model), and for a layer nothing says the stack of; else `io.imod_model.MARKED_ON` and the stack
    the dock paired the layer with, or else the one the model it was read from named (placed on a raw ``BBa.st``, a
    model is not etomo's and no ``.prexg`` applies to it when it is opened again: a model `track` made, opened and
    saved by napari's File > Save with no dock, read back as etomo's before session 20)."""
    from ..io.imod_model import DEFAULT_NAME, MARKED_ON
    from .dock.inputs import PAIRED
    from .dock.prealigned import PREXG
    from .layers import ON_PREALI, PLACED_ON

    stack = metadata.get(PAIRED) or metadata.get(PLACED_ON)
    if not stack or isinstance(metadata.get(PREXG), dict) or metadata.get(ON_PREALI):
        return DEFAULT_NAME
    return MARKED_ON + Path(str(stack)).name


def write_markers_fid(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A marker Points layer as an IMOD fiducial model (or CSV when the name ends in .csv)."""
    return write_markers(path, data, meta, ".fid")


def write_markers_table(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A marker Points layer as CSV ``view,marker,x,y`` (or an IMOD model when the name ends in .fid/.mod)."""
    return write_markers(path, data, meta, ".csv")


def voxel_size_angstrom(meta: dict[str, Any]) -> float | None:
    """The voxel size to record: the layer's own pixel size (nm) if it knows it, else its scale when
    that is not napari's unit default."""
    md = meta.get("metadata") or {}
    nm = md.get("pixel_size_nm")
    if nm:
        return float(nm) * 10.0
    scale = meta.get("scale")
    return float(scale[-1]) * 10.0 if scale is not None and float(scale[-1]) != 1.0 else None


def tilt_file_for(path: Path, md: dict[str, Any]) -> Path:
    """Where the angles of a saved stack go: ``.tlt`` for an aligned stack (solved angles), else ``.rawtlt``."""
    solved = path.suffix.lower() == ".ali" or md.get("tilt_kind") == "solved"
    return path.with_suffix(".tlt" if solved else ".rawtlt")


def in_source_mode(arr: Any, source_dtype: str | None) -> Any:
    """An image made from a stack of an integer mode (the dock's aligned stack: ``source_dtype`` in its metadata)
    in that mode, rounded and clipped, as ``newstack`` and ``tomoalign aligned-stack`` keep it; else as it is."""
    if source_dtype is None or arr.dtype.kind not in "f":
        return arr
    from ..jobs.images import in_mode, output_mode

    return in_mode(arr, output_mode(source_dtype, None))


def write_image_mrc(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """An Image layer as MRC, with its voxel size and, for a tilt series, its tilt angles beside it."""
    from ..reconstruction.aligned_views import AlignedViews

    p = Path(path)
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        p = p.with_suffix(".mrc")
    if isinstance(data, AlignedViews):
        return _write_aligned_views(p, data, meta)
    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or np.iscomplexobj(arr) or arr.dtype.kind == "b":
        raise ValueError(f"MRC holds real 2-D or 3-D images; this layer is {arr.ndim}-D {arr.dtype}")
    md = meta.get("metadata") or {}
    tilts = None if md.get("volume") else md.get("tilt_angles_deg")
    if tilts is not None and (arr.ndim != 3 or len(tilts) != arr.shape[0]):
        tilts = None
    targets = [p] + ([tilt_file_for(p, md)] if tilts is not None else [])
    arr = in_source_mode(arr, md.get("source_dtype"))
    _backup_existing(targets)
    write_mrc(p, arr, voxel_size_angstrom(meta))
    if tilts is not None:
        write_tilt_angles(targets[1], np.asarray(tilts, dtype=float))
    return [str(t) for t in targets]


def _write_aligned_views(p: Path, views: Any, meta: dict[str, Any]) -> list[str]:
    """The dock's aligned stack layer (`AlignedViews`) saved: `write_aligned_views` in the stack's mode, the angles
    beside it; an existing file kept as ``name~``."""
    from ..jobs.images import output_mode

    md = meta.get("metadata") or {}
    tilts = md.get("tilt_angles_deg")
    tilts = tilts if tilts is not None and len(tilts) == views.shape[0] else None
    targets = [p] + ([tilt_file_for(p, md)] if tilts is not None else [])
    _backup_existing(targets)
    write_aligned_views(p, views, output_mode(md.get("source_dtype") or np.float32, None), voxel_size_angstrom(meta),
                        overwrite=True)
    if tilts is not None:
        write_tilt_angles(targets[1], np.asarray(tilts, dtype=float))
    return [str(t) for t in targets]


def write_aligned_views(path: str | os.PathLike[str], views: Any, dtype: Any, voxel_size_angstrom: float | None,
                        overwrite: bool = False) -> Path:
    """An aligned stack made view by view (`AlignedViews`: the raw stack and its transforms) warped and written one
    view at a time, atomically, as ``tomoalign aligned-stack`` writes it (`jobs.images.make_aligned_stack`:
    `warp.warp_view`, then ``dtype``, streamed): the same ``.ali`` for the same alignment, never the whole float32
    stack in memory. An existing file is an `OverwriteError` unless ``overwrite``."""
    from ..io.atomic import atomic_path
    from ..io.mrc import MrcStreamWriter
    from ..jobs.images import in_mode
    from ..reconstruction.warp import warp_view

    with atomic_path(path, overwrite) as tmp:
        w = MrcStreamWriter(tmp, views.shape, dtype, voxel_size_angstrom)
        try:
            for j in range(views.shape[0]):
                view = warp_view(np.asarray(views.stack[j]), views.transforms[j], out_shape=views.shape[1:])
                w.write(in_mode(view, np.dtype(dtype)))
            w.close()
        except BaseException:
            w.abort()
            raise
    return Path(path)
