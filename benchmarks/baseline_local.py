"""The local WBP's voxel kernel before issue 24 (kept as the baseline of ``bench_local.py``).

For each voxel column and view it blends the four patch matrices and samples the filtered view along z
with a scalar bilinear interpolation; a sample outside the view adds nothing.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _cell(g, n):  # pragma: no cover - compiled
    """Lower grid index and fraction of position ``g`` on a grid of ``n`` nodes, clamped to the edges."""
    g = min(max(g, 0.0), n - 1.0)
    i = min(int(g), n - 2)
    return i, g - i


@numba.njit(inline="always")
def _z_range(a0, d, top, lo, hi):  # pragma: no cover - compiled
    """Narrow ``[lo, hi]`` to the z where ``a0 + d z`` lies in ``[0, top]``."""
    if d > 1e-12:
        return max(lo, -a0 / d), min(hi, (top - a0) / d)
    if d < -1e-12:
        return max(lo, (top - a0) / d), min(hi, -a0 / d)
    if a0 < 0.0 or a0 > top:
        return lo, -1.0
    return lo, hi


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def backproject_local_voxels(views, mats, grid, row0, vol):  # pragma: no cover - compiled
    """``vol[z, y, x] = sum over views of views[v](position of (x, y, z))`` with local geometry.

    ``views`` ``(n_views, n_rows, n_cols)`` are the filtered views (all rows, binned), ``mats`` and
    ``grid`` come from `kernel_arguments`, ``row0`` is the first row of the full volume in ``vol``.
    For each voxel column the z range whose positions fall inside the view is found first, so that
    the inner loop has no test.
    """
    n_v, n_r, n_u = views.shape
    n_z, n_y, n_x = vol.shape
    nx_p, ny_p = int(grid[0]), int(grid[1])
    cx, cr, cz, cu = (n_x - 1) / 2.0, (n_r - 1) / 2.0, (n_z - 1) / 2.0, (n_u - 1) / 2.0
    for yy in numba.prange(n_y):
        y = yy + row0 - cr
        iy, fy = _cell((y - grid[3]) / grid[5], ny_p)
        acc = np.zeros((n_x, n_z), dtype=np.float32)
        m = np.empty(8)
        for v in range(n_v):
            img = views[v]
            for x in range(n_x):
                xc = x - cx
                ix, fx = _cell((xc - grid[2]) / grid[4], nx_p)
                p00 = iy * nx_p + ix
                w00, w01, w10, w11 = (1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx
                for k in range(8):
                    m[k] = (w00 * mats[p00, v, k] + w01 * mats[p00 + 1, v, k] + w10 * mats[p00 + nx_p, v, k]
                            + w11 * mats[p00 + nx_p + 1, v, k])
                du, dr = m[2], m[6]
                u0 = m[0] * xc + m[1] * y + m[3] + cu - du * cz
                r0 = m[4] * xc + m[5] * y + m[7] + cr - dr * cz
                lo, hi = _z_range(u0, du, n_u - 1.0, 0.0, n_z - 1.0)
                lo, hi = _z_range(r0, dr, n_r - 1.0, lo, hi)
                row = acc[x]
                for z in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
                    u = u0 + du * z
                    r = r0 + dr * z
                    iu = min(max(int(u), 0), n_u - 2)
                    ir = min(max(int(r), 0), n_r - 2)
                    fu = np.float32(u - iu)
                    fr = np.float32(r - ir)
                    a = img[ir, iu] + fu * (img[ir, iu + 1] - img[ir, iu])
                    b = img[ir + 1, iu] + fu * (img[ir + 1, iu + 1] - img[ir + 1, iu])
                    row[z] += a + fr * (b - a)
        for z in range(n_z):
            for x in range(n_x):
                vol[z, yy, x] = acc[x, z]
