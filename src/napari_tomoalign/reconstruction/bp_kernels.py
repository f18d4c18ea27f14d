"""The compiled kernels of the weighted back-projection: blocks of rows filtered and back-projected in cache.

The volume is made one block of ``BLOCK`` rows (slices) at a time, each block on one thread:

1. **Filter.** The block's rows of every view are read transposed, ``(column, row)``, padded to a power
   of two with the edge values, and filtered by a radix-2 Stockham FFT that runs across the rows, so
   that every butterfly is one vector operation over the block. Two real rows ride in one complex
   column (one as the real part, one as the imaginary part): the filter is real and even, so they come
   back apart. The result, ``q[view, u, row]``, is exactly the layout the back-projection reads.
2. **Back-project.** For each voxel column ``(x, z)`` and view, the detector position ``u`` is the same
   in every row of the block, so the block's rows are one short vector: two contiguous reads of ``q``
   and two fused multiply-adds per voxel and view, summed over the views before the column is stored.
   The ``q`` rows that one ``x`` needs for all ``z`` (about ``thickness x sin(tilt)`` of each view) stay
   in L2 as ``x`` advances.

With an X-axis tilt or Z factors that move points across rows (IMOD's full model), the row of a voxel
depends on its ``z``: the block then filters the rows around it as well and samples ``q`` in both
``u`` and the row (`backproject_block_full`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.typing import NDArray

BLOCK = 32  # rows per block: two AVX-512 vectors of float32; 16 complex columns in the FFT


@intrinsic
def stack_block(typingctx, size):  # pragma: no cover - compiled
    """A pointer to ``size`` float32 on the stack: LLVM keeps such an accumulator in vector registers,
    which it cannot do for a heap array that might alias the views it reads."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size.literal_value)

    return types.CPointer(types.float32)(size), codegen


