"""The local WBP's error check as session 16 left it (`local_errors.choose_geometry` and what it calls), kept as
`bench_error_check.py`'s baseline: per block of 64 rows, `local_blocks.fit_block` at every 8th voxel column,
`local_blocks.block_errors_of` (the exact positions recomputed by `local_warp.row_geometry` at every checked lane,
scalar) and session 16's `_slab_error_of` (the column walk with a division per column, the sums in the array).
The decisions (`group_slabs`, `row_shears`, the limits) are the package's, unchanged."""

from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.local_blocks import (
    BLOCK_TOLERANCE_PX,
    ERROR_X_STEP,
    EXTRAPOLATION_LIMIT_PX,
    ROWS,
    block_errors_of,
    fit_block,
)
from napari_tomoalign.reconstruction.local_errors import MEASURED_SLAB, group_slabs, row_shears

JM = (ROWS - 1) / 2.0


@numba.njit(inline="always", fastmath=True, nogil=True)
def lines_at(g, zs, lines):  # pragma: no cover - compiled
    """Session 16's `local_errors.lines_at`."""
    for x in range(g.shape[1]):
        a = g[2, x] + g[3, x] * zs
        lines[0, x] = g[0, x] + g[1, x] * zs + a * JM
        lines[1, x] = a
        lines[2, x] = g[4, x] + g[5, x] * zs
        lines[3, x] = g[6, x] + g[7, x] * zs


@numba.njit(cache=True, nogil=True)
def views_first(geo):  # pragma: no cover - compiled
    """Session 16's `local_errors.views_first`."""
    n_x, n_k, n_v = geo.shape
    out = np.empty((n_v, n_k, n_x), dtype=geo.dtype)
    for x in range(n_x):
        for k in range(n_k):
            for v in range(n_v):
                out[v, k, x] = geo[x, k, v]
    return out


@numba.njit(inline="always", nogil=True)
def at_column(lines, c, x):  # pragma: no cover - compiled
    """Session 16's `local_errors.at_column`."""
    n_x = lines.shape[1]
    while x < n_x - 2 and lines[0, x + 1] <= c:
        x += 1
    s0, s1 = lines[0, x], lines[0, x + 1]
    return x, (c - s0) / (s1 - s0) if s1 != s0 else 0.0


@numba.njit(cache=True, fastmath=True, nogil=True)
def _slab_error_of(geo, n_z, last, slab, worst):  # pragma: no cover - compiled
    """Session 16's `local_errors._slab_error_of`."""
    n_xs, _, n_v = geo.shape
    mid, at_z = np.empty((4, n_xs)), np.empty((4, n_xs))
    by_view = views_first(geo)
    for z0 in range(0, n_z, slab):
        z1 = min(n_z, z0 + slab)
        for v in range(n_v):
            lines_at(by_view[v], (z0 + z1 - 1) / 2.0, mid)
            for z in (z0, z1 - 1):
                lines_at(by_view[v], z, at_z)
                for j in (0, last):
                    x = 0
                    for i in range(n_xs):
                        x, t = at_column(mid, at_z[0, i] + at_z[1, i] * (j - JM), x)
                        r = mid[2, x] + t * (mid[2, x + 1] - mid[2, x])
                        b = mid[3, x] + t * (mid[3, x + 1] - mid[3, x])
                        d = at_z[2, i] - r + (at_z[3, i] - b) * j
                        worst[0, v] = max(worst[0, v], abs(d))
                        worst[1, v] += d * d


@numba.njit(cache=True, fastmath=True, nogil=True)
def errors_s16(mats, grid, shear, n_z, nx, ny, x_step, slab, b0, b1):  # pragma: no cover - compiled
    """Session 16's `local_errors._errors`: ``(position, extrapolation, slab errors)`` over the blocks ``b0 .. b1``."""
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    n_v = mats.shape[1]
    n_xs = (nx - 1) // x_step + 1
    pos, ext, worst = 0.0, 0.0, np.zeros((2, n_v))
    for blk in range(b0, b1):
        yb = blk * ROWS
        last = min(ROWS, ny - yb) - 1
        geo = np.zeros((n_xs, 8, n_v), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], last, n_z, centre, x_step, (0.0, 0.0), geo)
        p, e = block_errors_of(mats, grid, shear, geo, yb - centre[1], last, n_z, centre, x_step)
        pos, ext = max(pos, p), max(ext, e)
        _slab_error_of(geo, n_z, last, slab, worst)
    return pos, ext, worst


def measured_errors_s16(mats, grid, n_z, size, shear=None):
    """Session 16's `local_errors.measured_errors` on one thread."""
    nx, ny = size
    shear = row_shears(mats) if shear is None else shear
    return errors_s16(mats, grid, shear, n_z, nx, ny, ERROR_X_STEP, MEASURED_SLAB, 0, -(-ny // ROWS))


def choose_slabs_s16(mats, grid, n_z, size, shear=None):
    """Session 16's `local_errors.choose_slabs` (one thread)."""
    pos, ext, err = measured_errors_s16(mats, grid, n_z, size, shear)
    if pos > BLOCK_TOLERANCE_PX or ext > EXTRAPOLATION_LIMIT_PX:
        return np.zeros(err.shape[1], dtype=np.int64)
    return group_slabs(err, pos)


def choose_geometry_s16(mats, grid, n_z, size):
    """Session 16's `local_errors.choose_geometry` (one thread)."""
    none = np.zeros(mats.shape[1])
    slabs = choose_slabs_s16(mats, grid, n_z, size, none)
    shear = row_shears(mats)
    if slabs.min() >= 2 or not shear.any():
        return none, slabs
    slabs = choose_slabs_s16(mats, grid, n_z, size, shear)
    return (none if slabs.min() == 0 else shear), slabs
