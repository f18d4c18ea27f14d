"""The local WBP's choice of kernel: the lines each voxel column follows at a section, how far a slab of
sections read from one section's lines is from them (`slab_errors`), and `choose_kernel`, which takes the
thickest slab of `SLABS` within its tolerance, the block kernel (`local_blocks`) or the exact voxel kernel.

A voxel at section ``z`` of a slab reads the rows resampled for the voxel column that meets its column at
the slab's middle section ``zs`` (`local_rows`); those differ from its own by the slope of the row along that
column (the X-axis tilt, the patches' rotations) times ``z - zs``. `slab_errors` measures it; `choose_kernel`
takes the thickest slab of `SLABS` within `SLAB_TOLERANCE_PX` (and, with the block kernel's error,
`local_blocks.BLOCK_TOLERANCE_PX`), the block kernel where none is (an X-axis tilt of 3 degrees or more: its
rows move by 0.05 px per section), and the exact voxel kernel where the blocks are not within their limits.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numpy.typing import NDArray

from .local_blocks import (
    BLOCK_TOLERANCE_PX,
    ERROR_X_STEP,
    EXTRAPOLATION_LIMIT_PX,
    GROUP,
    ROWS,
    block_errors_of,
    fit_block,
    view_shears,
)

SLAB_TOLERANCE_PX = 0.15  # the largest position error a slab may add to the block kernel's (binned pixels)
SHEAR_NEGLIGIBLE_PX = 0.02  # a shear that moves a group's lanes less than this (each way) is not applied
SLABS = (16, 12, 8, 4)  # the slabs tried, thickest first: thinner ones resample more than the block kernel saves
JM = (ROWS - 1) / 2.0  # the middle lane of a block


@numba.njit(cache=True, fastmath=True, nogil=True)
def view_lines(geo, v, zs, lines):  # pragma: no cover - compiled
    """``lines[:, x]`` = ``(s, A, R, B)`` of voxel column ``x`` in view ``v`` at section ``zs``: the column ``s``
    of its middle lane, its column drift per lane, the row of its lane 0 and its row drift (``geo`` from
    `fit_block`)."""
    for x in range(geo.shape[0]):
        g = geo[x, :, v]
        a = g[2] + g[3] * zs
        lines[0, x] = g[0] + g[1] * zs + a * JM
        lines[1, x] = a
        lines[2, x] = g[4] + g[5] * zs
        lines[3, x] = g[6] + g[7] * zs


@numba.njit(inline="always", nogil=True)
def at_column(lines, c, x):  # pragma: no cover - compiled
    """``(x, t)``: the voxel columns ``x, x + 1`` whose middle-lane columns bracket ``c`` (from ``x`` on, which
    the caller advances), and the fraction ``t`` of ``c`` between them (beyond the ends: extrapolated)."""
    n_x = lines.shape[1]
    while x < n_x - 2 and lines[0, x + 1] <= c:
        x += 1
    s0, s1 = lines[0, x], lines[0, x + 1]
    return x, (c - s0) / (s1 - s0) if s1 != s0 else 0.0


@numba.njit(cache=True, fastmath=True, nogil=True)
def _slab_error_of(geo, n_z, last, slab):  # pragma: no cover - compiled
    """`slab_errors` for slabs of ``slab`` sections in one block (lanes ``0 .. last``) whose lines `fit_block`
    fitted into ``geo`` at every few voxel columns (no pads)."""
    n_xs, _, n_v = geo.shape
    worst = 0.0
    mid, at_z = np.empty((4, n_xs)), np.empty((4, n_xs))
    for z0 in range(0, n_z, slab):
        z1 = min(n_z, z0 + slab)
        for v in range(n_v):
            view_lines(geo, v, (z0 + z1 - 1) / 2.0, mid)
            for z in (z0, z1 - 1):
                view_lines(geo, v, z, at_z)
                for j in (0, last):
                    x = 0
                    for i in range(n_xs):  # the column lane j reads, increasing with i
                        x, t = at_column(mid, at_z[0, i] + at_z[1, i] * (j - JM), x)
                        r = mid[2, x] + t * (mid[2, x + 1] - mid[2, x])
                        b = mid[3, x] + t * (mid[3, x + 1] - mid[3, x])
                        worst = max(worst, abs(at_z[2, i] - r + (at_z[3, i] - b) * j))
    return worst


@numba.njit(cache=True, fastmath=True, nogil=True)
def _errors(mats, grid, shear, n_z, nx, ny, x_step, slab, b0, b1):  # pragma: no cover - compiled
    """``(position, extrapolation, slab error)``: `local_blocks.block_errors` and `slab_errors` (for slabs of
    ``slab``) over the blocks ``b0 .. b1``, every ``x_step``-th voxel column, one fit per block for both."""
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    n_v = mats.shape[1]
    n_xs = (nx - 1) // x_step + 1
    pos, ext, worst = 0.0, 0.0, 0.0
    for blk in range(b0, b1):
        yb = blk * ROWS
        last = min(ROWS, ny - yb) - 1
        geo = np.zeros((n_xs, 8, n_v), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], last, n_z, centre, x_step, (0.0, 0.0), geo)
        p, e = block_errors_of(mats, grid, shear, geo, yb - centre[1], last, n_z, centre, x_step)
        pos, ext = max(pos, p), max(ext, e)
        worst = max(worst, _slab_error_of(geo, n_z, last, slab))
    return pos, ext, worst


def row_shears(mats: NDArray[np.float64]) -> NDArray[np.float64]:
    """`local_blocks.view_shears`, or zero where it would move the lanes of a group of `GROUP` by less than
    `SHEAR_NEGLIGIBLE_PX` each way (BBa's local file: 0.011 px): the lanes follow their drift anyway, and the
    shear's interpolation smooths the views (NCC against the exact kernel 0.99578 with it, 0.99584 without)."""
    shear = view_shears(mats)
    return np.zeros_like(shear) if np.abs(shear).max() * GROUP / 2 <= SHEAR_NEGLIGIBLE_PX else shear


def slab_errors(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]
                ) -> NDArray[np.float64]:
    """For each thickness of `SLABS` (sections), the largest row error (binned pixels) that reading the line
    resampled at a slab's middle section adds to the block kernel's fitted line (module docstring), over a
    volume of ``n_z`` sections on a binned ``size`` ``(nx, ny)``. Measured for the thickest slab at every
    `ERROR_X_STEP`-th voxel column, every view, the first and last section of every slab and the first and
    last lane of every block; the error grows as ``z - zs`` does (the row's slope along a column of the
    resampled views), so a slab ``k`` times thinner has ``1 / k`` of it (measured on BBa's local file at
    bin 1, 8 and 4 sections: 0.084 and 0.038 px, against 0.169 / 2 and 0.169 / 4)."""
    nx, ny = size
    err = _errors(mats, grid, row_shears(mats), n_z, nx, ny, ERROR_X_STEP, SLABS[0], 0, -(-ny // ROWS))[2]
    return np.array([err * t / SLABS[0] for t in SLABS])


def choose_kernel(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]) -> int:
    """The sections per slab of `backproject_local_rows` (the thickest of `SLABS` whose error is within
    `SLAB_TOLERANCE_PX` and, added to the block kernel's, `local_blocks.BLOCK_TOLERANCE_PX`); 1 for the block
    kernel (`local_blocks.backproject_local_blocks`) where no slab is, and 0 for the exact voxel kernel where
    the blocks are not within their limits either (`local_blocks.blocks_suffice`)."""
    shear = row_shears(mats)
    nx, ny = size
    n_blocks = -(-ny // ROWS)
    args = (mats, grid, shear, n_z, nx, ny, ERROR_X_STEP, SLABS[0])
    if numba.get_num_threads() > 1 and n_blocks > 1:  # half the blocks each (compiled without the GIL)
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(_errors, *args, n_blocks // 2, n_blocks)
            first = _errors(*args, 0, n_blocks // 2)
            pos, ext, err = np.maximum(first, other.result())
    else:
        pos, ext, err = _errors(*args, 0, n_blocks)
    errors = [err * t / SLABS[0] for t in SLABS]
    if pos > BLOCK_TOLERANCE_PX or ext > EXTRAPOLATION_LIMIT_PX:
        return 0
    for slab, err in zip(SLABS, errors, strict=True):
        if err <= SLAB_TOLERANCE_PX and pos + err <= BLOCK_TOLERANCE_PX:
            return slab
    return 1