def twiddles(n_pad: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``exp(-2 pi i k / n_pad)`` for ``k < n_pad``, as (real, imaginary) float32."""
    k = np.arange(n_pad)
    return np.cos(2 * np.pi * k / n_pad).astype(np.float32), (-np.sin(2 * np.pi * k / n_pad)).astype(np.float32)


@numba.njit(cache=True, fastmath=True, nogil=True)
def _radix4(sr, si, dr, di, wr, wi, n, s):  # pragma: no cover - compiled
    """One radix-4 Stockham pass (decimation in frequency) of length ``n`` and stride ``s``."""
    n1 = n // 4
    nb = sr.shape[1]
    for p in range(n1):
        c1, d1 = wr[p * s], wi[p * s]
        c2, d2 = wr[2 * p * s], wi[2 * p * s]
        c3, d3 = wr[3 * p * s], wi[3 * p * s]
        for q in range(s):
            ia = q + s * p
            ib = ia + s * n1
            ic = ib + s * n1
            id_ = ic + s * n1
            o0 = q + 4 * s * p
            for k in range(nb):
                apcr = sr[ia, k] + sr[ic, k]
                apci = si[ia, k] + si[ic, k]
                amcr = sr[ia, k] - sr[ic, k]
                amci = si[ia, k] - si[ic, k]
                bpdr = sr[ib, k] + sr[id_, k]
                bpdi = si[ib, k] + si[id_, k]
                # j (b - d)
                jr = si[id_, k] - si[ib, k]
                ji = sr[ib, k] - sr[id_, k]
                dr[o0, k] = apcr + bpdr
                di[o0, k] = apci + bpdi
                er = amcr - jr
                ei = amci - ji
                dr[o0 + s, k] = er * c1 - ei * d1
                di[o0 + s, k] = er * d1 + ei * c1
                er = apcr - bpdr
                ei = apci - bpdi
                dr[o0 + 2 * s, k] = er * c2 - ei * d2
                di[o0 + 2 * s, k] = er * d2 + ei * c2
                er = amcr + jr
                ei = amci + ji
                dr[o0 + 3 * s, k] = er * c3 - ei * d3
                di[o0 + 3 * s, k] = er * d3 + ei * c3


@numba.njit(cache=True, fastmath=True, nogil=True)
def fft_columns(xr, xi, yr, yi, wr, wi):  # pragma: no cover - compiled
    """Forward FFT (unscaled) of every column of ``x = xr + i xi`` ``(n, b)``, ``n`` a power of two.

    Ping-pongs between ``x`` and ``y``; returns True when the result is in ``(yr, yi)``. The inverse
    transform is this one with the real and imaginary parts swapped on the way in and out.
    """
    n = xr.shape[0]
    s = 1
    in_y = False
    while n > 1:
        if in_y:
            sr, si, dr, di = yr, yi, xr, xi
        else:
            sr, si, dr, di = xr, xi, yr, yi
        if n >= 4:
            _radix4(sr, si, dr, di, wr, wi, n, s)
            n //= 4
            s *= 4
        else:  # a last radix-2 pass, with no twiddles
            for q in range(s):
                for k in range(sr.shape[1]):
                    ar, ai, br, bi = sr[q, k], si[q, k], sr[q + s, k], si[q + s, k]
                    dr[q, k] = ar + br
                    di[q, k] = ai + bi
                    dr[q + s, k] = ar - br
                    di[q + s, k] = ai - bi
            n //= 2
            s *= 2
        in_y = not in_y
    return in_y


@numba.njit(cache=True, fastmath=True, nogil=True)
def filter_block(view, r0, n_rows, filt, wr, wi, bufs, q):  # pragma: no cover - compiled
    """``q[u, k]`` = row ``r0 + k`` of ``view`` ``(rows, cols)``, edge-padded and filtered by ``filt`` ``(n_pad,)``.

    Rows outside ``view`` are zero; ``q`` is ``(cols, n_rows)`` with ``n_rows`` a multiple of ``BLOCK``.
    ``filt`` holds the full-length real, even filter, already divided by ``n_pad`` for the inverse.
    ``bufs`` is ``(4, n_pad, BLOCK // 2)`` float32 scratch.
    """
    n_r, n_x = view.shape
    n_pad = filt.shape[0]
    half = (n_pad - n_x) // 2
    hb = BLOCK // 2
    xr, xi, yr, yi = bufs[0], bufs[1], bufs[2], bufs[3]
    for c0 in range(0, n_rows, BLOCK):
        for k in range(hb):
            for part in range(2):
                dst = xr if part == 0 else xi
                r = r0 + c0 + k + part * hb
                if r < 0 or r >= n_r:
                    for u in range(n_pad):
                        dst[u, k] = 0.0
                    continue
                row = view[r]
                for u in range(n_x):
                    dst[u, k] = row[u]
                right = row[n_x - 1]
                left = row[0]
                for u in range(n_x, n_x + half):
                    dst[u, k] = right
                for u in range(n_x + half, n_pad):
                    dst[u, k] = left
        in_y = fft_columns(xr, xi, yr, yi, wr, wi)
        sr, si = (yr, yi) if in_y else (xr, xi)
        dr, di = (xr, xi) if in_y else (yr, yi)
        for u in range(n_pad):
            h = filt[u]
            for k in range(hb):
                sr[u, k] *= h
                si[u, k] *= h
        back = fft_columns(si, sr, di, dr, wr, wi)  # the inverse: real and imaginary parts swapped
        orr, oi = (dr, di) if back else (sr, si)
        for u in range(n_x):
            for k in range(hb):
                q[u, c0 + k] = orr[u, k]
                q[u, c0 + hb + k] = oi[u, k]


@numba.njit(cache=True, fastmath=True, nogil=True)
def backproject_block(q, base, cos_t, vol, row0, n_valid):  # pragma: no cover - compiled
    """``vol[z, row0 + k, x] += sum over views of q[v](u, k)`` for ``k < n_valid``, ``u = base[z, v] + x cos_t[v]``.

    ``q`` ``(n_views, n_u, BLOCK)``; ``base`` ``(n_z, n_views)`` holds the detector position of column 0.
    """
    n_v, n_u, nb = q.shape
    n_z, _, n_x = vol.shape
    acc = numba.carray(stack_block(BLOCK), (BLOCK,))  # type: ignore[call-arg]
    top = n_u - 1.0
    for x in range(n_x):
        for z in range(n_z):
            for k in range(BLOCK):
                acc[k] = 0.0
            bz = base[z]
            for v in range(n_v):
                u = bz[v] + x * cos_t[v]
                if u < 0.0 or u > top:
                    continue
                i = min(int(u), n_u - 2)
                f = np.float32(u - i)
                g = np.float32(1.0) - f
                a = q[v, i]
                b = q[v, i + 1]
                for k in range(BLOCK):
                    acc[k] += g * a[k] + f * b[k]
            for k in range(n_valid):
                vol[z, row0 + k, x] = acc[k]


@numba.njit(cache=True, fastmath=True, nogil=True)
def backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, row0, y_first, n_valid):  # pragma: no cover
    """As `backproject_block`, with the full model: the row read depends on the voxel's z and y too.

    ``q`` ``(n_views, n_u, n_r)`` holds rows ``r_first ..`` of the filtered views; ``coef`` ``(n_views, 7)``
    the projection ``u = A0 x + A1 y + A2 z + A3``, ``r = B1 y + B2 z + B3`` (columns A0..A3, B1..B3) of a
    voxel at ``(x, y, z)`` from the centre (``cx``, ``cz``; ``y`` from row ``y_first`` of the volume, whose
    block starts at ``row0``). A voxel whose position falls outside the views is left out for that view.
    """
    n_v, n_u, n_r = q.shape
    n_z, _, n_x = vol.shape
    acc = numba.carray(stack_block(BLOCK), (BLOCK,))  # type: ignore[call-arg]
    top_u = n_u - 1.0
    top_r = n_rows_all - 1.0
    for x in range(n_x):
        xc = x - cx
        for z in range(n_z):
            zc = z - cz
            for k in range(BLOCK):
                acc[k] = 0.0
            for v in range(n_v):
                a1, b1 = coef[v, 1], coef[v, 4]
                u0 = coef[v, 0] * xc + a1 * y_first + coef[v, 2] * zc + coef[v, 3]
                r0 = b1 * y_first + coef[v, 5] * zc + coef[v, 6]
                qv = q[v]
                for k in range(n_valid):
                    u = u0 + a1 * k
                    r = r0 + b1 * k
                    if u < 0.0 or u > top_u or r < 0.0 or r > top_r:
                        continue
                    iu = min(int(u), n_u - 2)
                    ir = min(int(r), n_rows_all - 2)
                    fu = np.float32(u - iu)
                    fr = np.float32(r - ir)
                    j = ir - r_first
                    lo = qv[iu, j] + fu * (qv[iu + 1, j] - qv[iu, j])
                    hi = qv[iu, j + 1] + fu * (qv[iu + 1, j + 1] - qv[iu, j + 1])
                    acc[k] += lo + fr * (hi - lo)
            for k in range(n_valid):
                vol[z, row0 + k, x] = acc[k]


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks(views, filt, wr, wi, base, cos_t, vol, row_first):  # pragma: no cover - compiled
    """Filter and back-project ``vol`` ``(n_z, n_rows, n_x)``: its row ``k`` is row ``row_first + k`` of ``views``.

    ``views`` ``(n_views, rows, cols)``; ``filt`` ``(n_views, n_pad)`` each view's filter and weight;
    ``base``, ``cos_t`` as in `backproject_block`.
    """
    n_v, _, n_u = views.shape
    n_rows = vol.shape[1]
    n_blocks = (n_rows + BLOCK - 1) // BLOCK
    n_pad = filt.shape[1]
    for b in numba.prange(n_blocks):
        r0 = b * BLOCK
        q = np.empty((n_v, n_u, BLOCK), dtype=np.float32)
        bufs = np.empty((4, n_pad, BLOCK // 2), dtype=np.float32)
        for v in range(n_v):
            filter_block(views[v], row_first + r0, BLOCK, filt[v], wr, wi, bufs, q[v])
        backproject_block(q, base, cos_t, vol, r0, min(BLOCK, n_rows - r0))


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks_full(views, filt, wr, wi, coef, cx, cz, vol, row_first, n_rows_all, view_row0):  # pragma: no cover
    """`wbp_blocks` with the full model (`backproject_block_full`): each block filters the rows it reaches.

    ``views`` holds rows ``view_row0 ..`` of views that have ``n_rows_all`` rows; ``row_first`` is the
    view row of the volume's row 0 (rows count from the views' first row, whose centre ``coef`` uses).
    """
    n_v, n_held, n_u = views.shape
    n_z, n_rows, _ = vol.shape
    n_blocks = (n_rows + BLOCK - 1) // BLOCK
    n_pad = filt.shape[1]
    cy = (n_rows_all - 1) / 2.0
    for b in numba.prange(n_blocks):
        r0 = b * BLOCK
        y_first = row_first + r0 - cy
        n_valid = min(BLOCK, n_rows - r0)
        lo, hi = 1e30, -1e30
        for v in range(n_v):
            for yy in (y_first, y_first + n_valid - 1):
                for zz in (-cz, n_z - 1 - cz):
                    r = coef[v, 4] * yy + coef[v, 5] * zz + coef[v, 6]
                    lo, hi = min(lo, r), max(hi, r)
        r_first = min(max(view_row0, int(np.floor(lo))), view_row0 + n_held - 2)
        r_stop = max(min(view_row0 + n_held, int(np.floor(hi)) + 2), r_first + 2)
        n_r = ((r_stop - r_first + BLOCK - 1) // BLOCK) * BLOCK
        q = np.empty((n_v, n_u, n_r), dtype=np.float32)
        bufs = np.empty((4, n_pad, BLOCK // 2), dtype=np.float32)
        for v in range(n_v):
            filter_block(views[v], r_first - view_row0, n_r, filt[v], wr, wi, bufs, q[v])
        backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, r0, y_first, n_valid)
