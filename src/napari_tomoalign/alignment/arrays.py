"""``np.unique`` with indices for the solve path (`unique_inverse`), by one sort.

numpy 2.4's ``np.unique`` imports ``numpy.ma`` on its first call (about 6-10 ms), which a short
``tomoalign align`` process feels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def unique_inverse(values: ArrayLike) -> tuple[NDArray, NDArray[np.intp], NDArray[np.intp]]:
    """``(sorted distinct values, index of each one's first occurrence, index of each value among them)``, as
    ``np.unique(..., return_index=True, return_inverse=True)``."""
    a = np.asarray(values).ravel()
    order = np.argsort(a, kind="stable")
    s = a[order]
    first = np.r_[True, s[1:] != s[:-1]] if s.size else np.zeros(0, dtype=bool)
    inverse = np.empty(a.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return s[first], order[first], inverse
