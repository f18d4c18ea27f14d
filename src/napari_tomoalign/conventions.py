"""Each convention of the project, stated once.

- Positions: ``x`` = column, ``y`` = row, the first pixel's centre at (0, 0). IMOD's text files and models
  put it at (0.5, 0.5) (`IMOD_HALF_PIXEL`); readers and writers convert with `to_imod` / `from_imod`.
- Image centre: ``((nx - 1) / 2, (ny - 1) / 2)`` for an image of ``nx`` columns and ``ny`` rows; an
  IMOD ``.xf`` maps raw X to ``A (X - c) + D + c`` about it.
- Binning: by whole blocks from the first pixel (``size // b`` pixels; a remainder the binning does not divide is
  left at the end), and the binned image is taken as centred on the unbinned one: a binned grid's centre is the
  unbinned centre (`binned_centre`: where that is in the blocks binned from pixel 0, the remainder split), so that
  a binned output maps to the unbinned one by ``b`` about the centre, alike in X and Y.
- Views: 0-based indices in arrays and in files whose header says so; numbered from 1, as IMOD and 3dmod
  number them, in every text a person reads (reports, warnings, errors, options such as
  ``--reference-view``). `view_number` and `view_index` convert, and nothing else does; `view_indices` reads
  IMOD's lists of view numbers (``1-3,7``) and `format_views` writes them.
- Pixel size: nanometres in the API and the solver (``pixel_size_nm``), Ångström in MRC headers and IMOD
  files (``pixel_size_angstrom``). An unknown pixel size is ``None`` everywhere (never 0, 1 or 1 Å);
  `nm_from_angstrom` turns a header's 0 into ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

IMOD_HALF_PIXEL = 0.5
"""IMOD's coordinate of the first pixel's centre (ours is 0)."""

ANGSTROM_PER_NM = 10.0


def image_centre(image_size: tuple[int, int] | NDArray) -> NDArray[np.float64]:
    """The (x, y) centre of an image of ``(width, height)`` pixels: ``((nx - 1) / 2, (ny - 1) / 2)``."""
    return (np.asarray(image_size, dtype=float) - 1.0) / 2.0


def binned_centre(image_size: tuple[int, int] | NDArray, binning: int) -> NDArray[np.float64]:
    """The unbinned image's centre ``(x, y)`` in the pixels of ``image_size`` ``(width, height)`` binned by whole
    ``binning`` blocks from its first pixel: ``image_centre(size // b) + (size % b) / (2 b)``; the binned image's own
    centre when ``b`` divides the size. A pull from blocks binned so must start here for the output to be centred."""
    size = np.asarray(image_size, dtype=np.int64)
    b = int(binning)
    return image_centre(size // b) + (size % b) / (2.0 * b)


def to_imod(xy: NDArray) -> NDArray[np.float64]:
    """Positions in this project's pixel convention as IMOD writes them (first pixel centre at 0.5)."""
    return np.asarray(xy, dtype=float) + IMOD_HALF_PIXEL


def from_imod(xy: NDArray) -> NDArray[np.float64]:
    """IMOD positions (first pixel centre at 0.5) in this project's convention (first pixel centre at 0)."""
    return np.asarray(xy, dtype=float) - IMOD_HALF_PIXEL


def view_number(index: int) -> int:
    """The number a person reads for the 0-based view ``index`` (IMOD's and 3dmod's, from 1)."""
    return int(index) + 1


def view_index(number: int, n_views: int, *, what: str = "view") -> int:
    """The 0-based index of view ``number`` (numbered from 1); a `UsageError` naming the valid range."""
    from .errors import UsageError

    if isinstance(number, float) and not math.isfinite(number):
        raise UsageError(f"{what} {number} is not a view number; give one from 1 to {n_views}")
    if int(number) != number or not 1 <= int(number) <= n_views:
        raise UsageError(f"{what} {number} is not a view of this {n_views}-view series; give one from 1 to {n_views}")
    return int(number) - 1


def view_indices(text: str, n_views: int | None = None, *, what: str = "view") -> list[int]:
    """The sorted 0-based indices of an IMOD list of view numbers from 1 with ranges (``"1-3,7 60-61"``: commas
    or spaces between entries), each once; a `UsageError` naming the form or the range (``n_views``, else the
    most views a series may have, `io.limits.MAX_VIEWS`)."""
    from .errors import UsageError
    from .io.limits import MAX_VIEWS

    out: set[int] = set()
    for part in re.split(r"[,\s]+", re.sub(r"\s*-\s*", "-", str(text).strip())):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if part and (m is None or min(int(m[1]), int(m[2] or m[1])) < 1):
            raise UsageError("give view numbers from 1 and ranges, such as 1-3,7")
        if m is not None and int(m[2] or m[1]) < int(m[1]):  # a slip, said as such (s15 new user)
            raise UsageError(f"{part} runs backwards: write {int(m[2])}-{int(m[1])}")
        if m is not None:
            if n_views is None and int(m[2] or m[1]) > MAX_VIEWS:
                raise UsageError(f"{what} {m[2] or m[1]} is beyond the {MAX_VIEWS} views a tilt series may have")
            if n_views is not None:
                view_index(int(m[2] or m[1]), n_views, what=what)
            out.update(range(int(m[1]) - 1, int(m[2] or m[1])))
    return sorted(out)


def format_views(views: Iterable[int]) -> str:
    """0-based views as IMOD's list of view numbers from 1 with ranges: ``[0, 1, 2, 6]`` -> ``'1-3,7'``."""
    v = sorted({int(x) + 1 for x in views})
    parts: list[str] = []
    k = 0
    while k < len(v):
        j = k
        while j + 1 < len(v) and v[j + 1] == v[j] + 1:
            j += 1
        parts.append(str(v[k]) if j == k else f"{v[k]}-{v[j]}")
        k = j + 1
    return ",".join(parts)


def nm_from_angstrom(pixel_size_angstrom: float | None) -> float | None:
    """A header's pixel size (Å) in nm; 0, negative or non-finite (unknown in MRC) is ``None``."""
    if pixel_size_angstrom is None:
        return None
    v = float(pixel_size_angstrom)
    return v / ANGSTROM_PER_NM if math.isfinite(v) and v > 0 else None


def angstrom_from_nm(pixel_size_nm: float | None) -> float | None:
    """A pixel size in nm as Å for a header; ``None`` (unknown) stays ``None`` (written as 0 by MRC writers)."""
    if pixel_size_nm is None:
        return None
    v = float(pixel_size_nm)
    return v * ANGSTROM_PER_NM if math.isfinite(v) and v > 0 else None


__all__ = ["ANGSTROM_PER_NM", "IMOD_HALF_PIXEL", "angstrom_from_nm", "binned_centre", "format_views", "from_imod",
           "image_centre", "nm_from_angstrom", "to_imod", "view_index", "view_indices", "view_number"]
