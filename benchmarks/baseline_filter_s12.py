"""Baseline for `bench_filter.py`: `bp_fft.filter_block` as it was at the end of session 12 (commit 3703cdc: its
``bp_fft.py`` and ``fft_fixed.py``; the butterflies and the generic steps from `fft_lanes` and `fft_steps`, which
keep them unchanged), kept here so that the benchmark can time it against today's in the same process.

The four-step FFT over 16-lane columns (1024 = 16 x 64) in a scratch whose rows are permuted (`fft_steps.slot`),
every 16-point sub-transform one `fft_lanes.fft16_lanes` that works out its rows from run-time strides.
"""

from __future__ import annotations

import numba

from napari_tomoalign.reconstruction.fft_lanes import (
    LANES,
    butterfly4_lanes,
    fft16_filter_lanes,
    fft16_lanes,
    fft16_low_lanes,
    prefetch_row,
    stack_block,
    transpose_lanes,
)
from napari_tomoalign.reconstruction.fft_steps import ANY, SUB_MAX, forward_columns, inverse_columns, rows_product, slot

_N2 = 64  # `rows_product64`'s row length
_STACK4 = 4 * _N2 * LANES  # its stack buffers: real and imaginary parts of the first pass and of the product


@numba.njit(cache=True, fastmath=True, nogil=True)
def forward_columns16(tr, ti, n_x, half, xr, xi, wr, wi, n2, shift, view, pre0, n_pre):  # pragma: no cover - compiled
    """`fft_steps.forward_columns` for ``n1 = 16``: column ``t`` (rows ``j n2 + t`` of the edge-padded input)
    transformed, output ``k`` times ``W^(t k)`` into scratch row ``slot(k n2 + t)``. Meanwhile, rows ``pre0``
    to ``pre0 + n_pre`` of ``view`` (the next rows `bp_fft.filter_block` reads) are fetched into the cache, a
    few lines per column, so that their wait for memory overlaps the arithmetic."""
    n_v = view.shape[1]
    per_t = (n_pre * ((n_v + 15) // 16) + n2 - 1) // n2  # cache lines to ask for per column
    row, col = pre0, 0
    for t in range(n2):
        for _ in range(per_t):
            if row < pre0 + n_pre:
                prefetch_row(view, row, col)  # type: ignore[call-arg]
                col += 16
                if col >= n_v:
                    row, col = row + 1, 0
        fft16_lanes(tr, ti, None, (t, n2, n_x, n_x + half, 0), xr, xi, None, (t, n2, ANY, shift),  # type: ignore[call-arg]
                    wr, wi, (0, t))


@numba.njit(cache=True, fastmath=True, nogil=True)
def inverse_columns16(xr, xi, q, c0, two, n_x, n2, shift, junk):  # pragma: no cover - compiled
    """`fft_steps.inverse_columns` for ``n1 = 16``: column ``t`` transformed back, row ``u = k n2 + t < n_x``
    into ``q[u, c0:c0 + LANES]`` (real parts) and the next `LANES` columns (imaginary parts, when ``two``;
    else into ``junk``)."""
    real = q[:, c0 : c0 + LANES]
    imag = q[:, c0 + LANES : c0 + 2 * LANES] if two else junk[:n_x]
    for t in range(min(n2, n_x)):  # swapped parts: the inverse
        if n_x <= 8 * n2:  # outputs k >= 8 (rows k n2 + t) are padding: not computed
            fft16_low_lanes(xi, xr, None, (t, n2, ANY, ANY, shift), imag, real, None,  # type: ignore[call-arg]
                            (t, n2, n_x, 0), None, None, (0, 0))
        else:
            fft16_lanes(xi, xr, None, (t, n2, ANY, ANY, shift), imag, real, None,  # type: ignore[call-arg]
                        (t, n2, n_x, 0), None, None, (0, 0))


@numba.njit(cache=True, fastmath=True, nogil=True)
def rows_product64(xr, xi, filt, wr, wi, n1, shift):  # pragma: no cover - compiled
    """`fft_steps.rows_product` for ``n2 = 64``: each row's 64-point transform (a radix-4 pass, then four
    16-point transforms in registers), times the filter, and back, times the conjugate twiddle."""
    buf = numba.carray(stack_block(_STACK4), (4, _N2, LANES))  # type: ignore[call-arg]
    ar, ai, pr, pi = buf[0], buf[1], buf[2], buf[3]
    f = _N2 // 4
    for k1 in range(n1):
        base = k1 * _N2
        for p in range(f):  # the first pass from the scratch rows
            j = p * n1
            tw = (wr[j], wi[j], wr[2 * j], wi[2 * j], wr[3 * j], wi[3 * j])
            rows = (slot(base + p, shift), slot(base + p + f, shift), slot(base + p + 2 * f, shift),
                    slot(base + p + 3 * f, shift))
            butterfly4_lanes(xr, xi, ar, ai, rows, (4 * p, 4 * p + 1, 4 * p + 2, 4 * p + 3), tw)
        for q in range(4):  # frequency k1 + n1 o in row o = q + 4 k, times the filter there; the inverse's first pass
            fft16_filter_lanes(ar, ai, q, pr, pi, filt, k1 + n1 * q, 4 * n1, wr, wi, n1)
        for q in range(4):  # output o = q + 4 k times W^(k1 o), back into scratch row slot(k1 n2 + o)
            fft16_lanes(pr, pi, None, (q, 4, ANY, ANY, 0), xi, xr, None, (base + q, 4, ANY, shift),
                        wr, wi, (k1 * q, 4 * k1))


SCRATCH_SHIFT = 6  # `slot`'s shift: 64 rows of 64 bytes fill 4 KB, one way of the L1 cache


@numba.njit(inline="always", nogil=True)
def _rows_in(view, ra, dst, n_x):  # pragma: no cover - compiled
    """``dst[u, k] = view[ra + k, u]`` for ``u < n_x``, ``k < LANES``; rows outside ``view`` are zero."""
    n_r = view.shape[0]
    if ra >= 0 and ra + LANES <= n_r:  # every row inside: read down the rows, write whole vectors
        n_full = n_x - n_x % LANES
        for u in range(0, n_full, LANES):
            transpose_lanes(dst, u, view, ra, u)  # type: ignore[call-arg]
        for u in range(n_full, n_x):
            d = dst[u]
            for k in range(LANES):
                d[k] = view[ra + k, u]
        return
    for k in range(LANES):
        r = ra + k
        if r < 0 or r >= n_r:
            for u in range(n_x):
                dst[u, k] = 0.0
        else:
            row = view[r]
            for u in range(n_x):
                dst[u, k] = row[u]


@numba.njit(cache=True, fastmath=True, nogil=True)
def filter_block(view, r0, n_rows, filt, wr, wi, bufs, q):  # pragma: no cover - compiled
    """``q[u, k]`` = row ``r0 + k`` of ``view`` ``(rows, cols)``, edge-padded and filtered by ``filt`` ``(n_pad,)``.

    Rows outside ``view`` are zero; ``q`` is ``(cols, n_rows)`` with ``n_rows`` a multiple of `LANES`.
    ``filt`` holds the full-length real, even filter, already divided by ``n_pad`` for the inverse; each row
    is padded to ``n_pad`` with its right edge value (``(n_pad - cols) // 2`` times), then its left one.
    ``wr, wi`` are `twiddles` ``(n_pad)``; ``bufs`` is `filter_scratch` ``(n_pad)`` (any C-contiguous
    float32 array of at least ``4 n_pad LANES`` values serves). ``2 LANES`` rows are
    filtered together (one complex transform).
    """
    n_x = view.shape[1]
    n_pad = filt.shape[0]
    if n_pad < n_x or n_pad & (n_pad - 1) or n_pad > SUB_MAX * SUB_MAX:
        raise ValueError("filter_block: the padded row length must be a power of two, at least the row, at most 65536")
    if n_rows % LANES or q.shape[0] < n_x or q.shape[1] < n_rows:
        raise ValueError("filter_block: q must be (cols, n_rows) with n_rows a multiple of 16")
    half = (n_pad - n_x) // 2
    m = 0
    while (1 << m) < n_pad:
        m += 1
    n1 = 1 << (m // 2 - (m // 2) % 2 if m >= 4 else m // 2)  # a power of 4 where it can be: no radix-2 pass
    if n_pad // n1 > SUB_MAX:
        n1 = 1 << (m // 2)
    n2 = n_pad // n1
    scratch = bufs.reshape(-1)[: 4 * n_pad * LANES].reshape((4, n_pad, LANES))
    xr, xi, tr, ti = scratch[0], scratch[1], scratch[2], scratch[3]
    for c0 in range(0, n_rows, 2 * LANES):
        two = c0 + LANES < n_rows  # a second set of rows, in the imaginary parts
        _rows_in(view, r0 + c0, tr, n_x)
        if two:
            _rows_in(view, r0 + c0 + LANES, ti, n_x)
        else:
            ti[:n_x] = 0.0
        if n1 == 16:  # rows of 129 to 1024 px: `fft_fixed`; the next rows fetched meanwhile
            pre0 = max(r0 + c0 + 2 * LANES, 0)
            n_pre = max(min(r0 + min(c0 + 4 * LANES, n_rows), view.shape[0]) - pre0, 0)
            forward_columns16(tr, ti, n_x, half, xr, xi, wr, wi, n2, SCRATCH_SHIFT, view, pre0, n_pre)
        else:
            forward_columns(tr, ti, n_x, half, xr, xi, wr, wi, n1, n2, SCRATCH_SHIFT)
        if n2 == 64:
            rows_product64(xr, xi, filt, wr, wi, n1, SCRATCH_SHIFT)
        else:
            rows_product(xr, xi, filt, wr, wi, n1, n2, SCRATCH_SHIFT)
        if n1 == 16:
            inverse_columns16(xr, xi, q, c0, two, n_x, n2, SCRATCH_SHIFT, tr)
        else:
            inverse_columns(xr, xi, q, c0, two, n_x, wr, wi, n1, n2, SCRATCH_SHIFT, tr)
