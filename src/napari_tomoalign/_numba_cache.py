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
