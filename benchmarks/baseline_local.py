"""The local WBP as session 7 left it, kept as `bench_local.py`'s baseline.

Every row of every view is filtered by ``scipy.fft`` (padded to a power of two with the edge values), then
transposed and sheared in a second pass (`sheared_views`), and the old block kernel
(`backproject_local_blocks_s7`: the four taps and three interpolations per sample inline, one sum per lane)
back-projects. `local_wbp_s7` is that whole path for a stack binned already.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.fft
from numpy.typing import NDArray

from napari_tomoalign.reconstruction.bp_kernels import stack_block
from napari_tomoalign.reconstruction.local_blocks import PAD, ROWS, view_shears
from napari_tomoalign.reconstruction.local_warp import row_geometry


def filter_views_s7(stack: NDArray[np.float32], filt: NDArray[np.float64], weights: NDArray[np.float32]) -> NDArray:
    """``(n_views, rows, cols)`` every row edge-padded to ``n_pad``, ramp-filtered by ``filt`` (rfft) and weighted."""
    n_v, n_r, n_x = stack.shape
    n_pad = 2 * (filt.size - 1)
    half = (n_pad - n_x) // 2
    out = np.empty_like(stack)
    chunk = max(1, int(2**25 // (n_pad * n_r * 4)))
    for c0 in range(0, n_v, chunk):
        padded = np.empty((min(chunk, n_v - c0), n_r, n_pad), dtype=np.float32)
        padded[:, :, :n_x] = stack[c0 : c0 + chunk]
        padded[:, :, n_x : n_x + half] = padded[:, :, n_x - 1 : n_x]
        padded[:, :, n_x + half :] = padded[:, :, 0:1]
        spec = scipy.fft.rfft(padded, axis=2, workers=numba.get_num_threads())
        spec *= (weights[c0 : c0 + chunk, None] * filt.astype(np.complex64)[None, :])[:, None, :]
        out[c0 : c0 + chunk] = scipy.fft.irfft(spec, n=n_pad, axis=2, workers=numba.get_num_threads())[:, :, :n_x]
    return out


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def sheared_views(views, shear, pad):  # pragma: no cover - compiled
    """``(n_views, n_cols + 2 pad, n_rows + 2 pad)`` the filtered views transposed (rows contiguous), each row
    ``r`` moved along the columns by ``shear[v] * (r - centre)`` (linear interpolation), zero outside."""
    n_v, n_r, n_u = views.shape
    out = np.zeros((n_v, n_u + 2 * pad, n_r + 2 * pad), dtype=np.float32)
    cr = (n_r - 1) / 2.0
    for v in numba.prange(n_v):
        for r in range(n_r):
            s = shear[v] * (r - cr)
            for u in range(n_u):
                src = u + s
                if src < 0.0 or src > n_u - 1.0:
                    continue
                i = min(int(src), n_u - 2)
                f = np.float32(src - i)
                out[v, u + pad, r + pad] = views[v, r, i] + f * (views[v, r, i + 1] - views[v, r, i])
    return out


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def backproject_local_blocks_s7(sheared, shear, n_rows, n_cols, mats, grid, row0, vol):  # pragma: no cover
    """`backproject_local` `ROWS` rows of the volume at a time, as the global WBP's block kernel reads them.

    ``sheared`` comes from `sheared_views` (``PAD``), ``n_rows``, ``n_cols`` are the filtered views' size.
    For each block of rows, voxel column and view, the geometry is taken at the block's middle row
    (`_row_geometry`); within the block a row ``j`` further reads the view ``j`` rows further, with the
    view's mean shear taken out (`view_shears`), so that the block's samples are contiguous reads of two
    columns, summed in an accumulator the compiler keeps in a vector register. What is left of the
    column's change along the rows (the patches' own increments and their blend) is not followed within
    a block: about 0.01 px per row, so up to 0.1 px at a block's first and last rows.
    """
    n_v = sheared.shape[0]
    n_z, n_y, n_x = vol.shape
    B = ROWS  # noqa: N806
    cx, cr, cz, cu = (n_x - 1) / 2.0, (n_rows - 1) / 2.0, (n_z - 1) / 2.0, (n_cols - 1) / 2.0
    n_us, n_rs = sheared.shape[1], sheared.shape[2]
    top_u, top_r = np.float32(n_us - 1.001), np.float32(n_rs - B - 1.001)
    stride = np.uint64(n_rs)
    flat = sheared.reshape(n_v, n_us * n_rs)
    n_blocks = (n_y + B - 1) // B
    for blk in numba.prange(n_blocks):
        yb = blk * B
        yc = yb + row0 + (B - 1) / 2.0 - cr  # the block's middle row, centred
        u0 = np.empty(n_x)
        du = np.empty(n_x)
        r0 = np.empty(n_x)
        dr = np.empty(n_x)
        geo = np.empty((n_x, n_v, 4), dtype=np.float32)
        for v in range(n_v):
            row_geometry(mats, grid, v, yc, cx, cr, cz, cu, u0, du, r0, dr)
            for x in range(n_x):  # sheared coordinates: u - shear (r - cr), the block's first row; + PAD
                geo[x, v, 0] = u0[x] - shear[v] * (r0[x] - cr) + PAD
                geo[x, v, 1] = du[x] - shear[v] * dr[x]
                geo[x, v, 2] = r0[x] - (B - 1) / 2.0 + PAD
                geo[x, v, 3] = dr[x]
        n_valid = min(B, n_y - yb)
        for x in range(n_x):
            g = geo[x]
            for z in range(n_z):
                acc = numba.carray(stack_block(ROWS), (ROWS,))  # type: ignore[call-arg]
                for j in range(B):
                    acc[j] = 0.0
                zf = np.float32(z)
                for v in range(n_v):
                    img = flat[v]
                    u = min(max(g[v, 0] + g[v, 1] * zf, np.float32(0.0)), top_u)
                    r = min(max(g[v, 2] + g[v, 3] * zf, np.float32(0.0)), top_r)
                    iu = int(u)
                    ir = int(r)
                    fu = u - np.float32(iu)
                    fr = r - np.float32(ir)
                    k0 = np.uint64(iu) * stride + np.uint64(ir)
                    k1 = k0 + stride
                    for j in range(B):
                        t0 = img[k0 + np.uint64(j)]
                        t1 = img[k1 + np.uint64(j)]
                        b0 = img[k0 + np.uint64(j + 1)]
                        b1 = img[k1 + np.uint64(j + 1)]
                        top = t0 + fu * (t1 - t0)
                        bot = b0 + fu * (b1 - b0)
                        acc[j] += top + fr * (bot - top)
                for j in range(n_valid):
                    vol[z, yb + j, x] = acc[j]


def local_wbp_s7(stack, filt, weights, mats, grid, n_z, row0=0):
    """Session 7's local WBP of the binned ``stack`` (the block kernel; ``filt`` from `wbp.radial_filter`)."""
    n_v, n_r, n_x = stack.shape
    rows_f = filter_views_s7(stack, filt, weights)
    shear = view_shears(mats)
    vol = np.empty((n_z, n_r - row0, n_x), dtype=np.float32)
    backproject_local_blocks_s7(sheared_views(rows_f, shear, PAD), shear, n_r, n_x, mats, grid, row0, vol)
    return vol
