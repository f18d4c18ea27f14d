"""Marker observations from CSV files and IMOD models.

Positions use this project's convention: x = column, y = row, the centre of the first pixel at
(0, 0). IMOD models put that centre at (0.5, 0.5); the conversion happens here and nowhere else.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_open
from .errors import FileFormatError
from .tilts import read_text

IMOD_PIXEL_OFFSET = 0.5
MAX_MODEL_BYTES = 512 * 1024 * 1024


@dataclass
class MarkerTable:
    """Sparse marker observations.

    Attributes
    ----------
    view
        ``(n_obs,)`` 0-based view index.
    marker
        ``(n_obs,)`` marker id.
    xy
        ``(n_obs, 2)`` (x, y) positions in pixels.
    image_size
        ``(width, height)`` when the file records it (IMOD models do), else None.
    """

    view: NDArray[np.intp]
    marker: NDArray[np.int64]
    xy: NDArray[np.float64]
    image_size: tuple[int, int] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.view)


def read_markers(path: str | os.PathLike[str]) -> MarkerTable:
    """Read markers from a ``.csv`` (``view,marker,x,y`` header) or an IMOD ``.fid``/``.mod`` model."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".csv":
        return read_markers_csv(p)
    if ext in (".fid", ".mod"):
        return read_imod_model(p)
    raise FileFormatError(f"{p}: unknown marker file type {ext!r}; use a .csv, .fid or .mod file")


def read_markers_csv(path: str | os.PathLike[str]) -> MarkerTable:
    """Read a CSV whose header includes ``view,marker,x,y``; other columns are ignored."""
    text = read_text(path, "marker CSV")
    reader = csv.reader(io.StringIO(text))
    try:
        return _parse_markers_csv(path, reader)
    except csv.Error as exc:
        raise FileFormatError(f"{path}, line {reader.line_num}: not readable as CSV ({exc})") from None


def _parse_markers_csv(path, reader) -> MarkerTable:
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FileFormatError(f"{path}: the file is empty; expected a header with view,marker,x,y") from None
    missing = [c for c in ("view", "marker", "x", "y") if c not in header]
    if missing:
        raise FileFormatError(f"{path}: the header lacks column(s) {', '.join(missing)}; it needs view,marker,x,y")
    idx = [header.index(c) for c in ("view", "marker", "x", "y")]
    rows = []
    for n, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            vals = [float(row[i]) for i in idx]
        except (ValueError, IndexError):
            raise FileFormatError(f"{path}, line {n}: expected numbers in view,marker,x,y, got {row[:6]}") from None
        if not all(np.isfinite(vals)):
            raise FileFormatError(f"{path}, line {n}: NaN or infinite value in {row[:6]}")
        if vals[0] != round(vals[0]) or vals[0] < 0 or vals[1] != round(vals[1]):
            raise FileFormatError(f"{path}, line {n}: view must be a whole number >= 0 and marker a whole number")
        if vals[0] > 1e6 or abs(vals[1]) > 2**53:
            raise FileFormatError(f"{path}, line {n}: view {vals[0]:.0f} or marker {vals[1]:.0f} is out of range")
        rows.append(vals)
    if not rows:
        raise FileFormatError(f"{path}: no marker rows after the header")
    a = np.asarray(rows)
    return MarkerTable(a[:, 0].astype(np.intp), a[:, 1].astype(np.int64), a[:, 2:4].copy(), None, str(path))


def write_markers_csv(path: str | os.PathLike[str], table: MarkerTable, overwrite: bool = False) -> None:
    """Write ``view,marker,x,y`` rows, atomically."""
    with atomic_open(path, overwrite=overwrite) as f:
        f.write("view,marker,x,y\n")
        for v, m, (x, y) in zip(table.view, table.marker, table.xy):
            f.write(f"{int(v)},{int(m)},{x:.6f},{y:.6f}\n")


class _StrictReader:
    """A file-like view of bytes whose reads never come up short: past the end they raise.

    imodmodel's parser loops until it meets ``IEOF`` and would spin forever on a truncated file.
    """

    def __init__(self, blob: bytes) -> None:
        self._blob, self._pos = blob, 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = len(self._blob) - self._pos
        if self._pos + n > len(self._blob):
            raise EOFError("the model ends in the middle of a chunk")
        out = self._blob[self._pos : self._pos + n]
        self._pos += n
        return out


_IMOD_SIZED_HEADERS = {b"OBJT": 176}


