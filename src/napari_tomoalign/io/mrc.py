"""MRC tilt series and volumes: memory-mapped reading, tilt angles from their usual places, atomic writing.

Tilt angles are looked for in this order, and the result says where they came from:

1. a sibling ``.tlt`` or ``.rawtlt`` with the same stem (``stack.st`` -> ``stack.tlt``, then ``stack.rawtlt``);
2. a SerialEM ``.mdoc`` (``stack.st.mdoc`` or ``stack.mdoc``), by ``ZValue``;
3. the MRC extended header: FEI (``FEI1``/``FEI2``, field ``Alpha tilt``) or SerialEM (``SERI``, the
   first short of each section, in hundredths of a degree, when ``nreal`` has bit 1).

Views stay in file order even when the angles are not sorted; the angles say which view is which.
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
from .tilts import MAX_TEXT_BYTES, read_tilt_angles, write_tilt_angles

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


def read_mdoc_tilts(path: str | os.PathLike[str], n_views: int | None = None) -> NDArray[np.float64]:
    """Tilt angles from a SerialEM ``.mdoc``, ordered by ``ZValue``."""
    import mdocfile

    p = Path(path)
    try:
        if p.stat().st_size > MAX_TEXT_BYTES:
            raise FileFormatError(f"{p}: too large for a SerialEM .mdoc")
        df = mdocfile.read(p)
    except FileFormatError:
        raise
    except FileNotFoundError:
        raise FileFormatError(f"{p}: no such .mdoc file") from None
    except Exception as exc:  # mdocfile raises pydantic and parsing errors of many types
        raise FileFormatError(f"{p}: not a readable SerialEM .mdoc ({type(exc).__name__})") from None
    if "TiltAngle" not in df.columns or "ZValue" not in df.columns:
        raise FileFormatError(f"{p}: the .mdoc has no [ZValue] sections with TiltAngle")
    try:
        df = df.dropna(subset=["ZValue", "TiltAngle"])
        z = df["ZValue"].to_numpy(dtype=float)
        t = df["TiltAngle"].to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise FileFormatError(f"{p}: the .mdoc ZValue or TiltAngle entries are not numbers") from None
    if z.size == 0 or not np.all(np.isfinite(t)) or np.any(np.abs(t) >= 90):
        raise FileFormatError(f"{p}: the .mdoc tilt angles are missing or outside (-90, 90) degrees")
    if len(set(z.tolist())) != z.size or not np.array_equal(np.sort(z), np.arange(z.size)):
        raise FileFormatError(f"{p}: the .mdoc ZValues are not 0..{z.size - 1} once each")
    if n_views is not None and z.size != n_views:
        raise FileFormatError(f"{p}: the .mdoc has {z.size} sections but the stack has {n_views} views")
    out = np.empty(z.size)
    out[z.astype(int)] = t
    return out


def extended_header_tilts(mrc: mrcfile.mrcfile.MrcFile) -> tuple[NDArray[np.float64] | None, str | None]:
    """Tilt angles from an FEI or SerialEM extended header, or ``(None, None)``."""
    h = mrc.header
    n = int(h.nz)
    exttyp = bytes(h.exttyp).decode("ascii", errors="replace")
    try:
        if exttyp in ("FEI1", "FEI2"):
            ext = mrc.indexed_extended_header
            if ext is not None and "Alpha tilt" in ext.dtype.names and len(ext) >= n:
                t = np.asarray(ext["Alpha tilt"][:n], dtype=float)
                if np.all(np.isfinite(t)) and np.all(np.abs(t) < 90) and np.ptp(t) > 0:
                    return t, f"extended header ({exttyp})"
        elif exttyp == "SERI":
            # IMOD's header keeps nint (bytes per section) and nreal (flags) as shorts at bytes 128 and 130.
            order = h.dtype.fields["nx"][0].str[0]  # '<' or '>', as the file is
            nint, nreal = np.frombuffer(h.tobytes()[128:132], dtype=order + "i2")
            raw = np.frombuffer(mrc.extended_header.tobytes(), dtype=np.uint8)
            if int(nreal) & 1 and nint >= 2 and raw.size >= int(nint) * n:
                t = raw[: int(nint) * n].reshape(n, int(nint))[:, :2].copy().view(order + "i2").ravel() / 100.0
                if np.all(np.abs(t) < 90) and np.ptp(t) > 0:
                    return t.astype(float), "extended header (SerialEM)"
    except (ValueError, TypeError, KeyError):
        pass
    return None, None


def find_tilt_angles(path: Path, n_views: int, mrc=None) -> tuple[NDArray[np.float64] | None, str | None]:
    """Tilt angles for the stack at ``path`` from the first source that has them (module docstring)."""
    for suffix in (".tlt", ".rawtlt"):
        cand = path.with_suffix(suffix)
        if cand.is_file():
            t = read_tilt_angles(cand)
            if t.size != n_views:
                raise FileFormatError(f"{cand} has {t.size} tilt angles but {path.name} has {n_views} views")
            return t, str(cand)
    for cand in (path.with_name(path.name + ".mdoc"), path.with_suffix(".mdoc")):
        if cand.is_file():
            return read_mdoc_tilts(cand, n_views), str(cand)
    if mrc is not None:
        return extended_header_tilts(mrc)
    return None, None


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
