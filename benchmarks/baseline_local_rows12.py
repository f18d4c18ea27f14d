"""Session 12's one-row kernel of the local WBP (`reconstruction/local_rows.py` at its last commit of session 12),
kept as `bench_local.py`'s baseline (`baseline_local.local_wbp_s12`) for session 13's, which filters the rows of
the views that each block reads into a band as it goes (`local_band`) instead of reading the views filtered whole.
Called as `local_rows.backproject_local_rows` is, on views filtered whole: slabs per view
(`local_errors.choose_slabs`).
"""


from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from napari_tomoalign.reconstruction.bp_kernels import (
    CONTRACT,
    VIEW_GROUP,
    X_TILE,
    aligned_empty,
    stack_block,
    write_columns,
)
from napari_tomoalign.reconstruction.local_blocks import (
    GROUP,
    N_GROUPS,
    PAD,
    PAD_U,
    ROWS,
    fit_block,
)
from napari_tomoalign.reconstruction.local_errors import JM, view_lines

PREFETCH = 8  # columns ahead whose rows `_resample_columns` asks for (a column is 2.5 KB on from the last)
FIT_X_STEP = 4  # `_fit_sampled` fits every 4th voxel column
Z_CHUNK = 48  # sections summed together: the views' columns a group of views reads are resampled from L2 for
# each slab of them, not from L3 (a band of 64 rows of 61 views is 9 MB); every slab of `local_errors.SLABS` divides it


@numba.njit(inline="always", nogil=True)
def at_column(lines, c, x):  # pragma: no cover - compiled
    """`local_errors.at_column` of session 12: the walk one branch per step."""
    n_x = lines.shape[1]
    while x < n_x - 2 and lines[0, x + 1] <= c:
        x += 1
    s0, s1 = lines[0, x], lines[0, x + 1]
    return x, (c - s0) / (s1 - s0) if s1 != s0 else 0.0


@intrinsic
def prefetch(typingctx, arr, index):  # pragma: no cover - compiled
    """Ask for the cache line of ``arr.flat[index]`` (LLVM's ``prefetch``, for reading, kept in all caches): the
    filtered views' columns that `_resample_columns` reads next come from L3, each from a page of its own."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _column_rows(lines, n_rs, out):  # pragma: no cover - compiled
    """``out[:, c]`` for every column ``c`` of a view: the rows the resampled column reads (module
    docstring, step 1), from the lines of a slab's middle section: per group of `GROUP` lanes the row of the
    cell of its middle lane, the fraction of its first lane there, and the change of the row per lane."""
    top_r = np.float32(n_rs - ROWS - 2)
    x = 0
    for c in range(out.shape[1]):
        x, t = at_column(lines, np.float32(c), x)
        r = np.float32(lines[2, x] + t * (lines[2, x + 1] - lines[2, x]))
        b = np.float32(lines[3, x] + t * (lines[3, x + 1] - lines[3, x]))
        for k in range(N_GROUPS):
            ir = np.float32(int(min(max(r + b * np.float32(GROUP * k + (GROUP - 1) / 2), np.float32(0.0)), top_r)))
            out[2 * k, c] = ir + np.float32(GROUP * k)
            out[2 * k + 1, c] = r + b * np.float32(GROUP * k) - ir
        out[2 * N_GROUPS, c] = b


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _resample_columns(q1, v, rows, c_lo, n_c, shape, w):  # pragma: no cover - compiled
    """``w[k]`` = column ``c_lo + k`` (``k < n_c``) of the resampled view ``v`` (module docstring, step 1): each
    group of lanes linearly between two rows (`_column_rows`); zero beyond the view."""
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


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _slab_cells(cols, v0, z0, n_s, x0, c_lo, n_c, w_cols, lin, off, fr, da):  # pragma: no cover - compiled
    """For views ``v0 .. v0 + VIEW_GROUP``, sections ``z0 .. z0 + n_s`` and the `X_TILE` columns from ``x0``: per
    group of `GROUP` lanes, the flat offset in the resampled columns (``w_cols`` per view, from column
    ``c_lo[j]``, ``n_c[j]`` of them) of the column its middle lane reads, its first lane's fraction there, and
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
            base[k] = np.float32(j * w_cols)
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


