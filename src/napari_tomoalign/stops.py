"""How a command of the command line stops: the signals that stop it (`stop_on_signals`), which signal it
was when the stop reaches the command line in disguise (`stop_behind`), and the reader of its output going
away, which does not stop it (`ReaderMayLeave`).

A KeyboardInterrupt or `StopRequested` raised while compiled code runs (a numba kernel's dispatcher) comes back
as a SystemError ("returned a result with an exception set") whose cause or context is the stop; a stop whose
raise was lost entirely (a handler that ran inside a C callback) is still remembered in `caught_signals`.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Any

from .io.atomic import StopRequested, clear_stop, request_stop

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


@contextmanager
def stop_on_signals():
    """SIGTERM and SIGINT stop a command (`StopRequested`), and no write commits after them, even where the
    signal arrives inside a C callback that cannot raise (then the old handlers are back)."""
    def on_signal(signum, frame):
        caught_signals.append(signum)
        request_stop(signum)

    def unraisable(info):  # a stop raised inside a C callback is remembered, not news: say nothing
        if not isinstance(info.exc_value, (StopRequested, KeyboardInterrupt)):
            previous_hook(info)

    caught_signals.clear()
    try:
        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        clear_stop()  # the request was for this command only
        sys.unraisablehook = previous_hook
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def signals_held():
    """SIGINT and SIGTERM ignored while a stopped command puts things back (a second Ctrl-C must not cut the
    restoring short, nor print a library's traceback); the handlers as they were afterwards."""
    try:
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not ours to hold
        yield
        return
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def quiet_stdout(stream: Any = None) -> None:
    """After a broken pipe, send what Python still flushes at exit to /dev/null rather than an error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stream or sys.stdout).fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class ReaderMayLeave:
    """Standard output for a command whose real products are files: when the reader of the text goes away
    (``| head``, ``| grep -m1``), the rest of the text is dropped and the command goes on to write its files,
    rather than stopping half-way with a broken pipe."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_left = False

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._leave()
            except OSError as exc:  # ``> /dev/full``: the error names the standard output, not a file of the job
                raise OSError(exc.errno, exc.strerror, "the standard output") from None
        return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._leave()
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, "the standard output") from None

    def _leave(self) -> None:
        self.reader_left = True
        quiet_stdout(self._stream)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
