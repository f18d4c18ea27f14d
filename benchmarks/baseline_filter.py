"""Baseline for `bench_filter.py`: `bp_fft.filter_block` as it was on main at the start of session 11
(commit d98d9ff), kept here unchanged so that the benchmark can time it against today's in the same process.

The filter of the weighted back-projection: rows of the views ramp-filtered by an FFT across the rows.

A block's rows of one view are read transposed, ``(column, row)``, padded to a power of two with the
edge values, and filtered by a Stockham FFT that runs across the rows, so that every butterfly is one or
two vector operations over 16 or 32 complex columns. The passes are radix 16 (two radix-4 passes with the
values held between them), so a 1024-point transform makes three trips through its scratch, not five; and
the scratch keeps its rows permuted (`slot`), so that the rows a pass reads together, a power of two
apart, do not all fall in one set of the L1 cache. Two real rows ride in one
complex column (one as the real part, one as the imaginary part): the filter is real and even, so they
come back apart. The result, ``q[u, row]``, is exactly the layout the back-projection reads
(`bp_kernels`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.typing import NDArray


def twiddles(n_pad: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``exp(-2 pi i k / n_pad)`` for ``k < n_pad``, as (real, imaginary) float32."""
    k = np.arange(n_pad)
    return np.cos(2 * np.pi * k / n_pad).astype(np.float32), (-np.sin(2 * np.pi * k / n_pad)).astype(np.float32)


