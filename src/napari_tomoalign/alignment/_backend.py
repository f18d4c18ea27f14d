"""Which implementation of the solver's per-observation loops a problem uses.

`_lm` asks `kernels_for` for a module with the functions of `_kernels` (``cost``, ``linearise``,
``schur_columns``, ``schur_reduced``, ``view_sums_of_e_times``, ``marker_sums_of_et_times``,
``chunk_bounds``), and does its dense linear algebra through `cholesky_solve` and `syrk_update`.
Keeping that choice here lets small problems avoid loading what they do not need.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from numpy.typing import NDArray


def kernels_for(n_obs: int) -> ModuleType:
    """The kernel module to use for a problem with ``n_obs`` observations."""
    from . import _kernels

    return _kernels


def cholesky_solve(S: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Solve a symmetric positive-definite system (upper triangle read), or None if not definite."""
    import scipy.linalg

    try:
        cf = scipy.linalg.cho_factor(S, lower=False, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return scipy.linalg.cho_solve(cf, rhs, check_finite=False)


def syrk_update(F: NDArray[np.float64], C: NDArray[np.float64]) -> NDArray[np.float64]:
    """``C - F F^T`` with at least the upper triangle filled (what `cholesky_solve` reads)."""
    import scipy.linalg

    return scipy.linalg.blas.dsyrk(-1.0, F, beta=1.0, c=C, lower=0)
