"""The one way every reader opens an input file: a regular file, read whole, never more than a limit.

A FIFO would block a plain ``open``/``read`` forever, and ``/dev/zero`` or ``/dev/urandom`` (under any
name, through a symlink) report a size of 0 and then never end. So the path is resolved and must be a
regular file, it is opened non-blocking, checked again on the open descriptor (the name could have
been swapped in between), and at most ``limit + 1`` bytes are read whatever the size says.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .atomic import note_input
from .errors import FileFormatError

MAX_TEXT_BYTES = 64 * 1024 * 1024


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def require_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path if it names a regular file (after symlinks), else a `FileFormatError`."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileFormatError(f"{p}: no such {what} file") from None
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot read the {what} file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(f"{p}: is {_kind(st.st_mode)}, not a {what} file")
    note_input(st)  # no output of this command may replace it (`atomic.input_scope`)
    return p


def require_small_file(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> Path:
    """``path`` if it names a regular file of at most ``limit`` bytes, for a library that opens it by name
    (``starfile``, ``mrcfile``'s header): a FIFO, a device or a huge or sparse file never reaches it."""
    p = require_regular_file(path, what)
    size = os.stat(p).st_size
    if size > limit:
        raise FileFormatError(f"{p}: {size} bytes is too large for a {what} file (limit {limit})")
    return p


def read_bytes_limited(path: str | os.PathLike[str], what: str, limit: int, head: bool = False) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or a `FileFormatError` that says why not.

    With ``head``, a larger file is no error: its first ``limit`` bytes are returned.
    """
    p = require_regular_file(path, what)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot read the {what} file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(f"{p}: is {_kind(st.st_mode)}, not a {what} file")
        if st.st_size > limit and not head:
            raise FileFormatError(f"{p}: {st.st_size} bytes is too large for a {what} file (limit {limit})")
        chunks, total = [], 0
        while total <= limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except InterruptedError:  # pragma: no cover - retried by Python itself since 3.5
                continue
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            if head:
                return b"".join(chunks)[:limit]
            raise FileFormatError(f"{p}: more than {limit} bytes is too large for a {what} file")
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise FileFormatError(f"{p}: is a directory, not a {what} file") from None
        raise FileFormatError(f"{p}: cannot read the {what} file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text_limited(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a small regular file (a byte-order mark, as Excel writes, is dropped)."""
    blob = read_bytes_limited(path, what, limit)
    try:
        text = blob.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a text {what} file (it holds binary data)") from None
    if "\x00" in text:
        raise FileFormatError(f"{path}: not a text {what} file (it holds NUL bytes)")
    return text[1:] if text.startswith("\ufeff") else text
