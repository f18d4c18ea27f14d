"""IMOD binary models (``.fid``/``.mod``): read by our own chunk walk, written by our own packing of the bytes
imodmodel writes for the same model.

Why not imodmodel: its parser ignores the length that every chunk states (``SIZE``,
``IMAT``, ``MINX``, ``SLAN`` are parsed by their own layout, so a structure check that skips a chunk by
its length and imodmodel see different bytes: a contour header hidden in a ``SIZE`` chunk claiming
2**31 points made it allocate 12.8 GB), it builds a pydantic object per contour (a million empty
contours, 20 MB, took 35 s and 4.6 GB), and importing it loads pandas (0.3 s). A fiducial model needs
only the header's image size and the points of each contour, so the reader walks the chunks itself,
in one compiled pass that checks every count against the bytes that are there, then a second that
decodes the points straight into the arrays. Work and memory are linear in the file's size. Models up
to 1 MB (a few hundred markers) are walked in Python and decoded by numpy, which spares a command the
import of numba; larger ones by the compiled pass in `imod_model_compiled`. The writer packs one object of
open contours with the header values imodmodel gives a new model (its tests compare the bytes), without
imodmodel's per-contour objects and pandas import.

Format (IMOD's ``imodel_read``): ``IMODV1.2``, a 232-byte model header (``xmax, ymax, zmax`` at
bytes 136-147 of the file), then chunks: ``OBJT`` + 176-byte object header; ``CONT`` + ``psize,
flags, time, surf`` + ``psize`` big-endian float32 triples; ``MESH`` + ``vsize, lsize, flag, time,
surf`` + ``12 vsize + 4 lsize`` bytes; every other chunk + a 4-byte length + that many bytes;
``IEOF`` at the end.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .guarded import read_bytes_limited
from .table import IMOD_PIXEL_OFFSET, MarkerTable

MAX_MODEL_BYTES = 32 * 1024 * 1024  # 2.8 million points; a million-observation model is ~15 MB
MAX_VIEW_NUMBER = 1_000_000
_HEADER_END = 8 + 232
_PROBLEMS = {
    1: "it ends before the IEOF marker",
    2: "an unknown chunk",
    3: "a CONT or MESH header is cut short",
    4: "a CONT or MESH chunk with a negative count or before any object",
    5: "the size of a chunk is cut short",
    6: "a chunk runs past the end of the file",
}


COMPILED_WALK_BYTES = 1 << 20  # larger models are walked by the compiled pass (`imod_model_compiled`)
_OBJT, _CONT, _MESH, _IEOF = b"OBJT", b"CONT", b"MESH", b"IEOF"


DEFAULT_NAME = "IMOD-NewModel"  # the model's name, as 3dmod gives a new model
TRACKED_ON = "tomoalign track "  # + the stack's file name: the name of a model `tomoalign track` made
MARKED_ON = "tomoalign markers "  # + the stack's file name: a model the dock saved of markers placed on that stack
PATCHES_ON = TRACKED_ON + "--patches "  # + the stack's file name: a model of patches (no gold) it made

def _walk_python(blob: bytes) -> tuple[int, int, list[int], list[int]]:
    """Walk the chunks; return ``(problem, byte, data offsets, point counts)`` of the contours.

    The same checks, in the same order, as the compiled walk (problem 0: fine). A contour's points are
    ``count`` big-endian float32 triples from its data offset.
    """
    n = len(blob)
    pos, objects = _HEADER_END, 0
    offsets: list[int] = []
    counts: list[int] = []
    unpack = struct.Struct(">ii").unpack_from
    while True:
        if pos + 4 > n:
            return 1, pos, offsets, counts
        tag = blob[pos : pos + 4]
        start = pos
        pos += 4
        if tag == _IEOF:
            return 0, pos, offsets, counts
        if any(t < 48 or t > 90 for t in tag):
            return 2, start, offsets, counts
        if tag == _OBJT:
            pos += 176
            objects += 1
        elif tag == _CONT or tag == _MESH:
            if pos + 16 > n:
                return 3, start, offsets, counts
            a, b = unpack(blob, pos)
            if a < 0 or (tag == _MESH and b < 0) or objects == 0:
                return 4, start, offsets, counts
            pos += 16
            size = 12 * a if tag == _CONT else 12 * a + 4 * b
            if pos + size > n:
                return 6, start, offsets, counts
            if tag == _CONT:
                offsets.append(pos)
                counts.append(a)
            pos += size
        else:
            if pos + 4 > n:
                return 5, start, offsets, counts
            pos += 4 + int.from_bytes(blob[pos : pos + 4], "big")
        if pos > n:
            return 6, start, offsets, counts


def _walk(blob: bytes) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(problem, byte, xyz (n_points, 3), contour (n_points,))``: the model's points, by either walk."""
    buf = np.frombuffer(blob, dtype=np.uint8)
    if len(blob) > COMPILED_WALK_BYTES:
        from .imod_model_compiled import walk_model

        return walk_model(buf)
    problem, at, offsets, counts = _walk_python(blob)
    n_pts = int(sum(counts))
    if problem or n_pts == 0:
        return problem, at, np.empty((0, 3)), np.empty(0, dtype=np.int64)
    per = np.asarray(counts, dtype=np.int64)
    contour = np.repeat(np.arange(len(per)), per)
    first = np.repeat(np.asarray(offsets, dtype=np.int64) - 12 * (np.cumsum(per) - per), per)
    point_start = first + 12 * np.arange(n_pts)
    raw = buf[point_start[:, None] + np.arange(12)]  # (n_points, 12) bytes, contiguous
    return 0, at, raw.view(">f4").astype(np.float64), contour


