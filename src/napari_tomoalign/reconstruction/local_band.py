"""The filtered views of the one-row kernel (`local_rows`) band by band: per block of `ROWS` volume rows, only the
rows of the views its lines reach, filtered just before the block is summed.

Filtering every view whole first (`local_blocks.filtered_sheared_views`, still the path of the block and voxel
kernels) made an array larger than the stack (81 MB for 61 views of 512 x 512), written to memory by the filter,
read back by the kernel, and asked of the system afresh at every call: its pages cost 5 ms of system time on a
quiet machine, 20-170 ms on session 13's busy one, where huge pages were short. As the global WBP filters a
block of rows into a buffer that stays in the caches (`bp_kernels.wbp_blocks`), each thread here keeps a band of
its own (61 views x 516 columns x 80 rows on BBa at bin 1), moves along it block after block, keeps the
rows the next block shares with the last (a block's lines reach a few rows beyond it), and filters only the new
ones: every row of the views is filtered once per run of blocks, with the global WBP's filter.

The rows a block needs (`band_rows`) come from its lines (`local_blocks.fit_block`): the rows of its first and
last lanes at the first and last section (the lines are linear in both), and those the resampling's cells reach
(`local_resample.column_rows`: the cell of a group's middle lane, `ROWS` + 2 rows on), `MARGIN` more each way for
what the resampling interpolates between voxel columns; the rows filtered anew are a whole number of `GRID` rows
(`band_end`). A band on a grid of 16 rows (96 rows on BBa, 32 shared with the next block) filtered 3 % more rows
in a run of 8 blocks at bin 1 (544 against 528) and moved twice as many as one that starts where its block needs
(80 rows, 16 shared). The band has room for `GRID` rows more than the first block's: 96 rows, 12 MB on BBa.
"""

from __future__ import annotations

import numba
import numpy as np

from .bp_fft import filter_block
from .bp_kernels import add_row_sums
from .local_blocks import GROUP, N_GROUPS, PAD_U, ROWS, shear_rows

GRID = 16  # rows are filtered a multiple of 16 at a time (`bp_fft.filter_block` filters 16 or 32 rows a pass)
MARGIN = 3  # rows beyond those a block's lines reach (the resampled lines are interpolated between voxel columns)


@numba.njit(cache=True, fastmath=True, nogil=True)
def band_rows(geo, n_valid, n_z, pad):  # pragma: no cover - compiled
    """``(lo, hi)``: the rows ``lo .. hi`` of the views that a block of ``n_valid`` lanes reaches through its lines ``geo``
    (`local_resample.fit_sampled`'s ``(n_v, 8, n_x)``, rows of the views plus ``pad``), with `MARGIN` rows more each way."""
    lo, hi = np.inf, -np.inf
    last = n_valid - 1
    for v in range(geo.shape[0]):
        g = geo[v]
        for x in range(geo.shape[2]):
            for z in (0.0, n_z - 1.0):
                r = g[4, x] + g[5, x] * z  # lane 0
                b = g[6, x] + g[7, x] * z  # the change of the row per lane, less 1
                lo = min(lo, r, r + (1.0 + b) * last)
                hi = max(hi, r + (1.0 + b) * last + 1.0)
                for k in range(N_GROUPS):  # the cell a group reads from: `ROWS` + 2 rows on from there
                    hi = max(hi, r + b * (GROUP * k + (GROUP - 1) / 2.0) + ROWS + 2.0)
    return int(np.floor(lo - pad - MARGIN)), int(np.ceil(hi - pad + MARGIN))


@numba.njit(cache=True, nogil=True)
def band_end(lo, hi, start, n_f):  # pragma: no cover - compiled
    """Where a band of the rows ``lo .. hi`` ends so that the rows `fill_band` filters anew are a whole number of
    `GRID` rows, after a band of ``n_f`` rows from ``start``: at or beyond ``hi``."""
    done = start + n_f if start <= lo < start + n_f else lo
    return done + -(-max(0, hi - done) // GRID) * GRID


@numba.njit(cache=True, fastmath=True, nogil=True)
def fill_band(views, shear, filt, wr, wi, band, start, n_f, lo, hi, rows, bufs, sums):  # pragma: no cover - compiled
    """``band[v, PAD_U + u, k]`` = row ``lo + k`` of view ``v`` sheared (`local_blocks.shear_rows`) and filtered
    (`bp_fft.filter_block`, as `local_blocks.filtered_sheared_views`), for ``k < hi - lo``; zero beyond the view.
    The band held rows ``start .. start + n_f``: those it shares with ``lo .. hi`` move down to their place and are
    not filtered again. ``rows``: a view's scratch (for the shear), ``bufs``: the filter's. The rows of view ``v``
    filtered anew are summed into ``sums[v]`` (float64, `bp_kernels.add_row_sums`, as the global WBP does): NaN or
    infinite where a pixel is, so that the stack needs no pass of its own. Returns ``(lo, hi - lo)``, the band's
    new ``(start, n_f)``."""
    n_v, n_r, n_u = views.shape
    keep = 0
    if start <= lo < start + n_f:
        keep = min(start + n_f, hi) - lo
        shift = lo - start
        if shift > 0:
            for v in range(n_v):
                for u in range(PAD_U, PAD_U + n_u):
                    col = band[v, u]
                    for k in range(keep):
                        col[k] = col[shift + k]
    n_new = hi - lo - keep
    if n_new <= 0:
        return lo, hi - lo
    cr = (n_r - 1) / 2.0
    r0 = lo + keep
    for v in range(n_v):
        add_row_sums(sums, v, views[v], max(0, r0), min(n_r, hi))  # brings the rows into the cache for the filter
        src = views[v]
        if shear[v] != 0.0:
            shear_rows(views[v], shear[v], rows, r0, hi)
            src = rows
        q = band[v, PAD_U : PAD_U + n_u, keep : hi - lo]
        filter_block(src, r0, n_new, filt[v], wr, wi, bufs, q)
        for k in range(n_new):
            r = r0 + k
            if r < 0 or r >= n_r:  # rows beyond the view: zero (the FFT leaves rounding there)
                q[:, k] = 0.0
            elif shear[v] != 0.0:  # what came from beyond the view is left out, as the exact kernel does
                s = shear[v] * (r - cr)
                for u in range(0, min(n_u, int(np.ceil(-s)))):  # u + s < 0
                    q[u, k] = 0.0
                for u in range(max(0, int(np.floor(n_u - 1.0 - s)) + 1), n_u):  # u + s > n_u - 1
                    q[u, k] = 0.0
    return lo, hi - lo
