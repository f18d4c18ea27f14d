"""A section of a tile's voxel columns summed over a group of views in the local WBP's one-row kernel, the cells
worked out in registers.

`local_rows` adds, per voxel column and section, `VIEW_GROUP` views to the block's 64 rows: per view and group of
`GROUP` lanes, two resampled columns ``lo``, ``hi`` (a cell ``o`` and the next column) and each lane's fraction
``f + a j`` between them (``j`` the lane within the group), as ``acc += lo`` and ``acc2 += (f + a j) (hi - lo)``.
Session 14's step (`baseline_local_rows14.py`) first wrote every cell of a slab into a table
(`_slab_cells`: two offsets and three fractions per view, voxel column and section, 22 ms of the 137 of the kernel
at bin 1), then loaded them back per view beside the 8 vectors of resampled rows: 13 loads a view on two load
ports, ~7.5 cycles a view and voxel column from L1 where the arithmetic needs 4.

Here, emitted as LLVM IR as `bp_group.sum_group_row_64` does for the global WBP, a section's cells are worked out
in registers, one voxel column ahead of the sums and vectorised over the group's 8 views, from the views' lines at
that voxel column (`local_rows._tile_lines`: the column of the groups' middle lanes and the column drift, each
linear in the section): the only loads left are the resampled rows, the tile's sums (once per group) and the four
vectors of the lines per voxel column. The sums are those of the numba step: the same operations in the same
order, on the same cells.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .bp_group import VIEW_GROUP

ROWS_64 = 64  # the block's rows (`local_blocks.ROWS`), four vectors
HALF = 32  # lanes of a group (`local_blocks.GROUP`), two vectors
LINE_FLOATS = 4 * VIEW_GROUP  # a voxel column's lines in `sum_local_row_64`'s table: c0, c1, a0, a1 of each view


def _splat(builder, vector, j, n):
    """Lane ``j`` of ``vector`` in each of ``n`` lanes."""
    return builder.shuffle_vector(vector, ir.Constant(vector.type, None),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [j] * n))


MODE = __import__("os").environ.get("LG_MODE", "reg")


def _splat_one(builder, scalar, n):
    vt = ir.VectorType(scalar.type, n)
    one = builder.insert_element(ir.Constant(vt, None), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, None), ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


def _cells(builder, lines, consts, xx, zv):
    """The group's cells at voxel column ``xx`` and section ``zv`` (``<8 x float>`` copies): per view, the offsets of
    the two groups' left cells (``<8 x i32>``), their first lanes' fractions and the fraction's change per lane, as
    `baseline_local_rows14._slab_cells` made them."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8, i8v = ir.VectorType(f32, VIEW_GROUP), ir.VectorType(i32, VIEW_GROUP)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(g8, [g8, g8, g8]), "llvm.fma.v8f32")
    row = builder.bitcast(builder.gep(lines, [builder.mul(xx, ir.Constant(i64, LINE_FLOATS))]), g8.as_pointer())
    c0, c1, a0, a1 = (builder.load(builder.gep(row, [ir.Constant(i64, m)]), align=4) for m in range(4))
    top, base = consts
    a = builder.call(fma, [a1, zv, a0])
    um = builder.call(fma, [c1, zv, c0])
    zero = ir.Constant(g8, [0.0] * VIEW_GROUP)
    out = []
    for side in (-1.0, 1.0):
        u = builder.call(fma, [a, ir.Constant(g8, [side * HALF / 2] * VIEW_GROUP), um])
        lo = builder.select(builder.fcmp_ordered(">", u, zero), u, zero)
        i = builder.sitofp(builder.fptosi(builder.select(builder.fcmp_ordered("<", lo, top), lo, top), i8v), g8)
        f = builder.call(fma, [a, ir.Constant(g8, [-(HALF - 1) / 2] * VIEW_GROUP), builder.fsub(u, i)])
        o = builder.mul(builder.fptosi(builder.fadd(base, i), i8v), ir.Constant(i8v, [ROWS_64] * VIEW_GROUP))
        if side > 0:
            o = builder.add(o, ir.Constant(i8v, [HALF] * VIEW_GROUP))
        out += [o, f]
    return (*out, a)