@numba.njit(cache=True, fastmath=True, nogil=True)
def _fit_sampled(mats, grid, shear, ya, last, n_z, centre, n_x):  # pragma: no cover - compiled
    """`local_blocks.fit_block` for all ``n_x`` voxel columns, fitted at every `FIT_X_STEP`-th one and interpolated
    between them: the lines are smooth in x (quadratic between patch centres, where their slope turns by the
    patches' difference in scale, about 1e-3 per column on BBa: 1e-3 px off at a turn), and the fit at every
    column was 8 % of the kernel, at every other one 5 %."""
    n_v = mats.shape[1]
    n_h = (n_x - 1) // FIT_X_STEP + 1
    half = np.zeros((max(n_h, 2), 8, n_v), dtype=np.float32)
    fit_block(mats, grid, shear, ya, last, n_z, centre, FIT_X_STEP, (PAD_U, PAD), half[:n_h])
    if n_h == 1:
        half[1] = half[0]
    geo = np.empty((n_x, 8, n_v), dtype=np.float32)
    for x in range(n_x):
        i = min(x // FIT_X_STEP, n_h - 2)
        t = np.float32((x - FIT_X_STEP * i) / FIT_X_STEP)
        geo[x] = half[i] + t * (half[i + 1] - half[i])
    return geo


@numba.njit(inline="always", nogil=True)
def _chunk_rows(geo, g_slab, first, zc, zc1, n_rs, lines, rows):  # pragma: no cover - compiled
    """``rows[first[v] + k]`` (`_column_rows`) for the ``k``-th slab of view ``v`` in the chunk of sections ``zc .. zc1``,
    from the lines at its middle section; the view's slab is its group's, ``g_slab[v // VIEW_GROUP]``."""
    for v in range(geo.shape[2]):
        sl = g_slab[v // VIEW_GROUP]
        for z0 in range(zc, zc1, sl):
            view_lines(geo, v, (z0 + min(zc1, z0 + sl) - 1) / 2.0, lines)
            _column_rows(lines, n_rs, rows[first[v] + (z0 - zc) // sl])


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _block_rows(q, shear, n_rows, n_cols, mats, grid, row0, vol, yb, slabs):  # pragma: no cover - compiled
    """Rows ``yb .. yb + ROWS`` of `backproject_local_rows`: per chunk of `Z_CHUNK` sections, the rows of each
    view's columns at its slabs' middle sections (`_chunk_rows`); per pair of tiles of `X_TILE` voxel columns,
    group of `VIEW_GROUP` views and slab of the chunk (the group's thinnest of ``slabs``), the columns of the
    views the tiles read are resampled (`_resample_columns`, into a buffer that stays in L2), then added
    (`_slab_cells`, `_add_views`)."""
    n_v, n_us, n_rs = q.shape
    n_z, n_y, n_x = vol.shape
    centre = ((n_x - 1) / 2.0, (n_rows - 1) / 2.0, (n_z - 1) / 2.0, (n_cols - 1) / 2.0)
    n_t = -(-n_v // VIEW_GROUP) * VIEW_GROUP
    g_slab = np.empty(n_t // VIEW_GROUP, dtype=np.int64)
    for i in range(g_slab.size):
        g_slab[i] = min(Z_CHUNK, max(1, slabs[VIEW_GROUP * i : VIEW_GROUP * (i + 1)].min()))
    n_valid = min(ROWS, n_y - yb)
    geo = _fit_sampled(mats, grid, shear, yb + row0 - centre[1], n_valid - 1, n_z, centre, n_x)
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
    w_cols = 4 * X_TILE + g_slab.max() + 8  # columns two tiles may read in one view
    w1 = aligned_empty(VIEW_GROUP * w_cols * ROWS)  # on a cache line: a vector of a column's rows is one line
    w = w1.reshape((VIEW_GROUP, w_cols, ROWS))
    q1 = q.ravel()
    lines = np.empty((4, n_x))
    first = np.zeros(n_v + 1, dtype=np.int64)  # the rows of view v's slabs in a chunk: rows[first[v] ..]
    for v in range(n_v):
        first[v + 1] = first[v] - (-Z_CHUNK // g_slab[v // VIEW_GROUP])
    rows = np.empty((first[n_v], 2 * N_GROUPS + 1, n_us), dtype=np.float32)  # 1.9 MB on BBa (3.8 for 6 slabs each)
    c_lo, n_c = np.zeros(VIEW_GROUP, dtype=np.int64), np.zeros(VIEW_GROUP, dtype=np.int64)
    tile = np.empty((2, Z_CHUNK, X_TILE, ROWS), dtype=np.float32)
    n_cell = g_slab.max() * VIEW_GROUP * X_TILE  # the cells of a slab (`_slab_cells`)
    off, fr = np.empty((N_GROUPS, n_cell), dtype=np.uint64), np.empty((N_GROUPS, n_cell), dtype=np.float32)
    da, lin = np.empty(n_cell, dtype=np.float32), np.empty((6, VIEW_GROUP * X_TILE), dtype=np.float32)
    acc = numba.carray(stack_block(128), (128,))  # type: ignore[call-arg]  # 2 ROWS (a literal)
    for zc in range(0, n_z, Z_CHUNK):
        zc1 = min(n_z, zc + Z_CHUNK)
        _chunk_rows(geo, g_slab, first, zc, zc1, n_rs, lines, rows)
        for xa in range(0, n_x, 2 * X_TILE):  # two tiles share the resampled columns
            xb = min(n_x, xa + 2 * X_TILE)
            tile[:, : zc1 - zc] = 0.0
            for v0 in range(0, n_t, VIEW_GROUP):
                sl = g_slab[v0 // VIEW_GROUP]
                for z0 in range(zc, zc1, sl):  # the views' columns stay in L2 from one slab to the next
                    z1 = min(zc1, z0 + sl)
                    for j in range(VIEW_GROUP):
                        v = v0 + j
                        if v >= n_v:  # a padded view: two zero columns
                            c_lo[j], n_c[j] = 0, 2
                            w[j, :2] = 0.0
                            continue
                        lo = min(cols[0, v, xa] + cols[1, v, xa] * z0, cols[0, v, xa] + cols[1, v, xa] * (z1 - 1))
                        hi = max(cols[0, v, xb - 1] + cols[1, v, xb - 1] * z0,
                                 cols[0, v, xb - 1] + cols[1, v, xb - 1] * (z1 - 1))
                        c_lo[j] = int(np.floor(lo - drift[v]))  # the cells of the groups' middle lanes
                        n_c[j] = min(w_cols, int(np.floor(hi + drift[v])) + 2 - c_lo[j])
                        _resample_columns(q1, v, rows[first[v] + (z0 - zc) // sl], c_lo[j], n_c[j], (n_us, n_rs), w[j])
                    for h in range(2):
                        x0 = xa + h * X_TILE
                        if x0 < xb:
                            _slab_cells(cols, v0, z0, z1 - z0, x0, c_lo, n_c, w_cols, lin, off, fr, da)
                            _add_views(tile[h, z0 - zc :], z1 - z0, min(xb, x0 + X_TILE) - x0, acc, w1, off, fr, da)
            for h in range(2):
                x0 = xa + h * X_TILE
                if x0 < xb:
                    write_columns(tile[h, : zc1 - zc], vol, zc, zc1, x0, min(xb, x0 + X_TILE), yb, n_valid)


@numba.njit(parallel=True, cache=True, nogil=True)
def backproject_local_rows(q, shear, n_rows, n_cols, mats, grid, row0, vol, slabs):  # pragma: no cover - compiled
    """``vol[z, y, x]`` (its row ``y`` is the views' row ``row0 + y``) from the local geometry, `ROWS` rows at a
    time, each group of `VIEW_GROUP` views in slabs of its thinnest of ``slabs`` (sections, per view: from
    `local_errors.choose_slabs`) (module docstring); the other arguments as
    `local_blocks.backproject_local_blocks`'."""
    for blk in numba.prange((vol.shape[1] + ROWS - 1) // ROWS):
        _block_rows(q, shear, n_rows, n_cols, mats, grid, row0, vol, blk * ROWS, slabs)

