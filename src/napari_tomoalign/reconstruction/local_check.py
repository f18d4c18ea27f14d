"""The local WBP's error check (`local_errors.measured_errors`), per block of rows and view: the exact positions
at the lanes it checks, the lines `local_blocks.fit_block` fits through them, the block kernel's position and
extrapolation errors (`local_blocks.block_errors`) and the slab errors (`local_errors.slab_errors`), at every
`local_blocks.ERROR_X_STEP`-th voxel column.

The same measure as session 16's (`local_blocks.fit_block`, `local_blocks.block_errors_of`, the column walk of
`local_errors.at_column`), at the same lanes, columns and sections, computed in another order:

- A voxel column's position in a view is the blend of the patch matrices around it, bilinear in ``(x, y)``
  (`local_warp.row_geometry`); blended in x first (`view_table`, once per view), the position at the first and
  last section, in column (sheared) and row, is ``A + B y`` per row of patches, and a lane's is the blend of
  its two rows' (`lane_positions`): a vector loop over the voxel columns, not `row_geometry`'s scalar one per
  lane. The fit's lanes are among the checked ones, so each is computed once (session 16: twice).
- The fit (`fit_lines`) is `fit_block`'s, written from those positions (equal to float64 rounding; the lines
  stored in float32 as `fit_block` stores them: on BBa at most one float32 step apart, 1e-12 px).
- The block errors' largest values are kept per voxel column (`line_errors`), which vectorises (a running
  maximum over the columns does not: 1.2 ms of BBa's check at bin 1, now 0.25).
- The slab errors' walk along the middle section's columns (`slab_error_of`) reads each interval's line in the
  column, worked out once per slab and lane, where `at_column` divided per column and lane, and keeps its largest
  and sum of squares in registers.

BBa's local file, one thread, CPU medians of `benchmarks/bench_error_check.py` (31 interleaved rounds a run, six runs,
the machine shared): `choose_geometry` at bin 1 9.8-10.2 -> 2.6-2.9 ms (0.26-0.29x; tables 0.12, lanes' positions
0.25, fit 0.25, block errors 0.25, slab errors 1.7), at bin 2 2.2-2.3 -> 0.60-0.63 ms (0.26-0.28x); the errors
within 1e-13 px of session 16's (sums of squares: 2e-10 of them) and the same slabs.
"""

from __future__ import annotations

import numba
import numpy as np

from .local_blocks import GROUP, ROWS, probe_lanes

JM = (ROWS - 1) / 2.0  # the middle lane of a block (`local_errors.JM`)
MAX_LANES = ROWS + 1  # a block's lanes checked or fitted are among 0 .. ROWS - 1 (and 1 in a block of one row)


@numba.njit(inline="always", nogil=True)
def _cell(g, n):  # pragma: no cover - compiled
    """`local_warp`'s cell of grid position ``g`` on ``n`` nodes: the lower node and the fraction, clamped."""
    g = min(max(g, 0.0), n - 1.0)
    i = min(int(g), n - 2)
    return i, g - i


