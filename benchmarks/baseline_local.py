"""The local WBP as session 8 left it, kept as `bench_local.py`'s baseline.

The same filter as today's (`local_blocks.filtered_sheared_views`, with session 8's border of 34), and the
block kernel it had: blocks of 32 rows, the geometry of each voxel column and view taken at the block's middle
row and not followed along the rows (each lane reads the row ``j`` further at the same fractions), four
weights per view. `local_wbp_s8` is that path (error check, filter, blocks) for a stack binned already.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from napari_tomoalign.reconstruction.bp_fft import filter_block, twiddles
from napari_tomoalign.reconstruction.bp_kernels import CONTRACT, X_TILE, Z_TILE, stack_block, write_columns
from napari_tomoalign.reconstruction.local_blocks import FILTER_ROWS, _shear_rows, _tiles, view_shears
from napari_tomoalign.reconstruction.local_warp import row_geometry

ROWS = 32  # session 8's block
PAD = ROWS + 2


def block_error_px_s8(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]) -> float:
    """How far `backproject_local_blocks` samples from the exact position, at most, in a volume of ``n_z``
    sections over a binned ``size`` ``(nx, ny)``: the exact and the block's positions compared at the first
    and last row of every block, every 16th column and the last, and the first and last section, in every view."""
    nx, ny = size
    cx, cr, cz = (nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0
    shear = view_shears(mats)
    first = np.arange(0, ny, ROWS)
    mid = first + (ROWS - 1) / 2.0
    x = np.unique(np.r_[np.arange(0, nx, 16), nx - 1]).astype(float)
    worst = 0.0
    for y, ym in ((first, mid), (np.minimum(first + ROWS - 1, ny - 1), mid)):
        for z in (0.0, n_z - 1.0):
            u, r = _positions(mats, grid, x - cx, y - cr, z - cz)
            um, rm = _positions(mats, grid, x - cx, ym - cr, z - cz)
            dy = (y - ym)[:, None, None]
            err_u = np.abs((u - shear * r) - (um - shear * rm))
            err_r = np.abs(r - (rm + dy))
            worst = max(worst, float(err_u.max()), float(err_r.max()))
    return worst


def _positions(mats, grid, xc, yc, zc):
    """``(u, r)`` ``(rows, cols, views)``: the exact position (centred) of points at columns ``xc``, rows
    ``yc`` and height ``zc``, from the bilinear blend of the patch matrices (as `local_warp.row_geometry`)."""
    nx_p, ny_p = int(grid[0]), int(grid[1])
    gx = np.clip((xc - grid[2]) / grid[4], 0.0, nx_p - 1.0)
    gy = np.clip((yc - grid[3]) / grid[5], 0.0, ny_p - 1.0)
    ix, iy = np.minimum(gx.astype(int), nx_p - 2), np.minimum(gy.astype(int), ny_p - 2)
    fx, fy = (gx - ix)[None, :, None], (gy - iy)[:, None, None]
    p = iy[:, None] * nx_p + ix[None, :]
    m = ((1 - fy) * (1 - fx))[..., None] * mats[p] + ((1 - fy) * fx)[..., None] * mats[p + 1] \
        + (fy * (1 - fx))[..., None] * mats[p + nx_p] + (fy * fx)[..., None] * mats[p + nx_p + 1]
    X, Y = xc[None, :, None], yc[:, None, None]
    u = m[..., 0] * X + m[..., 1] * Y + m[..., 2] * zc + m[..., 3]
    r = m[..., 4] * X + m[..., 5] * Y + m[..., 6] * zc + m[..., 7]
    return u, r


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def filtered_sheared_views_s8(views, shear, filt, wr, wi):  # pragma: no cover - compiled
    """``(n_views, n_cols + 2 PAD, n_rows' + 2 PAD)``: each view sheared (`_shear_rows`), filtered by ``filt``
    ``(n_views, n_pad)`` (`wbp.full_filter`) with twiddles ``wr, wi`` (`bp_fft.twiddles`), transposed, in a
    zero border; ``n_rows'`` is ``n_rows`` rounded up to `FILTER_ROWS`. Samples from beyond the view are zero."""
    n_v, n_r, n_u = views.shape
    n_rb = -(-n_r // FILTER_ROWS) * FILTER_ROWS
    out = np.empty((n_v, n_u + 2 * PAD, n_rb + 2 * PAD), dtype=np.float32)
    cr = (n_r - 1) / 2.0
    for v in numba.prange(n_v):
        rows = np.empty((n_r, n_u), dtype=np.float32)
        bufs = np.empty((4, filt.shape[1], FILTER_ROWS // 2), dtype=np.float32)
        _shear_rows(views[v], shear[v], rows)
        o = out[v]
        o[:PAD] = 0.0  # the zero border
        o[PAD + n_u :] = 0.0
        for u in range(PAD, PAD + n_u):
            o[u, :PAD] = 0.0
            o[u, PAD + n_rb :] = 0.0
        q = o[PAD : PAD + n_u, PAD : PAD + n_rb]
        filter_block(rows, 0, n_rb, filt[v], wr, wi, bufs, q)
        for u in range(n_u):  # rows past the view: zero (the FFT leaves rounding there)
            q[u, n_r:] = 0.0
        for r in range(n_r):  # what came from beyond the view is left out, as the exact kernel does
            s = shear[v] * (r - cr)
            for u in range(0, min(n_u, int(np.ceil(-s)))):  # u + s < 0
                q[u, r] = 0.0
            for u in range(max(0, int(np.floor(n_u - 1.0 - s)) + 1), n_u):  # u + s > n_u - 1
                q[u, r] = 0.0
    return out


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _view_taps_s8(g, zf, plane, stride, top_u, top_r, off, w):  # pragma: no cover - compiled
    """For one voxel column and section: each view's flat offset into the filtered views and its four
    bilinear weights ``w[0..3]`` (rows r, r + 1 of column u; then of column u + 1), in one pass over the views."""
    n_v = off.size
    for v in range(n_v):
        u = min(max(g[0, v] + g[1, v] * zf, np.float32(0.0)), top_u)
        r = min(max(g[2, v] + g[3, v] * zf, np.float32(0.0)), top_r)
        iu = int(u)
        ir = int(r)
        fu = u - np.float32(iu)
        fr = r - np.float32(ir)
        off[v] = numba.uint64(v * plane + iu * stride + ir)
        w[0, v] = (np.float32(1.0) - fu) * (np.float32(1.0) - fr)
        w[1, v] = (np.float32(1.0) - fu) * fr
        w[2, v] = fu * (np.float32(1.0) - fr)
        w[3, v] = fu * fr


@numba.njit(parallel=True, cache=True, fastmath=CONTRACT, nogil=True)
def backproject_local_blocks_s8(q, shear, n_rows, n_cols, mats, grid, row0, vol):  # pragma: no cover - compiled
    """``vol[z, y, x]`` (its row ``y`` is the views' row ``row0 + y``) from the local geometry, `ROWS` rows at a time.

    ``q`` from `filtered_sheared_views`, ``shear`` from `view_shears`, ``n_rows``, ``n_cols`` the views' size,
    ``mats``, ``grid`` from `local_warp.kernel_arguments`. For each block of rows, voxel column and view, the
    geometry is taken at the block's middle row (`local_warp.row_geometry`), and row ``j`` of the block reads
    the view ``j`` rows further (module docstring). A sample beyond the view reads the zero border.
    """
    n_v, n_us, n_rs = q.shape
    n_z, n_y, n_x = vol.shape
    B = ROWS
    cx, cr, cz, cu = (n_x - 1) / 2.0, (n_rows - 1) / 2.0, (n_z - 1) / 2.0, (n_cols - 1) / 2.0
    top_u, top_r = np.float32(n_us - 1.001), np.float32(n_rs - B - 1.001)
    q1 = q.ravel()
    one = numba.uint64(1)
    stride = numba.uint64(n_rs)
    n_blocks = (n_y + B - 1) // B
    n_vp = -(-n_v // 16) * 16
    for blk in numba.prange(n_blocks):
        yb = blk * B
        yc = yb + row0 + (B - 1) / 2.0 - cr  # the block's middle row, centred
        u0, du, r0, dr = np.empty(n_x), np.empty(n_x), np.empty(n_x), np.empty(n_x)
        geo = np.zeros((n_x, 4, n_vp), dtype=np.float32)  # views padded: `_view_taps` has no scalar tail
        for v in range(n_v):
            row_geometry(mats, grid, v, yc, cx, cr, cz, cu, u0, du, r0, dr)
            for x in range(n_x):  # sheared coordinates: u - shear (r - cr), the block's first row; + PAD
                geo[x, 0, v] = u0[x] - shear[v] * (r0[x] - cr) + PAD
                geo[x, 1, v] = du[x] - shear[v] * dr[x]
                geo[x, 2, v] = r0[x] - (B - 1) / 2.0 + PAD
                geo[x, 3, v] = dr[x]
        off = np.empty(n_vp, dtype=np.uint64)
        w = np.empty((4, n_vp), dtype=np.float32)
        w0s, w1s, w2s, w3s = w[0], w[1], w[2], w[3]
        buf = np.empty((min(n_z, Z_TILE), X_TILE, B), dtype=np.float32)
        acc = numba.carray(stack_block(128), (128,))  # type: ignore[call-arg]  # 4 ROWS (a literal)
        n_valid = min(B, n_y - yb)
        for x0, x1, z0, z1 in _tiles(n_x, n_z):
            for x in range(x0, x1):
                g = geo[x]
                for z in range(z0, z1):
                    _view_taps_s8(g, np.float32(z), n_us * n_rs, n_rs, top_u, top_r, off, w)
                    for k in range(4 * B):
                        acc[k] = 0.0
                    for vv in range(n_v // 2):
                        v = numba.uint64(2 * vv)  # unsigned: no wraparound code for the indices below
                        a0, b0 = off[v], off[v] + stride
                        a1, b1 = off[v + one], off[v + one] + stride
                        w0, w1, w2, w3 = w0s[v], w1s[v], w2s[v], w3s[v]
                        h0, h1, h2, h3 = w0s[v + one], w1s[v + one], w2s[v + one], w3s[v + one]
                        for j in range(B):
                            ju = numba.uint64(j)  # unsigned indices: no wraparound code in the loop
                            acc[j] += w0 * q1[a0 + ju]
                            acc[j] += w1 * q1[a0 + ju + one]
                            acc[B + j] += w2 * q1[b0 + ju]
                            acc[B + j] += w3 * q1[b0 + ju + one]
                            acc[2 * B + j] += h0 * q1[a1 + ju]
                            acc[2 * B + j] += h1 * q1[a1 + ju + one]
                            acc[3 * B + j] += h2 * q1[b1 + ju]
                            acc[3 * B + j] += h3 * q1[b1 + ju + one]
                    if n_v % 2 == 1:
                        a0, b0 = off[n_v - 1], off[n_v - 1] + stride
                        w0, w1, w2, w3 = w[0, n_v - 1], w[1, n_v - 1], w[2, n_v - 1], w[3, n_v - 1]
                        for j in range(B):
                            ju = numba.uint64(j)
                            acc[j] += w0 * q1[a0 + ju] + w1 * q1[a0 + ju + one]
                            acc[B + j] += w2 * q1[b0 + ju] + w3 * q1[b0 + ju + one]
                    out = buf[z - z0, x - x0]
                    for j in range(B):
                        out[j] = (acc[j] + acc[B + j]) + (acc[2 * B + j] + acc[3 * B + j])
            write_columns(buf, vol, z0, z1, x0, x1, yb, n_valid)


def local_wbp_s8(views, filt, mats, grid, n_z):
    """Session 8's local WBP of the binned ``views`` (its block kernel; ``filt`` from `wbp.full_filter`)."""
    n_v, n_r, n_u = views.shape
    block_error_px_s8(mats, grid, n_z, (n_u, n_r))
    shear = view_shears(mats)
    q = filtered_sheared_views_s8(views, shear, filt, *twiddles(filt.shape[1]))
    vol = np.empty((n_z, n_r, n_u), dtype=np.float32)
    backproject_local_blocks_s8(q, shear, n_r, n_u, mats, grid, 0, vol)
    return vol
