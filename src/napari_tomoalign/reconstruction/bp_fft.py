"""The filter of the weighted back-projection: rows of the views ramp-filtered by an FFT across the rows.

A block's rows of one view are read transposed, ``(column, row)``, so that each FFT runs across the rows:
every butterfly is one vector operation over `LANES` complex columns (two real rows to a complex column,
one as the real part, one as the imaginary part: the filter is real and even, so they come back apart).
The ``n_pad``-point transform is a four-step one, ``n_pad = n1 x n2``: sub-transforms of ``n1`` points
down the columns of an ``(n1, n2)`` matrix, a twiddle, then sub-transforms of ``n2`` points along its
rows. Each 16-point sub-transform is held in registers from its loads to its stores (`fft_lanes.fft16_lanes`);
longer ones run a radix-4 pass through buffers on the stack (a few KB, in L1) first, so the scratch (in L2)
is crossed in L1-sized pieces (`fft_padded` for padded rows of 1024, views up to 512 px wide in the WBP:
a scratch of pitch 65 whose rows are constant offsets from the loop's, `fft_flat`; `fft_fixed` for the other
lengths with 16-point columns, `fft_steps` for any).
Forward and inverse meet in the frequency domain without any reordering: the forward transform leaves
frequency ``k1 + n1 k2`` in row ``(k1, k2)``; the filter is read in that order, and the inverse (the same
steps backwards) puts the rows back in natural order. The product and both ``n2``-point steps are one
pass; the inverse's last step writes the filtered rows straight into ``q[u, row]``, the layout the
back-projection reads (`bp_kernels`).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from .fft_fixed import forward_columns16, inverse_columns16, rows_product64
from .fft_lanes import LANES, stack_block, transpose_lanes
from .fft_padded import (
    MAX_COLS,
    N_PAD,
    SCRATCH_ROWS,
    forward_columns_padded,
    inverse_columns_padded,
    rows_product_padded,
)
from .fft_steps import SUB_MAX, forward_columns, inverse_columns, rows_product

__all__ = ["filter_block", "filter_scratch", "stack_block", "twiddles"]

SCRATCH_SHIFT = 6  # `slot`'s shift: 64 rows of 64 bytes fill 4 KB, one way of the L1 cache


def twiddles(n_pad: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``exp(-2 pi i k / n_pad)`` for ``k < n_pad``, as (real, imaginary) float32."""
    k = np.arange(n_pad)
    return np.cos(2 * np.pi * k / n_pad).astype(np.float32), (-np.sin(2 * np.pi * k / n_pad)).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def filter_scratch(n_pad):  # pragma: no cover - compiled
    """``(4, n_pad, LANES)`` float32 scratch for `filter_block`, starting on a cache line: the transform's
    real and imaginary parts, then the block's rows transposed."""
    size = 4 * n_pad * LANES
    raw = np.empty(size + 16, dtype=np.float32)
    s = (16 - (raw.ctypes.data // 4) % 16) % 16
    return raw[s : s + size].reshape((4, n_pad, LANES))


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


@numba.njit(inline="always", fastmath=True, nogil=True)
def _filter_padded(view, r0, n_rows, filt, wr, wi, flat, q):  # pragma: no cover - compiled
    """`filter_block` for ``n_pad = 1024`` by `fft_padded`'s steps; ``flat`` is the scratch, ``4 x 1024 x LANES``."""
    n_x = view.shape[1]
    span = SCRATCH_ROWS * LANES
    xr, xi = flat[:span], flat[span : 2 * span]
    tr = flat[2 * span : 2 * span + n_x * LANES].reshape((n_x, LANES))
    ti = flat[2 * span + n_x * LANES : 2 * span + 2 * n_x * LANES].reshape((n_x, LANES))
    for c0 in range(0, n_rows, 2 * LANES):
        two = c0 + LANES < n_rows  # a second set of rows, in the imaginary parts
        _rows_in(view, r0 + c0, tr, n_x)
        if two:
            _rows_in(view, r0 + c0 + LANES, ti, n_x)
        else:
            ti[:] = 0.0
        pre0 = max(r0 + c0 + 2 * LANES, 0)  # the next rows, fetched during the forward transform
        n_pre = max(min(r0 + min(c0 + 4 * LANES, n_rows), view.shape[0]) - pre0, 0)
        forward_columns_padded(tr, ti, (N_PAD - n_x) // 2, xr, xi, wr, wi, view, pre0, n_pre)
        rows_product_padded(xr, xi, filt, wr, wi)
        inverse_columns_padded(xr, xi, q, c0, two, n_x, tr)


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
    if n_pad == N_PAD and n_x <= MAX_COLS:
        flat = bufs.reshape(-1)
        start = (-(flat.ctypes.data // 4)) % LANES  # on a cache line, whatever the caller's scratch
        _filter_padded(view, r0, n_rows, filt, wr, wi, flat[start : 4 * n_pad * LANES], q)
        return
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
