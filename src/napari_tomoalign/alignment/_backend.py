"""Which implementation of the solver's per-observation loops and dense algebra a problem uses.

`_lm` asks `kernels_for` for a module with the functions of `_kernels` (``cost``, ``linearise``,
``schur_columns``, ``schur_reduced``, ``view_sums_of_e_times``, ``marker_sums_of_et_times``: one
interface for the whole model, every settings), and does its dense linear algebra through `cholesky_solve` and `syrk_update`.

Small problems use plain numpy (`_kernels_numpy`, ``numpy.linalg``): importing numba and loading its
cached machine code takes 0.2-0.4 s, and scipy.linalg 0.1 s, while a whole small solve takes tens of
milliseconds either way. Large problems use the compiled loops and scipy's LAPACK/BLAS. Once the
compiled loops are loaded in a process (a GUI, a batch worker), the break-even size in-process
decides instead. The thresholds are measured by ``benchmarks/bench_startup.py --kernels``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

# Up to this many observations, a process that has not loaded numba solves in numpy. Measured (one
# thread, 61 views): numpy's solve took 1.4 x the compiled one's at 58k observations, 0.16 s more,
# while loading numba and the cached kernels costs 0.3-0.6 s of CPU; at 116k it was 0.55 s more.
NUMPY_MAX_OBSERVATIONS = 60_000
# With the compiled kernels already loaded, numpy is used only where it is not slower in-process
# (faster at 8.7k observations, 1.2 x slower at 23k).
NUMPY_MAX_OBSERVATIONS_WARM = 15_000
# Dense systems up to this size are factored by numpy.linalg unless scipy.linalg is already loaded.
NUMPY_MAX_DENSE = 400

_COMPILED = __name__.rsplit(".", 1)[0] + "._kernels"


_prefer = threading.local()  # per thread: a GUI's worker may ask for the compiled loops while others do not


@contextmanager
def compiled_kernels() -> Iterator[None]:
    """Use the compiled kernels at every size inside the block, in this thread only (to load them ahead of
    time, as a GUI's warm-up does; later solves then use them from the in-process break-even size up)."""
    before = getattr(_prefer, "compiled", False)
    _prefer.compiled = True
    try:
        yield
    finally:
        _prefer.compiled = before


def uses_compiled(n_obs: int) -> bool:
    """Whether a problem of ``n_obs`` observations runs on the compiled (numba) kernels."""
    if getattr(_prefer, "compiled", False):
        return True
    return n_obs > (NUMPY_MAX_OBSERVATIONS_WARM if _COMPILED in sys.modules else NUMPY_MAX_OBSERVATIONS)


def kernels_for(n_obs: int) -> ModuleType:
    """The kernel module to use for a problem with ``n_obs`` observations."""
    if uses_compiled(n_obs):
        from . import _kernels

        return _kernels
    from . import _kernels_numpy

    return _kernels_numpy


def _scipy_for(n: int) -> bool:
    return n > NUMPY_MAX_DENSE or "scipy.linalg" in sys.modules


def cholesky_solve(S: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Solve a symmetric positive-definite system (upper triangle read), or None if not definite."""
    if _scipy_for(len(S)):
        import scipy.linalg

        try:
            cf = scipy.linalg.cho_factor(S, lower=False, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        return scipy.linalg.cho_solve(cf, rhs, check_finite=False)
    upper = np.triu(S)
    full = upper + np.triu(upper, 1).T
    try:
        np.linalg.cholesky(full)  # the definiteness test; the solve below is the same size of work
        return np.asarray(np.linalg.solve(full, rhs), dtype=np.float64)
    except np.linalg.LinAlgError:
        return None


def syrk_update(F: NDArray[np.float64], C: NDArray[np.float64]) -> NDArray[np.float64]:
    """``C - F F^T`` with at least the upper triangle filled (what `cholesky_solve` reads)."""
    if _scipy_for(len(C)):
        import scipy.linalg

        return scipy.linalg.blas.dsyrk(-1.0, F, beta=1.0, c=C, lower=0)
    return C - F @ F.T
