"""``reconstruct``'s IMOD ``tilt`` options for a part of the tomogram and for stained sections:

- ``--slices FIRST,LAST`` (IMOD's ``SLICE``): only the slices (rows of the aligned views, Y) FIRST to LAST,
  numbered from 0 as IMOD's man page numbers them, both included, in unbinned pixels (as etomo's ``IMAGEBINNED``
  scales them; `binned_rows`).
- ``--width W`` (IMOD's ``WIDTH``): a narrower X, W unbinned pixels centred on the frame (`binned_columns`). The
  back-projection still runs over the whole width (its kernels fill volumes as wide as the views); only W is kept.
- ``--log OFFSET`` (IMOD's ``LOG``): back-project ``log10(value + OFFSET)``, so that the sum is one of optical
  densities (Beer-Lambert) for stained plastic sections; a value at or below ``1e-3`` of the views' range after
  the offset is taken at that floor, as IMOD's ``tilt`` does (`LogRows`). As IMOD, nothing rescales the result:
  ``--scale`` (IMOD's ``SCALE``) applies, or for an integer ``--mode`` the scale chosen from the middle slab.

A subset equals the same region cut from the whole tomogram. This module imports only the standard library at
load time (the command line builds its options from it).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

LOG_FLOOR = 1e-3  # IMOD's tilt: values below this fraction of the input's range (after the offset) are floored


def parse_slices(text: str) -> tuple[int, int]:
    """``"FIRST,LAST"`` as two whole numbers; a `ValueError` naming the form otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        first, last = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give FIRST,LAST, two slice numbers from 0 (IMOD's SLICE)") from None
    return first, last


def add_subset_options(p: argparse.ArgumentParser) -> None:
    """``--slices``, ``--width`` and ``--log`` (module docstring)."""
    p.add_argument("--slices", type=parse_slices, metavar="FIRST,LAST",
                   help="only slices FIRST to LAST (rows of the aligned views, Y; numbered from 0 and both included,"
                        " unbinned pixels, as IMOD's SLICE)")
    p.add_argument("--width", type=int, metavar="W",
                   help="only W unbinned pixels of X, centred (IMOD's WIDTH; default the whole width)")
    p.add_argument("--log", type=float, metavar="OFFSET",
                   help="back-project log10(value + OFFSET), as IMOD's LOG for stained plastic sections (etomo's LOG 0);"
                        " no rescaling follows: give --scale, or an integer --mode takes one from the data")


def check_subset_options(slices: tuple[int, int] | None, width: int | None, log_offset: float | None) -> None:
    """`errors.UsageError` naming the option whose value cannot be right, before any file is read."""
    from ..errors import UsageError

    if slices is not None and 0 <= slices[1] < slices[0]:  # the view ranges' wording (s16 new user)
        raise UsageError(f"--slices {slices[0]},{slices[1]} runs backwards: write {slices[1]},{slices[0]}")
    if slices is not None and slices[0] < 0:
        raise UsageError(f"--slices {slices[0]},{slices[1]}: give FIRST <= LAST, numbered from 0 (IMOD's SLICE)")
    if width is not None and width < 1:
        raise UsageError(f"--width {width}: give a positive number of unbinned pixels")
    if log_offset is not None and not math.isfinite(log_offset):
        raise UsageError(f"--log {log_offset}: give a finite offset (etomo's is 0)")


def _binned(v: float, size: int, binning: int) -> float:
    """Unbinned coordinate ``v`` on an axis of ``size`` pixels in the binned grid centred on it."""
    return (v - (size - 1) / 2.0) / binning + (size // binning - 1) / 2.0


def binned_rows(slices: tuple[int, int] | None, height: int, binning: int) -> tuple[int, int] | None:
    """The binned rows ``(first, stop)`` of ``--slices`` on a frame ``height`` unbinned rows high: the rows whose
    centres are nearest FIRST and LAST (`conventions.binned_centre`'s centred grid); a `UsageError` beyond it."""
    from ..errors import UsageError

    if slices is None:
        return None
    first, last = slices
    if last > height - 1:
        raise UsageError(f"--slices {first},{last}: the aligned views have rows 0 to {height - 1} (numbered from 0)")
    n = height // binning
    lo = min(max(0, int(math.floor(_binned(first, height, binning) + 0.5))), n - 1)
    hi = min(max(lo, int(math.floor(_binned(last, height, binning) + 0.5))), n - 1)
    return lo, hi + 1


def binned_columns(width: int | None, frame_width: int, binning: int) -> tuple[int, int] | None:
    """The binned columns ``(first, stop)`` of ``--width`` W centred on a frame ``frame_width`` wide (to within
    half a binned pixel when the parity differs); a `UsageError` when W is wider than the frame."""
    from ..errors import UsageError

    if width is None:
        return None
    if width > frame_width:
        raise UsageError(f"--width {width} is wider than the aligned views ({frame_width} unbinned pixels)")
    n = frame_width // binning
    w = min(n, max(1, int(round(width / binning))))
    first = (n - w) // 2
    return first, first + w


@dataclass
class LogRows:
    """A source of aligned rows (`stream.WarpedRows`, `stream.AlignedRows`) whose values are IMOD's ``LOG``:
    ``log10(max(value + offset, floor))``, ``floor`` being `LOG_FLOOR` of the views' range."""

    source: Any
    offset: float
    floor: float

    def __post_init__(self) -> None:
        self.shape, self.binning, self.views = self.source.shape, self.source.binning, self.source.views
        for name in ("raw", "raw_shape"):
            if hasattr(self.source, name):
                setattr(self, name, getattr(self.source, name))

    def rows(self, first: int, stop: int) -> Any:
        import numpy as np

        v = self.source.rows(first, stop)
        np.add(v, np.float32(self.offset), out=v)
        np.maximum(v, np.float32(self.floor), out=v)
        return np.log10(v, out=v)


def log_source(source: Any, offset: float, value_range: tuple[float, float]) -> LogRows:
    """`LogRows` of ``source`` for ``--log OFFSET``, given the views' ``(min, max)``; a `UsageError` when no value
    is positive after the offset."""
    from ..errors import UsageError

    lo, hi = value_range
    if hi + offset <= 0:
        raise UsageError(f"--log {offset:g}: the views' values reach only {hi:.6g}, so nothing is positive to take the"
                         f" logarithm of; give an OFFSET above {-hi:.6g} (more than {-lo:.6g} for every value)")
    return LogRows(source, float(offset), max(LOG_FLOOR * (hi - lo), 1e-30))


__all__ = ["LOG_FLOOR", "LogRows", "add_subset_options", "binned_columns", "binned_rows", "check_subset_options",
           "log_source", "parse_slices"]
