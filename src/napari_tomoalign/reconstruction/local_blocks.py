"""The local WBP in blocks of rows: the filter of the global WBP, then a block kernel that samples in x and y.

The local geometry (`local_warp`) gives, per voxel column ``(x, y)`` and view, a position in the view that is
linear in z. Along the rows of a block it is nearly linear too: one row of the view per row of the volume,
plus a small drift (the patches' own increments, their blend), and each view's mean change of column per row
(its shear, `view_shears`: the X-axis tilt's ``sin f sin t`` and the local increments) is taken out of the
view beforehand. So:

1. **Filter** (`filtered_sheared_views`): each view's rows are shifted by the shear (linear interpolation,
   edge values beyond the view), then filtered by the global WBP's own filter (`bp_fft.filter_block`: the
   same padding, ramp, weights and FFT), which leaves them transposed (``[column, row]``, rows contiguous),
   the layout the block kernel reads, with a zero border (`PAD` rows, `PAD_U` columns). Shifting before or
   after the filter is the same (both are convolutions along the row), except that what came from beyond
   the view is set to zero after the filter, as the exact kernel leaves such samples out.
2. **Fit** (`fit_block`): per block of `ROWS` rows, voxel column and view, the line each lane (row of the
   block) follows, in column and row, linear in z: through the exact positions at the block's first and last
   rows, moved by half the largest deviation at its `probe_lanes` (the middle, and the rows where the
   patch blend turns), so that the error is split both ways.
3. **Back-project** (`backproject_local_blocks`): per voxel column and section, one vectorised pass over the
   views works out, for each group of `GROUP` lanes, the cell its middle lane falls in and the lanes'
   fractions there; the view loop then reads the group's two columns as contiguous rows and interpolates
   each lane at its own fractions (`_group`), and the columns go out a cache line of each volume row at a
   time (`bp_kernels.write_columns`).

What it gives up: the lanes follow a line, not the exact (piecewise quadratic) path, and a lane whose position
has drifted out of its group's cell extrapolates linearly from that cell's samples. `block_errors` measures
both; the WBP uses the blocks only when they are within `BLOCK_TOLERANCE_PX` and `EXTRAPOLATION_LIMIT_PX`, and
the exact voxel kernel (`local_warp.backproject_local`) otherwise (`blocks_suffice`). Where a slab of sections
allows it, `local_rows` runs instead: the same lines, with one row per volume row (`local_errors.choose_kernel`).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from .bp_fft import filter_block
from .bp_kernels import CONTRACT, X_TILE, Z_TILE, stack_block, write_columns
from .local_warp import row_geometry

ROWS = 64  # rows of the volume made together by `backproject_local_blocks` (four vectors of float32)
PAD = ROWS + 2  # zero rows above and below the filtered, sheared views (a block's lanes read that far)
PAD_U = 2  # zero columns either side of them (a group's lanes read the two columns of one cell)
GROUP = 32  # lanes (rows of a block) that read the same cell: two vectors of float32
N_GROUPS = ROWS // GROUP
FILTER_ROWS = 64  # rows `bp_fft.filter_block` filters together (32 complex columns per FFT pass)
BLOCK_TOLERANCE_PX = 0.25  # the largest position error (binned pixels) allowed to `backproject_local_blocks`
EXTRAPOLATION_LIMIT_PX = 0.25  # how far beyond its cell a lane of a block may read (binned pixels)
ERROR_X_STEP = 8  # `block_errors` checks every 8th voxel column


@numba.njit(cache=True, nogil=True)
def probe_lanes(grid, ya, last):  # pragma: no cover - compiled
    """The lanes of a block (rows ``ya .. ya + last``, centred) where the fitted line is compared with the
    exact position: the middle one, and those on either side of each patch-centre row inside the block,
    where the blend of the patches turns (a kink of the position along the rows)."""
    out = [last // 2]
    for k in range(int(grid[1])):
        yc = grid[3] + k * grid[5]
        if ya < yc < ya + last:
            j = int(np.floor(yc - ya))
            out.append(j)
            out.append(min(j + 1, last))
    return np.array(out)


@numba.njit(cache=True, fastmath=True, nogil=True)
def fit_block(mats, grid, shear, ya, last, n_z, centre, x_step, pads, geo):  # pragma: no cover - compiled
    """``geo[i, :, v]``: the line along the lanes ``j`` of a block (rows ``ya + j``, centred, ``j <= last``)
    that voxel column ``x = i x_step`` follows in view ``v``, in the sheared views (`view_shears`) plus ``pads``:
    at section ``z`` lane ``j`` reads column ``g0 + g1 z + (g2 + g3 z) j`` and row ``g4 + g5 z + (1 + g6 + g7 z) j``.

    The line joins the exact positions of the first and last lanes, moved by half the largest deviations
    of the exact positions from it at the `probe_lanes` (so that the error is split both ways), at the
    first and last section; every position is linear in z, so the line is too."""
    cx, cr, cz, cu = centre
    span = max(last, 1)
    zt = max(n_z - 1, 1)
    lanes = probe_lanes(grid, ya, span)
    n_xs = geo.shape[0]
    a, b, c = np.empty((4, n_xs)), np.empty((4, n_xs)), np.empty((4, n_xs))
    dev = np.empty((2, 2, 2, n_xs))  # (column / row, first / last section, least / largest, x)
    for v in range(mats.shape[1]):
        s = shear[v]
        row_geometry(mats, grid, v, ya, cx, cr, cz, cu, a[0], a[1], a[2], a[3], x_step)
        row_geometry(mats, grid, v, ya + span, cx, cr, cz, cu, b[0], b[1], b[2], b[3], x_step)
        dev[:] = 0.0
        for lane in lanes:
            row_geometry(mats, grid, v, ya + lane, cx, cr, cz, cu, c[0], c[1], c[2], c[3], x_step)
            t = lane / span
            for i in range(n_xs):
                for e in range(2):
                    z = e * zt
                    r0, r1, rc = a[2, i] + a[3, i] * z, b[2, i] + b[3, i] * z, c[2, i] + c[3, i] * z
                    u0 = a[0, i] + a[1, i] * z - s * (r0 - cr)
                    u1 = b[0, i] + b[1, i] * z - s * (r1 - cr)
                    d_u = c[0, i] + c[1, i] * z - s * (rc - cr) - (u0 + (u1 - u0) * t)
                    d_r = rc - (r0 + (r1 - r0) * t)
                    dev[0, e, 0, i], dev[0, e, 1, i] = min(dev[0, e, 0, i], d_u), max(dev[0, e, 1, i], d_u)
                    dev[1, e, 0, i], dev[1, e, 1, i] = min(dev[1, e, 0, i], d_r), max(dev[1, e, 1, i], d_r)
        for i in range(n_xs):
            mid = (dev[:, :, 0, i] + dev[:, :, 1, i]) / 2.0  # (column / row, first / last section)
            u0, du0 = a[0, i] - s * (a[2, i] - cr), a[1, i] - s * a[3, i]
            u1, du1 = b[0, i] - s * (b[2, i] - cr), b[1, i] - s * b[3, i]
            geo[i, 0, v] = u0 + mid[0, 0] + pads[0]
            geo[i, 1, v] = du0 + (mid[0, 1] - mid[0, 0]) / zt
            geo[i, 2, v] = (u1 - u0) / span
            geo[i, 3, v] = (du1 - du0) / span
            geo[i, 4, v] = a[2, i] + mid[1, 0] + pads[1]
            geo[i, 5, v] = a[3, i] + (mid[1, 1] - mid[1, 0]) / zt
            geo[i, 6, v] = (b[2, i] - a[2, i]) / span - 1.0
            geo[i, 7, v] = (b[3, i] - a[3, i]) / span


@numba.njit(cache=True, fastmath=True, nogil=True)
def block_errors_of(mats, grid, shear, geo, ya, last, n_z, centre, x_step):  # pragma: no cover - compiled
    """``(position, extrapolation)`` of `block_errors` in one block (rows ``ya .. ya + last``, centred), whose
    lines `fit_block` fitted into ``geo`` at every ``x_step``-th voxel column (no pads)."""
    n_v = mats.shape[1]
    n_xs = geo.shape[0]
    zt = max(n_z - 1, 1)
    pos, ext = 0.0, 0.0
    lanes = np.unique(np.concatenate((np.arange(0, last + 1, 8), np.array([last]), probe_lanes(grid, ya, last))))
    c = np.empty((4, n_xs))
    for lane in lanes:
        for v in range(n_v):
            row_geometry(mats, grid, v, ya + lane, centre[0], centre[1], centre[2], centre[3], c[0], c[1], c[2],
                         c[3], x_step)
            for i in range(n_xs):
                g = geo[i, :, v]
                for e in range(2):
                    z = e * zt
                    r = c[2, i] + c[3, i] * z
                    u = c[0, i] + c[1, i] * z - shear[v] * (r - centre[1])
                    fu = g[0] + g[1] * z + (g[2] + g[3] * z) * lane
                    fr = g[4] + g[5] * z + (1.0 + g[6] + g[7] * z) * lane
                    pos = max(pos, abs(u - fu), abs(r - fr))
    for v in range(n_v):  # how far the lanes' fractions leave the cells `backproject_local_blocks` reads
        for i in range(n_xs):
            g = geo[i, :, v]
            for e in range(2):
                z = e * zt
                for p0, d in ((g[0] + g[1] * z, g[2] + g[3] * z), (g[4] + g[5] * z, g[6] + g[7] * z)):
                    for j0 in range(0, last + 1, GROUP):
                        f0 = p0 + d * j0 - np.floor(p0 + d * (j0 + (GROUP - 1) / 2.0))
                        f1 = f0 + d * min(GROUP - 1, last - j0)
                        ext = max(ext, -min(f0, f1), max(f0, f1) - 1.0)
    return pos, ext


@numba.njit(cache=True, fastmath=True, nogil=True)
def _block_errors(mats, grid, shear, n_z, nx, ny, x_step):  # pragma: no cover - compiled
    """``(position, extrapolation)`` of `block_errors`, every ``x_step``-th voxel column."""
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    n_v = mats.shape[1]
    n_xs = (nx - 1) // x_step + 1
    pos, ext = 0.0, 0.0
    for yb in range(0, ny, ROWS):
        last = min(ROWS, ny - yb) - 1
        geo = np.zeros((n_xs, 8, n_v), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], last, n_z, centre, x_step, (0.0, 0.0), geo)
        p, e = block_errors_of(mats, grid, shear, geo, yb - centre[1], last, n_z, centre, x_step)
        pos, ext = max(pos, p), max(ext, e)
    return pos, ext


def block_errors(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int],
                 shear: NDArray[np.float64] | None = None) -> tuple[float, float]:
    """How far `backproject_local_blocks` is from the exact positions in a volume of ``n_z`` sections over a
    binned ``size`` ``(nx, ny)``: ``(position, extrapolation)`` in binned pixels, the largest over every
    `ERROR_X_STEP`-th voxel column, every view, the first and last section, and in every block its first and
    last lanes, every 8th, and the `probe_lanes`. *Position*: the fitted line (`fit_block`) against the
    exact position. *Extrapolation*: how far beyond ``[0, 1]`` a lane's fractions go in the cell the block reads
    (the cell of its middle lane): there the block extrapolates linearly from the neighbouring samples.
    ``shear``: the views' shear (default `view_shears`)."""
    nx, ny = size
    shear = view_shears(mats) if shear is None else shear
    pos, ext = _block_errors(mats, grid, shear, n_z, nx, ny, ERROR_X_STEP)
    return float(pos), float(ext)


