"""MRC tilt series and volumes: memory-mapped reading with the tilt angles from their usual places
(see `tilt_sources`), and atomic writing.
"""

from __future__ import annotations

import errno
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_path, check_writable
from .byte_sign import IMOD_SIGNED_BYTES, IMOD_STAMP, unsigned_bytes, wrapped_warning
from .checked_stack import CheckedStack
from .errors import FileFormatError
from .guarded import require_regular_file
from .tilt_sources import find_tilt_angles
from .tilts import write_tilt_angles

STACK_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".preali", ".rec", ".map")


@dataclass
class TiltSeries:
    """A tilt series opened from disk.

    Attributes
    ----------
    data
        ``(n_views, rows, cols)`` read-only memory map (nothing is loaded until it is indexed).
    pixel_size_angstrom
        From the header's voxel size; None when the header gives 0 (unknown).
    tilt_angles_deg
        One angle per view in file order, or None when no source had them.
    tilt_source
        Where the angles came from (a path or "extended header (FEI)"...), or None.
    tilt_error
        Why a tilt-angle file beside the stack could not be used (only with ``strict_tilts=False``).
    """

    path: Path
    data: np.ndarray
    pixel_size_angstrom: float | None
    tilt_angles_deg: NDArray[np.float64] | None
    tilt_source: str | None
    tilt_error: str | None = None

    @property
    def n_views(self) -> int:
        return int(self.data.shape[0])


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def _header_problem(path: Path) -> str | None:
    """Check the MRC header's sizes against the file before any library reads it (so that a hostile
    header cannot make a reader allocate gigabytes); say what is wrong, or None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(1024)
    if len(raw) < 1024:
        return f"{size} bytes is too short for an MRC header (1024 bytes)"
    order = ">" if raw[212] == 0x11 else "<"
    nx, ny, nz, mode = struct.unpack(order + "4i", raw[:16])
    (nsymbt,) = struct.unpack(order + "i", raw[92:96])
    if min(nx, ny, nz) <= 0:
        return f"the header gives a size of {nx} x {ny} x {nz}"
    if mode == 101:
        return ("data mode 101 is IMOD's packed 4-bit format, which is not read here; write it as bytes with IMOD's"
                " 'newstack -mode 0'")
    if mode not in _MODE_BYTES:
        return f"data mode {mode} is not one MRC defines (0, 1, 2, 4, 6 or 12); check that it is an MRC file"
    if nsymbt < 0:
        return f"the header gives a negative extended-header size ({nsymbt})"
    need = 1024 + nsymbt + nx * ny * nz * _MODE_BYTES[mode]
    if need > size:
        return f"the header promises {need} bytes but the file has {size}"
    return None


def _open_mmap(path: Path) -> mrcfile.mrcmemmap.MrcMemmap:
    require_regular_file(path, "MRC")
    problem = _header_problem(path)
    if problem:
        raise FileFormatError(f"{path}: not a readable MRC file ({problem})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError, IndexError, TypeError, OverflowError, MemoryError) as exc:
        if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:  # the file is fine
            raise MemoryError(f"{path}: this process may not map the {path.stat().st_size / 2**30:.1f} GiB file "
                              "(a memory or address-space limit, such as ulimit -v); raise the limit") from None
        raise FileFormatError(f"{path}: not a readable MRC file ({str(exc).splitlines()[0][:120]})") from None


def open_tilt_series(path: str | os.PathLike[str], strict_tilts: bool = True, find_tilts: bool = True) -> TiltSeries:
    """Open an MRC tilt series memory-mapped, with its pixel size and tilt angles (if any).

    A broken tilt-angle file beside the stack raises `FileFormatError`, unless ``strict_tilts`` is
    False: then the stack opens without angles and ``tilt_error`` says what was wrong. With
    ``find_tilts`` False no tilt source is looked at (a caller that has the angles elsewhere).
    """
    p = Path(path)
    mrc = _open_mmap(p)
    data = mrc.data
    if data is None or data.ndim not in (2, 3) or data.size == 0:
        raise FileFormatError(f"{p}: holds no image data")
    if unsigned_bytes(mrc.header):  # IMOD's unsigned bytes, which mrcfile reads as signed
        data = data.view(np.uint8)
    if data.ndim == 2:
        data = data[None]
    if data.dtype == np.int8 and (said := wrapped_warning(p, mrc.header, data)):
        warnings.warn(said, stacklevel=2)  # unsigned bytes read signed: said before a misleading failure (s15 new user)
    if data.dtype.kind == "c":
        raise FileFormatError(f"{p}: complex (Fourier-space) MRC data is not a tilt series")
    data = CheckedStack.wrap(data, p, 1024 + int(mrc.header.nsymbt))  # view reads: a truncated file is one error
    with np.errstate(divide="ignore", invalid="ignore"):  # a header's mx of 0 makes the voxel size inf or NaN
        vx = float(mrc.voxel_size.x)
    if np.isinf(vx) or vx >= 1e6:  # an overflowing cell size or a huge one (NaN, from 0 / 0, is "unknown")
        raise FileFormatError(f"{p}: the header's pixel size ({vx} Å) is not a usable number; set it with IMOD's"
                              " 'alterheader -PixelSize' (or -del)")
    error = None
    try:
        tilts, source = find_tilt_angles(p, int(data.shape[0]), mrc) if find_tilts else (None, None)
    except FileFormatError as exc:
        if strict_tilts:
            raise
        tilts, source, error = None, None, str(exc)
    return TiltSeries(p, data, vx if np.isfinite(vx) and vx > 0 else None, tilts, source, error)


class NonFiniteDataError(ValueError):
    """Data to be written holds NaN or infinite values."""




def mrc_header(shape: tuple[int, int, int], dtype: np.dtype, voxel_size_angstrom: float | None,
               stats: tuple[float, float, float, float], stack: bool, label: str = "Created by napari-tomoalign") -> bytes:
    """A 1024-byte MRC-2014 header for ``(sections, rows, cols)`` data of ``dtype`` (as mrcfile makes it). Bytes
    are mode 0 with IMOD's stamp and flag saying whether they are signed (``newstack -mode 0``): mrcfile's mode
    for unsigned bytes is 6 (16-bit), which it widens the data to, and that does not describe one-byte data."""
    h = np.zeros((), dtype=mrcfile.dtypes.HEADER_DTYPE).view(np.recarray)
    h.map = mrcfile.constants.MAP_ID
    h.nversion = 20141
    h.machst = mrcfile.utils.machine_stamp_from_byte_order(h.mode.dtype.byteorder)
    h.cellb.alpha = h.cellb.beta = h.cellb.gamma = 90.0
    h.mapc, h.mapr, h.maps = 1, 2, 3
    h.nz, h.ny, h.nx = shape
    h.mz, h.my, h.mx = shape
    h.mode = 0 if np.dtype(dtype).itemsize == 1 else mrcfile.utils.mode_from_dtype(dtype)
    h.ispg = 0 if stack else 1
    v = float(voxel_size_angstrom or 0.0)
    h.cella.x, h.cella.y, h.cella.z = v * shape[2], v * shape[1], v * shape[0]
    h.dmin, h.dmax, h.dmean, h.rms = stats
    h.label[0] = f"{label:79s} "
    h.nlabl = 1
    raw = bytearray(h.tobytes())
    if np.dtype(dtype).itemsize == 1:
        struct.pack_into("<ii", raw, 152, IMOD_STAMP, IMOD_SIGNED_BYTES if np.dtype(dtype).kind == "i" else 0)
    return bytes(raw)


class MrcStreamWriter:
    """Write an MRC file section by section, in order, without a memory map: a full disk is an
    ``OSError`` (space is reserved first, so it comes before the work), never a SIGBUS. The header's
    statistics are accumulated as the sections go by. ``stack`` writes an image stack (space group 0;
    one section reads back as a 2-D image), else a volume (space group 1)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype, voxel_size_angstrom: float | None,
                 stack: bool = True) -> None:
        nz, ny, nx = (int(n) for n in shape)
        self.shape: tuple[int, int, int] = (nz, ny, nx)
        self.path, self.dtype = path, np.dtype(dtype).newbyteorder("<")
        self.voxel, self.stack, self.done = voxel_size_angstrom, stack, 0
        self._min, self._max, self._sum, self._sumsq = np.inf, -np.inf, 0.0, 0.0
        self._f = open(path, "wb")
        size = 1024 + int(np.prod(self.shape)) * self.dtype.itemsize
        try:
            os.posix_fallocate(self._f.fileno(), 0, size)
        except (AttributeError, OSError) as exc:  # a filesystem without fallocate still fails cleanly on write
            if getattr(exc, "errno", None) == errno.ENOSPC:
                self._f.close()
                raise
        self._f.write(bytes(1024))

    def write(self, section: NDArray) -> None:
        """Append the next section ``(rows, cols)``; NaN or infinite pixels raise `NonFiniteDataError`."""
        a = np.ascontiguousarray(section, dtype=self.dtype)
        if a.shape != self.shape[1:]:
            raise ValueError(f"section of shape {a.shape}, expected {self.shape[1:]}")
        from ._stats import section_stats

        finite, lo, hi, s, sq = section_stats(a)
        if not finite:
            raise NonFiniteDataError(f"section {self.done} holds NaN or infinite values")
        self._min, self._max = min(self._min, lo), max(self._max, hi)
        self._sum += s
        self._sumsq += sq
        self._f.write(a.data.cast("B"))
        self.done += 1

    def close(self) -> None:
        """Write the header with the statistics, flush and close."""
        if self.done != self.shape[0]:
            raise ValueError(f"{self.done} of {self.shape[0]} sections were written")
        n = float(np.prod(self.shape))
        mean = self._sum / n
        rms = float(np.sqrt(max(self._sumsq / n - mean * mean, 0.0)))
        self._f.seek(0)
        self._f.write(mrc_header(self.shape, self.dtype, self.voxel, (self._min, self._max, mean, rms), self.stack))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def abort(self) -> None:
        self._f.close()


