"""Ctrl-C (or SIGTERM) that lands inside compiled code reaches the command line as a SystemError whose cause
is the stop: it is still a stop (one line, exit 128 + signal), never an internal error."""
import argparse
import os
import signal

import pytest

from napari_tomoalign import cli
from napari_tomoalign.io.atomic import StopRequested


def _command_raising(monkeypatch, make_exc):
    def fail(args):
        raise make_exc()

    def parser(argv=None):
        p = argparse.ArgumentParser()
        p.set_defaults(func=fail)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)


def _numba_wrapped(stop: BaseException) -> SystemError:
    """What numba's dispatcher raises when a signal handler raised inside it (the stop is the cause)."""
    try:
        raise stop
    except BaseException as inner:
        wrapped = SystemError("CPUDispatcher(<function linearise>) returned a result with an exception set")
        wrapped.__cause__ = inner
        return wrapped


@pytest.mark.parametrize("stop, code, word", [
    (lambda: StopRequested(signal.SIGINT), 130, "interrupted"),
    (lambda: StopRequested(signal.SIGTERM), 143, "terminated"),
    (KeyboardInterrupt, 130, "interrupted"),
])
def test_a_stop_wrapped_in_a_system_error_is_a_stop(monkeypatch, capsys, stop, code, word):
    _command_raising(monkeypatch, lambda: _numba_wrapped(stop()))
    assert cli.main([]) == code
    err = capsys.readouterr().err
    assert err == f"tomoalign: {word}; no output was changed by the unfinished step\n"


def test_a_stop_in_the_context_chain_is_a_stop(monkeypatch, capsys):
    def fail():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            exc = SystemError("returned a result with an exception set")
            try:
                raise exc
            except SystemError as raised:
                assert isinstance(raised.__context__, KeyboardInterrupt)
                return raised

    _command_raising(monkeypatch, fail)
    assert cli.main([]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_signal_whose_raise_was_lost_still_stops(monkeypatch, capsys):
    """The handler ran (the signal is remembered), its exception was swallowed by compiled code, and what
    came out is a bare SystemError: still a stop."""
    def lost():
        try:
            os.kill(os.getpid(), signal.SIGINT)  # our handler runs here and raises StopRequested
        except StopRequested:
            pass
        return SystemError("error return without exception set")

    _command_raising(monkeypatch, lost)
    assert cli.main([]) == 130
    assert capsys.readouterr().err.count("\n") == 1


def test_a_system_error_with_no_stop_is_still_an_internal_error(monkeypatch, capsys):
    _command_raising(monkeypatch, lambda: SystemError("a real bug"))
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tomoalign: internal error: SystemError: a real bug") and err.count("\n") == 1
    # and the next command does not inherit an earlier stop
    _command_raising(monkeypatch, lambda: SystemError("another bug"))
    assert cli.main([]) == 1
    capsys.readouterr()


def test_a_stop_while_the_command_line_loads_gives_one_line_not_a_traceback():
    """New user's finding (session 9): Ctrl-C in the first 0.3 s printed numpy's import traceback. The console
    script (`_entry.main`) holds the signal until the command line is loaded; here the signal is sent from inside
    that window, deterministically, by the process itself."""
    import signal
    import subprocess
    import sys

    probe = ("import os, signal, sys; from napari_tomoalign import _entry; "
             "signal.signal(signal.SIGINT, _entry._stopped_while_loading); os.kill(os.getpid(), signal.SIGINT)")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.SIGINT and r.stderr == "tomoalign: interrupted; nothing was done\n"
    r = subprocess.run([sys.executable, "-c", "import sys; from napari_tomoalign._entry import main; "
                        "sys.argv = ['tomoalign', '--version']; sys.exit(main())"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("tomoalign ")
