"""Tilt angles from IMOD ``.tlt`` / ``.rawtlt`` text files (one angle in degrees per line)."""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_open
from .errors import FileFormatError
from .guarded import MAX_TEXT_BYTES, read_text_limited

MAX_TILT_FILE_BYTES = 1024 * 1024  # a few thousand views at most; tilt files are tiny


def read_text(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of a small regular text file, or a `FileFormatError` that says why not (see `guarded`)."""
    return read_text_limited(path, what, limit)


def read_tilt_angles(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """``(n_views,)`` tilt angles in degrees, in stack order."""
    text = read_text(path, "tilt-angle", MAX_TILT_FILE_BYTES)
    values = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        try:
            v = float(s.split()[0])
        except ValueError:
            raise FileFormatError(f"{path}, line {n}: {s[:40]!r} is not a tilt angle in degrees") from None
        if not np.isfinite(v) or abs(v) >= 90:
            raise FileFormatError(f"{path}, line {n}: tilt angle {s[:40]} is outside (-90, 90) degrees")
        values.append(v)
    if not values:
        raise FileFormatError(f"{path}: no tilt angles found; a .tlt file has one angle per line")
    return np.asarray(values)


def write_tilt_angles(path: str | os.PathLike[str], angles_deg: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write one angle per line, as IMOD does (undetermined views keep their nominal angle upstream)."""
    with atomic_open(path, overwrite=overwrite) as f:
        for a in np.asarray(angles_deg, dtype=float):
            f.write(f"{a:7.2f}\n")