def write_mrc(
    path: str | os.PathLike[str],
    data: NDArray,
    voxel_size_angstrom: float | None = None,
    *,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` (2-D or 3-D) as MRC atomically; optionally a ``.tlt`` beside it. Return the path.

    Integer data of a type MRC cannot hold is written as float32; NaN or infinite values raise
    `NonFiniteDataError`. Neither file is written if either exists and ``overwrite`` is False.
    """
    p = Path(path)
    tlt = p.with_suffix(".tlt") if tilt_angles_deg is not None else None
    check_writable(p, overwrite)
    if tlt is not None:
        check_writable(tlt, overwrite)
    arr = np.asarray(data)
    if arr.dtype not in (np.int8, np.int16, np.uint16, np.float32, np.uint8):
        arr = arr.astype(np.float32)
    sections = arr[None] if arr.ndim == 2 else arr
    if sections.ndim != 3:
        raise ValueError(f"MRC data must be 2-D or 3-D, not {arr.ndim}-D")
    with atomic_path(p, overwrite) as tmp:
        w = MrcStreamWriter(tmp, sections.shape, arr.dtype, voxel_size_angstrom, stack=True)
        try:
            for k in range(sections.shape[0]):
                w.write(sections[k])
            w.close()
        except BaseException:
            w.abort()
            raise
    if tlt is not None:
        write_tilt_angles(tlt, np.asarray(tilt_angles_deg, dtype=float), overwrite=overwrite)
    return p
