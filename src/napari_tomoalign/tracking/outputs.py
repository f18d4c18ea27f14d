"""Nothing left behind by a run that failed: `removed_on_failure` removes what a block created in a folder
when the block raises (files and the folders it made, the folder itself if it was new), and puts back every
file the block moved aside as ``NAME~`` (a forced run keeps the earlier run's files so, `io.earlier_run`): a
failed or stopped run leaves the folder as it found it, never the files of two runs."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".tomoalign-run.lock"  # held by a run for its whole length (`run_lock`), removed when it ends
_HELD: dict[str, int] = {}  # the folders this process holds a run lock on, and how many times


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for a whole run (made if needed): another run into it, in any process, is refused at once
    (`io.atomic.BusyError`) instead of mixing its files with this one's or rolling this one's back (session 11's
    finding 14). Re-entrant within a process (the command line holds it around `jobs.run.run_job`, which holds it
    too); a folder it made (and the parents it made) is removed again if the run left it empty."""
    from ..io.atomic import BusyError, OverwriteError

    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    made = [f for f in (folder, *folder.parents) if not f.is_dir()]  # the folders this makes, deepest first
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    killed = lock.exists()  # a lock file that nobody holds: a run killed before it could remove it (SIGKILL, OOM)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{folder} is being written by another tomoalign run; give this one another --output, or"
                            " wait until that one has finished") from None
        _HELD[key] = 1
        try:
            yield
        except OverwriteError as exc:
            if killed and "already exists" in str(exc):  # say why the name is taken (new user's finding, session 13)
                raise OverwriteError(f"{exc}: {folder} holds the files of a run that was killed before it ended;"
                                     " --force replaces them") from None
            raise
        finally:
            del _HELD[key]
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
        for f in made:  # only when empty: a run that failed and took back what it made, with the parents it made
            try:
                f.rmdir()
            except OSError:
                break


def _entries(folder: Path) -> dict[Path, int]:
    """Every entry under ``folder`` with its inode (a file replaced in place gets another)."""
    if not folder.is_dir():
        return {}
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            try:
                found[p] = os.lstat(p).st_ino
            except OSError:
                pass
    return found


def _restore_backups(before: dict[Path, int], now: dict[Path, int]) -> set[Path]:
    """Rename each ``NAME~`` made in the block back to ``NAME`` when ``NAME`` was there before; return them."""
    restored = set()
    for p, ino in sorted(now.items(), key=lambda item: len(item[0].name) - len(item[0].name.rstrip("~"))):
        # NAME~ back to NAME before NAME~~ back to NAME~ (a forced run keeps the run before last so)
        if len(p.name) < 2 or not p.name.endswith("~"):
            continue
        orig = p.with_name(p.name[:-1])
        if before.get(p) != ino and orig in before:
            try:
                os.replace(p, orig)
                restored.add(orig)
            except OSError:
                pass
    return restored


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Run the block; if it raises (or is interrupted), put back the files it moved aside as ``NAME~`` and remove
    the entries of ``folder`` it created."""
    folder = Path(folder)
    existed = folder.is_dir()
    before = _entries(folder)
    try:
        yield
    except BaseException:
        restored = _restore_backups(before, _entries(folder))
        new = sorted(set(_entries(folder)) - set(before) - restored, key=lambda p: len(p.parts), reverse=True)
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


def check_output_folder(path: Path) -> None:
    """Raise the file system's own `OSError` (naming the folder) when a file cannot be made in the folder of
    ``path`` (or its nearest folder that exists: the writers make the rest), before the tracking: tried by making
    and removing an empty file there, which refuses what `io.atomic.check_writable`'s access(2) lets through
    (root on a folder that refuses files, such as /sys; an ACL), where ``track`` tracked for seconds first (new
    user's finding, session 13). Nothing is left behind."""
    import tempfile

    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".tomoalign-probe.", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from None
    os.close(fd)
    os.unlink(probe)
