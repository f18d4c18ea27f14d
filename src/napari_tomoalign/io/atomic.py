"""Writes that never leave a half-written file and never overwrite without being asked."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class OverwriteError(FileExistsError):
    """The target exists and overwriting was not allowed."""


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing target unless ``overwrite``; return the path."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OverwriteError(f"{p} already exists; choose another name or allow overwriting (--force)")
    return p


@contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write; on success rename it over ``path``."""
    p = check_writable(path, overwrite)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if not overwrite and p.exists():
            raise OverwriteError(f"{p} appeared while writing; nothing was overwritten")
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", overwrite: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path`` in one step."""
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
