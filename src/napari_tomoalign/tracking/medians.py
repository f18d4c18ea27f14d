"""`numpy.median`'s numbers, by numpy's fast selection.

`numpy.median` asks `numpy.partition` for the middle element(s) and for the last one at once (to see a NaN);
with more than one element asked for, numpy leaves its vectorised selection (x86-simd-sort's quickselect) for
the plain introselect, 10-35x slower on the tracking's arrays (250 patches of 15 x 15: 2.5 ms against 0.07 ms;
a whole 1024^2 view: see ``benchmarks/bench_run_parts.py``). Here one element is asked for at a time: the middle
one; for an even count, the largest of those below it (the other middle one, the same value the two-element
partition gives); then the same mean of the two in the same dtype, and NaN wherever a NaN is, as `numpy.median`.
Floating-point arrays only (numpy's median of integers is a float64 mean of one or two values): others, and empty
ones, are `numpy.median`'s own.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def row_medians(a: NDArray) -> NDArray:
    """``np.median(a, axis=1)`` of a 2-D array: the same numbers, in the same dtype."""
    a = np.asarray(a)
    n = a.shape[1] if a.ndim == 2 else 0
    if a.ndim != 2 or n == 0 or a.shape[0] == 0 or a.dtype.kind != "f":
        return np.median(a, axis=1)
    h = n // 2
    part = np.partition(a, h, axis=1)
    if n % 2:
        med = part[:, h].copy()
    else:
        med = np.mean(np.stack([part[:, :h].max(axis=1), part[:, h]], axis=1), axis=1)
    med[np.isnan(a).any(axis=1)] = np.nan
    return med


def median(a: NDArray):
    """``np.median(a)`` of all the values of ``a`` (a numpy scalar, as numpy returns it)."""
    a = np.asarray(a)
    if a.size == 0 or a.dtype.kind != "f":
        return np.median(a)
    return row_medians(a.reshape(1, -1))[0]
