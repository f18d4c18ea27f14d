"""The steps of `bp_fft`'s four-step FFT over columns of `LANES` complex values (one vector each part).

An ``n = n1 x n2``-point transform of the scratch rows ``x[j n2 + t]`` (kept in row `slot` of the scratch):

1. `forward_columns`: for each ``t``, the ``n1``-point transform of rows ``j n2 + t`` (over ``j``), times
   ``W^(t k1)`` (``W = exp(-2 pi i / n)``), into rows ``k1 n2 + t``;
2. `rows_product`: for each ``k1``, the ``n2``-point transform of rows ``k1 n2 + t`` (over ``t``), which
   is frequency ``k1 + n1 k2`` in row ``k1 n2 + k2``, times the filter there; the inverse's first step on
   the same rows (the ``n2``-point transform back, times ``conj(W^(t k1))``);
3. `inverse_columns`: for each ``t``, the ``n1``-point transform back over ``k1``: row ``j n2 + t`` of the
   filtered rows, written to ``q``.

Every sub-transform (`mapped_fft`) is a Stockham FFT, radix 4 (a first radix-2 pass when its length is
not a power of 4), whose first pass reads the rows it needs wherever they are (the transposed input, the
scratch) and whose last 16 points (`fft_lanes.fft16_lanes`, in registers) write each output, times its
twiddle or filter value, where the next step wants it; the passes between run in buffers on the stack (a
few KB, in L1, starting on a cache line: `fft_lanes.stack_block`). `fft_fixed` has the same steps
for the common lengths without the tables of rows and factors. The inverse is the forward transform with the
real and imaginary parts swapped on the way in and out.
"""

from __future__ import annotations

import numba
import numpy as np

from .fft_lanes import (
    LANES,
    butterfly2_lanes,
    butterfly4_lanes,
    butterfly4_out_lanes,
    copy_lanes,
    fft16_lanes,
    stack_block,
    twiddle_lanes,
)

ANY = 1 << 62  # no limit on a row index (`fft16_lanes`)
SUB_MAX = 256  # the longest sub-transform, held on the stack: padded rows up to SUB_MAX ** 2
_STACK6 = 6 * SUB_MAX * LANES  # six sub-transform buffers: real and imaginary parts of ping, pong and a product


@numba.njit(inline="always", nogil=True)
def slot(r, shift):  # pragma: no cover - compiled
    """Where row ``r`` of a transform is kept in its scratch: ``r`` with its low ``shift`` bits flipped by the next
    ``shift`` (a permutation of the rows). Rows a power of two apart, which the column steps read together,
    would otherwise share one set of the L1 cache."""
    return r ^ ((r >> shift) & ((1 << shift) - 1))


@numba.njit(inline="always", fastmath=True, nogil=True)
def _pass4(sr, si, dr, di, wr, wi, n, s, wstep):  # pragma: no cover - compiled
    """One radix-4 Stockham pass (decimation in frequency) of length ``n`` and stride ``s`` from ``s*`` into
    ``d*``; the twiddle ``exp(-2 pi i m / n)`` is ``w[m s wstep]``."""
    n4 = n // 4
    for p in range(n4):
        j = p * s * wstep
        c1, d1, c2, d2, c3, d3 = wr[j], wi[j], wr[2 * j], wi[2 * j], wr[3 * j], wi[3 * j]
        for q in range(s):
            a, o = q + s * p, q + 4 * s * p
            butterfly4_lanes(sr, si, dr, di, (a, a + s * n4, a + 2 * s * n4, a + 3 * s * n4),  # type: ignore[call-arg]
                             (o, o + s, o + 2 * s, o + 3 * s), (c1, d1, c2, d2, c3, d3))


@numba.njit(inline="always", nogil=True)
def _power_of_4(n):  # pragma: no cover - compiled
    return n & 0x55555555 != 0


