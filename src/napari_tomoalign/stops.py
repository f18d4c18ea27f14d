"""Which signal stopped a command, when the stop reaches the command line in disguise.

A KeyboardInterrupt or `StopRequested` raised while compiled code runs (a numba kernel's dispatcher) comes back
as a SystemError ("returned a result with an exception set") whose cause or context is the stop; a stop whose
raise was lost entirely (a handler that ran inside a C callback) is still remembered in `caught_signals`.
"""
from __future__ import annotations

import signal

from .io.atomic import StopRequested

caught_signals: list[int] = []  # the signals the command line's handler caught during the running command
STOP_WORDS = {int(signal.SIGTERM): "terminated", int(signal.SIGINT): "interrupted"}


def stop_behind(exc: BaseException) -> int | None:
    """The number of the signal behind ``exc`` (in its cause/context chain, or caught while the command ran),
    or None when no stop was asked for. Forgets the caught signals."""
    seen: set[int] = set()
    link: BaseException | None = exc
    found = None
    while link is not None and id(link) not in seen and found is None:
        seen.add(id(link))
        if isinstance(link, StopRequested):
            found = int(link.signum)
        elif isinstance(link, KeyboardInterrupt):
            found = int(signal.SIGINT)
        link = link.__cause__ or link.__context__
    if found is None and caught_signals:
        found = caught_signals[0]
    caught_signals.clear()
    return found


def stop_message(signum: int) -> str:
    """The one line for a command stopped by ``signum`` (its exit code is 128 + signum)."""
    return f"{STOP_WORDS.get(signum, 'interrupted')}; no output was changed by the unfinished step"
