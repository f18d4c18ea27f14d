"""Nothing left behind by a run that failed: `removed_on_failure` removes what a block created in a folder
when the block raises (files and the folders it made, the folder itself if it was new), and leaves every
file that was there before untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _entries(folder: Path) -> set[Path]:
    if not folder.is_dir():
        return set()
    return {Path(root) / name for root, dirs, files in os.walk(folder) for name in dirs + files}


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Run the block; if it raises (or is interrupted), remove the entries of ``folder`` it created."""
    folder = Path(folder)
    existed = folder.is_dir()
    before = _entries(folder)
    try:
        yield
    except BaseException:
        new = sorted(_entries(folder) - before, key=lambda p: len(p.parts), reverse=True)
        for p in new:  # deepest first, so that folders are empty when their turn comes
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink()
            except OSError:
                pass
        if not existed:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