@numba.njit(inline="always", fastmath=True, nogil=True)
def sub_fft(ar, ai, br, bi, wr, wi, n, wstep):  # pragma: no cover - compiled
    """Forward ``n``-point FFT of rows ``0..n-1`` of ``(ar, ai)``, with ``(br, bi)`` as the other buffer; the
    twiddle table ``w`` is for ``n wstep`` points. Returns True when the result is in ``(br, bi)``."""
    s, in_b = 1, False
    if n > 1 and not _power_of_4(n):  # a first radix-2 pass
        for p in range(n // 2):
            butterfly2_lanes(ar, ai, br, bi, (p, p + n // 2), (2 * p, 2 * p + 1),  # type: ignore[call-arg]
                             (wr[p * wstep], wi[p * wstep]))
        n, s, in_b = n // 2, 2, True
    while n > 1:
        if in_b:
            _pass4(br, bi, ar, ai, wr, wi, n, s, wstep)
        else:
            _pass4(ar, ai, br, bi, wr, wi, n, s, wstep)
        n, s, in_b = n // 4, 4 * s, not in_b
    return in_b


@numba.njit(inline="always", fastmath=True, nogil=True)
def mapped_fft(sr, si, rows_in, dr, di, rows_out, out_c, out_d, buf, wr, wi, n, wstep):  # pragma: no cover - compiled
    """Forward ``n``-point FFT of rows ``rows_in[:n]`` of ``s*`` into rows ``rows_out[:n]`` of ``d*``, output ``k``
    times ``out_c[k] + i out_d[k]``; an output row below 0 is not written. ``buf`` ``(>= 4, SUB_MAX, LANES)``:
    the stack buffers; the twiddle table ``w`` is for ``n wstep`` points. The last 16 points of every
    sub-transform are one `fft16_lanes` each, in registers."""
    if n == 16:
        fft16_lanes(sr, si, rows_in, (0, 1, ANY, ANY, 0), dr, di, rows_out, (0, 1, ANY, 0),  # type: ignore[call-arg]
                    out_c, out_d, (0, 1))
        return
    ar, ai, br, bi = buf[0], buf[1], buf[2], buf[3]
    if n < 8:  # too short for a first and a last pass: copied in, transformed, copied out
        for j in range(n):
            copy_lanes(ar[j], sr[rows_in[j]])  # type: ignore[call-arg]
            copy_lanes(ai[j], si[rows_in[j]])
        in_b = sub_fft(ar, ai, br, bi, wr, wi, n, wstep)
        xr, xi = (br, bi) if in_b else (ar, ai)
        for k in range(n):
            r = rows_out[k]
            if r >= 0:
                twiddle_lanes(dr[r], di[r], xr[k], xi[k], out_c[k], out_d[k])  # type: ignore[call-arg]
        return
    if _power_of_4(n):  # the first pass reads the rows where they are
        f = n // 4
        for p in range(f):
            j = p * wstep
            tw = (wr[j], wi[j], wr[2 * j], wi[2 * j], wr[3 * j], wi[3 * j])
            butterfly4_lanes(sr, si, ar, ai, (rows_in[p], rows_in[p + f], rows_in[p + 2 * f], rows_in[p + 3 * f]),  # type: ignore[call-arg]
                             (4 * p, 4 * p + 1, 4 * p + 2, 4 * p + 3), tw)
        m, s = f, 4
    else:
        h = n // 2
        for p in range(h):
            butterfly2_lanes(sr, si, ar, ai, (rows_in[p], rows_in[p + h]), (2 * p, 2 * p + 1),  # type: ignore[call-arg]
                             (wr[p * wstep], wi[p * wstep]))
        m, s = h, 2
    in_b = False
    while m > 16:
        if in_b:
            _pass4(br, bi, ar, ai, wr, wi, m, s, wstep)
        else:
            _pass4(ar, ai, br, bi, wr, wi, m, s, wstep)
        m, s, in_b = m // 4, 4 * s, not in_b
    xr, xi = (br, bi) if in_b else (ar, ai)
    if m == 16:  # sub-transforms of 16 points (rows q + s p) in registers, output k to row q + s k
        for q in range(s):
            fft16_lanes(xr, xi, None, (q, s, ANY, ANY, 0), dr, di, rows_out, (q, s, ANY, 0),  # type: ignore[call-arg]
                        out_c, out_d, (q, s))
        return
    for q in range(s):  # the last pass (length 4, stride n / 4): each output where it goes, times its factor
        a, b, c, x = q, q + s, q + 2 * s, q + 3 * s
        butterfly4_out_lanes(xr, xi, dr, di, (a, b, c, x), (rows_out[a], rows_out[b], rows_out[c], rows_out[x]),  # type: ignore[call-arg]
                             (out_c[a], out_d[a], out_c[b], out_d[b], out_c[c], out_d[c], out_c[x], out_d[x]))


@numba.njit(inline="always", fastmath=True, nogil=True)
def _forward_columns(tr, ti, n_x, half, xr, xi, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """Step 1 from the transposed rows ``t* (n_x, LANES)``, edge-padded (input row ``u >= n_x`` is row
    ``n_x - 1`` while ``u < n_x + half``, then row 0), into the scratch ``x* (n1 n2, LANES)``."""
    buf = numba.carray(stack_block(_STACK6), (6, SUB_MAX, LANES))  # type: ignore[call-arg]
    rows_in, rows_out = np.empty(n1, np.int64), np.empty(n1, np.int64)
    out_c, out_d = np.empty(n1, np.float32), np.empty(n1, np.float32)
    for t in range(n2):
        for j in range(n1):
            u = j * n2 + t
            rows_in[j] = u if u < n_x else (n_x - 1 if u < n_x + half else 0)
            rows_out[j] = slot(u, shift)
            out_c[j], out_d[j] = wr[j * t], wi[j * t]
        mapped_fft(tr, ti, rows_in, xr, xi, rows_out, out_c, out_d, buf, wr, wi, n1, n2)


@numba.njit(inline="always", fastmath=True, nogil=True)
def _rows_product(xr, xi, filt, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """Step 2 in place: each row of the ``(n1, n2)`` matrix transformed, times ``filt`` (natural order),
    transformed back, times the conjugate twiddle of the inverse's first step."""
    buf = numba.carray(stack_block(_STACK6), (6, SUB_MAX, LANES))  # type: ignore[call-arg]
    pr, pi = buf[4], buf[5]  # the product, between the two transforms
    rows, here = np.empty(n2, np.int64), np.arange(n2)
    hr, zero = np.empty(n2, np.float32), np.zeros(n2, np.float32)
    out_c, out_d = np.empty(n2, np.float32), np.empty(n2, np.float32)
    for k1 in range(n1):
        for t in range(n2):
            rows[t] = slot(k1 * n2 + t, shift)
            hr[t] = filt[k1 + n1 * t]
            out_c[t], out_d[t] = wr[k1 * t], wi[k1 * t]
        mapped_fft(xr, xi, rows, pr, pi, here, hr, zero, buf, wr, wi, n2, n1)
        # the inverse: the forward transform of the parts swapped; (xr + i xi) conj(w) is the swapped parts times w
        mapped_fft(pi, pr, here, xi, xr, rows, out_c, out_d, buf, wr, wi, n2, n1)


@numba.njit(inline="always", fastmath=True, nogil=True)
def _inverse_columns(xr, xi, q, c0, two, n_x, wr, wi, n1, n2, shift, junk):  # pragma: no cover - compiled
    """Step 3: each column transformed back; row ``u < n_x`` into ``q[u, c0:c0 + LANES]`` (real parts) and,
    when ``two``, ``q[u, c0 + LANES:c0 + 2 LANES]`` (imaginary parts; else into ``junk`` ``(n_x, LANES)``)."""
    buf = numba.carray(stack_block(_STACK6), (6, SUB_MAX, LANES))  # type: ignore[call-arg]
    rows_in, rows_out = np.empty(n1, np.int64), np.empty(n1, np.int64)
    one, zero = np.ones(n1, np.float32), np.zeros(n1, np.float32)
    real = q[:, c0 : c0 + LANES]
    imag = q[:, c0 + LANES : c0 + 2 * LANES] if two else junk[:n_x]
    for t in range(min(n2, n_x)):
        for j in range(n1):
            u = j * n2 + t
            rows_in[j] = slot(u, shift)
            rows_out[j] = u if u < n_x else -1
        mapped_fft(xi, xr, rows_in, imag, real, rows_out, one, zero, buf, wr, wi, n1, n2)  # swapped: the inverse


@numba.njit(cache=True, fastmath=True, nogil=True)
def forward_columns(tr, ti, n_x, half, xr, xi, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """`_forward_columns`."""
    _forward_columns(tr, ti, n_x, half, xr, xi, wr, wi, n1, n2, shift)


@numba.njit(cache=True, fastmath=True, nogil=True)
def rows_product(xr, xi, filt, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """`_rows_product`."""
    _rows_product(xr, xi, filt, wr, wi, n1, n2, shift)


@numba.njit(cache=True, fastmath=True, nogil=True)
def inverse_columns(xr, xi, q, c0, two, n_x, wr, wi, n1, n2, shift, junk):  # pragma: no cover - compiled
    """`_inverse_columns`."""
    _inverse_columns(xr, xi, q, c0, two, n_x, wr, wi, n1, n2, shift, junk)