@intrinsic
def stack_block(typingctx, size):  # pragma: no cover - compiled
    """A pointer to ``size`` float32 on the stack: LLVM keeps such an accumulator in vector registers,
    which it cannot do for a heap array that might alias the views it reads."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size.literal_value)

    return types.CPointer(types.float32)(size), codegen


@numba.njit(inline="always", nogil=True)
def slot(r, shift):  # pragma: no cover - compiled
    """Where row ``r`` of a transform is kept in its scratch: ``r`` with its low ``shift`` bits flipped by the next
    ``shift`` (a permutation of the rows). Rows a power of two apart, which the passes read together, would
    otherwise share one set of the L1 cache (a row is 64 or 128 bytes; ``2 ** shift`` rows fill 4 KB)."""
    return r ^ ((r >> shift) & ((1 << shift) - 1))


@numba.njit(inline="always", fastmath=True, nogil=True)
def _butterfly(ar, ai, br, bi, cr, ci, xr, xi, tw):  # pragma: no cover - compiled
    """The radix-4 butterfly of ``a, b, c, x`` (decimation in frequency): the four outputs, the last three
    times the twiddles ``tw = (c1, d1, c2, d2, c3, d3)``: ``c1 + i d1``, ``c2 + i d2``, ``c3 + i d3``."""
    c1, d1, c2, d2, c3, d3 = tw
    apcr, apci, amcr, amci = ar + cr, ai + ci, ar - cr, ai - ci
    bpdr, bpdi = br + xr, bi + xi
    jr, ji = xi - bi, br - xr  # j (b - x)
    er, ei = amcr - jr, amci - ji
    fr, fi = apcr - bpdr, apci - bpdi
    gr, gi = amcr + jr, amci + ji
    return (apcr + bpdr, apci + bpdi, er * c1 - ei * d1, er * d1 + ei * c1, fr * c2 - fi * d2, fr * d2 + fi * c2,
            gr * c3 - gi * d3, gr * d3 + gi * c3)


@numba.njit(inline="always", nogil=True)
def _twiddles3(wr, wi, p):  # pragma: no cover - compiled
    return wr[p], wi[p], wr[2 * p], wi[2 * p], wr[3 * p], wi[3 * p]


@numba.njit(inline="always", fastmath=True, nogil=True)
def _quarter(sr, si, rows, k, tw):  # pragma: no cover - compiled
    """`_butterfly` of rows ``rows[0..3]`` (scratch slots) at lane ``k``."""
    a, b, c, d = rows
    return _butterfly(sr[a, k], si[a, k], sr[b, k], si[b, k], sr[c, k], si[c, k], sr[d, k], si[d, k], tw)


@numba.njit(cache=True, fastmath=True, nogil=True)
def _radix16(sr, si, dr, di, wr, wi, n, s, shift):  # pragma: no cover - compiled
    """Two radix-4 Stockham passes in one, ``(n, s)`` then ``(n / 4, 4 s)``, with the 16 values in registers
    between them: the same sums as the two passes, and one trip through the scratch (in L2) instead of two.
    Each group of 16 outputs goes through a buffer on the stack, so that LLVM vectorises the lanes without
    checks that the source and destination overlap."""
    n1, n2 = n // 4, n // 16
    nb = sr.shape[1]
    obr = numba.carray(stack_block(512), (16, 32))  # type: ignore[call-arg]
    obi = numba.carray(stack_block(512), (16, 32))
    for p2 in range(n2):
        t0 = _twiddles3(wr, wi, p2 * s)
        t1 = _twiddles3(wr, wi, (p2 + n2) * s)
        t2 = _twiddles3(wr, wi, (p2 + 2 * n2) * s)
        t3 = _twiddles3(wr, wi, (p2 + 3 * n2) * s)
        t4 = _twiddles3(wr, wi, 4 * p2 * s)
        for q in range(s):
            i0 = q + s * p2
            r0 = (slot(i0, shift), slot(i0 + s * n1, shift), slot(i0 + 2 * s * n1, shift), slot(i0 + 3 * s * n1, shift))
            i1 = i0 + s * n2
            r1 = (slot(i1, shift), slot(i1 + s * n1, shift), slot(i1 + 2 * s * n1, shift), slot(i1 + 3 * s * n1, shift))
            i2 = i0 + 2 * s * n2
            r2 = (slot(i2, shift), slot(i2 + s * n1, shift), slot(i2 + 2 * s * n1, shift), slot(i2 + 3 * s * n1, shift))
            i3 = i0 + 3 * s * n2
            r3 = (slot(i3, shift), slot(i3 + s * n1, shift), slot(i3 + 2 * s * n1, shift), slot(i3 + 3 * s * n1, shift))
            for kk in range(nb):
                k = numba.uint64(kk)  # unsigned: no wraparound code, whole-vector loads
                y00r, y00i, y01r, y01i, y02r, y02i, y03r, y03i = _quarter(sr, si, r0, k, t0)
                y10r, y10i, y11r, y11i, y12r, y12i, y13r, y13i = _quarter(sr, si, r1, k, t1)
                y20r, y20i, y21r, y21i, y22r, y22i, y23r, y23i = _quarter(sr, si, r2, k, t2)
                y30r, y30i, y31r, y31i, y32r, y32i, y33r, y33i = _quarter(sr, si, r3, k, t3)
                (obr[0, kk], obi[0, kk], obr[4, kk], obi[4, kk], obr[8, kk], obi[8, kk], obr[12, kk],
                 obi[12, kk]) = _butterfly(y00r, y00i, y10r, y10i, y20r, y20i, y30r, y30i, t4)
                (obr[1, kk], obi[1, kk], obr[5, kk], obi[5, kk], obr[9, kk], obi[9, kk], obr[13, kk],
                 obi[13, kk]) = _butterfly(y01r, y01i, y11r, y11i, y21r, y21i, y31r, y31i, t4)
                (obr[2, kk], obi[2, kk], obr[6, kk], obi[6, kk], obr[10, kk], obi[10, kk], obr[14, kk],
                 obi[14, kk]) = _butterfly(y02r, y02i, y12r, y12i, y22r, y22i, y32r, y32i, t4)
                (obr[3, kk], obi[3, kk], obr[7, kk], obi[7, kk], obr[11, kk], obi[11, kk], obr[15, kk],
                 obi[15, kk]) = _butterfly(y03r, y03i, y13r, y13i, y23r, y23i, y33r, y33i, t4)
            o = q + 16 * s * p2
            for j in range(16):
                dst_r, dst_i = dr[slot(o + j * s, shift)], di[slot(o + j * s, shift)]
                for kk in range(nb):
                    dst_r[kk] = obr[j, kk]
                    dst_i[kk] = obi[j, kk]


@numba.njit(cache=True, fastmath=True, nogil=True)
def _radix4(sr, si, dr, di, wr, wi, n, s, shift):  # pragma: no cover - compiled
    """One radix-4 Stockham pass (decimation in frequency) of length ``n`` and stride ``s``."""
    n1 = n // 4
    nb = sr.shape[1]
    for p in range(n1):
        tw = _twiddles3(wr, wi, p * s)
        for q in range(s):
            ia = q + s * p
            rows = (slot(ia, shift), slot(ia + s * n1, shift), slot(ia + 2 * s * n1, shift), slot(ia + 3 * s * n1, shift))
            o0 = q + 4 * s * p
            w0, w1 = slot(o0, shift), slot(o0 + s, shift)
            w2, w3 = slot(o0 + 2 * s, shift), slot(o0 + 3 * s, shift)
            for kk in range(nb):
                k = numba.uint64(kk)
                dr[w0, k], di[w0, k], dr[w1, k], di[w1, k], dr[w2, k], di[w2, k], dr[w3, k], di[w3, k] = _quarter(
                    sr, si, rows, k, tw)


@numba.njit(cache=True, fastmath=True, nogil=True)
def fft_columns(xr, xi, yr, yi, wr, wi, shift):  # pragma: no cover - compiled
    """Forward FFT (unscaled) of every column of ``x = xr + i xi`` ``(n, b)``, ``n`` a power of two, ``b <= 32``;
    row ``r`` of the data (in and out) is kept in row ``slot(r, shift)`` of the arrays.

    Radix 16 (two radix-4 passes fused) while it can, then radix 4 and radix 2. Ping-pongs between ``x``
    and ``y``; returns True when the result is in ``(yr, yi)``. The inverse transform is this one with the
    real and imaginary parts swapped on the way in and out.
    """
    n = xr.shape[0]
    s = 1
    in_y = False
    while n > 1:
        if in_y:
            sr, si, dr, di = yr, yi, xr, xi
        else:
            sr, si, dr, di = xr, xi, yr, yi
        if n >= 16 and sr.shape[1] <= 32:  # the stack buffers of `_radix16` hold 32 lanes
            _radix16(sr, si, dr, di, wr, wi, n, s, shift)
            n //= 16
            s *= 16
        elif n >= 4:
            _radix4(sr, si, dr, di, wr, wi, n, s, shift)
            n //= 4
            s *= 4
        else:  # a last radix-2 pass, with no twiddles
            for q in range(s):
                a, b = slot(q, shift), slot(q + s, shift)
                for k in range(sr.shape[1]):
                    ar, ai, br, bi = sr[a, k], si[a, k], sr[b, k], si[b, k]
                    dr[a, k] = ar + br
                    di[a, k] = ai + bi
                    dr[b, k] = ar - br
                    di[b, k] = ai - bi
            n //= 2
            s *= 2
        in_y = not in_y
    return in_y


@numba.njit(cache=True, nogil=True)
def slot_shift(hb):  # pragma: no cover - compiled
    """`slot`'s ``shift`` for rows of ``hb`` float32: log2 of the rows in 4 KB (one way of the L1 cache)."""
    shift = 0
    while (2 << shift) * 4 * hb <= 4096:
        shift += 1
    return shift


