"""Writes that never leave a half-written file and never overwrite without being asked."""

from __future__ import annotations

import contextvars
import fcntl
import os
import re
import stat
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


class StopRequested(BaseException):
    """A signal asked the process to stop: nothing more is committed. ``signum`` says which signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_stop_signal: list[int] = []  # the signal that asked to stop, if one did (set from a signal handler)


def request_stop(signum: int) -> None:
    """Ask every write in progress to give up, and raise `StopRequested` here.

    The raise may be lost (a signal handler that runs inside a C callback, such as numba's compiler,
    cannot propagate it), so the request is also remembered: no write commits after it.
    """
    if not _stop_signal:
        _stop_signal.append(signum)
    raise StopRequested(signum)


def clear_stop() -> None:
    """Forget a stop request (a process that goes on after handling one, such as a test calling ``main``)."""
    _stop_signal.clear()


def _check_not_stopped() -> None:
    if _stop_signal:
        raise StopRequested(_stop_signal[0])


_inputs: contextvars.ContextVar[set[tuple[int, int]] | None] = contextvars.ContextVar("tomoalign_inputs", default=None)


@contextmanager
def input_scope() -> Iterator[None]:
    """Within this scope (one command), every file a guarded reader opened (`io.guarded`) is remembered, and no
    write may replace it: an output that resolves, after symlinks, to one of the command's inputs is refused.
    Nested scopes share the outermost one."""
    if _inputs.get() is not None:
        yield
        return
    token = _inputs.set(set())
    try:
        yield
    finally:
        _inputs.reset(token)


@contextmanager
def not_inputs() -> Iterator[None]:
    """Reads in this scope are not the command's inputs: a forced write reading the stamp of the unit it replaces."""
    token = _inputs.set(None)
    try:
        yield
    finally:
        _inputs.reset(token)


def note_input(st: os.stat_result) -> None:
    """Remember a file that was read (its device and inode) for `input_scope`."""
    seen = _inputs.get()
    if seen is not None:
        seen.add((st.st_dev, st.st_ino))