def read_imod_model(path: str | os.PathLike[str]) -> MarkerTable:
    """Read an IMOD binary model (``.fid``/``.mod``): one contour per marker, z = view index.

    Marker ids number the contours from 1 in file order, across objects, as IMOD's ``fid.xyz``
    does for a single object. Empty contours keep their number (so ids written by
    `write_imod_model` come back unchanged).
    """
    p = str(path)
    blob = read_bytes_limited(path, "IMOD model", MAX_MODEL_BYTES)
    if blob[:4] != b"IMOD":
        raise FileFormatError(f"{p}: not an IMOD model (it does not start with 'IMOD')")
    if len(blob) < _HEADER_END:
        raise FileFormatError(f"{p}: the IMOD model is damaged or truncated (the header is cut short)")
    problem, at, xyz, contour = _walk(blob)
    if problem:
        raise FileFormatError(f"{p}: the IMOD model is damaged or truncated ({_PROBLEMS[problem]} at byte {at})")
    if len(xyz) == 0:
        raise FileFormatError(f"{p}: the IMOD model holds no points")
    if not np.all(np.isfinite(xyz)):
        raise FileFormatError(f"{p}: the IMOD model holds NaN or infinite coordinates")
    z = xyz[:, 2]
    views = np.round(z)
    if np.any(np.abs(z - views) > 0.01) or np.any(views < 0) or np.any(views > MAX_VIEW_NUMBER):
        raise FileFormatError(f"{p}: point Z values must be view numbers (whole, 0 to {MAX_VIEW_NUMBER}); "
                              "is this a fiducial model?")
    xmax, ymax, zmax = (int.from_bytes(blob[o : o + 4], "big", signed=True) for o in (136, 140, 144))
    image_size = (xmax, ymax) if xmax > 0 and ymax > 0 else None
    n_views = zmax if views.max() < zmax <= MAX_VIEW_NUMBER + 1 else None  # the stack's view count, if believable
    return MarkerTable(views.astype(np.intp), contour + 1, xyz[:, :2] - IMOD_PIXEL_OFFSET, image_size, p, n_views,
                       _pixel_size_nm(blob))


_UNITS_NM = {-9: 1.0, -10: 0.1}  # IMOD's model units (nm, Å) as nm; 0 is pixels: no size recorded


def _pixel_size_nm(blob: bytes) -> float | None:
    """The model's ``pixsize`` in nm when its ``units`` are nm or Å and the value is a believable pixel size."""
    size = struct.unpack(">f", blob[216:220])[0]
    scale = _UNITS_NM.get(struct.unpack(">i", blob[220:224])[0])
    nm = size * scale if scale is not None else None
    ok = nm is not None and bool(np.isfinite(nm)) and 0.01 <= nm <= 1000.0
    return float(f"{nm:.6g}") if ok else None  # a float32 in the file: 0.8 back as 0.8, not 0.800000012


def model_name(path: str | os.PathLike[str]) -> str | None:
    """The name in an IMOD model's header (``tomoalign track STACK`` for a model it made), or None when the file
    cannot be read as a model."""
    try:
        with open(path, "rb") as f:
            head = f.read(136)
    except OSError:
        return None
    if len(head) < 136 or head[:4] != b"IMOD":
        return None
    return head[8:136].split(b"\0", 1)[0].decode("utf-8", "replace")


def placed_on_preali(path: str | os.PathLike[str]) -> bool:
    """Whether the marker file at ``path`` was placed on a prealigned stack, so that an ``.xf`` solved from it maps that
    ``.preali`` unless its ``.prexg`` is given: etomo's fiducial model (a ``.fid`` or ``.mod`` not made here), or one
    `tomoalign track` made, or the dock saved, on a ``.preali`` (its name, `TRACKED_ON` or `MARKED_ON`, says the
    stack)."""
    if Path(path).suffix.lower() not in (".fid", ".mod"):
        return False
    stack = marked_stack(path)
    return stack is None or Path(stack).suffix.lower() == ".preali"