@numba.njit(inline="always", nogil=True)
def _rows_in(view, ra, dst, n_x, half, shift):  # pragma: no cover - compiled
    """``dst[slot(u), k] = view[ra + k, u]``, edge-padded (right edge, then left edge), for the ``hb`` rows of ``dst``.

    The loop runs down the rows for each column, so that ``dst`` is written a whole vector at a time (the
    reads are gathered): 0.9x the filter's time of writing ``dst`` one value at a time along each row.
    """
    n_pad, hb = dst.shape
    for u in range(n_x):
        d = dst[slot(u, shift)]
        for k in range(hb):
            d[k] = view[ra + k, u]
    right, left = dst[slot(n_x - 1, shift)], dst[slot(0, shift)]
    for u in range(n_x, n_pad):  # plain loops: a slice assignment here cost a third of the copy
        d, edge = dst[slot(u, shift)], right if u < n_x + half else left
        for k in range(hb):
            d[k] = edge[k]


@numba.njit(inline="always", nogil=True)
def _rows_at_edge(view, ra, dst, n_x, half, shift):  # pragma: no cover - compiled
    """`_rows_in` for rows that run past the view's first or last row (those are zero), one row at a time."""
    n_r = view.shape[0]
    n_pad, hb = dst.shape
    for k in range(hb):
        r = ra + k
        if r < 0 or r >= n_r:
            for u in range(n_pad):
                dst[u, k] = 0.0
            continue
        row = view[r]
        for u in range(n_x):
            dst[slot(u, shift), k] = row[u]
        for u in range(n_x, n_x + half):
            dst[slot(u, shift), k] = row[n_x - 1]
        for u in range(n_x + half, n_pad):
            dst[slot(u, shift), k] = row[0]


