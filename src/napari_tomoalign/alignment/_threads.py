"""How many threads the compiled loops and BLAS may use: one for small problems, the defaults for large."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import lru_cache
from typing import Any

from ._backend import uses_compiled

# Below this many flops in the reduced system, BLAS threads cost more to wake than they save.
_SINGLE_THREAD_FLOPS = 2e9


@lru_cache(maxsize=1)
def _threadpool_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_SINGLE_THREAD_OBSERVATIONS = 200_000


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
