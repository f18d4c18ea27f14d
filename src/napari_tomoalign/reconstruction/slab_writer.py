"""An MRC volume written a slab of rows at a time (`stream`): every section gets the slab's rows at their place, with
plain writes into space reserved first, and the header's statistics are summed on the way and written last."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..io.mrc import mrc_header


class SlabWriter:
    """An MRC volume ``(n_z, rows, cols)`` written a slab of rows at a time into every section, with plain
    writes (space reserved first), the header's statistics summed on the way and written on `close`."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, voxel_size_angstrom: float | None,
                 scale: tuple[float, float] = (0.0, 1.0)) -> None:
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype).newbyteorder("<")
        self.voxel, self.scale = voxel_size_angstrom, scale
        self.lo, self.hi, self.total, self.total_sq, self.clipped = np.inf, -np.inf, 0.0, 0.0, 0
        self.f = open(path, "r+b" if path.exists() else "wb")
        size = 1024 + int(np.prod(shape)) * self.dtype.itemsize
        try:
            os.posix_fallocate(self.f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC: say so before the work, not after
                self.f.close()
                raise
        self.f.write(bytes(1024))

    def write_rows(self, first: int, slab: NDArray[np.float32]) -> None:
        """Write ``slab`` ``(n_z, rows, cols)`` at rows ``first..`` of every section, one section at a time."""
        n_z, ny, nx = self.shape
        row_bytes = nx * self.dtype.itemsize
        info = np.iinfo(self.dtype) if self.dtype.kind in "iu" else None
        for z in range(n_z):
            data = slab[z]
            if self.scale != (0.0, 1.0):
                data = (data + np.float32(self.scale[0])) * np.float32(self.scale[1])
            if info is not None:
                data = np.rint(data)
                self.clipped += int(np.count_nonzero((data < info.min) | (data > info.max)))
                data = np.clip(data, info.min, info.max)
            out = np.ascontiguousarray(data, dtype=self.dtype)
            s = float(out.sum(dtype=np.float64))
            if not np.isfinite(s):
                raise ValueError(f"section {z}, rows {first}..{first + slab.shape[1]} hold NaN or infinite values")
            self.lo, self.hi = min(self.lo, float(out.min())), max(self.hi, float(out.max()))
            self.total += s
            self.total_sq += float(np.square(out, dtype=np.float64).sum())
            self.f.seek(1024 + (z * ny + first) * row_bytes)
            self.f.write(out.data.cast("B"))

    def close(self) -> None:
        n = float(np.prod(self.shape))
        mean = self.total / n
        rms = float(np.sqrt(max(self.total_sq / n - mean * mean, 0.0)))
        self.f.seek(0)
        self.f.write(mrc_header(self.shape, self.dtype, self.voxel, (self.lo, self.hi, mean, rms), stack=False,
                                label="Created by napari-tomoalign (streamed WBP)"))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
