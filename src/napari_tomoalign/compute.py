"""How the package's compute runs: the compiled (numba) or plain-numpy solver loops, how many threads, and how
much memory there is (`available_memory_bytes`).

The alignment solver has two implementations of its per-observation loops (`alignment._kernels`, compiled,
and `alignment._kernels_numpy`). Small problems use plain numpy: importing numba and loading its cached
machine code takes 0.2-0.4 s, and scipy.linalg 0.1 s, while a whole small solve takes tens of milliseconds
either way. Large problems use the compiled loops. Once the compiled loops are loaded in a process (a GUI, a
batch worker), the break-even size in-process decides instead (`uses_compiled`). The thresholds are measured
by ``benchmarks/bench_startup.py --kernels``. Tracking, the dock's warm-up and the jobs ask for the compiled
loops (`compiled_kernels`) and cap numba's and BLAS's threads (`compiled_threads`, `blas_threads_for`) here;
the solver picks its loops by `uses_compiled` (`alignment._lm.kernels_for`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import lru_cache
from typing import Any

# Up to this many observations, a process that has not loaded numba solves in numpy. Measured (one
# thread, 61 views): numpy's solve took 1.4 x the compiled one's at 58k observations, 0.16 s more,
# while loading numba and the cached kernels costs 0.3-0.6 s of CPU; at 116k it was 0.55 s more.
NUMPY_MAX_OBSERVATIONS = 60_000
# With the compiled kernels already loaded, numpy is used only where it is not slower in-process
# (faster at 8.7k observations, 1.2 x slower at 23k).
NUMPY_MAX_OBSERVATIONS_WARM = 15_000
# Below this many flops in the reduced system, BLAS threads cost more to wake than they save.
_SINGLE_THREAD_FLOPS = 2e9
_SINGLE_THREAD_OBSERVATIONS = 200_000

_COMPILED = "napari_tomoalign.alignment._kernels"  # the solver's compiled loops, once loaded

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


@lru_cache(maxsize=1)
def _threadpool_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def compiled_threads(n: int) -> Iterator[None]:
    """Run numba's parallel loops on ``n`` threads inside the block (the setting is per thread)."""
    import numba

    before = numba.get_num_threads()
    most = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # noqa: B009 - set at run time, unknown to type checkers
    numba.set_num_threads(max(1, min(n, most)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def blas_threads_for(n_view_unknowns: int, n_markers: int, n_obs: int = 0) -> AbstractContextManager:
    """One thread for small problems, the defaults for large ones.

    Waking a second BLAS or numba thread costs more than it saves below these sizes: on 2 cores
    the paper-scale solve took 70 ms with two numba threads and 23 ms with one (measured).
    """
    stack = ExitStack()
    flops = n_view_unknowns**2 * (3 * n_markers + n_view_unknowns)
    if flops < _SINGLE_THREAD_FLOPS:
        stack.enter_context(_threadpool_controller().limit(limits=1, user_api="blas"))
    if n_obs < _SINGLE_THREAD_OBSERVATIONS and uses_compiled(n_obs):  # numpy's loops load no numba
        stack.enter_context(compiled_threads(1))
    return stack


def available_memory_bytes() -> int | None:
    """What the system can give this process now without swapping (``MemAvailable``), or None when it cannot
    tell. The reconstruction takes half of it by default (`reconstruction.stream`); the tracking refuses a
    stack it cannot hold (`tracking.binned.check_tracking_memory`)."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
