"""One compiled pass over a section for the MRC header: min, max, sum and sum of squares, and whether
every value is finite (so a large stack's statistics cost nothing beyond writing it)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def section_stats(a):  # pragma: no cover - compiled
    """``(finite, min, max, sum, sum_of_squares)`` of a 2-D array, accumulated in float64."""
    lo, hi, s, sq = np.inf, -np.inf, 0.0, 0.0
    finite = True
    rows, cols = a.shape
    for i in range(rows):
        rs, rq = 0.0, 0.0
        for j in range(cols):
            v = np.float64(a[i, j])
            if not np.isfinite(v):
                finite = False
                continue
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            rs += v
            rq += v * v
        s += rs
        sq += rq
    return finite, lo, hi, s, sq
