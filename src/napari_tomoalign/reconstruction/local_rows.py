"""The local WBP one row per volume row: the filtered views resampled along the rows per slab of sections, then
a kernel that interpolates in the column only, as the global WBP's does.

The block kernel of `local_blocks` interpolates every voxel in column and row (four loads per view and 16
lanes, against the global kernel's two), and that is what bounds it. But along the rows of a block each voxel
column follows a line (`local_blocks.fit_block`): at section ``z`` lane ``j`` reads column ``U + A j`` and
row ``R + (1 + B) j``, with ``U, A, R, B`` linear in z. So, per block of `ROWS` rows and slab of sections
(middle section ``zs``):

1. **Resample** (`local_resample`): column ``c`` of each view is resampled along the rows
   of the voxel column whose middle lane reads column ``c`` at ``zs``: ``w[c, j] = q(c, R + (1 + B) j)``,
   with ``R, B`` interpolated between the voxel columns either side, linearly between two rows (cells per
   group of `GROUP` lanes, as `local_blocks._group`). Only the columns that a pair of tiles of `X_TILE`
   voxel columns reads, for a group of `VIEW_GROUP` views at a time: they stay in L1/L2 for the next step.
2. **Back-project** (`local_group`): each group of lanes of voxel column ``x`` at section ``z`` reads two
   resampled columns, those either side of its middle lane's column, as contiguous runs of rows,
   each lane at its own fraction between them (``A`` per lane): two loads per view and 16 lanes, in the
   tiles and view groups of `bp_kernels._bp_tile`.

The slabs of a chunk of `Z_CHUNK` sections follow one another for each pair of tiles and group of views, so
that the group's columns of the filtered views, read from L3 for the chunk's first slab, come from L2 for the
next (slab after slab over the whole block, a band of 61 views was read from L3 for every slab: 42 ms of the
kernel's 200 at bin 1); a tile's sums hold the chunk. The WBP reads the filtered views from a band per thread
that follows its blocks (`backproject_local_bands`, `local_band`), not from the views filtered whole first.

What it adds to the block kernel's error: a voxel at ``z`` reads the rows made for the voxel column that
meets its column at ``zs``, which differ by the slope of the row along that column (the X-axis tilt, the
patches' rotations) times ``z - zs``. `local_errors.slab_errors` measures it, and `local_errors.choose_slabs`
gives each group of `VIEW_GROUP` views its own slab (BBa at bin 1: 48 sections at the low tilts, 8 at the
highest, against 12 for all in session 11: a third fewer resamplings, the same squared error), or the block
kernel, or the exact voxel kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from ..errors import Cancelled
from .bp_fft import twiddles
from .bp_kernels import CONTRACT, VIEW_GROUP, X_TILE, aligned_empty, view_sums, write_columns
from .local_band import GRID, band_end, band_rows, fill_band
from .local_blocks import (
    FILTER_ROWS,
    GROUP,
    N_GROUPS,
    PAD,
    PAD_U,
    ROWS,
    backproject_local_blocks,
    filtered_sheared_views,
)
from .local_errors import JM, SLABS, choose_geometry
from .local_group import CELL_FLOATS, HALF, LINE_FLOATS, ROWS_64, local_add_8, local_cells_8, local_cells_16
from .local_resample import chunk_rows, fit_sampled, resample_columns, view_tables
from .local_warp import backproject_local

SHARED = 4  # tiles of `X_TILE` voxel columns that read the same resampled columns (2 in session 12: 3.5 % slower)
assert ROWS == ROWS_64 and GROUP == HALF  # what `local_group` is written for
Z_CHUNK = 48  # sections summed together: the views' columns a group of views reads are resampled from L2 for
# each slab of them, not from L3 (a band of 64 rows of 61 views is 9 MB); every slab of `local_errors.SLABS` divides it



def thread_bytes_of(n_views: int, n_x: int, band_rows: int) -> int:
    """What each thread of the one-row kernel holds where it runs, for ``n_views`` views ``n_x`` wide whose blocks reach
    ``band_rows`` rows of them (`local_band`: a block of `ROWS` rows and what its lines spread over): its band of
    filtered rows (and 32 more, `local_band.GRID`'s rounding and `local_band.MARGIN`) and the rows each view's columns
    are resampled along per chunk of sections, at the thinnest slab (`local_resample.chunk_rows`)."""
    band = n_views * (n_x + 2 * PAD_U) * (band_rows + 32) * 4
    return band + n_views * -(-Z_CHUNK // SLABS[-1]) * (2 * N_GROUPS + 1) * (n_x + 2 * PAD_U) * 4


@numba.njit(inline="always", nogil=True)
def _group_lines(cols, v0, x0, lines):  # pragma: no cover - compiled
    """For views ``v0 .. v0 + VIEW_GROUP`` and the ``SHARED`` tiles of `X_TILE` voxel columns from ``x0``, what
    `local_group.local_cells_8` works their cells out from (the same for every slab): ``lines[h, xx * LINE_FLOATS + 8 m
    + j]`` the column of the groups' middle lanes (``m = 0, 1``: at section 0 and its change per section) and the
    column drift per lane (``m = 2, 3``)."""
    for h in range(SHARED):
        for j in range(VIEW_GROUP):
            v = v0 + j
            for xx in range(X_TILE):
                x = min(x0 + h * X_TILE + xx, cols.shape[2] - 1)
                k = xx * LINE_FLOATS + j
                lines[h, k] = cols[0, v, x]
                lines[h, k + VIEW_GROUP] = cols[1, v, x]
                lines[h, k + 2 * VIEW_GROUP] = cols[2, v, x]
                lines[h, k + 3 * VIEW_GROUP] = cols[3, v, x]


@numba.njit(inline="always", nogil=True)
def _pair_consts(c_lo, n_c, c_w, w_cols, consts):  # pragma: no cover - compiled
    """``consts`` of `local_group.local_cells_8` for a pair of tiles in a slab: the highest left cell (``n_c[j] - 2``),
    the resampled columns' index of the first column the pair reads (``c_lo[j]`` of ``n_c[j]``: `_windows`; ``w_cols``
    per view, from column ``c_w[j]``) and that column."""
    for j in range(VIEW_GROUP):
        consts[j] = np.float32(n_c[j] - 2)
        consts[VIEW_GROUP + j] = np.float32(j * w_cols + c_lo[j] - c_w[j])
        consts[2 * VIEW_GROUP + j] = np.float32(c_lo[j])


@numba.njit(inline="always", nogil=True)
def _add_tile(w1, lines, consts, tile, s0, z0, z1, n_x_tile, table, first, n_views):  # pragma: no cover - compiled
    """Sections ``z0 .. z1`` of a tile (``tile[s0 + z - z0]``) += the group of views (``=`` for the ``first``
    group): per section, the cells of its ``n_x_tile`` voxel columns (`local_group.local_cells_16`, two sections at a
    time, into ``table``, which stays in L1), then their sums (`local_group.local_add_8`): all 8 views, or the first
    ``n_views`` of a last group that padding fills (in runs of 4, 2 and 1)."""
    second = X_TILE * CELL_FLOATS  # ``table`` holds two sections' cells: the second's from here
    for z in range(z0, z1):
        at = second * ((z - z0) % 2)
        if at == 0 and z + 1 < z1:
            for xx in range(n_x_tile):
                local_cells_16(lines, consts, table, xx, z, xx * CELL_FLOATS,  # type: ignore[call-arg]
                               second + xx * CELL_FLOATS)
        elif at == 0:
            for xx in range(n_x_tile):
                local_cells_8(lines, consts, table, xx, z, xx * CELL_FLOATS)  # type: ignore[call-arg]
        t = tile[s0 + z - z0]
        if first:
            for xx in range(n_x_tile):
                local_add_8(w1, table, t[xx], at + xx * CELL_FLOATS, True, 0, 8)  # type: ignore[call-arg]
        elif n_views >= VIEW_GROUP:
            for xx in range(n_x_tile):
                local_add_8(w1, table, t[xx], at + xx * CELL_FLOATS, False, 0, 8)  # type: ignore[call-arg]
        else:
            j4, j2 = n_views & 4, n_views & 6
            for xx in range(n_x_tile):
                if n_views & 4:
                    local_add_8(w1, table, t[xx], at + xx * CELL_FLOATS, False, 0, 4)  # type: ignore[call-arg]
                if n_views & 2:
                    local_add_8(w1, table, t[xx], at + xx * CELL_FLOATS, False, j4, 2)  # type: ignore[call-arg]
                if n_views & 1:
                    local_add_8(w1, table, t[xx], at + xx * CELL_FLOATS, False, j2, 1)  # type: ignore[call-arg]


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
    view's columns at its slabs' middle sections (`local_resample.chunk_rows`); per pair of tiles of `X_TILE` voxel columns,
    group of `VIEW_GROUP` views and slab of the chunk (the group's thinnest of ``slabs``), the columns of the
    views the tiles read are resampled (`local_resample.resample_columns`, into a buffer that stays in L2), then
    added (`_add_tile`); the last group's sections go out as each slab finishes them. ``geo``: the block's lines
    ``(n_v, 8, n_x)`` (`local_resample.fit_sampled`), in ``q``'s columns and in its rows ``r_off`` on."""
    n_v, n_us, n_rs = q.shape
    n_z, n_y, n_x = vol.shape
    n_t = -(-n_v // VIEW_GROUP) * VIEW_GROUP
    g_slab = np.empty(n_t // VIEW_GROUP, dtype=np.int64)
    for i in range(g_slab.size):
        g_slab[i] = min(Z_CHUNK, max(1, slabs[VIEW_GROUP * i : VIEW_GROUP * (i + 1)].min()))
    n_valid = min(ROWS, n_y - yb)
    n_xp = -(-n_x // X_TILE) * X_TILE
    cols = np.zeros((4, n_t, n_xp), dtype=np.float32)  # padded views and columns: zero
    drift = np.zeros(n_v)  # how far the groups' middle lanes are from the block's, at most (columns)
    for v in range(n_v):
        g = geo[v]  # a view's lines, contiguous: the loops run along x
        for x in range(n_xp):
            xc = min(x, n_x - 1)
            cols[0, v, x] = g[0, xc] + g[2, xc] * JM
            cols[1, v, x] = g[1, xc] + g[3, xc] * JM
            cols[2, v, x] = g[2, xc]
            cols[3, v, x] = g[3, xc]
        for x in range(n_x):
            drift[v] = max(drift[v], GROUP / 2.0 * max(abs(g[2, x]), abs(g[2, x] + g[3, x] * (n_z - 1))) + 1e-3)
    w_pair = 4 * X_TILE + g_slab.max() + 8  # columns two tiles may read in one view
    w_cols = SHARED // 2 * w_pair
    w1 = aligned_empty(VIEW_GROUP * w_cols * ROWS)  # on a cache line: a vector of a column's rows is one line
    w = w1.reshape((VIEW_GROUP, w_cols, ROWS))
    q1 = q.ravel()
    lines = np.empty((6, n_x))
    first = np.zeros(n_v + 1, dtype=np.int64)  # the rows of view v's slabs in a chunk: rows[first[v] ..]
    for v in range(n_v):
        first[v + 1] = first[v] - (-Z_CHUNK // g_slab[v // VIEW_GROUP])
    rows = np.empty((first[n_v], 2 * N_GROUPS + 1, n_us), dtype=np.float32)  # 1.9 MB on BBa (3.8 for 6 slabs each)
    c_lo, n_c = np.zeros(VIEW_GROUP, dtype=np.int64), np.zeros(VIEW_GROUP, dtype=np.int64)
    c_ref, n_ref = np.zeros((SHARED // 2, VIEW_GROUP), dtype=np.int64), np.zeros((SHARED // 2, VIEW_GROUP), dtype=np.int64)
    tile = aligned_empty(SHARED * Z_CHUNK * X_TILE * ROWS).reshape((SHARED, Z_CHUNK, X_TILE, ROWS))  # on a cache line
    tlines = np.empty((SHARED, X_TILE * LINE_FLOATS), dtype=np.float32)  # the tiles' lines (`_group_lines`)
    consts = np.empty((SHARED // 2, 3 * VIEW_GROUP), dtype=np.float32)
    table = np.empty(2 * X_TILE * CELL_FLOATS, dtype=np.float32)
    for zc in range(0, n_z, Z_CHUNK):
        zc1 = min(n_z, zc + Z_CHUNK)
        chunk_rows(geo, g_slab, first, zc, zc1, n_rs, r_off, drift, lines, rows)
        for xa in range(0, n_x, SHARED * X_TILE):  # `SHARED` tiles share the resampled columns
            xb = min(n_x, xa + SHARED * X_TILE)
            for v0 in range(0, n_t, VIEW_GROUP):
                sl = g_slab[v0 // VIEW_GROUP]
                _group_lines(cols, v0, xa, tlines)
                for z0 in range(zc, zc1, sl):  # the views' columns stay in L2 from one slab to the next
                    z1 = min(zc1, z0 + sl)
                    _windows(cols, v0, n_v, xa, xb, z0, z1, drift, w_pair, w_cols, c_ref, n_ref, c_lo, n_c)
                    for j in range(VIEW_GROUP):
                        v = v0 + j
                        if v >= n_v:  # a padded view: two zero columns
                            w[j, :2] = 0.0
                            continue
                        resample_columns(q1, v, rows[first[v] + (z0 - zc) // sl], c_lo[j], n_c[j], (n_us, n_rs), w[j])
                    for p in range(SHARED // 2):
                        _pair_consts(c_ref[p], n_ref[p], c_lo, w_cols, consts[p])
                    for h in range(SHARED):
                        x0 = xa + h * X_TILE
                        if x0 < xb:
                            _add_tile(w1, tlines[h], consts[h // 2], tile[h], z0 - zc, z0, z1, min(xb, x0 + X_TILE) - x0,
                                      table, v0 == 0, n_v - v0)
                            if v0 + VIEW_GROUP >= n_v:  # the last group: these sections are done, and still in L1/L2
                                write_columns(tile[h, z0 - zc : z1 - zc], vol, z0, z1, x0, min(xb, x0 + X_TILE), yb,
                                              n_valid)


@numba.njit(parallel=True, cache=True, nogil=True)
def backproject_local_rows(q, shear, n_rows, n_cols, mats, grid, row0, vol, slabs):  # pragma: no cover - compiled
    """``vol[z, y, x]`` (its row ``y`` is the views' row ``row0 + y``) from the local geometry, `ROWS` rows at a
    time, each group of `VIEW_GROUP` views in slabs of its thinnest of ``slabs`` (sections, per view: from
    `local_errors.choose_slabs`) (module docstring); the other arguments as
    `local_blocks.backproject_local_blocks`'."""
    n_z, n_y, n_x = vol.shape
    centre = ((n_x - 1) / 2.0, (n_rows - 1) / 2.0, (n_z - 1) / 2.0, (n_cols - 1) / 2.0)
    tabs = view_tables(mats, grid, shear, centre, n_z, n_x)
    for blk in numba.prange((n_y + ROWS - 1) // ROWS):
        yb = blk * ROWS
        geo = fit_sampled(tabs, grid, yb + row0 - centre[1], min(ROWS, n_y - yb) - 1, n_z, n_x, (PAD_U, PAD))
        _block_rows(q, geo, 0, vol, yb, slabs)


@numba.njit(cache=True, nogil=True)
def _run_of_blocks(views, shear, filt, wr, wi, tabs, grid, row0, vol, slabs, b0, b1, sums):  # pragma: no cover
    """The blocks ``b0 .. b1`` of `backproject_local_bands`, one after the other along a band of their own (on a cache
    line: the filter's stores of whole lines); the rows of the views filtered summed into ``sums``
    (`local_band.fill_band`); ``tabs`` from `local_resample.view_tables`."""
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
        geo = fit_sampled(tabs, grid, yb + row0 - centre[1], n_valid - 1, n_z, n_x, (PAD_U, PAD))
        lo, need = band_rows(geo, n_valid, n_z, PAD)
        hi = band_end(lo, need, start, n_f)
        if hi - lo > band.shape[2]:  # a taller band (the first, or lines that spread more): the rows held are lost
            n_f = 0
            hi = band_end(lo, need, start, n_f)
            band = aligned_empty(n_v * (n_u + 2 * PAD_U) * (hi - lo + GRID)).reshape((n_v, n_u + 2 * PAD_U, hi - lo + GRID))
            band[:] = 0.0
        start, n_f = fill_band(views, shear, filt, wr, wi, band, start, n_f, lo, hi, rows, bufs, sums)
        _block_rows(band, geo, lo + PAD, vol, yb, slabs)


@numba.njit(parallel=True, cache=True, nogil=True)
def backproject_local_bands(views, shear, filt, wr, wi, mats, grid, row0, vol, slabs, n_runs):  # pragma: no cover
    """`backproject_local_rows` from the views ``views`` themselves: each of ``n_runs`` (the threads) takes a run of
    blocks in turn and filters the rows of the views they reach into a band of its own as it goes
    (`local_band.fill_band`, with ``shear``, ``filt``, ``wr``, ``wi`` as `local_blocks.filtered_sheared_views`).
    Returns the float64 sum of the rows of each view that were filtered (NaN or infinite where a pixel is)."""
    n_z, n_y, n_x = vol.shape
    n_blocks = (n_y + ROWS - 1) // ROWS
    centre = ((n_x - 1) / 2.0, (views.shape[1] - 1) / 2.0, (n_z - 1) / 2.0, (views.shape[2] - 1) / 2.0)
    tabs = view_tables(mats, grid, shear, centre, n_z, n_x)
    part = np.zeros((n_runs, views.shape[0]))  # each run's sums
    for run in numba.prange(n_runs):
        _run_of_blocks(views, shear, filt, wr, wi, tabs, grid, row0, vol, slabs, run * n_blocks // n_runs,
                       (run + 1) * n_blocks // n_runs, part[run])
    return part.sum(axis=0)


def backproject_local_views(
    stack: NDArray,
    filt: NDArray[np.float32],
    mats: NDArray[np.float64],
    grid: NDArray[np.float64],
    vol: NDArray[np.float32],
    row_first: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    geometry: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
) -> NDArray[np.float64]:
    """Filter the views ``stack`` ``(n_views, rows, cols)`` (binned, float32) and back-project them with the local
    geometry ``mats``, ``grid`` (`local_warp.kernel_arguments`) into ``vol`` ``(n_z, n_rows, cols)``, whose row
    ``k`` is view row ``row_first + k``; ``filt`` from `wbp.full_filter`. One row per volume row in slabs of
    sections, in blocks of rows, or voxel by voxel, as `local_errors.choose_geometry` says (or ``geometry``, its
    answer for these arguments, when the caller has it); in chunks of rows so that
    ``progress`` and ``should_stop`` are heard. Returns the float64 sum of each view's rows that were read: of those
    the bands reached (`backproject_local_bands`; the work stops after a chunk where one is not finite), or of all
    (the block and voxel kernels). One that is not finite means a NaN or infinite pixel: the caller names the view."""
    n_v, n_r, n_u = stack.shape
    n_z, n_rows, _ = vol.shape
    if should_stop is not None and should_stop():
        raise Cancelled("reconstruction cancelled")
    shear, slabs = choose_geometry(mats, grid, n_z, (n_u, n_r)) if geometry is None else geometry
    slab = int(slabs.min())
    tw = twiddles(filt.shape[1])
    sums = np.zeros(n_v) if slab >= 2 else view_sums(stack, np.arange(n_v))
    if not np.all(np.isfinite(sums)):
        return sums
    q = filtered_sheared_views(stack, shear, filt, *tw) if slab < 2 else None  # the one-row kernel filters in bands
    threads = max(1, numba.get_num_threads())
    chunk = ROWS * threads * 8  # a band per thread and chunk: 8 blocks filter 1 / 16 more rows than all the rows
    for c0 in range(0, n_rows, chunk):
        if should_stop is not None and should_stop():
            raise Cancelled("reconstruction cancelled")
        part = vol[:, c0 : c0 + chunk]
        if q is None:
            sums += backproject_local_bands(stack, shear, filt, *tw, mats, grid, row_first + c0, part, slabs,
                                            min(threads, -(-part.shape[1] // ROWS)))
            if not np.all(np.isfinite(sums)):
                return sums
        elif slab == 0:  # patches too different for blocks of rows: voxel by voxel, on the unsheared views
            backproject_local(q[:, PAD_U : PAD_U + n_u, PAD : PAD + n_r].transpose(0, 2, 1), mats, grid, row_first + c0,
                              part)
        else:
            backproject_local_blocks(q, shear, n_r, n_u, mats, grid, row_first + c0, part)
        if progress is not None:
            progress(min(n_rows, c0 + chunk), n_rows)
    return sums