def blocks_suffice(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]) -> bool:
    """Whether `backproject_local_blocks` may stand for the exact kernel: `block_errors` within
    `BLOCK_TOLERANCE_PX` and `EXTRAPOLATION_LIMIT_PX`."""
    pos, ext = block_errors(mats, grid, n_z, size)
    return pos <= BLOCK_TOLERANCE_PX and ext <= EXTRAPOLATION_LIMIT_PX


def view_shears(mats: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views,)`` each view's mean change of the column ``u`` per row ``y`` (``sin f sin t`` and the
    local increments), taken out of the views before `backproject_local_blocks`."""
    return np.ascontiguousarray(mats[:, :, 1].mean(axis=0))


@numba.njit(cache=True, fastmath=True, nogil=True)
def shear_rows(view, shear, rows, r_lo, r_hi):  # pragma: no cover - compiled
    """``rows[r, u] = view[r](u + shear (r - centre))`` (linear interpolation; edge values beyond the view) for the
    rows ``r_lo .. r_hi`` of the view among them."""
    n_r, n_u = view.shape
    cr = (n_r - 1) / 2.0
    for r in range(max(0, r_lo), min(n_r, r_hi)):
        s = shear * (r - cr)
        fl = int(np.floor(s))
        f = np.float32(s - fl)
        src = view[r]
        dst = rows[r]
        lo = min(n_u, max(0, -fl))  # u + fl >= 0 from here
        hi = max(lo, min(n_u, n_u - 1 - fl))  # u + fl + 1 <= n_u - 1 below here
        for u in range(lo):
            dst[u] = src[0]
        a = src[lo + fl : hi + fl]
        b = src[lo + fl + 1 : hi + fl + 1]
        d = dst[lo:hi]
        for k in range(hi - lo):
            ku = numba.uint64(k)  # unsigned: no wraparound code, so the loop vectorises
            d[ku] = a[ku] + f * (b[ku] - a[ku])
        for u in range(hi, n_u):
            dst[u] = src[n_u - 1]


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _filter_into(views, shear, filt, wr, wi, out, n_chunks):  # pragma: no cover - compiled
    """`filtered_sheared_views` into ``out``; each of ``n_chunks`` (the threads) takes every n-th view, with one scratch."""
    n_v, n_r, n_u = views.shape
    n_rb = out.shape[2] - 2 * PAD
    cr = (n_r - 1) / 2.0
    for c in numba.prange(n_chunks):
        rows = np.empty((n_r, n_u), dtype=np.float32)
        bufs = np.empty((4, filt.shape[1], FILTER_ROWS // 2), dtype=np.float32)
        for v in range(c, n_v, n_chunks):
            src = views[v]
            if shear[v] != 0.0:
                shear_rows(views[v], shear[v], rows, 0, n_r)
                src = rows
            o = out[v]
            o[:PAD_U] = 0.0  # the zero border
            o[PAD_U + n_u :] = 0.0
            for u in range(PAD_U, PAD_U + n_u):
                o[u, :PAD] = 0.0
                o[u, PAD + n_rb :] = 0.0
            q = o[PAD_U : PAD_U + n_u, PAD : PAD + n_rb]
            filter_block(src, 0, n_rb, filt[v], wr, wi, bufs, q)
            for u in range(n_u):  # rows past the view: zero (the FFT leaves rounding there)
                q[u, n_r:] = 0.0
            for r in range(n_r):  # what came from beyond the view is left out, as the exact kernel does
                s = shear[v] * (r - cr)
                for u in range(0, min(n_u, int(np.ceil(-s)))):  # u + s < 0
                    q[u, r] = 0.0
                for u in range(max(0, int(np.floor(n_u - 1.0 - s)) + 1), n_u):  # u + s > n_u - 1
                    q[u, r] = 0.0


def filtered_sheared_views(views: NDArray[np.float32], shear: NDArray[np.float64], filt: NDArray[np.float32],
                           wr: NDArray, wi: NDArray) -> NDArray[np.float32]:
    """``(n_views, n_cols + 2 PAD_U, n_rows' + 2 PAD)``: each view sheared (`shear_rows`), filtered by ``filt``
    ``(n_views, n_pad)`` (`wbp.full_filter`) with twiddles ``wr, wi`` (`bp_fft.twiddles`), transposed, in a
    zero border; ``n_rows'`` is ``n_rows`` rounded up to `FILTER_ROWS`. Samples from beyond the view are zero.
    Allocated by numpy, which asks the system for huge pages: a page fault per 4 kB of this array cost
    about 0.3 ms per MB, as much as the shear."""
    n_v, n_r, n_u = views.shape
    n_rb = -(-n_r // FILTER_ROWS) * FILTER_ROWS
    out = np.empty((n_v, n_u + 2 * PAD_U, n_rb + 2 * PAD), dtype=np.float32)
    _filter_into(views, shear, filt, wr, wi, out, max(1, min(n_v, numba.get_num_threads())))
    return out


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _lane_taps(g, zf, plane, stride, top_u, top_r, off, p):  # pragma: no cover - compiled
    """For one voxel column and section, in one pass over the views: each view's flat offset into the
    filtered views for each group of `GROUP` lanes (the cell of the group's middle lane, so that its lanes'
    fractions stay near ``[0, 1]``), the fractions of the group's first lane in that cell, and their change per
    lane (``p[2 NG]``: column, ``p[2 NG + 1]``: row; ``NG`` groups)."""
    n_g = off.shape[0]
    for k in range(n_g):  # groups outermost: the pass over the views is the vectorised loop
        j0 = np.float32(GROUP * k)
        jm = np.float32(GROUP * k + (GROUP - 1) / 2)
        for v in range(off.shape[1]):
            u = g[0, v] + g[1, v] * zf
            a = g[2, v] + g[3, v] * zf
            r = g[4, v] + g[5, v] * zf
            b = g[6, v] + g[7, v] * zf
            iu = int(min(max(u + a * jm, np.float32(0.0)), top_u))
            ir = int(min(max(r + b * jm, np.float32(0.0)), top_r))
            off[k, v] = numba.uint64(v * plane + iu * stride + ir + GROUP * k)
            p[2 * k, v] = u + a * j0 - np.float32(iu)
            p[2 * k + 1, v] = r + b * j0 - np.float32(ir)
            p[2 * n_g, v] = a
            p[2 * n_g + 1, v] = b


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _group(q1, a0, stride, fu0, fr0, du, dr, acc, j0):  # pragma: no cover - compiled
    """One view's bilinear samples for the `GROUP` lanes ``j0 ..`` of a block, added to ``acc`` (two sums per
    lane, ``acc[j]`` and ``acc[ROWS + j]``, so that the additions form two chains): lane ``j0 + jj`` reads rows
    ``jj``, ``jj + 1`` of the columns at ``a0`` and ``a0 + stride``, at fractions ``fu0 + du jj``, ``fr0 + dr jj``."""
    one = numba.uint64(1)
    b0 = a0 + stride
    for jj in range(GROUP):
        ju = numba.uint64(jj)
        jf = np.float32(jj)
        fu = fu0 + du * jf
        fr = fr0 + dr * jf
        t = q1[a0 + ju]
        lo = t + fr * (q1[a0 + ju + one] - t)
        t = q1[b0 + ju]
        hi = t + fr * (q1[b0 + ju + one] - t)
        acc[j0 + jj] += lo
        acc[ROWS + j0 + jj] += fu * (hi - lo)


@numba.njit(cache=True, nogil=True)
def _tiles(n_x, n_z):  # pragma: no cover - compiled
    """``(x0, x1, z0, z1)`` tiles of ``X_TILE`` columns and ``Z_TILE`` sections, sections outermost: the view
    columns one tile of sections reads stay in L2 as x advances, as in the global WBP (`bp_kernels`)."""
    out = []
    for z0 in range(0, n_z, Z_TILE):
        for x0 in range(0, n_x, X_TILE):
            out.append((x0, min(n_x, x0 + X_TILE), z0, min(n_z, z0 + Z_TILE)))
    return out


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _block(q, shear, n_rows, n_cols, mats, grid, row0, vol, yb):  # pragma: no cover - compiled
    """Rows ``yb .. yb + ROWS`` of `backproject_local_blocks` (a function of its own: compiled apart from the
    parallel loop, its sums stay in registers)."""
    n_v, n_us, n_rs = q.shape
    n_z, n_y, n_x = vol.shape
    B = ROWS
    centre = ((n_x - 1) / 2.0, (n_rows - 1) / 2.0, (n_z - 1) / 2.0, (n_cols - 1) / 2.0)
    top_u, top_r = np.float32(n_us - 2), np.float32(n_rs - B - 2)
    q1 = q.ravel()
    stride = numba.uint64(n_rs)
    n_vp = -(-n_v // 16) * 16
    n_valid = min(B, n_y - yb)
    geo = np.zeros((n_x, 8, n_vp), dtype=np.float32)  # views padded: `_lane_taps` has no scalar tail
    fit_block(mats, grid, shear, yb + row0 - centre[1], n_valid - 1, n_z, centre, 1, (PAD_U, PAD), geo)
    off = np.empty((N_GROUPS, n_vp), dtype=np.uint64)
    p = np.empty((2 * N_GROUPS + 2, n_vp), dtype=np.float32)
    buf = np.empty((min(n_z, Z_TILE), X_TILE, B), dtype=np.float32)
    acc = numba.carray(stack_block(128), (128,))  # type: ignore[call-arg]  # 2 ROWS (a literal)
    for x0, x1, z0, z1 in _tiles(n_x, n_z):
        for x in range(x0, x1):
            g = geo[x]
            for z in range(z0, z1):
                _lane_taps(g, np.float32(z), n_us * n_rs, n_rs, top_u, top_r, off, p)
                for k in range(2 * B):
                    acc[k] = 0.0
                for vv in range(n_v):
                    v = numba.uint64(vv)  # unsigned: no wraparound code for the indices below
                    du, dr = p[2 * N_GROUPS, v], p[2 * N_GROUPS + 1, v]
                    _group(q1, off[0, v], stride, p[0, v], p[1, v], du, dr, acc, 0)
                    if N_GROUPS == 2:
                        _group(q1, off[1, v], stride, p[2, v], p[3, v], du, dr, acc, GROUP)
                out = buf[z - z0, x - x0]
                for j in range(B):
                    out[j] = acc[j] + acc[B + j]
        write_columns(buf, vol, z0, z1, x0, x1, yb, n_valid)


@numba.njit(parallel=True, cache=True, nogil=True)
def backproject_local_blocks(q, shear, n_rows, n_cols, mats, grid, row0, vol):  # pragma: no cover - compiled
    """``vol[z, y, x]`` (its row ``y`` is the views' row ``row0 + y``) from the local geometry, `ROWS` rows at a time.

    ``q`` from `filtered_sheared_views`, ``shear`` from `view_shears`, ``n_rows``, ``n_cols`` the views' size,
    ``mats``, ``grid`` from `local_warp.kernel_arguments`. For each block of rows, voxel column and view,
    each lane (row of the block) follows its own position along the line `fit_block` fits; the lanes of
    a group of `GROUP` read the two columns and consecutive rows of the cell of the group's middle lane,
    each with its own fractions (module docstring). A sample beyond the view reads the zero border.
    """
    for blk in numba.prange((vol.shape[1] + ROWS - 1) // ROWS):
        _block(q, shear, n_rows, n_cols, mats, grid, row0, vol, blk * ROWS)