def _add_views(builder, w, t_vec, cells):
    """The IR of one voxel column's sum over the group (``t_vec``: its 4 vectors of sums) from its ``cells``."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vec = ir.VectorType(f32, 16)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
    o0, f0, o1, f1, a = cells
    if MODE != "reg":
        slots = cgutils.alloca_once(builder, ir.ArrayType(ir.VectorType(f32, VIEW_GROUP), 5))
        slot = [builder.bitcast(builder.gep(slots, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), m)]),
                                ir.VectorType(f32, VIEW_GROUP).as_pointer()) for m in range(5)]
        for m, v in enumerate((o0, f0, o1, f1, a)):
            builder.store(builder.bitcast(v, ir.VectorType(f32, VIEW_GROUP)), slot[m])
        flat = [builder.bitcast(sl, f32.as_pointer()) for sl in slot]
    acc = [builder.load(builder.gep(t_vec, [ir.Constant(i64, k)]), align=64) for k in range(4)]
    acc2 = [ir.Constant(vec, [0.0] * 16) for _ in range(4)]
    lanes = [ir.Constant(vec, [float(16 * h + e) for e in range(16)]) for h in range(2)]
    for j in range(VIEW_GROUP):
        jj = ir.Constant(i64, j)
        if MODE in ("mem", "membc"):
            d = _splat_one(builder, builder.load(builder.gep(flat[4], [jj])), 16)
        else:
            d = _splat(builder, a, j, 16)
        for g, (offs, fr) in enumerate(((o0, f0), (o1, f1))):
            if MODE in ("mem", "memoff"):
                o = builder.sext(builder.load(builder.gep(builder.bitcast(flat[2 * g], ir.IntType(32).as_pointer()), [jj])), i64)
            else:
                o = builder.sext(builder.extract_element(offs, ir.Constant(ir.IntType(32), j)), i64)
            if MODE in ("mem", "membc"):
                f = _splat_one(builder, builder.load(builder.gep(flat[2 * g + 1], [jj])), 16)
            else:
                f = _splat(builder, fr, j, 16)
            cells_at = builder.bitcast(builder.gep(w, [o]), vec.as_pointer())
            for h in range(2):
                k = 2 * g + h
                lo = builder.load(builder.gep(cells_at, [ir.Constant(i64, h)]), align=64)
                hi = builder.load(builder.gep(cells_at, [ir.Constant(i64, ROWS_64 // 16 + h)]), align=64)
                acc[k] = builder.fadd(acc[k], lo)
                acc2[k] = builder.call(fma, [builder.call(fma, [d, lanes[h], f]), builder.fsub(hi, lo), acc2[k]])
        held = _fence(builder, acc + acc2)
        acc, acc2 = held[:4], held[4:]
    for k in range(4):
        builder.store(builder.fadd(acc[k], acc2[k]), builder.gep(t_vec, [ir.Constant(i64, k)]), align=64)


def _fence(builder, values):
    """``values`` (vectors) through an empty inline assembly statement that may touch memory: each view's sums are
    made before it and the next view's rows loaded after it. Without it LLVM's scheduler loaded the rows of all 8
    views first, delayed the sums and spilled half the rows to the stack (1.2x the time of the table kernel)."""
    n = len(values)
    kind = ir.LiteralStructType([v.type for v in values])
    tied = ",".join(["=v"] * n + [str(i) for i in range(n)]) + ",~{memory}"
    out = builder.asm(ir.FunctionType(kind, [v.type for v in values]), "", tied, values, True, "fence")
    return [builder.extract_value(out, i) for i in range(n)]


def _row_codegen(context, builder, signature, args):
    """The IR of `sum_local_row_64`: software-pipelined as `bp_group._sum_row_codegen`, column ``xx + 1``'s cells
    worked out while column ``xx``'s views are summed, held in registers (phi nodes)."""
    w, lines, consts, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(4))
    nx, z = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (4, 5))
    f32, i64 = ir.FloatType(), ir.IntType(64)
    g8, vec = ir.VectorType(f32, VIEW_GROUP), ir.VectorType(f32, 16)
    cv = builder.bitcast(consts.data, g8.as_pointer())
    top_base = [builder.load(builder.gep(cv, [ir.Constant(i64, m)]), align=4) for m in range(2)]
    zv = _splat(builder, builder.insert_element(ir.Constant(g8, None), builder.sitofp(z, f32),
                                                ir.Constant(ir.IntType(32), 0)), 0, VIEW_GROUP)
    t_vec = builder.bitcast(t.data, vec.as_pointer())

    def cells(xx):
        return _cells(builder, lines.data, top_base, xx, zv)

    first = cells(ir.Constant(i64, 0))
    pre, body, after = builder.basic_block, builder.append_basic_block("row"), builder.append_basic_block("done")
    builder.cbranch(builder.icmp_signed(">", nx, ir.Constant(i64, 0)), body, after)
    builder.position_at_end(body)
    xx = builder.phi(i64)
    held = [builder.phi(v.type) for v in first]
    xx.add_incoming(ir.Constant(i64, 0), pre)
    for phi, value in zip(held, first, strict=True):
        phi.add_incoming(value, pre)
    following = builder.add(xx, ir.Constant(i64, 1))
    ahead = cells(builder.select(builder.icmp_signed("<", following, nx), following, xx))  # in the table's bounds
    _add_views(builder, w.data, builder.gep(t_vec, [builder.mul(xx, ir.Constant(i64, ROWS_64 // 16))]), held)
    end = builder.basic_block
    xx.add_incoming(following, end)
    for phi, value in zip(held, ahead, strict=True):
        phi.add_incoming(value, end)
    builder.cbranch(builder.icmp_signed("<", following, nx), body, after)
    builder.position_at_end(after)
    return context.get_dummy_value()


@intrinsic
def sum_local_row_64(typingctx, w, lines, consts, t, nx, z):  # pragma: no cover - compiled
    """``t[xx, k] += sum over views j < VIEW_GROUP of w[o + k'] + (f + a k') (w[o + 64 + k'] - w[o + k'])`` for the
    voxel columns ``xx < nx`` at section ``z``, ``k < 64``: for the lanes ``k < 32`` ``o``, ``f`` those of the first
    group's cell, ``k' = k``, for the others the second's, ``k' = k - 32``. From ``lines[xx * 32 + 8 m + j]`` (``m``:
    ``c0, c1, a0, a1``; `local_rows._tile_lines`) and ``consts`` (``top``, ``base``, 8 each): ``a = a0 + a1 z``, the
    middle lane's column ``c0 + c1 z``, each group's middle lane's column ``u`` 16 lanes either side of it, its
    cell ``i = int(min(max(u, 0), top))``, ``o = (base + i) 64`` (+ 32 for the second group) and ``f = u - i - 15.5 a``.
    ``w`` the flat resampled columns on a cache line; ``t`` a tile's section ``(X_TILE, 64)`` on a cache line."""
    arrays = (w, lines, consts, t)
    if not all(isinstance(a, types.Array) and a.dtype == types.float32 for a in arrays):
        return None
    if not (w.ndim == lines.ndim == consts.ndim == 1 and t.ndim == 2 and t.layout == "C"):
        return None
    return types.void(w, lines, consts, t, nx, z), _row_codegen


CELL_FLOATS = 40  # a voxel column's cells in the table: the offsets (o0, o1 of each view: 8 pairs), f0, f1, a (8 each)


def _cells_store_codegen(context, builder, signature, args):
    """The IR of `local_cells_8`."""
    lines, consts, table = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(3))
    xx, z, e = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (3, 4, 5))
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8 = ir.VectorType(f32, VIEW_GROUP)
    cv = builder.bitcast(consts.data, g8.as_pointer())
    top_base = [builder.load(builder.gep(cv, [ir.Constant(i64, m)]), align=4) for m in range(2)]
    zv = _splat(builder, builder.insert_element(ir.Constant(g8, None), builder.sitofp(z, f32),
                                                ir.Constant(i32, 0)), 0, VIEW_GROUP)
    o0, f0, o1, f1, a = _cells(builder, lines.data, top_base, xx, zv)
    pairs = builder.shuffle_vector(o0, o1, ir.Constant(ir.VectorType(i32, 16), [m // 2 + 8 * (m % 2) for m in range(16)]))
    at = builder.gep(table.data, [e])
    builder.store(pairs, builder.bitcast(at, ir.VectorType(i32, 16).as_pointer()), align=4)
    for m, v in enumerate((f0, f1, a)):
        builder.store(v, builder.bitcast(builder.gep(at, [ir.Constant(i64, 16 + 8 * m)]), g8.as_pointer()), align=4)
    return context.get_dummy_value()


@intrinsic
def local_cells_8(typingctx, lines, consts, table, xx, z, e):  # pragma: no cover - compiled
    """The group's cells at voxel column ``xx``, section ``z`` (as `sum_local_row_64` works them out) into
    ``table[e : e + CELL_FLOATS]``: the 8 views' offset pairs (int32 bits), then f0, f1 and a."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.ndim == 1 for x in (lines, consts, table)):
        return None
    return types.void(lines, consts, table, xx, z, e), _cells_store_codegen


def _add_table_codegen(context, builder, signature, args):
    """The IR of `local_add_8`."""
    w, table, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(3))
    e = context.cast(builder, args[3], signature.args[3], types.int64)
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vec = ir.VectorType(f32, 16)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
    at = builder.gep(table.data, [e])
    words = builder.bitcast(at, i64.as_pointer())
    t_vec = builder.bitcast(t.data, vec.as_pointer())
    acc = [builder.load(builder.gep(t_vec, [ir.Constant(i64, k)]), align=64) for k in range(4)]
    acc2 = [ir.Constant(vec, [0.0] * 16) for _ in range(4)]
    lanes = [ir.Constant(vec, [float(16 * h + q) for q in range(16)]) for h in range(2)]
    for j in range(VIEW_GROUP):
        word = builder.load(builder.gep(words, [ir.Constant(i64, j)]), align=4)
        offs = (builder.sext(builder.trunc(word, ir.IntType(32)), i64),
                builder.sext(builder.trunc(builder.lshr(word, ir.Constant(i64, 32)), ir.IntType(32)), i64))
        d = _splat_one(builder, builder.load(builder.gep(at, [ir.Constant(i64, 32 + j)]), align=4), 16)
        for g in range(2):
            f = _splat_one(builder, builder.load(builder.gep(at, [ir.Constant(i64, 16 + 8 * g + j)]), align=4), 16)
            cells_at = builder.bitcast(builder.gep(w.data, [offs[g]]), vec.as_pointer())
            for h in range(2):
                k = 2 * g + h
                lo = builder.load(builder.gep(cells_at, [ir.Constant(i64, h)]), align=64)
                hi = builder.load(builder.gep(cells_at, [ir.Constant(i64, ROWS_64 // 16 + h)]), align=64)
                acc[k] = builder.fadd(acc[k], lo)
                acc2[k] = builder.call(fma, [builder.call(fma, [d, lanes[h], f]), builder.fsub(hi, lo), acc2[k]])
        held = _fence(builder, acc + acc2)
        acc, acc2 = held[:4], held[4:]
    for k in range(4):
        builder.store(builder.fadd(acc[k], acc2[k]), builder.gep(t_vec, [ir.Constant(i64, k)]), align=64)
    return context.get_dummy_value()


@intrinsic
def local_add_8(typingctx, w, table, t, e):  # pragma: no cover - compiled
    """One voxel column's 64 rows ``t`` += the group's views from the cells at ``table[e:]`` (`local_cells_8`)."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.ndim == 1 for x in (w, table, t)):
        return None
    return types.void(w, table, t, e), _add_table_codegen
