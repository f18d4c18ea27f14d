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