def marked_stack(path: str | os.PathLike[str]) -> str | None:
    """The file name of the stack a model made here says its points are placed on (its name, `TRACKED_ON` or
    `MARKED_ON` and the stack), or None for any other model (etomo's, 3dmod's) or a file that is no model."""
    name = model_name(path) or ""
    return name.split()[-1] if name.startswith((TRACKED_ON, MARKED_ON)) and len(name.split()) > 2 else None


def write_imod_model(
    path: str | os.PathLike[str],
    table: MarkerTable,
    image_size: tuple[int, int] | None = None,
    n_views: int | None = None,
    overwrite: bool = False,
    name: str = DEFAULT_NAME,
    pixel_size_nm: float | None = None,
) -> None:
    """Write markers as an IMOD fiducial model: one object of open contours, contour ``k`` = marker ``k``;
    ``name`` is the model's name (3dmod shows it; up to 127 bytes); ``pixel_size_nm`` (default: the table's) is
    written as IMOD's ``pixsize`` in nm, so that an alignment of the model knows it.

    Marker ids must be positive whole numbers; contours for unused ids are left empty so that the
    ids survive a round trip. Positions get IMOD's half-pixel offset; z is the view index. The bytes
    are those imodmodel writes for the same model (its defaults, `_model_header`), packed here in one
    pass: imodmodel's pydantic objects and its pandas import cost a ``tomoalign track`` 0.3-0.6 s.
    """
    from .atomic import atomic_path

    ids = np.asarray(table.marker, dtype=np.int64)
    if ids.size == 0:
        raise ValueError("there are no markers to write")
    if ids.min() < 1:
        raise ValueError(f"IMOD models number markers from 1; marker id {int(ids.min())} cannot be written")
    if ids.max() > 100000:
        raise ValueError(f"marker id {int(ids.max())} is too large for an IMOD model (at most 100000)")
    order = np.lexsort((table.view, ids))
    xyz = np.column_stack([table.xy + IMOD_PIXEL_OFFSET, np.asarray(table.view, dtype=float)])[order]
    ids = ids[order]
    n_contours = int(ids.max())
    starts = np.searchsorted(ids, np.arange(1, n_contours + 2))
    size = image_size or table.image_size
    zmax = int(n_views if n_views is not None else table.n_views or np.max(table.view) + 1)
    points = xyz.astype(">f4")
    pix = pixel_size_nm if pixel_size_nm is not None else table.pixel_size_nm
    parts = [_model_header(size, zmax, name, pix), _OBJT, _object_header(n_contours)]
    for k in range(n_contours):
        parts += [_CONT, _CONTOUR_HEADER.pack(int(starts[k + 1] - starts[k]), 0, 0, 0),
                  points[starts[k] : starts[k + 1]].tobytes()]
    parts.append(_IEOF)
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"".join(parts))


# IMOD's binary layout (binspec.html) with the defaults imodmodel writes for a new model of one object of open
# contours; ``tests/io/test_imod_model_writer.py`` checks the bytes against imodmodel's own.
_MODEL_HEADER = struct.Struct(">4s4s128s4iI4i6f5if2i3f")
_OBJECT_HEADER = struct.Struct(">64s16IiIii3fi8B2i")
_CONTOUR_HEADER = struct.Struct(">iIii")
_OPEN_CONTOURS = 1 << 3  # the object flag of open contours


def _model_header(image_size: tuple[int, int] | None, zmax: int, name: str = DEFAULT_NAME,
                  pixel_size_nm: float | None = None) -> bytes:
    """``IMODV1.2``, then the model header: name, image size, one object, IMOD's default display settings; the
    pixel size as ``pixsize`` in nm (units -9), else 1 pixel (units 0, 3dmod's default)."""
    xmax, ymax = (int(image_size[0]), int(image_size[1])) if image_size is not None else (0, 0)
    label = name.encode("utf-8", "replace")[:127]
    size, units = (float(pixel_size_nm), -9) if pixel_size_nm else (1.0, 0)
    return _MODEL_HEADER.pack(b"IMOD", b"V1.2", label, xmax, ymax, zmax, 1, 0, 1, 2, 0, 255,
                              0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0, 0, -1, 3, 128, size, units, 0, 0.0, 0.0, 0.0)


def _object_header(n_contours: int) -> bytes:
    """The object header: ``n_contours`` open contours, green, drawn as circles of size 3 (IMOD's defaults)."""
    return _OBJECT_HEADER.pack(b"", *([0] * 16), n_contours, _OPEN_CONTOURS, 0, 1, 0.0, 1.0, 0.0, 2,
                               1, 3, 1, 1, 0, 0, 0, 0, 0, 0)
