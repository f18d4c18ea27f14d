"""Where numba keeps the machine code of the ``cache=True`` kernels when the install is read-only.

numba writes its cache beside the source (``__pycache__``) or, when that is not writable, in the user's
cache folder; when neither is (a read-only system or container install with a read-only or missing home)
the first compiled kernel raises "cannot cache function ... no locator available". So before numba is
imported, a package folder that cannot be written sends the cache to ``$XDG_CACHE_HOME`` (or
``~/.cache``) ``/napari-tomoalign/numba``, else to a folder of this user's under the temporary folder.
A ``NUMBA_CACHE_DIR`` the user set is left alone. Only ``os`` is imported: this runs on every start-up.
"""

from __future__ import annotations

import os
import sys

ENV = "NUMBA_CACHE_DIR"


def _writable(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def cache_folders() -> list[str]:
    """The folders tried for the cache, best first."""
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    user = getattr(os, "getuid", lambda: 0)()
    tmp = os.environ.get("TMPDIR") or ("/tmp" if os.name == "posix" else os.environ.get("TEMP", "."))
    return [os.path.join(home, "napari-tomoalign", "numba"), os.path.join(tmp, f"napari-tomoalign-{user}", "numba")]


def use_writable_cache(package_folder: str) -> str | None:
    """Point numba's cache at a writable folder when ``package_folder`` is not; return the folder chosen."""
    if os.environ.get(ENV) or os.access(package_folder, os.W_OK):
        return None
    for folder in cache_folders():
        if _writable(folder):
            os.environ[ENV] = folder
            config = getattr(sys.modules.get("numba"), "config", None)
            if config is not None and not getattr(config, "CACHE_DIR", ""):  # numba read the variable already
                config.CACHE_DIR = folder
            return folder
    return None


COMPILING = ("run", "track", "align", "reconstruct", "aligned-stack", "demo", "batch")  # commands that call kernels


def kernels_compiled(package_folder: str | None = None) -> bool:
    """Whether numba's cache holds this package's compiled tracking kernels (its first run compiles them)."""
    package = package_folder or os.path.dirname(os.path.abspath(__file__))
    roots = [os.path.join(package, "tracking", "__pycache__")] + ([os.environ[ENV]] if os.environ.get(ENV) else [])
    for root in roots:
        for _, _, files in os.walk(root):
            if any(f.endswith(".nbi") for f in files):
                return True
    return False


def cold_start_note(command: str, stream=None) -> None:
    """On a terminal, before a command whose kernels are not compiled yet, one line saying that this first run
    compiles them (new user's finding, session 13: a first `run` took 2:33 against 0:25 after, without a word)."""
    stream = stream or sys.stderr
    if command in COMPILING and getattr(stream, "isatty", lambda: False)() and not kernels_compiled():
        print("note: first run here: the numerical kernels are compiled once (a minute or two); later runs start at"
              " once", file=stream)


def compiled_in_this_run(prefix: str = "napari_tomoalign") -> int:
    """How many of the package's cached kernels (``cache=True``) this process compiled rather than loaded from numba's
    cache (numba's own count, `Dispatcher.stats`); 0 when numba was never imported."""
    if "numba" not in sys.modules:
        return 0
    from numba.core.registry import CPUDispatcher

    seen: set[int] = set()
    n = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == prefix or name.startswith(prefix + ".")):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, CPUDispatcher) and id(obj) not in seen and obj.stats.cache_path is not None:
                seen.add(id(obj))
                n += sum(obj.stats.cache_misses.values())
    return n


def compiled_note(quiet: bool, before: int = 0, stream=None) -> None:
    """After a command, on a terminal, one line when it compiled kernels that numba had not cached (``before``: the
    count when it started; s16 new user: the first reconstruction with an X-axis tilt took 58 s and 2.7 s after,
    without a word; the note before a run, `cold_start_note`, knows only the tracking kernels)."""
    stream = stream or sys.stderr
    n = 0 if quiet or not getattr(stream, "isatty", lambda: False)() else compiled_in_this_run() - before
    if n > 0:
        print(f"note: this run compiled {n} numerical kernel{'s' if n > 1 else ''} for this machine, once: the next runs"
              " load them from the cache and start at once", file=stream)
