"""The tracking's second core: the beads of one step split between this thread and a helper.

Tracking runs on one thread (`pipeline.TRACKING_THREADS`): hundreds of steps of a few milliseconds, where a
second thread of numba's parallel loops wakes and spins more than it gives. Its largest steps measure every
bead of a view on its own: the template search (`_measure.measure_beads`: patches, FFTs, peaks), the profile
fit (`_profile.fit_profile`) and the prewhitened fit (`_whiten.Whitener.refine`). Half of the beads can be
measured on a helper thread while this one measures the other half: the same numbers, bead by bead, in less
time when a second core is free (the compiled loops, FFTs and large array operations release the GIL). Inside
`second_core` (in the thread that entered it; the tracking asks for it when the caller set no thread cap),
`split` does that; elsewhere it runs the whole on this thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

LEAST = 16  # fewer items than this are done on one thread (a hand-over costs tens of microseconds)
# The halves split at a multiple of this: pocketfft does a batch of FFTs in vector groups of up to 8 and the rest
# one by one, and a split at a multiple of 8 keeps each transform in its group (splits anywhere gave the same
# numbers in the tests, but a vector and a scalar path need not round alike).
ALIGN = 8

_here = threading.local()


def _one_thread() -> None:
    """The helper's compiled loops and FFTs on one thread (both counts are per thread)."""
    import numba

    from ._fourier import cap_fft_threads

    numba.set_num_threads(1)
    cap_fft_threads(1)


@lru_cache(maxsize=1)
def threadsafe_loops() -> bool:
    """Whether numba's parallel loops may be launched from two threads at once: its ``tbb`` and ``omp``
    threading layers allow it; its ``workqueue`` layer (when neither library is there) aborts the process."""
    import importlib

    import numba

    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel loop has run yet: the layers numba would try
        pass
    layer = str(getattr(numba.config, "THREADING_LAYER", "default"))
    tried = {"tbb": ("tbb",), "safe": ("tbb",), "threadsafe": ("tbb",), "forksafe": ("tbb",), "omp": ("omp",),
             "workqueue": ()}.get(layer, ("tbb", "omp"))
    for name in tried:
        try:
            importlib.import_module(f"numba.np.ufunc.{name}pool")
            return True
        except ImportError:
            continue
    return False


@contextmanager
def second_core(on: bool = True) -> Iterator[None]:
    """Inside the block, `split` in this thread hands half of its work to a helper thread (when ``on``, there is
    a second core and numba's loops may run in two threads at once; nothing changes inside another one)."""
    if not on or (os.cpu_count() or 1) < 2 or getattr(_here, "pool", None) is not None or not threadsafe_loops():
        yield
        return
    with ThreadPoolExecutor(1, thread_name_prefix="tracking-half", initializer=_one_thread) as pool:
        _here.pool = pool
        try:
            yield
        finally:
            _here.pool = None


def split(work: Callable[[int, int], None], n: int) -> None:
    """``work(lo, hi)`` over ``0 .. n``: inside `second_core`, the first half on the helper thread while this
    one does the second; ``work`` must write only its own items (and release the GIL to gain)."""
    pool = getattr(_here, "pool", None)
    if pool is None or n < LEAST:
        work(0, n)
        return
    half = (n // 2) // ALIGN * ALIGN
    first = pool.submit(work, 0, half)
    _here.pool = None  # a split inside ``work`` runs whole here: the helper is busy
    try:
        work(half, n)
    finally:
        _here.pool = pool
        first.result()


def beside(work: Callable[..., Any], *args: Any) -> Future | None:
    """``work(*args)`` started on the helper thread inside `second_core` (its future), else None (not done)."""
    pool = getattr(_here, "pool", None)
    return None if pool is None else pool.submit(work, *args)


__all__ = ["ALIGN", "LEAST", "beside", "second_core", "split", "threadsafe_loops"]