@numba.njit(cache=True, fastmath=True, nogil=True)
def filter_block(view, r0, n_rows, filt, wr, wi, bufs, q):  # pragma: no cover - compiled
    """``q[u, k]`` = row ``r0 + k`` of ``view`` ``(rows, cols)``, edge-padded and filtered by ``filt`` ``(n_pad,)``.

    Rows outside ``view`` are zero; ``q`` is ``(cols, n_rows)`` with ``n_rows`` a multiple of ``2 * hb``.
    ``filt`` holds the full-length real, even filter, already divided by ``n_pad`` for the inverse.
    ``bufs`` is ``(4, n_pad, hb)`` float32 scratch: ``2 * hb`` rows are filtered together (32 or 64: the
    longer the rows of one butterfly, the less the loop overhead per vector); row ``u`` of the transform
    is kept in its row `slot` ``(u)``.
    """
    n_r, n_x = view.shape
    n_pad = filt.shape[0]
    half = (n_pad - n_x) // 2
    hb = bufs.shape[2]
    shift = slot_shift(hb)
    xr, xi, yr, yi = bufs[0], bufs[1], bufs[2], bufs[3]
    for c0 in range(0, n_rows, 2 * hb):
        for part in range(2):
            dst = xr if part == 0 else xi
            ra = r0 + c0 + part * hb
            if ra >= 0 and ra + hb <= n_r:  # every row inside: read down the rows, write whole vectors
                _rows_in(view, ra, dst, n_x, half, shift)
            else:
                _rows_at_edge(view, ra, dst, n_x, half, shift)
        in_y = fft_columns(xr, xi, yr, yi, wr, wi, shift)
        sr, si = (yr, yi) if in_y else (xr, xi)
        dr, di = (xr, xi) if in_y else (yr, yi)
        for u in range(n_pad):
            h = filt[u]
            a, b = sr[slot(u, shift)], si[slot(u, shift)]
            for k in range(hb):
                a[k] *= h
                b[k] *= h
        back = fft_columns(si, sr, di, dr, wr, wi, shift)  # the inverse: real and imaginary parts swapped
        orr, oi = (dr, di) if back else (sr, si)
        for u in range(n_x):
            a, b = orr[slot(u, shift)], oi[slot(u, shift)]
            for k in range(hb):
                q[u, c0 + k] = a[k]
                q[u, c0 + hb + k] = b[k]
