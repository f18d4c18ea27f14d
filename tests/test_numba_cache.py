"""numba's cache: the first run on a machine says that it compiles the kernels (new user's finding, session 13: a
first `run` took 2:33 against 0:25 after, and nothing said why)."""

import io

from napari_tomoalign import _numba_cache
from napari_tomoalign._numba_cache import cold_start_note, kernels_compiled


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_cold_cache_is_said_on_a_terminal_only(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    package = tmp_path / "napari_tomoalign"
    (package / "tracking" / "__pycache__").mkdir(parents=True)
    assert not kernels_compiled(str(package))
    (package / "tracking" / "__pycache__" / "pipeline.track-12.py311.nbi").write_bytes(b"")
    assert kernels_compiled(str(package))
    cache = tmp_path / "elsewhere"
    (cache / "deep").mkdir(parents=True)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))
    assert not kernels_compiled(str(tmp_path / "none"))
    (cache / "deep" / "k.nbi").write_bytes(b"")
    assert kernels_compiled(str(tmp_path / "none"))

    monkeypatch.setattr(_numba_cache, "kernels_compiled", lambda: False)
    said, piped = Terminal(), io.StringIO()
    cold_start_note("run", said)
    cold_start_note("run", piped)  # a pipe, a log file, a test: the output stays as it was
    cold_start_note("convert", Terminal())
    assert said.getvalue().startswith("note: first run here: the numerical kernels are compiled once")
    assert piped.getvalue() == ""
    monkeypatch.setattr(_numba_cache, "kernels_compiled", lambda: True)
    warm = Terminal()
    cold_start_note("run", warm)
    assert warm.getvalue() == ""


def test_kernels_compiled_by_a_command_are_said_after_it_on_a_terminal(tmp_path, monkeypatch):
    """A cached kernel compiled (not loaded) in this process is counted by numba's own stats, and said after the
    command on a terminal only (s16 new user: 58 s for the first X-tilt reconstruction, unexplained)."""
    import importlib
    import sys

    (tmp_path / "s16probe.py").write_text("import numba\n\n\n@numba.njit(cache=True)\ndef bump(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("s16probe")
    try:
        before = _numba_cache.compiled_in_this_run("s16probe")
        assert probe.bump(1) == 2
        assert _numba_cache.compiled_in_this_run("s16probe") == before + 1  # no cache yet beside it: compiled
        monkeypatch.setattr(_numba_cache, "compiled_in_this_run", lambda: before + 1)
        said, piped, quiet = Terminal(), io.StringIO(), Terminal()
        _numba_cache.compiled_note(False, before, said)
        _numba_cache.compiled_note(False, before, piped)
        _numba_cache.compiled_note(True, before, quiet)
        assert said.getvalue() == ("note: this run compiled 1 numerical kernel for this machine, once: the next runs"
                                   " load them from the cache and start at once\n")
        assert piped.getvalue() == quiet.getvalue() == ""
        _numba_cache.compiled_note(False, before + 1, said)  # nothing new compiled: nothing more said
        assert said.getvalue().count("\n") == 1
    finally:
        sys.modules.pop("s16probe", None)
