"""One cap on a job's threads: numba's compiled loops, BLAS (threadpoolctl) and the tracking's FFTs.

A job function that takes ``threads`` is decorated with `honours_threads`, which applies the cap around
the whole call: nothing calls itself again listing its parameters to pass ``threads`` on (a keyword
forgotten in such a list was dropped silently).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Cap the compiled loops, BLAS and the tracking's FFTs at ``threads`` in the block (None: no cap)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from ..compute import compiled_threads
    from ..tracking._fourier import fft_threads

    n = max(1, int(threads))
    with compiled_threads(n), threadpool_limits(n), fft_threads(n):
        yield


def honours_threads(func: F) -> F:
    """``func``, run inside `thread_limit` of its ``threads`` keyword argument (which it receives too)."""
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with thread_limit(kwargs.get("threads")):
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]


__all__ = ["honours_threads", "thread_limit"]
