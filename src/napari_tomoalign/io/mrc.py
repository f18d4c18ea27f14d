"""MRC tilt series and volumes: memory-mapped reading with the tilt angles from their usual places
(see `tilt_sources`), and atomic writing.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_path, check_writable
from .errors import FileFormatError
from .tilt_sources import find_tilt_angles
from .tilts import write_tilt_angles

STACK_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")


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
    if mode not in _MODE_BYTES:
        return f"data mode {mode} is not one MRC defines"
    if nsymbt < 0:
        return f"the header gives a negative extended-header size ({nsymbt})"
    need = 1024 + nsymbt + nx * ny * nz * _MODE_BYTES[mode]
    if need > size:
        return f"the header promises {need} bytes but the file has {size}"
    return None


def _open_mmap(path: Path) -> mrcfile.mrcmemmap.MrcMemmap:
    if not path.is_file():
        raise FileFormatError(f"{path}: no such MRC file")
    problem = _header_problem(path)
    if problem:
        raise FileFormatError(f"{path}: not a readable MRC file ({problem})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError, IndexError, TypeError, OverflowError, MemoryError) as exc:
        raise FileFormatError(f"{path}: not a readable MRC file ({str(exc).splitlines()[0][:120]})") from None


def open_tilt_series(path: str | os.PathLike[str], strict_tilts: bool = True) -> TiltSeries:
    """Open an MRC tilt series memory-mapped, with its pixel size and tilt angles (if any).

    A broken tilt-angle file beside the stack raises `FileFormatError`, unless ``strict_tilts`` is
    False: then the stack opens without angles and ``tilt_error`` says what was wrong.
    """
    p = Path(path)
    mrc = _open_mmap(p)
    data = mrc.data
    if data is None or data.ndim not in (2, 3) or data.size == 0:
        raise FileFormatError(f"{p}: holds no image data")
    if data.ndim == 2:
        data = data[None]
    if data.dtype.kind == "c":
        raise FileFormatError(f"{p}: complex (Fourier-space) MRC data is not a tilt series")
    vx = float(mrc.voxel_size.x)
    error = None
    try:
        tilts, source = find_tilt_angles(p, int(data.shape[0]), mrc)
    except FileFormatError as exc:
        if strict_tilts:
            raise
        tilts, source, error = None, None, str(exc)
    return TiltSeries(p, data, vx if vx > 0 else None, tilts, source, error)


def write_mrc(
    path: str | os.PathLike[str],
    data: NDArray,
    voxel_size_angstrom: float | None = None,
    *,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` (2-D or 3-D) as MRC atomically; optionally a ``.tlt`` beside it. Return the path.

    Integer data of a type MRC cannot hold is written as float32. Neither file is written if either
    exists and ``overwrite`` is False.
    """
    p = Path(path)
    tlt = p.with_suffix(".tlt") if tilt_angles_deg is not None else None
    check_writable(p, overwrite)
    if tlt is not None:
        check_writable(tlt, overwrite)
    arr = np.asarray(data)
    if arr.dtype not in (np.int8, np.int16, np.uint16, np.float32, np.uint8):
        arr = arr.astype(np.float32)
    with atomic_path(p, overwrite) as tmp:
        with mrcfile.new_mmap(tmp, shape=arr.shape, mrc_mode=mrcfile.utils.mode_from_dtype(arr.dtype),
                              overwrite=True) as m:
            if arr.ndim == 3:
                for k in range(arr.shape[0]):
                    m.data[k] = arr[k]
                m.header.ispg = 0
                m.header.mz = arr.shape[0]
            else:
                m.data[...] = arr
            if voxel_size_angstrom:
                m.voxel_size = float(voxel_size_angstrom)
            m.update_header_stats()
    if tlt is not None:
        write_tilt_angles(tlt, np.asarray(tilt_angles_deg, dtype=float), overwrite=overwrite)
    return p
