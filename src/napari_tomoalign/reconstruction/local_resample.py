"""The one-row kernel's resampling (`local_rows`, step 1): each block's lines fitted at every few voxel columns
(`fit_sampled`), the rows each column of a view is resampled along at a slab's middle section (`column_rows`,
`chunk_rows`), and the columns resampled (`resample_columns`)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .bp_kernels import CONTRACT, VIEW_GROUP
from .local_blocks import GROUP, N_GROUPS, PAD_U, ROWS, probe_lanes
from .local_check import fit_lines, lane_positions, lines_at, view_table
from .local_errors import JM

PREFETCH = 8  # columns ahead whose rows `resample_columns` asks for (a column is 2.5 KB on from the last)
FIT_X_STEP = 4  # `fit_sampled` fits every 4th voxel column
assert N_GROUPS * GROUP == ROWS and GROUP % 16 == 0  # what `resample_column` is written for: two groups, 16-lane vectors


@intrinsic
def prefetch(typingctx, arr, index):  # pragma: no cover - compiled
    """Ask for the cache line of ``arr.flat[index]`` (LLVM's ``prefetch``, for reading, kept in all caches): the
    filtered views' columns that `resample_columns` reads next come from L3, each from a page of its own."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


def _column_ir(context, builder, signature, args):
    """The IR of `resample_column`."""
    q1, w = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 6))
    a0, a1, k = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 2, 7))
    f0, f1, b = (context.cast(builder, args[i], signature.args[i], types.float32) for i in (3, 4, 5))
    i32, i64 = ir.IntType(32), ir.IntType(64)
    vec = ir.VectorType(ir.FloatType(), 16)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")

    def splat(x):
        one = builder.insert_element(ir.Constant(vec, None), x, ir.Constant(i32, 0))
        return builder.shuffle_vector(one, ir.Constant(vec, None), ir.Constant(ir.VectorType(i32, 16), [0] * 16))

    def at(base, m):
        return builder.bitcast(builder.gep(base, [ir.Constant(i64, m)]), vec.as_pointer())

    bv, out = splat(b), builder.gep(w.data, [builder.mul(k, ir.Constant(i64, ROWS))])
    for g, (a, f) in enumerate(((a0, f0), (a1, f1))):
        fv, first = splat(f), builder.gep(q1.data, [a])
        for h in range(GROUP // 16):
            lo, hi = builder.load(at(first, 16 * h), align=4), builder.load(at(first, 16 * h + 1), align=4)
            frac = builder.call(fma, [bv, ir.Constant(vec, [float(16 * h + m) for m in range(16)]), fv])
            builder.store(builder.call(fma, [frac, builder.fsub(hi, lo), lo]), at(out, GROUP * g + 16 * h), align=4)
    return context.get_dummy_value()


@intrinsic
def resample_column(typingctx, q1, a0, a1, f0, f1, b, w, k):  # pragma: no cover - compiled
    """``w[k, GROUP g + j] = t + (f_g + b j) (q1[a_g + j + 1] - t)``, ``t = q1[a_g + j]``, for the two groups ``g`` of
    `GROUP` lanes (``j < GROUP``): one column of `resample_columns`, in 16-lane vectors. Numba's loop over the lanes
    checked per column that ``w`` and ``q1`` do not overlap and kept a scalar copy of itself for when they did: 7.3 ns
    a column from L2 against 6.1 here (`fma` for numba's contracted ``a + b c``: the volume equal to float32 rounding)."""
    if not (isinstance(q1, types.Array) and q1.ndim == 1 and isinstance(w, types.Array) and w.ndim == 2
            and q1.dtype == types.float32 and w.dtype == types.float32 and w.layout == "C"):
        return None
    if not all(isinstance(x, types.Integer) for x in (a0, a1, k)):
        return None
    return types.void(q1, a0, a1, f0, f1, b, w, k), _column_ir


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def column_rows(lines, n_rs, r_off, out, c_first, c_stop):  # pragma: no cover - compiled
    """``out[:, c]`` for the columns ``c_first <= c < c_stop`` of a view: the rows the resampled column reads (`local_rows`,
    step 1), from the lines of a slab's middle section: per group of `GROUP` lanes the row of the
    cell of its middle lane, the fraction of its first lane there, and the change of the row per lane. ``lines`` in
    rows ``r_off`` on from those of the filtered views' ``n_rs`` rows (a band's first row), as whole numbers: the
    cells and fractions are those the same lines give in the whole views, to the last bit. ``lines[5]``: scratch."""
    bot_r = np.float32(r_off)
    top_r = np.float32(r_off + n_rs - ROWS - 2)
    n_x = lines.shape[1]
    for x in range(n_x - 1):  # each interval's reciprocal width, in a vector loop: no division per column
        d = lines[0, x + 1] - lines[0, x]
        lines[5, x] = 1.0 / d if d != 0.0 else 0.0
    x = 0
    for c in range(max(0, c_first), min(out.shape[1], c_stop)):
        cf = np.float32(c)
        while x < n_x - 2 and lines[0, x + 1] <= cf:  # `local_errors.at_column`'s walk
            x += 1
        t = (cf - lines[0, x]) * lines[5, x]
        r = np.float32(lines[2, x] + t * (lines[2, x + 1] - lines[2, x]))
        b = np.float32(lines[3, x] + t * (lines[3, x + 1] - lines[3, x]))
        for k in range(N_GROUPS):
            ir = np.float32(int(min(max(r + b * np.float32(GROUP * k + (GROUP - 1) / 2), bot_r), top_r)))
            out[2 * k, c] = ir + np.float32(GROUP * k) - bot_r
            out[2 * k + 1, c] = r + b * np.float32(GROUP * k) - ir
        out[2 * N_GROUPS, c] = b


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def resample_columns(q1, v, rows, c_lo, n_c, shape, w):  # pragma: no cover - compiled
    """``w[k]`` = column ``c_lo + k`` (``k < n_c``) of the resampled view ``v`` (`local_rows`, step 1): each
    group of lanes linearly between two rows (`column_rows`, `resample_column`); zero beyond the view."""
    n_us, n_rs = shape
    base = v * n_us * n_rs
    for k in range(n_c):
        c = c_lo + k
        if c < PAD_U or c > n_us - 1 - PAD_U:
            w[k, :] = 0.0
            continue
        at = base + c * n_rs
        ahead = numba.uint64(at + PREFETCH * n_rs + np.int64(rows[0, c]))  # the rows of a later column
        for k_line in range(ROWS // 16 + 1):
            prefetch(q1, ahead + numba.uint64(16 * k_line))  # type: ignore[call-arg]  # typingctx is numba's
        resample_column(q1, at + np.int64(rows[0, c]), at + np.int64(rows[2, c]), rows[1, c], rows[3, c],  # type: ignore[call-arg]
                        rows[2 * N_GROUPS, c], w, k)




@numba.njit(cache=True, fastmath=True, nogil=True)
def view_tables(mats, grid, shear, centre, n_z, n_x):  # pragma: no cover - compiled
    """``(n_v, patch rows, 4, 2, n_h)``: `local_check.view_table` of each view (sheared by ``shear``) at every
    `FIT_X_STEP`-th voxel column (``n_h`` of them, at least 2), made once per call for every block's `fit_sampled`."""
    n_v = mats.shape[1]
    n_h = (n_x - 1) // FIT_X_STEP + 1
    tabs = np.empty((n_v, int(grid[1]), 4, 2, max(n_h, 2)))
    for v in range(n_v):
        view_table(mats, grid, v, shear[v], centre, max(n_z - 1, 1), FIT_X_STEP, tabs[v, :, :, :, :n_h])
        if n_h == 1:
            tabs[v, :, :, :, 1] = tabs[v, :, :, :, 0]
    return tabs


@numba.njit(cache=True, fastmath=True, nogil=True)
def fit_sampled(tabs, grid, ya, last, n_z, n_x, pads):  # pragma: no cover - compiled
    """``(n_v, 8, n_x)``: each view's lines (`local_blocks.fit_block`'s ``geo[x, :, v]``, each view's contiguous) along the
    lanes of a block (rows ``ya .. ya + last``, centred) for all ``n_x`` voxel columns, plus ``pads`` (column, row):
    fitted at every `FIT_X_STEP`-th one from the views' tables (`view_tables`; `local_check.fit_lines`, equal to
    `fit_block`'s to float32 rounding) and interpolated between them. The lines are smooth in x (quadratic between
    patch centres, where their slope turns by the patches' difference in scale, about 1e-3 per column on BBa: 1e-3 px
    off at a turn); `fit_block` at every column was 8 % of the kernel; at every 4th it takes 0.56 ms a block on BBa at
    bin 1, this 0.30 ms with the interpolation to every column (the tables 0.25 ms once per call)."""
    n_v, n_h = tabs.shape[0], (n_x - 1) // FIT_X_STEP + 1
    span = max(last, 1)
    probes = probe_lanes(grid, ya, span)
    lanes = np.unique(np.concatenate((np.array([0, span]), probes)))
    roles = np.zeros(lanes.size, dtype=np.int64)
    for k in range(lanes.size):
        roles[k] = 1 if np.any(probes == lanes[k]) else 0
    pos = np.empty((lanes.size, 4, n_h))
    g = np.empty((8, max(n_h, 2)))
    at, frac = np.empty(n_x, dtype=np.int64), np.empty(n_x, dtype=np.float32)
    for x in range(n_x):
        at[x] = min(x // FIT_X_STEP, max(n_h, 2) - 2)
        frac[x] = np.float32((x - FIT_X_STEP * at[x]) / FIT_X_STEP)
    out = np.empty((n_v, 8, n_x), dtype=np.float32)
    for v in range(n_v):
        lane_positions(tabs[v, :, :, :, :n_h], grid, ya, lanes, lanes.size, pos)
        fit_lines(pos, lanes, roles, lanes.size, span, max(n_z - 1, 1), g[:, :n_h])
        if n_h == 1:
            g[:, 1] = g[:, 0]
        for k in range(8):
            pad = np.float32(pads[0] if k == 0 else pads[1] if k == 4 else 0.0)
            a, o = g[k].astype(np.float32), out[v, k]
            for x in range(n_x):
                i = at[x]
                o[x] = a[i] + frac[x] * (a[i + 1] - a[i]) + pad
    return out


@numba.njit(inline="always", fastmath=True, nogil=True)
def _read_columns(lines, half, drift):  # pragma: no cover - compiled
    """``(first, stop)``: the columns of a view that a slab reads (`local_rows._windows`, `resample_columns`), from its
    lines at the middle section (`local_errors.lines_at`): the middle lanes' columns there, ``half`` sections either
    way (their change per section ``slope``), ``drift`` more for the groups' middle lanes, one more each way for
    rounding."""
    lo, hi = np.inf, -np.inf
    for x in range(lines.shape[1]):
        s, d = lines[0, x], abs(lines[4, x]) * half
        lo, hi = min(lo, s - d), max(hi, s + d)
    return int(np.floor(lo - drift)) - 1, int(np.floor(hi + drift)) + 3


@numba.njit(inline="always", nogil=True)
def chunk_rows(geo, g_slab, first, zc, zc1, n_rs, r_off, drift, lines, rows):  # pragma: no cover - compiled
    """``rows[first[v] + k]`` (`column_rows`) for the ``k``-th slab of view ``v`` in the chunk of sections ``zc .. zc1``,
    from the lines at its middle section (``geo``: the block's lines, `fit_sampled`'s), in the columns
    the slab reads (`_read_columns`, ``drift``: the groups' middle lanes' farthest from the block's, per view); the view's
    slab is its group's, ``g_slab[v // VIEW_GROUP]``. Session 16 made every column of every slab, from the lines
    gathered 8 x 61 floats apart: 16.5 ms of the local WBP on BBa at bin 1."""
    for v in range(geo.shape[0]):
        sl = g_slab[v // VIEW_GROUP]
        g = geo[v]
        for z0 in range(zc, zc1, sl):
            z1 = min(zc1, z0 + sl)
            lines_at(g, (z0 + z1 - 1) / 2.0, lines)
            for x in range(g.shape[1]):  # the middle lane's column's change per section
                lines[4, x] = g[1, x] + g[3, x] * JM
            c0, c1 = _read_columns(lines, (z1 - 1 - z0) / 2.0, drift[v])
            column_rows(lines, n_rs, r_off, rows[first[v] + (z0 - zc) // sl], c0, c1)
