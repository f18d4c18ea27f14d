"""A memory-mapped MRC stack whose views are read with plain file reads, so that a file truncated after it was
opened (another program rewriting it, a network file system) is one clear error, never SIGBUS.

A memory map over a file that shrinks kills the process with SIGBUS the moment a vanished page is touched, in the
middle of a warp or a back-projection, and Python cannot catch it. `CheckedStack` is the memory map of
`io.mrc.open_tilt_series` (an ``ndarray`` subclass: shape, dtype and every other use as before), but indexing
one view (``stack[j]``, ``stack[j, rows]``, ``stack[j, rows, cols]``: what every job's loop does) reads that
view's rows with ``os.pread`` into memory and checks the byte count: a short read is a `StackTruncated` error
naming the file and the view. Any other index first checks the file's size against the header, then uses the
map (a truncation between that check and the use can still end in SIGBUS; no job's loop indexes that way).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import FileFormatError

CHUNK_BYTES = 16 * 2**20


class StackTruncated(FileFormatError):
    """The stack's file became shorter than its header says after it was opened."""


def _message(path: str, view: int | None) -> str:
    where = f" (view {view + 1} of the stack, numbered from 1)" if view is not None else ""
    return (f"{path}: the file was truncated while it was read{where}; nothing was written from it. Check that no "
            "other program is rewriting it, then run again")


def truncated_while_read(path: str | os.PathLike[str], view: int | None) -> StackTruncated:
    """The error for a stack read short of its header (``view``: 0-based, or None), for readers of their own."""
    return StackTruncated(_message(str(path), view))


def _rows(key: Any, shape: tuple[int, ...]) -> tuple[int, slice, Any] | None:
    """``(view, rows, rest)`` for a key that picks one view and a contiguous band of its rows, else None."""
    if not isinstance(key, tuple):
        key = (key,)
    if not key or len(key) > 3 or not isinstance(key[0], (int, np.integer)) or isinstance(key[0], bool):
        return None
    j = int(key[0])
    if not -shape[0] <= j < shape[0]:
        return None  # numpy's own IndexError
    j %= shape[0]
    rows = key[1] if len(key) > 1 else slice(None)
    if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
        if not -shape[1] <= int(rows) < shape[1]:
            return None
        r = int(rows) % shape[1]
        return j, slice(r, r + 1), (0, *key[2:])  # the one row, then what remains of the key
    if not isinstance(rows, slice) or rows.step not in (None, 1):
        return None
    start, stop, _ = rows.indices(shape[1])
    return j, slice(start, max(start, stop)), (slice(None), *key[2:])


class CheckedStack(np.ndarray):
    """A stack's memory map whose view reads are checked file reads (see the module)."""

    _source: tuple[str, int, int] | None = None  # (path, data offset, data bytes) on the whole stack only
    _last: tuple[int, np.ndarray] | None = None  # the last whole view read (read-only): the dock's bead centring
    # and the jobs' finite check index the same view again and again, as they did the zero-copy map
    _native: np.dtype | None = None  # what reads give for a stored type the kernels cannot take (`native_dtype`)
    checked_finite: bool = False  # every view found finite (`reconstruction.input_checks.check_finite_views`)

    @classmethod
    def wrap(cls, data: np.ndarray, path: str | os.PathLike[str], offset: int) -> CheckedStack:
        """The whole 3-D C-contiguous memory map ``data`` of ``path``, whose data start at byte ``offset``."""
        base: Any = data
        while base is not None and not isinstance(base, np.memmap):
            base = base.base
        mm = getattr(base, "_mmap", None)
        if mm is None or not data.flags.c_contiguous:  # not a memory map: indexed as it is
            obj = np.asarray(data).view(cls)
        else:  # on the map's buffer itself: nothing treats it as a np.memmap whose pages it may drop or re-read
            start = data.__array_interface__["data"][0] - np.frombuffer(mm, np.uint8).__array_interface__["data"][0]
            obj = np.ndarray.__new__(cls, data.shape, data.dtype, buffer=mm, offset=start)
        obj._source = (str(path), int(offset), int(data.nbytes))
        obj._native = native_dtype(data.dtype)
        return obj

    @property
    def read_dtype(self) -> np.dtype:
        """The type that reading a view gives: the stored one, or float32 / native byte order (`native_dtype`)."""
        return self._native if self._native is not None else self.dtype

    def __array_finalize__(self, obj: Any) -> None:
        self._source = self._last = None  # a derived array (a slice, a reshape) indexes differently: no file reads
        self._native = None
        self.checked_finite = False

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        arr = arr.view(np.ndarray)  # arithmetic on the stack gives plain arrays, as on a memory map
        return arr[()] if return_scalar else arr

    def __reduce__(self) -> Any:  # pickled (a dask worker): the data as a plain array
        return np.asarray(self).__reduce__()

    def __getitem__(self, key: Any) -> Any:
        src = self._source
        if src is None or self.ndim != 3:
            return super().__getitem__(key)
        picked = _rows(key, self.shape)
        if picked is None:
            self._check_size()
            out = np.asarray(super().__getitem__(key))
            return out.astype(self._native) if self._native is not None else out
        j, rows, rest = picked
        last = self._last
        if last is not None and last[0] == j:
            return last[1][rows][rest]
        _, ny, nx = self.shape
        itemsize = self.dtype.itemsize
        count = (rows.stop - rows.start) * nx * itemsize
        start = src[1] + ((j * ny + rows.start) * nx) * itemsize
        buf = np.empty(count, dtype=np.uint8)  # not a bytearray: zero-filling 32 MB cost 4x the read itself
        with open(src[0], "rb", buffering=0) as f:
            got = _pread_into(f.fileno(), buf, start)
        if got < count:
            raise StackTruncated(_message(src[0], j))
        band = buf.view(self.dtype).reshape(rows.stop - rows.start, nx)
        if self._native is not None:
            band = band.astype(self._native)
        band.flags.writeable = False  # as the read-only map's views were
        if rows.start == 0 and rows.stop == ny:
            self._last = (j, band)
        return band[rest]

    def _check_size(self) -> None:
        path, offset, nbytes = self._source  # type: ignore[misc]
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1
        if size < offset + nbytes:
            raise StackTruncated(_message(path, None))


def native_dtype(dtype: np.dtype) -> np.dtype | None:
    """The type a view of ``dtype`` is read as when the compiled kernels cannot take it as stored: float16 (MRC
    mode 12, as AreTomo3 and IMOD 4.12 write it) as float32, big-endian data (old IMOD files) in the machine's
    byte order; None when they can."""
    d = np.dtype(dtype)
    if d == np.float16:
        return np.dtype(np.float32)
    return d.newbyteorder("=") if not d.isnative else None


def _pread_into(fd: int, buf: np.ndarray, offset: int) -> int:
    """Fill ``buf`` from ``offset`` in reads of 16 MiB (as fast as a memory map's copy, measured by
    ``benchmarks/bench_checked_stack.py``); return the bytes read (short at the end of the file)."""
    view = memoryview(buf.data)
    done = 0
    while done < len(buf):
        n = os.preadv(fd, [view[done:done + CHUNK_BYTES]], offset + done)
        if n == 0:
            break
        done += n
    return done