def _imod_structure_problem(blob: bytes) -> str | None:
    """Walk the chunks of an IMOD binary model; say what is wrong, or None.

    Every count is checked against the bytes that are there before anything is parsed, so that a
    hostile count cannot make the parser allocate or loop.
    """
    pos, n = 8 + 232, len(blob)
    if n < pos:
        return "the header is cut short"
    objects = 0
    while True:
        if pos + 4 > n:
            return "it ends before the IEOF marker"
        tag = blob[pos : pos + 4]
        pos += 4
        if tag == b"IEOF":
            return None
        if not all(48 <= b <= 90 for b in tag):
            return f"unknown chunk {tag!r} at byte {pos - 4}"
        if tag == b"OBJT":
            pos += 176
            objects += 1
        elif tag in (b"CONT", b"MESH"):
            if pos + 16 > n:
                return f"a {tag.decode()} header is cut short"
            a, b = int.from_bytes(blob[pos : pos + 4], "big", signed=True), int.from_bytes(
                blob[pos + 4 : pos + 8], "big", signed=True)
            if a < 0 or (tag == b"MESH" and b < 0) or objects == 0:
                return f"a {tag.decode()} chunk has a negative count or no object"
            pos += 16 + (12 * a if tag == b"CONT" else 12 * a + 4 * b)
        else:
            if pos + 4 > n:
                return f"the size of chunk {tag.decode()} is cut short"
            pos += 4 + int.from_bytes(blob[pos : pos + 4], "big")
        if pos > n:
            return f"chunk {tag.decode()} runs past the end of the file"


def read_imod_model(path: str | os.PathLike[str]) -> MarkerTable:
    """Read an IMOD binary model (``.fid``/``.mod``): one contour per marker, z = view index.

    Marker ids number the contours from 1 in file order, across objects, as IMOD's ``fid.xyz``
    does for a single object. Empty contours keep their number (so ids written by
    `write_imod_model` come back unchanged).
    """
    import imodmodel.parsers  # local import: pandas and pydantic load only when a model is read

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        raise FileFormatError(f"{p}: no such IMOD model file") from None
    if size > MAX_MODEL_BYTES:
        raise FileFormatError(f"{p}: {size} bytes is too large for a marker model")
    blob = p.read_bytes()
    if blob[:4] != b"IMOD":
        raise FileFormatError(f"{p}: not an IMOD model (it does not start with 'IMOD')")
    problem = _imod_structure_problem(blob)
    if problem:
        raise FileFormatError(f"{p}: the IMOD model is damaged or truncated ({problem})")
    try:
        model = imodmodel.parsers.parse_model(_StrictReader(blob))
    except Exception as exc:  # the parser's own errors are not ours to show the user
        raise FileFormatError(f"{p}: the IMOD model is damaged or truncated ({type(exc).__name__})") from None
    rows = [(k, c, np.asarray(cont.points, dtype=float).reshape(-1, 3))
            for k, obj in enumerate(model.objects) for c, cont in enumerate(obj.contours)]
    rows = [r for r in rows if len(r[2])]
    if not rows:
        raise FileFormatError(f"{p}: the IMOD model holds no points")
    xyz = np.concatenate([r[2] for r in rows])
    obj = np.concatenate([np.full(len(r[2]), r[0], np.int64) for r in rows])
    cont = np.concatenate([np.full(len(r[2]), r[1], np.int64) for r in rows])
    if not np.all(np.isfinite(xyz)):
        raise FileFormatError(f"{p}: the IMOD model holds NaN or infinite coordinates")
    views = np.round(xyz[:, 2])
    if np.any(np.abs(xyz[:, 2] - views) > 0.01) or np.any(views < 0):
        raise FileFormatError(f"{p}: point Z values must be view numbers (whole, >= 0); is this a fiducial model?")
    counts = [len(o.contours) for o in model.objects]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    marker = offsets[obj] + cont + 1
    h = model.header
    image_size = (int(h.xmax), int(h.ymax)) if h.xmax > 0 and h.ymax > 0 else None
    return MarkerTable(views.astype(np.intp), marker, xyz[:, :2] - IMOD_PIXEL_OFFSET, image_size, str(p))


def write_imod_model(
    path: str | os.PathLike[str],
    table: MarkerTable,
    image_size: tuple[int, int] | None = None,
    n_views: int | None = None,
    overwrite: bool = False,
) -> None:
    """Write markers as an IMOD fiducial model: one object of open contours, contour ``k`` = marker ``k``.

    Marker ids must be positive whole numbers; contours for unused ids are left empty so that the
    ids survive a round trip. Positions get IMOD's half-pixel offset; z is the view index.
    """
    import imodmodel
    from imodmodel.models import Contour, Object

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
    starts = np.searchsorted(ids, np.arange(1, ids.max() + 2))
    obj = Object()
    for k in range(int(ids.max())):
        obj.contours.append(Contour(points=xyz[starts[k] : starts[k + 1]]))
    obj.header.flags.scattered = False
    obj.header.flags.open = True
    obj.update_sizes()
    model = imodmodel.ImodModel()
    model.objects.append(obj)
    model.update_sizes()
    size = image_size or table.image_size
    if size is not None:
        model.header.xmax, model.header.ymax = int(size[0]), int(size[1])
    model.header.zmax = int(n_views if n_views is not None else np.max(table.view) + 1)
    with atomic_path(path, overwrite) as tmp:
        model.to_file(tmp)
