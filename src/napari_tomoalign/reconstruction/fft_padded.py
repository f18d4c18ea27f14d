"""`bp_fft`'s three steps for padded rows of 1024 points (views up to 1007 px wide), in a scratch of pitch 65.

The same four-step transform as `fft_steps` and `fft_fixed` (``1024 = 16 x 64``: 16-point columns, then
64-point rows times the filter and back, then 16-point columns back), but the scratch keeps row
``(k1, t)`` of the ``(16, 64)`` matrix at row ``65 k1 + t``: a pitch of one row more than 64, so that the
16 rows of a column, 65 x 64 bytes apart, fall in 16 different sets of the L1 cache (64 x 64 bytes apart,
they would share one), with no permutation to work out per row. Every row a step reads or writes is
then its loop's row plus a constant, which the compiler folds into the load or store (`fft_flat`): no
multiply by a run-time stride, no table of rows (the edge padding is two compares per input row). The
scratch needs ``2 (1024 + 16) + 2 cols`` rows of `LANES` values: it fits the ``4 x 1024`` rows of
`bp_fft.filter_scratch` (moved to start on a cache line) while the view is at most 1007 px wide.
"""

from __future__ import annotations

import numba

from .fft_flat import (
    LANES,
    fft16_columns_in,
    fft16_columns_out,
    fft16_filter_rows,
    fft16_rows_out,
    radix4_rows_in,
)
from .fft_lanes import prefetch_row, stack_block

N_PAD = 1024
N1, N2 = 16, 64
PITCH = N2 + 1  # scratch rows per row of the (N1, N2) matrix
SCRATCH_ROWS = N1 * PITCH  # rows of each part of the transform's scratch
MAX_COLS = (4 * N_PAD - 2 * SCRATCH_ROWS - 1) // 2  # the widest view whose transposed rows fit beside it, on a line
_STACK4 = 4 * N2 * LANES  # the product's stack buffers: real and imaginary parts of the first pass and the product


@numba.njit(cache=True, fastmath=True, nogil=True)
def forward_columns_padded(tr, ti, half, xr, xi, wr, wi, view, pre0, n_pre):  # pragma: no cover - compiled
    """Step 1: column ``t`` (padded rows ``64 j + t`` of the transposed rows ``t*``: the right edge value ``half``
    times past the row, then the left one) transformed, output ``k`` times ``W^(t k)`` into scratch row
    ``65 k + t`` of ``x*`` (flat). Meanwhile rows ``pre0`` to ``pre0 + n_pre``
    of ``view`` (the next rows `bp_fft.filter_block` reads) are fetched, a few cache lines per column."""
    n_v, n_x = view.shape[1], tr.shape[0]
    per_t = (n_pre * ((n_v + 15) // 16) + N2 - 1) // N2
    row, col = pre0, 0
    for t in range(N2):
        for _ in range(per_t):
            if row < pre0 + n_pre:
                prefetch_row(view, row, col)  # type: ignore[call-arg]
                col += 16
                if col >= n_v:
                    row, col = row + 1, 0
        fft16_columns_in(tr, ti, t, (n_x, n_x + half), xr, xi, PITCH, wr, wi)  # type: ignore[call-arg]


@numba.njit(cache=True, fastmath=True, nogil=True)
def rows_product_padded(xr, xi, filt, wr, wi):  # pragma: no cover - compiled
    """Step 2 in place: each row ``k1`` of the matrix (scratch rows ``65 k1 + t``) transformed (a radix-4 pass
    into the stack, then four 16-point transforms in registers), times the filter, and back, times the
    conjugate twiddle of the inverse's first step."""
    buf = numba.carray(stack_block(_STACK4), (4, N2, LANES))  # type: ignore[call-arg]
    ar, ai, pr, pi = buf[0], buf[1], buf[2], buf[3]
    for k1 in range(N1):
        base = k1 * PITCH
        radix4_rows_in(xr, xi, base, ar, ai)
        # frequency k1 + 16 o in row o = q + 4 k, times the filter; the inverse's first pass (q literal: unrolled)
        fft16_filter_rows(ar, ai, 0, pr, pi, filt, k1)
        fft16_filter_rows(ar, ai, 1, pr, pi, filt, k1)
        fft16_filter_rows(ar, ai, 2, pr, pi, filt, k1)
        fft16_filter_rows(ar, ai, 3, pr, pi, filt, k1)
        for q in range(4):  # output o = q + 4 k times W^(k1 o), back into scratch row 65 k1 + o (parts swapped)
            fft16_rows_out(pr, pi, q, xi, xr, base, wr, wi, k1)


@numba.njit(cache=True, fastmath=True, nogil=True)
def inverse_columns_padded(xr, xi, q, c0, two, n_x, junk):  # pragma: no cover - compiled
    """Step 3: column ``t`` transformed back, row ``u = 64 k + t < n_x`` into ``q[u, c0:c0 + LANES]`` (real
    parts) and ``q[u, c0 + LANES:c0 + 2 LANES]`` (imaginary parts, when ``two``; else into ``junk``)."""
    imag = q[:, c0 + LANES : c0 + 2 * LANES] if two else junk[:n_x]
    if n_x <= 8 * N2:  # outputs k >= 8 (rows 64 k + t) are padding: not computed
        for t in range(N2):
            fft16_columns_out(xr, xi, t, PITCH, q, c0, imag, N2, n_x, 8)  # type: ignore[call-arg]
    else:
        for t in range(N2):
            fft16_columns_out(xr, xi, t, PITCH, q, c0, imag, N2, n_x, 16)  # type: ignore[call-arg]

