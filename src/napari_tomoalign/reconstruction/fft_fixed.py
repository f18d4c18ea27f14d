"""`fft_steps`' three steps for the lengths the WBP meets most, every 16-point sub-transform one `fft16_lanes`.

Steps 1 and 3 when ``n1 = 16`` (padded rows of 256 to 2048, views 129 to 1024 px wide) and step 2 when
``n2 = 64`` (padded rows of 1024: views 257 to 512 px wide, the benchmark's size). The same arithmetic as
`fft_steps` (a Stockham radix-4 pass, then 16-point transforms), in the same order of rows, but with no
tables of rows or factors: `fft16_lanes` works out each row (the edge padding, the scratch's `slot`) and
reads each factor from the twiddle or filter table as it goes, and each 16-point transform is held in
registers from its loads to its stores.
"""

from __future__ import annotations

import numba

from .fft_lanes import LANES, butterfly4_lanes, fft16_filter_lanes, fft16_lanes, fft16_low_lanes, prefetch_row, stack_block
from .fft_steps import ANY, slot

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