@numba.njit(cache=True, nogil=True)
def block_lanes(grid, y0, ny):  # pragma: no cover - compiled
    """Per block of `ROWS` rows (the first at ``y0``, centred; ``ny`` rows): ``(n, lanes, roles, span)``: its ``n``
    lanes checked or fitted (`fit_block`'s first and last and `probe_lanes`, `block_errors_of`'s every 8th, last
    and probes), sorted, ``roles`` ``1`` where the fit probes a lane and ``2`` where the errors are checked there."""
    n_blocks = -(-ny // ROWS)
    n = np.zeros(n_blocks, dtype=np.int64)
    lanes = np.zeros((n_blocks, MAX_LANES), dtype=np.int64)
    roles = np.zeros((n_blocks, MAX_LANES), dtype=np.int64)
    span = np.zeros(n_blocks, dtype=np.int64)
    for blk in range(n_blocks):
        ya = y0 + blk * ROWS
        last = min(ROWS, ny - blk * ROWS) - 1
        span[blk] = max(last, 1)
        fit = probe_lanes(grid, ya, span[blk])
        check = np.concatenate((np.arange(0, last + 1, 8), np.array([last]), probe_lanes(grid, ya, last)))
        every = np.unique(np.concatenate((np.array([0, span[blk]]), fit, check)))
        n[blk] = every.size
        lanes[blk, : every.size] = every
        for k in range(every.size):
            roles[blk, k] = (1 if np.any(fit == every[k]) else 0) + (2 if np.any(check == every[k]) else 0)
    return n, lanes, roles, span


@numba.njit(cache=True, fastmath=True, nogil=True)
def view_table(mats, grid, v, s, centre, zt, x_step, tab):  # pragma: no cover - compiled
    """``tab[py, q, 0] + tab[py, q, 1] y``: at row ``y`` (centred) of patch row ``py``, view ``v`` sheared by ``s``,
    the position of every ``x_step``-th voxel column: its column (``q`` 0, 1) and row (``q`` 2, 3) at the first
    and the last section (``z`` 0 and ``zt``), with the patch matrices blended in x (`local_warp.row_geometry`)."""
    cx, cr, cz, cu = centre
    nx_p, ny_p = int(grid[0]), int(grid[1])
    m = np.empty(8)
    for i in range(tab.shape[3]):
        xc = i * x_step - cx
        ix, fx = _cell((xc - grid[2]) / grid[4], nx_p)
        for py in range(ny_p):
            a, b = mats[py * nx_p + ix, v], mats[py * nx_p + ix + 1, v]
            for k in range(8):
                m[k] = (1 - fx) * a[k] + fx * b[k]
            for e in range(2):
                ze = e * zt - cz
                r = m[4] * xc + m[7] + m[6] * ze
                tab[py, e, 0, i] = m[0] * xc + m[3] + cu + m[2] * ze - s * r
                tab[py, e, 1, i] = m[1] - s * m[5]
                tab[py, 2 + e, 0, i] = r + cr
                tab[py, 2 + e, 1, i] = m[5]


@numba.njit(cache=True, fastmath=True, nogil=True)
def lane_positions(tab, grid, ya, lanes, n, pos):  # pragma: no cover - compiled
    """``pos[k, q, i]``: the positions of `view_table` at lane ``lanes[k]`` (row ``ya + lanes[k]``), ``k < n``: the
    blend of the two patch rows around it (`local_warp.row_geometry`'s in y)."""
    ny_p = int(grid[1])
    for k in range(n):
        y = ya + lanes[k]
        iy, fy = _cell((y - grid[3]) / grid[5], ny_p)
        lo, hi = tab[iy], tab[iy + 1]
        for q in range(4):
            p, a0, a1, b0, b1 = pos[k, q], lo[q, 0], lo[q, 1], hi[q, 0], hi[q, 1]
            for i in range(p.size):
                p[i] = (1 - fy) * (a0[i] + a1[i] * y) + fy * (b0[i] + b1[i] * y)


@numba.njit(cache=True, fastmath=True, nogil=True)
def fit_lines(pos, lanes, roles, n, span, zt, g):  # pragma: no cover - compiled
    """``g[:, i]``: `fit_block`'s line (``geo[i, :, v]``, rounded to float32 as it stores it) from the positions
    `lane_positions` gave: through those of lane 0 and ``span``, moved by half the largest deviations from it at the
    probed lanes (``roles`` bit 1), at the first and last section."""
    n_xs = g.shape[1]
    top = 0
    while lanes[top] != span:
        top += 1
    lo, hi = np.zeros((4, n_xs)), np.zeros((4, n_xs))
    for k in range(n):
        if roles[k] & 1:
            t = lanes[k] / span
            for q in range(4):
                a, b, c, dl, dh = pos[0, q], pos[top, q], pos[k, q], lo[q], hi[q]
                for i in range(n_xs):
                    d = c[i] - (a[i] + (b[i] - a[i]) * t)
                    dl[i] = min(dl[i], d)
                    dh[i] = max(dh[i], d)
    a, b = pos[0], pos[top]
    for i in range(n_xs):
        m0, m1 = (lo[0, i] + hi[0, i]) / 2.0, (lo[1, i] + hi[1, i]) / 2.0
        m2, m3 = (lo[2, i] + hi[2, i]) / 2.0, (lo[3, i] + hi[3, i]) / 2.0
        g[0, i] = np.float32(a[0, i] + m0)
        g[1, i] = np.float32((a[1, i] - a[0, i]) / zt + (m1 - m0) / zt)
        g[2, i] = np.float32((b[0, i] - a[0, i]) / span)
        g[3, i] = np.float32(((b[1, i] - b[0, i]) - (a[1, i] - a[0, i])) / zt / span)
        g[4, i] = np.float32(a[2, i] + m2)
        g[5, i] = np.float32((a[3, i] - a[2, i]) / zt + (m3 - m2) / zt)
        g[6, i] = np.float32((b[2, i] - a[2, i]) / span - 1.0)
        g[7, i] = np.float32(((b[3, i] - b[2, i]) - (a[3, i] - a[2, i])) / zt / span)


@numba.njit(cache=True, fastmath=True, nogil=True)
def line_errors(pos, lanes, roles, n, g, zt, last, peak):  # pragma: no cover - compiled
    """`block_errors_of` for one view's lines ``g``, per voxel column ``i`` into ``peak[0, i]`` (position: the
    fitted lines against the exact positions at the checked lanes, ``roles`` bit 2) and ``peak[1, i]``
    (extrapolation: how far the lanes' fractions leave the cells the block kernel reads), the largest so far:
    a maximum per column, which vectorises (a running maximum over the columns does not)."""
    n_xs = g.shape[1]
    top_p, top_e = peak[0], peak[1]
    for k in range(n):
        if roles[k] & 2:
            j = lanes[k]
            for e in range(2):
                z = e * zt
                pu, pr = pos[k, e], pos[k, 2 + e]
                for i in range(n_xs):
                    fu = g[0, i] + g[1, i] * z + (g[2, i] + g[3, i] * z) * j
                    fr = g[4, i] + g[5, i] * z + (1.0 + g[6, i] + g[7, i] * z) * j
                    top_p[i] = max(top_p[i], abs(pu[i] - fu), abs(pr[i] - fr))
    for e in range(2):
        z = e * zt
        for c in (0, 4):
            for j0 in range(0, last + 1, GROUP):
                for i in range(n_xs):
                    p0, d = g[c, i] + g[c + 1, i] * z, g[c + 2, i] + g[c + 3, i] * z
                    f0 = p0 + d * j0 - np.floor(p0 + d * (j0 + (GROUP - 1) / 2.0))
                    f1 = f0 + d * min(GROUP - 1, last - j0)
                    top_e[i] = max(top_e[i], -min(f0, f1), max(f0, f1) - 1.0)


@numba.njit(inline="always", fastmath=True, nogil=True)
def lines_at(g, zs, lines):  # pragma: no cover - compiled
    """``lines[:, x]`` = ``(s, A, R, B)`` of voxel column ``x`` at section ``zs``: the column ``s`` of its middle lane,
    its column drift per lane, the row of its lane 0 and its row drift, from one view's lines ``g[k, x]`` (``k < 8``:
    `fit_block`'s ``geo[x, k, v]``; `fit_lines`' ``g``). On a view's lines contiguous (``g``), a vector loop; on
    ``geo[:, :, v].T``, 8 x 61 floats apart, gathers (session 16: the error check 10.9 -> 10.0 ms)."""
    for x in range(g.shape[1]):
        a = g[2, x] + g[3, x] * zs
        lines[0, x] = g[0, x] + g[1, x] * zs + a * JM
        lines[1, x] = a
        lines[2, x] = g[4, x] + g[5, x] * zs
        lines[3, x] = g[6, x] + g[7, x] * zs


@numba.njit(inline="always", fastmath=True, nogil=True)
def _read(mid, line, at_z, i, j, x, peak, total):  # pragma: no cover - compiled
    """One step of the walk of lane ``j`` (``line`` its rows along the middle section's intervals) at voxel column
    ``i`` of section ``at_z``: ``(x, peak, total)`` with its interval and its row error's magnitude and square."""
    c = at_z[0, i] + at_z[1, i] * (j - JM)
    while x < mid.shape[1] - 2 and mid[0, x + 1] <= c:
        x += 1
    d = at_z[2, i] + at_z[3, i] * j - (line[0, x] + c * line[1, x])
    return x, max(peak, abs(d)), total + d * d


@numba.njit(cache=True, fastmath=True, nogil=True)
def slab_error_of(g, n_z, last, slab, worst, v, work):  # pragma: no cover - compiled
    """Session 16's `_slab_error_of` for view ``v`` (lines ``g``): per slab of ``slab`` sections, at its first and
    last section, lanes 0 and ``last``, each checked voxel column, the row its lane reads from the rows resampled at
    the slab's middle section (interpolated at its column, found by `local_errors.at_column`'s walk) against its
    own; the largest into ``worst[0, v]``, the sum of squares added to ``worst[1, v]``; ``work`` ``(16, n_xs)``: scratch.

    The rows along each interval of the middle section's columns are a line in the column (``k0 + c k1``, made once
    per slab and lane, where `at_column` divided per column and lane); the four walks (two sections, two lanes) go
    side by side, each with its own sums. On BBa at bin 1 the walks take 0.7 of this function's 1.7 ms (the rows
    read at a column with no walk, 1.0): a walk advances one interval a column for 97 % of the columns. Tried and
    slower, for the whole check: the intervals guessed as the columns shifted by one offset, checked, and read in
    vector loops (3.5 ms against 2.5: 64 columns a walk, the vector loops' set-up outweighs them); a first step
    without a branch (3.0 against 2.6)."""
    n_xs = g.shape[1]
    mid, lo, hi = work[0:4], work[4:8], work[8:12]  # the lines at the middle, first and last section
    first, other = work[12:14], work[14:16]  # lanes 0 and ``last``: k0 and k1 per interval
    p0 = p1 = p2 = p3 = worst[0, v]
    t0, t1, t2, t3 = 0.0, 0.0, 0.0, 0.0
    for z0 in range(0, n_z, slab):
        z1 = min(n_z, z0 + slab)
        lines_at(g, (z0 + z1 - 1) / 2.0, mid)
        lines_at(g, z0, lo)
        lines_at(g, z1 - 1, hi)
        for x in range(n_xs - 1):
            ds = mid[0, x + 1] - mid[0, x]
            w = 1.0 / ds if ds != 0.0 else 0.0
            first[1, x] = (mid[2, x + 1] - mid[2, x]) * w
            first[0, x] = mid[2, x] - mid[0, x] * first[1, x]
            other[1, x] = ((mid[2, x + 1] - mid[2, x]) + (mid[3, x + 1] - mid[3, x]) * last) * w
            other[0, x] = mid[2, x] + mid[3, x] * last - mid[0, x] * other[1, x]
        x0, x1, x2, x3 = 0, 0, 0, 0
        for i in range(n_xs):  # the column each lane reads, increasing with i
            x0, p0, t0 = _read(mid, first, lo, i, 0, x0, p0, t0)
            x1, p1, t1 = _read(mid, other, lo, i, last, x1, p1, t1)
            x2, p2, t2 = _read(mid, first, hi, i, 0, x2, p2, t2)
            x3, p3, t3 = _read(mid, other, hi, i, last, x3, p3, t3)
    worst[0, v] = max(p0, p1, p2, p3)
    worst[1, v] += (t0 + t1) + (t2 + t3)


@numba.njit(cache=True, fastmath=True, nogil=True)
def check_blocks(mats, grid, shear, n_z, nx, ny, x_step, slab, b0, b1):  # pragma: no cover - compiled
    """``(position, extrapolation, slab errors)`` of session 16's `local_errors._errors` over the blocks ``b0 .. b1``
    (module docstring), view by view: each view's table, then its lines, errors and slab errors block by block."""
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    zt = max(n_z - 1, 1)
    n_v = mats.shape[1]
    n_xs = (nx - 1) // x_step + 1
    n, lanes, roles, span = block_lanes(grid, -centre[1], ny)
    tab = np.empty((int(grid[1]), 4, 2, n_xs))
    pos = np.empty((MAX_LANES, 4, n_xs))
    g = np.empty((8, n_xs))
    peak, worst, work = np.zeros((2, n_xs)), np.zeros((2, n_v)), np.empty((16, n_xs))
    for v in range(n_v):
        view_table(mats, grid, v, shear[v], centre, zt, x_step, tab)
        for blk in range(b0, b1):
            last = min(ROWS, ny - blk * ROWS) - 1
            lane_positions(tab, grid, blk * ROWS - centre[1], lanes[blk], n[blk], pos)
            fit_lines(pos, lanes[blk], roles[blk], n[blk], span[blk], zt, g)
            line_errors(pos, lanes[blk], roles[blk], n[blk], g, zt, last, peak)
            slab_error_of(g, n_z, last, slab, worst, v, work)
    return peak[0].max(), peak[1].max(), worst


@numba.njit(parallel=True, cache=True, nogil=True)
def check_blocks_parts(mats, grid, shear, n_z, nx, ny, x_step, slab, n_parts):  # pragma: no cover - compiled
    """`check_blocks` over all blocks, in ``n_parts`` runs of them side by side on numba's threads, the parts' figures
    combined (largest position and extrapolation errors, largest and summed slab errors per view). On the threads that
    run the kernels: a thread of Python's beside them waited for the core that numba's spinning thread held (1.8-2.0 ms
    against 3.7 on two threads, session 20)."""
    n_blocks = -(-ny // ROWS)
    n_v = mats.shape[1]
    figures = np.zeros((n_parts, 2))
    worst = np.zeros((n_parts, 2, n_v))
    for p in numba.prange(n_parts):
        pos, ext, w = check_blocks(mats, grid, shear, n_z, nx, ny, x_step, slab, p * n_blocks // n_parts,
                                   (p + 1) * n_blocks // n_parts)
        figures[p, 0], figures[p, 1] = pos, ext
        worst[p] = w
    out = np.zeros((2, n_v))
    for p in range(n_parts):
        for v in range(n_v):
            out[0, v] = max(out[0, v], worst[p, 0, v])
            out[1, v] += worst[p, 1, v]
    return figures[:, 0].max(), figures[:, 1].max(), out
