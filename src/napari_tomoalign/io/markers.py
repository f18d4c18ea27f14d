"""Marker observations from CSV files and IMOD models.

Positions use this project's convention: x = column, y = row, the centre of the first pixel at
(0, 0). IMOD models put that centre at (0.5, 0.5); the conversion happens here and nowhere else.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .errors import FileFormatError
from .imod_model import MAX_MODEL_BYTES, MAX_VIEW_NUMBER, read_imod_model, write_imod_model
from .table import IMOD_PIXEL_OFFSET, MarkerTable
from .tilts import read_text

__all__ = ["IMOD_PIXEL_OFFSET", "MAX_MODEL_BYTES", "MarkerTable", "read_imod_model", "read_markers",
           "read_markers_csv", "write_imod_model", "write_markers_csv"]

MAX_CSV_BYTES = 64 * 1024 * 1024  # about two million rows
MAX_MARKER_ID = 2**53  # ids are exact in every float and JSON reader below this
_NAPARI = ("axis-0", "marker", "axis-2", "axis-1")  # napari's points CSV: axis-0 view, axis-1 y, axis-2 x


def series_stem(path: str | os.PathLike[str]) -> str:
    """The series' name of a markers file, as IMOD names a data set's files: ``BBa.fid`` and ``BBa_markers.csv``
    (what ``track`` and ``run`` write) are both ``BBa``."""
    stem = Path(path).stem
    return stem[: -len("_markers")] if stem.endswith("_markers") and len(stem) > len("_markers") else stem


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
    """Read a CSV whose header includes ``view,marker,x,y`` (other columns are ignored), or napari's own
    points CSV (``index,axis-0,axis-1,axis-2,marker``: axis-0 the view, axis-1 y, axis-2 x)."""
    text = read_text(path, "marker CSV", MAX_CSV_BYTES)
    first, _, body = text.partition("\n")
    try:
        header = [h.strip().lower() for h in next(csv.reader([first.rstrip("\r")]), [])]
    except csv.Error as exc:
        raise FileFormatError(f"{path}, line 1: not readable as CSV ({exc})") from None
    if not header or header == [""]:
        raise FileFormatError(f"{path}: the file is empty; expected a header with view,marker,x,y")
    idx = _columns(path, header)
    if not body.strip():  # only a header: say so in one line (numpy would also warn "input contained no data")
        raise FileFormatError(f"{path}: no marker rows after the header; add one row per observation (view,marker,x,y)")
    try:
        a = np.loadtxt(io.StringIO(body), delimiter=",", usecols=idx, dtype=float, ndmin=2, comments=None,
                       quotechar='"')
    except (ValueError, IndexError) as exc:
        a = None
        _raise_at_bad_row(path, body, idx, str(exc))
    bad = None if a is None or a.size == 0 else _first_bad_row(a)
    if a is not None and bad is not None and body.count("\n") + (not body.endswith("\n")) == len(a):
        raise FileFormatError(f"{path}, line {bad + 2}: {_row_problem(a[bad].tolist())} in {a[bad].tolist()}")
    if a is None or a.size == 0 or bad is not None:  # the slow path finds the first bad line and says why
        a = _parse_rows(path, body, idx)
    return MarkerTable(a[:, 0].astype(np.intp), a[:, 1].astype(np.int64), a[:, 2:4].copy(), None, str(path))


def _columns(path, header: list[str]) -> list[int]:
    if all(c in header for c in ("view", "marker", "x", "y")):
        return [header.index(c) for c in ("view", "marker", "x", "y")]
    if all(c in header for c in _NAPARI):
        return [header.index(c) for c in _NAPARI]
    missing = [c for c in ("view", "marker", "x", "y") if c not in header]
    raise FileFormatError(f"{path}: the header lacks column(s) {', '.join(missing)}; it needs view,marker,x,y "
                          "(or napari's axis-0,axis-1,axis-2 with a marker column)")


def _row_problem(vals: list[float]) -> str | None:
    """What is wrong with one row ``(view, marker, x, y)``, or None."""
    view, marker = vals[0], vals[1]
    if not all(math.isfinite(v) for v in vals):
        return "NaN or infinite value"
    if view != round(view) or view < 0 or marker != round(marker):
        return "view must be a whole number >= 0 and marker a whole number"
    if view > MAX_VIEW_NUMBER:
        return f"view number is out of range (at most {MAX_VIEW_NUMBER})"
    if abs(marker) >= MAX_MARKER_ID:
        return "marker id is out of range (ids must be below 2**53 in size)"
    return None


def _first_bad_row(a: np.ndarray) -> int | None:
    """The index of the first row `_row_problem` objects to, or None; vectorised."""
    with np.errstate(invalid="ignore"):
        bad = ~np.all(np.isfinite(a), axis=1)
        bad |= (a[:, 0] != np.round(a[:, 0])) | (a[:, 0] < 0) | (a[:, 1] != np.round(a[:, 1]))
        bad |= (a[:, 0] > MAX_VIEW_NUMBER) | (np.abs(a[:, 1]) >= MAX_MARKER_ID)
    return int(np.argmax(bad)) if bad.any() else None


def _raise_at_bad_row(path, body: str, idx: list[int], numpy_message: str) -> None:
    """Where numpy's reader stopped ("at row R"), when rows are lines (no blank lines, no quotes), parse that
    one line for the message, instead of the whole file again in Python (seconds at a million rows)."""
    found = re.search(r"at row (\d+)", numpy_message)
    if not found or '"' in body or "\n\n" in body or "\n\r\n" in body or body.startswith(("\n", "\r")):
        return
    pos = 0
    for _ in range(int(found.group(1))):
        pos = body.find("\n", pos) + 1
        if pos == 0:
            return
    end = body.find("\n", pos)
    line = body[pos : end if end >= 0 else len(body)]
    if line.strip():  # a line that parses is no proof: the slow path then looks at every line
        _parse_rows(path, line, idx, first_line=int(found.group(1)) + 2)


def _parse_rows(path, body: str, idx: list[int], first_line: int = 2) -> np.ndarray:
    reader = csv.reader(io.StringIO(body))
    rows = []
    try:
        for n, row in enumerate(reader, first_line):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                vals = [float(row[i]) for i in idx]
            except (ValueError, IndexError):
                raise FileFormatError(f"{path}, line {n}: expected numbers in view,marker,x,y, got {row[:6]}") from None
            problem = _row_problem(vals)
            if problem:
                raise FileFormatError(f"{path}, line {n}: {problem} in {row[:6]}")
            rows.append(vals)
    except csv.Error as exc:
        raise FileFormatError(f"{path}, line {reader.line_num + 1}: not readable as CSV ({exc})") from None
    if not rows:
        raise FileFormatError(f"{path}: no marker rows after the header")
    return np.asarray(rows)


def write_markers_csv(path: str | os.PathLike[str], table: MarkerTable, overwrite: bool = False) -> None:
    """Write ``view,marker,x,y`` rows, atomically."""
    with atomic_open(path, overwrite=overwrite) as f:
        f.write("view,marker,x,y\n")
        for v, m, (x, y) in zip(table.view, table.marker, table.xy):
            f.write(f"{int(v)},{int(m)},{x:.6f},{y:.6f}\n")
