"""Session 14's one-row kernel of the local WBP (`reconstruction/local_rows.py` at 167d42f), kept as `bench_local.py`'s
baseline ("local s14": the same bands, filter, resampling and slabs) for session 15's, whose back-projection step
works out each section's cells into a table that stays in L1 and sums the views in LLVM IR (`local_group`): here the
cells of a whole slab are made in numba (`_slab_cells`, a table of 170 KB) and summed by numba's loop (`_add_views`).
Called as `local_rows.backproject_local_bands` is.
"""


from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.bp_kernels import (
    CONTRACT,
    VIEW_GROUP,
    X_TILE,
    aligned_empty,
    stack_block,
    write_columns,
)
from napari_tomoalign.reconstruction.local_band import GRID, MARGIN, band_end, fill_band
from napari_tomoalign.reconstruction.local_blocks import (
    FILTER_ROWS,
    GROUP,
    N_GROUPS,
    PAD,
    PAD_U,
    ROWS,
    fit_block,
)
from napari_tomoalign.reconstruction.local_errors import JM, at_column, view_lines
from napari_tomoalign.reconstruction.local_resample import FIT_X_STEP, PREFETCH, prefetch

SHARED = 4  # tiles of `X_TILE` voxel columns that read the same resampled columns (2 in session 12: 3.5 % slower)
Z_CHUNK = 48  # sections summed together: the views' columns a group of views reads are resampled from L2 for
# each slab of them, not from L3 (a band of 64 rows of 61 views is 9 MB); every slab of `local_errors.SLABS` divides it


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def resample_columns(q1, v, rows, c_lo, n_c, shape, w):  # pragma: no cover - compiled
    """Sessions 14-18's `local_resample.resample_columns`: numba's loop over each group's lanes (session 19's is in IR)."""
    n_us, n_rs = shape
    one = numba.uint64(1)
    base = v * n_us * n_rs
    for k in range(n_c):
        c = c_lo + k
        out = w[k]
        if c < PAD_U or c > n_us - 1 - PAD_U:
            out[:] = 0.0
            continue
        b = rows[2 * N_GROUPS, c]
        ahead = numba.uint64(base + (c + PREFETCH) * n_rs + np.int64(rows[0, c]))  # the rows of a later column
        for k_line in range(ROWS // 16 + 1):
            prefetch(q1, ahead + numba.uint64(16 * k_line))  # type: ignore[call-arg]  # typingctx is numba's
        for g in range(N_GROUPS):
            a0 = numba.uint64(base + c * n_rs + np.int64(rows[2 * g, c]))
            fr0 = rows[2 * g + 1, c]
            for jj in range(GROUP):
                ju = numba.uint64(jj)
                t = q1[a0 + ju]
                out[GROUP * g + jj] = t + (fr0 + b * np.float32(jj)) * (q1[a0 + ju + one] - t)


@numba.njit(cache=True, fastmath=True, nogil=True)
def fit_sampled(mats, grid, shear, ya, last, n_z, centre, n_x, pads):  # pragma: no cover - compiled
    """Session 16's `local_resample.fit_sampled`: `fit_block` at every `FIT_X_STEP`-th voxel column, ``(n_x, 8, n_v)``."""
    n_v = mats.shape[1]
    n_h = (n_x - 1) // FIT_X_STEP + 1
    half = np.zeros((max(n_h, 2), 8, n_v), dtype=np.float32)
    fit_block(mats, grid, shear, ya, last, n_z, centre, FIT_X_STEP, pads, half[:n_h])
    if n_h == 1:
        half[1] = half[0]
    geo = np.empty((n_x, 8, n_v), dtype=np.float32)
    for x in range(n_x):
        i = min(x // FIT_X_STEP, n_h - 2)
        t = np.float32((x - FIT_X_STEP * i) / FIT_X_STEP)
        geo[x] = half[i] + t * (half[i + 1] - half[i])
    return geo


@numba.njit(cache=True, fastmath=True, nogil=True)
def band_rows(geo, n_valid, n_z, pad):  # pragma: no cover - compiled
    """Session 16's `local_band.band_rows`, on ``geo`` ``(n_x, 8, n_v)``."""
    lo, hi = np.inf, -np.inf
    last = n_valid - 1
    for x in range(geo.shape[0]):
        for v in range(geo.shape[2]):
            g = geo[x, :, v]
            for z in (0.0, n_z - 1.0):
                r = g[4] + g[5] * z
                b = g[6] + g[7] * z
                lo = min(lo, r, r + (1.0 + b) * last)
                hi = max(hi, r + (1.0 + b) * last + 1.0)
                for k in range(N_GROUPS):
                    hi = max(hi, r + b * (GROUP * k + (GROUP - 1) / 2.0) + ROWS + 2.0)
    return int(np.floor(lo - pad - MARGIN)), int(np.ceil(hi - pad + MARGIN))


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def column_rows(lines, n_rs, r_off, out):  # pragma: no cover - compiled
    """Session 16's `local_resample.column_rows`: every column of the view."""
    bot_r = np.float32(r_off)
    top_r = np.float32(r_off + n_rs - ROWS - 2)
    x = 0
    for c in range(out.shape[1]):
        x, t = at_column(lines, np.float32(c), x)
        r = np.float32(lines[2, x] + t * (lines[2, x + 1] - lines[2, x]))
        b = np.float32(lines[3, x] + t * (lines[3, x + 1] - lines[3, x]))
        for k in range(N_GROUPS):
            ir = np.float32(int(min(max(r + b * np.float32(GROUP * k + (GROUP - 1) / 2), bot_r), top_r)))
            out[2 * k, c] = ir + np.float32(GROUP * k) - bot_r
            out[2 * k + 1, c] = r + b * np.float32(GROUP * k) - ir
        out[2 * N_GROUPS, c] = b


@numba.njit(inline="always", nogil=True)
def chunk_rows(geo, g_slab, first, zc, zc1, n_rs, r_off, lines, rows):  # pragma: no cover - compiled
    """Session 16's `local_resample.chunk_rows`: every column of every slab, the lines gathered from ``geo``."""
    for v in range(geo.shape[2]):
        sl = g_slab[v // VIEW_GROUP]
        for z0 in range(zc, zc1, sl):
            view_lines(geo, v, (z0 + min(zc1, z0 + sl) - 1) / 2.0, lines)
            column_rows(lines, n_rs, r_off, rows[first[v] + (z0 - zc) // sl])


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _slab_cells(cols, v0, z0, n_s, x0, c_lo, n_c, c_w, w_cols, lin, off, fr, da):  # pragma: no cover - compiled
    """For views ``v0 .. v0 + VIEW_GROUP``, sections ``z0 .. z0 + n_s`` and the `X_TILE` columns from ``x0``: per
    group of `GROUP` lanes, the flat offset in the resampled columns (``w_cols`` per view, from column ``c_w[j]``)
    of the column its middle lane reads (found among ``n_c[j]`` from ``c_lo[j]``: its pair of tiles', `_windows`),
    its first lane's fraction there, and
    the change of the fraction per lane; at ``[(s VIEW_GROUP + j) X_TILE + x]`` of ``off[g]``, ``fr[g]``, ``da``.
    The views' lines are gathered first (``lin``), so that one loop over a section's views and columns makes
    them (per view and section, the loop's set-up cost as much as its 16 columns)."""
    n = VIEW_GROUP * X_TILE
    c0, c1, a0, a1, top, base = lin[0], lin[1], lin[2], lin[3], lin[4], lin[5]
    for j in range(VIEW_GROUP):
        v = v0 + j
        for xx in range(X_TILE):
            k = j * X_TILE + xx
            c0[k] = cols[0, v, x0 + xx] - np.float32(c_lo[j])
            c1[k] = cols[1, v, x0 + xx]
            a0[k] = cols[2, v, x0 + xx]
            a1[k] = cols[3, v, x0 + xx]
            top[k] = np.float32(n_c[j] - 2)
            base[k] = np.float32(j * w_cols + c_lo[j] - c_w[j])
    o0, o1, f0, f1 = off[0], off[1], fr[0], fr[1]
    for s in range(n_s):
        zf = np.float32(z0 + s)
        for k in range(n):
            ku = numba.uint64(s * n + k)
            a = a0[k] + a1[k] * zf
            um = c0[k] + c1[k] * zf
            u = um - a * np.float32(GROUP / 2)  # the middle lane of the first group
            i = np.float32(np.int32(min(max(u, np.float32(0.0)), top[k])))  # int32: no int64 lanes
            o0[ku] = numba.uint64(np.int32(base[k] + i)) * numba.uint64(ROWS)
            f0[ku] = u - i - a * np.float32((GROUP - 1) / 2)
            u = um + a * np.float32(GROUP / 2)  # of the second
            i = np.float32(np.int32(min(max(u, np.float32(0.0)), top[k])))
            o1[ku] = numba.uint64(np.int32(base[k] + i)) * numba.uint64(ROWS) + numba.uint64(GROUP)
            f1[ku] = u - i - a * np.float32((GROUP - 1) / 2)
            da[ku] = a


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _lanes(w1, o, nb, f0, d, acc, j0):  # pragma: no cover - compiled
    """The `GROUP` lanes ``j0 ..`` of one view: ``acc[j] += w(o + j)``, ``acc[ROWS + j] += f_j (w(o + nb + j) - w(o + j))``
    (two chains of sums), with the fraction ``f_j = f0 + d (j - j0)`` of each lane between the two columns."""
    for jj in range(GROUP):
        ju = numba.uint64(jj)
        lo = w1[o + ju]
        acc[j0 + jj] += lo
        acc[ROWS + j0 + jj] += (f0 + d * np.float32(jj)) * (w1[o + nb + ju] - lo)


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _add_views(tile, n_s, n_x_tile, acc, w1, off, fr, da):  # pragma: no cover - compiled
    """The `VIEW_GROUP` views of `_slab_cells` added to the tile's sums, two register-held sums per lane."""
    nb = numba.uint64(ROWS)
    for s in range(n_s):
        for xx in range(n_x_tile):
            t = tile[s, xx]
            for k in range(ROWS):
                acc[k] = t[k]
                acc[ROWS + k] = 0.0
            for j in range(VIEW_GROUP):
                e = numba.uint64((s * VIEW_GROUP + j) * X_TILE + xx)
                d = da[e]
                _lanes(w1, off[0, e], nb, fr[0, e], d, acc, 0)
                _lanes(w1, off[1, e], nb, fr[1, e], d, acc, GROUP)
            for k in range(ROWS):
                t[k] = acc[k] + acc[ROWS + k]


@numba.njit(cache=True, nogil=True)
def _windows(cols, v0, n_v, xa, xb, z0, z1, drift, w_pair, w_cols, c_ref, n_ref, c_lo, n_c):  # pragma: no cover
    """For views ``v0 .. v0 + VIEW_GROUP`` at sections ``z0 .. z1``: ``c_ref[p, j]``, ``n_ref[p, j]`` the columns (at most
    ``w_pair``) that the groups' middle lanes of the ``p``-th pair of tiles from voxel column ``xa`` read, as session 12
    found them per pair (the cells and fractions in them, and so the volume, are the same to the last bit), and
    ``c_lo[j]``, ``n_c[j]`` those of all the pairs up to ``xb``, resampled together (at most ``w_cols``)."""
    for j in range(VIEW_GROUP):
        v = v0 + j
        c_lo[j], n_c[j] = 0, 2  # a padded view: two zero columns
        if v >= n_v:
            c_ref[:, j], n_ref[:, j] = 0, 2
            continue
        end = -(2**62)
        for p in range(c_ref.shape[0]):
            x0 = xa + 2 * X_TILE * p
            x1 = min(xb, x0 + 2 * X_TILE) - 1
            if x0 > x1:
                c_ref[p, j], n_ref[p, j] = c_ref[p - 1, j], n_ref[p - 1, j]
                continue
            lo = min(cols[0, v, x0] + cols[1, v, x0] * z0, cols[0, v, x0] + cols[1, v, x0] * (z1 - 1))
            hi = max(cols[0, v, x1] + cols[1, v, x1] * z0, cols[0, v, x1] + cols[1, v, x1] * (z1 - 1))
            c_ref[p, j] = int(np.floor(lo - drift[v]))  # the cells of the groups' middle lanes
            n_ref[p, j] = min(w_pair, int(np.floor(hi + drift[v])) + 2 - c_ref[p, j])
            c_lo[j] = c_ref[p, j] if p == 0 else min(c_lo[j], c_ref[p, j])
            end = max(end, c_ref[p, j] + n_ref[p, j])
        n_c[j] = min(w_cols, end - c_lo[j])
        for p in range(c_ref.shape[0]):  # within the resampled columns, should the pairs' columns be far apart
            n_ref[p, j] = max(2, min(n_ref[p, j], c_lo[j] + n_c[j] - c_ref[p, j]))


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _block_rows(q, geo, r_off, vol, yb, slabs):  # pragma: no cover - compiled
    """Rows ``yb .. yb + ROWS`` of `backproject_local_rows`: per chunk of `Z_CHUNK` sections, the rows of each
    view's columns at its slabs' middle sections (`chunk_rows`); per pair of tiles of `X_TILE` voxel columns,
    group of `VIEW_GROUP` views and slab of the chunk (the group's thinnest of ``slabs``), the columns of the
    views the tiles read are resampled (`local_resample.resample_columns`, into a buffer that stays in L2), then
    added (`_slab_cells`, `_add_views`). ``geo``: the block's lines (`fit_sampled`), in ``q``'s
    columns and in its rows ``r_off`` on."""
    n_v, n_us, n_rs = q.shape
    n_z, n_y, n_x = vol.shape
    n_t = -(-n_v // VIEW_GROUP) * VIEW_GROUP
    g_slab = np.empty(n_t // VIEW_GROUP, dtype=np.int64)
    for i in range(g_slab.size):
        g_slab[i] = min(Z_CHUNK, max(1, slabs[VIEW_GROUP * i : VIEW_GROUP * (i + 1)].min()))
    n_valid = min(ROWS, n_y - yb)
    n_xp = -(-n_x // X_TILE) * X_TILE
    cols = np.zeros((4, n_t, n_xp), dtype=np.float32)  # padded views and columns: zero
    for v in range(n_v):
        for x in range(n_xp):
            g = geo[min(x, n_x - 1), :, v]
            cols[0, v, x] = g[0] + g[2] * JM
            cols[1, v, x] = g[1] + g[3] * JM
            cols[2, v, x] = g[2]
            cols[3, v, x] = g[3]
    drift = np.zeros(n_v)  # how far the groups' middle lanes are from the block's, at most (columns)
    for v in range(n_v):
        for x in range(n_x):
            g = geo[x, :, v]
            drift[v] = max(drift[v], GROUP / 2.0 * max(abs(g[2]), abs(g[2] + g[3] * (n_z - 1))) + 1e-3)
    w_pair = 4 * X_TILE + g_slab.max() + 8  # columns two tiles may read in one view
    w_cols = SHARED // 2 * w_pair
    w1 = aligned_empty(VIEW_GROUP * w_cols * ROWS)  # on a cache line: a vector of a column's rows is one line
    w = w1.reshape((VIEW_GROUP, w_cols, ROWS))
    q1 = q.ravel()
    lines = np.empty((4, n_x))
    first = np.zeros(n_v + 1, dtype=np.int64)  # the rows of view v's slabs in a chunk: rows[first[v] ..]
    for v in range(n_v):
        first[v + 1] = first[v] - (-Z_CHUNK // g_slab[v // VIEW_GROUP])
    rows = np.empty((first[n_v], 2 * N_GROUPS + 1, n_us), dtype=np.float32)  # 1.9 MB on BBa (3.8 for 6 slabs each)
    c_lo, n_c = np.zeros(VIEW_GROUP, dtype=np.int64), np.zeros(VIEW_GROUP, dtype=np.int64)
    c_ref, n_ref = np.zeros((SHARED // 2, VIEW_GROUP), dtype=np.int64), np.zeros((SHARED // 2, VIEW_GROUP), dtype=np.int64)
    tile = np.empty((SHARED, Z_CHUNK, X_TILE, ROWS), dtype=np.float32)
    n_cell = g_slab.max() * VIEW_GROUP * X_TILE  # the cells of a slab (`_slab_cells`)
    off, fr = np.empty((N_GROUPS, n_cell), dtype=np.uint64), np.empty((N_GROUPS, n_cell), dtype=np.float32)
    da, lin = np.empty(n_cell, dtype=np.float32), np.empty((6, VIEW_GROUP * X_TILE), dtype=np.float32)
    acc = numba.carray(stack_block(128), (128,))  # type: ignore[call-arg]  # 2 ROWS (a literal)
    for zc in range(0, n_z, Z_CHUNK):
        zc1 = min(n_z, zc + Z_CHUNK)
        chunk_rows(geo, g_slab, first, zc, zc1, n_rs, r_off, lines, rows)
        for xa in range(0, n_x, SHARED * X_TILE):  # `SHARED` tiles share the resampled columns
            xb = min(n_x, xa + SHARED * X_TILE)
            tile[:, : zc1 - zc] = 0.0
            for v0 in range(0, n_t, VIEW_GROUP):
                sl = g_slab[v0 // VIEW_GROUP]
                for z0 in range(zc, zc1, sl):  # the views' columns stay in L2 from one slab to the next
                    z1 = min(zc1, z0 + sl)
                    _windows(cols, v0, n_v, xa, xb, z0, z1, drift, w_pair, w_cols, c_ref, n_ref, c_lo, n_c)
                    for j in range(VIEW_GROUP):
                        v = v0 + j
                        if v >= n_v:  # a padded view: two zero columns
                            w[j, :2] = 0.0
                            continue
                        resample_columns(q1, v, rows[first[v] + (z0 - zc) // sl], c_lo[j], n_c[j], (n_us, n_rs), w[j])
                    for h in range(SHARED):
                        x0 = xa + h * X_TILE
                        if x0 < xb:
                            _slab_cells(cols, v0, z0, z1 - z0, x0, c_ref[h // 2], n_ref[h // 2], c_lo, w_cols, lin, off,
                                        fr, da)
                            _add_views(tile[h, z0 - zc :], z1 - z0, min(xb, x0 + X_TILE) - x0, acc, w1, off, fr, da)
            for h in range(SHARED):
                x0 = xa + h * X_TILE
                if x0 < xb:
                    write_columns(tile[h, : zc1 - zc], vol, zc, zc1, x0, min(xb, x0 + X_TILE), yb, n_valid)


@numba.njit(cache=True, nogil=True)
def _run_of_blocks(views, shear, filt, wr, wi, mats, grid, row0, vol, slabs, b0, b1, sums):  # pragma: no cover
    """The blocks ``b0 .. b1`` of `backproject_local_bands`, one after the other along a band of their own; the rows
    of the views filtered summed into ``sums`` (`local_band.fill_band`)."""
    n_v, n_r, n_u = views.shape
    n_z, n_y, n_x = vol.shape
    centre = ((n_x - 1) / 2.0, (n_r - 1) / 2.0, (n_z - 1) / 2.0, (n_u - 1) / 2.0)
    band = np.zeros((n_v, n_u + 2 * PAD_U, 0), dtype=np.float32)
    start, n_f = 0, 0
    rows = np.empty((n_r, n_u), dtype=np.float32)
    bufs = np.empty((4, filt.shape[1], FILTER_ROWS // 2), dtype=np.float32)
    for blk in range(b0, b1):
        yb = blk * ROWS
        n_valid = min(ROWS, n_y - yb)
        geo = fit_sampled(mats, grid, shear, yb + row0 - centre[1], n_valid - 1, n_z, centre, n_x, (PAD_U, PAD))
        lo, need = band_rows(geo, n_valid, n_z, PAD)
        hi = band_end(lo, need, start, n_f)
        if hi - lo > band.shape[2]:  # a taller band (the first, or lines that spread more): the rows held are lost
            n_f = 0
            hi = band_end(lo, need, start, n_f)
            band = np.zeros((n_v, n_u + 2 * PAD_U, hi - lo + GRID), dtype=np.float32)
        start, n_f = fill_band(views, shear, filt, wr, wi, band, start, n_f, lo, hi, rows, bufs, sums)
        _block_rows(band, geo, lo + PAD, vol, yb, slabs)


@numba.njit(parallel=True, cache=True, nogil=True)
def backproject_local_bands(views, shear, filt, wr, wi, mats, grid, row0, vol, slabs, n_runs):  # pragma: no cover
    """`backproject_local_rows` from the views ``views`` themselves: each of ``n_runs`` (the threads) takes a run of
    blocks in turn and filters the rows of the views they reach into a band of its own as it goes
    (`local_band.fill_band`, with ``shear``, ``filt``, ``wr``, ``wi`` as `local_blocks.filtered_sheared_views`).
    Returns the float64 sum of the rows of each view that were filtered (NaN or infinite where a pixel is)."""
    n_blocks = (vol.shape[1] + ROWS - 1) // ROWS
    part = np.zeros((n_runs, views.shape[0]))  # each run's sums
    for run in numba.prange(n_runs):
        _run_of_blocks(views, shear, filt, wr, wi, mats, grid, row0, vol, slabs, run * n_blocks // n_runs,
                       (run + 1) * n_blocks // n_runs, part[run])
    return part.sum(axis=0)