def safe_name(name: str, what: str = "name") -> str:
    """``name`` if it is a plain file name (no folder part, not ``.``/``..``, not empty), else an `OverwriteError`:
    a name joined to an output folder must never lead out of it."""
    text = str(name)
    if not text.strip() or text in (".", "..") or re.search(r"[/\\\x00]", text) or text != text.strip():
        raise OverwriteError(f"{what} {text!r} is not a plain file name; give a name without '/', '..' or spaces "
                             "at the ends (it names a file inside the output folder)")
    return text


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing target unless ``overwrite``, and always a directory, a special file (FIFO, device,
    socket) or one of the command's inputs (`input_scope`) where a file goes; return the path."""
    p = Path(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(p) and not overwrite:  # a dangling link: something is there, and the name is taken
            raise OverwriteError(f"{p} already exists (a link to a missing file); choose another name or allow"
                                 " overwriting (--force)") from None
        return _in_writable_folder(p)
    except OSError as exc:
        raise OverwriteError(f"{p}: cannot check the output: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OverwriteError(f"{p} is a directory, not a file; give a file name (inside it, or beside it)")
    if not stat.S_ISREG(st.st_mode):
        raise OverwriteError(f"{p} is a special file (FIFO, device or socket); only regular files are replaced, "
                             "give another output name")
    seen = _inputs.get()
    if seen is not None and (st.st_dev, st.st_ino) in seen:
        raise OverwriteError(f"{p} is one of this command's inputs; write the output elsewhere")
    if not overwrite:
        raise OverwriteError(f"{p} already exists; choose another name or allow overwriting (--force on the command"
                             " line, overwrite=True in Python)")
    return _in_writable_folder(p)


def _in_writable_folder(p: Path) -> Path:
    """``p`` when the folder it goes in (or the nearest one of its parents that exists: the writers make the rest)
    can be written; else an `OverwriteError`, before any work (a read-only mount was found only at the end of a
    tracking)."""
    folder = p.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise OverwriteError(f"{p}: cannot write in {folder} (a read-only file system, or no permission); give an"
                             " output elsewhere")
    return p


def check_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` (a folder at or below ``root``) if every folder from ``root`` down to it resolves, after symlinks,
    inside ``root``; else an `OverwriteError` naming the link: an output never lands outside its folder through a
    symlinked sub-folder (``o/alignment -> ../elsewhere``). A link that stays inside is fine."""
    top, p = Path(root), Path(path)
    base = os.path.realpath(top)
    try:
        parts = p.relative_to(top).parts
    except ValueError:
        raise OverwriteError(f"{p} is not inside the output folder {top}") from None
    cur = top
    for part in parts:
        cur = cur / part
        real = os.path.realpath(cur)
        if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
            how = f"is a symbolic link to {os.readlink(cur)}" if os.path.islink(cur) else f"resolves to {real}"
            raise OverwriteError(f"{cur} {how}, outside the output folder {top}; outputs stay inside it: remove "
                                 "the link or give another output folder")
    return p


@contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write; on success rename it over ``path``."""
    p = check_writable(path, overwrite)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(p)
    os.close(fd)
    try:
        try:
            yield Path(tmp)
        except OSError as exc:  # name the target, not the temporary file
            if exc.filename is None or str(exc.filename) == tmp:
                raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from None
            raise
        if not overwrite and p.exists():
            raise OverwriteError(f"{p} appeared while writing; nothing was overwritten")
        check_writable(p, True)
        _check_not_stopped()
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _stale(name: str, prefix: str = ".") -> bool:
    """True for ``{prefix}...PID.XXXX.tmp`` (the temporaries of `_temporary`) of a process that is gone."""
    if not (name.startswith(prefix) and name.endswith(".tmp")):
        return False
    parts = name[:-len(".tmp")].split(".")
    if prefix == ".":  # any target: the PID is the second-last dot-separated part
        pid = parts[-2] if len(parts) >= 4 else ""
    else:
        rest = name[len(prefix):]
        pid = rest.split(".", 1)[0] if rest.count(".") >= 2 else ""
    return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))


def _unlink_stale(entries: list[os.DirEntry], prefix: str) -> list[Path]:
    gone: list[Path] = []
    for entry in entries:
        if _stale(entry.name, prefix):
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    gone.append(Path(entry.path))
            except OSError:
                pass
    return gone


def clear_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary files a killed writer of ``target`` left (``.NAME.PID.*.tmp`` whose process is
    gone, as after SIGKILL or a crash); return them. Temporaries of a live process are left alone."""
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    return _unlink_stale(entries, f".{target.name}.")


def clear_stale_temporaries_under(folder: str | os.PathLike[str]) -> list[Path]:
    """`clear_stale_temporaries` for every target in ``folder`` and its sub-folders (symlinks not followed), as
    after the workers of a stopped batch were killed mid-write."""
    gone: list[Path] = []
    for root, dirs, _files in os.walk(folder, followlinks=False):
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        gone += _unlink_stale(entries, ".")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return gone


def _temporary(p: Path) -> tuple[int, str]:
    """A new temporary file beside ``p``, named ``.NAME.PID.XXXXXXXX.tmp`` so that the next writer can tell
    one left by a killed process (`clear_stale_temporaries`) from one being written now."""
    clear_stale_temporaries(p)
    try:
        return tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:  # a read-only or full folder: the error names the output, not the temporary file
        raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from None


def _remove(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class BusyError(OSError):
    """Another process is writing the same output folder."""


@contextmanager
def folder_lock(directory: str | os.PathLike[str], shared: bool = False) -> Iterator[None]:
    """Hold an ``flock`` on ``directory`` (exclusive for a writer, shared for a reader), or raise
    `BusyError` at once if another process holds it the other way."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{directory} is being written by another tomoalign process; try again when it has"
                            " finished") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def atomic_file_set(paths: list[Path], overwrite: bool = False, backup: bool = False) -> Iterator[list[Path]]:
    """Temporary paths for a set of files that belong together; on success all are renamed into place,
    in the order given (put the file that vouches for the others last), else all are removed. With ``backup``,
    a file replaced is kept as ``NAME~`` first (an older backup replaced), as IMOD keeps them.

    The folder is locked against other writers from the check to the last rename, and the targets are
    checked again just before the renames, so a file that appeared meanwhile is never overwritten
    without ``overwrite``. Renames need no space, so after the writes succeeded they do too.
    """
    directory = paths[0].parent
    top = Path(os.path.commonpath([str(p.parent) for p in paths]))
    for p in paths:  # a sub-folder of the set (RELION's tilt_series/) never leads out of the set's folder
        check_inside(top, p.parent)
    if directory.exists() and not directory.is_dir():
        raise OverwriteError(f"{directory} is a file, but the outputs go in a directory; give a directory name")
    for p in paths:
        check_writable(p, overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory):
        tmps: list[str] = []
        try:
            for p in paths:
                fd, tmp = _temporary(p)
                os.close(fd)
                tmps.append(tmp)
            try:
                yield [Path(t) for t in tmps]
            except OSError as exc:
                if exc.filename is not None and str(exc.filename) in tmps:
                    raise OSError(exc.errno, exc.strerror or str(exc), str(paths[tmps.index(str(exc.filename))])) from None
                raise
            for p in paths:
                if not overwrite and p.exists():
                    raise OverwriteError(f"{p} appeared while writing; nothing was overwritten")
                check_writable(p, True)
            _check_not_stopped()
            mode = _umask_mode()
            for tmp, p in zip(tmps, paths):
                os.chmod(tmp, mode)
                if backup:
                    keep_backup(p)
                os.replace(tmp, p)
        except BaseException:
            for tmp in tmps:
                _remove(tmp)
            raise


def keep_backup(path: Path) -> Path | None:
    """Keep the regular file ``path`` as ``NAME~`` (replacing an older backup) while ``path`` stays in place (a
    hard link, else a copy), as IMOD backs up a file before replacing it; return the backup, or None."""
    if not path.is_file() or path.is_symlink():
        return None
    backup = path.with_name(path.name + "~")
    fd, tmp = _temporary(backup)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here (some network or FAT file systems)
            import shutil

            shutil.copy2(path, tmp)
        os.replace(tmp, backup)
    except BaseException:
        _remove(tmp)
        raise
    return backup


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", overwrite: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path`` in one step."""
    with atomic_path(path, overwrite) as tmp:
        with (open(tmp, mode) if "b" in mode else open(tmp, mode, encoding="utf-8", newline="\n")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
