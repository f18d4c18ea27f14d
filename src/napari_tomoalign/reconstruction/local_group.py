"""A voxel column's sum over a group of views in the local WBP's one-row kernel (`local_rows`), emitted as LLVM IR.

Per voxel column and section, `local_rows` adds `VIEW_GROUP` views to the block's 64 rows: per view and group of
`GROUP` lanes, two resampled columns ``lo``, ``hi`` (a cell ``o`` and the next column) and each lane's fraction
``f + a j`` between them (``j`` the lane within the group), as ``acc += lo`` and ``acc2 += (f + a j) (hi - lo)``.

- `local_cells_8` works out the group's cells at one voxel column and section, vectorised over the 8 views (the
  column of each group's middle lane, linear in the section, clamped into the resampled columns; the first lane's
  fraction; the drift ``a``), into a small table that stays in L1 (a section of a tile's 16 columns: 3 KB).
  Session 14 made them in numba for a whole slab (`baseline_local_rows14._slab_cells`): a table of 170 KB, 2.9
  cycles a cell against 1.2 here. `local_cells_16` makes two sections' cells at once in 16-lane vectors (the
  arithmetic of one, the stores of two): 0.96-0.98x the local WBP's time in session 20's A/B runs.
- `local_add_8` sums the group into one voxel column on register-held sums: per view 8 loads of resampled rows,
  one 64-bit load of the two offsets, and one load of the view's ``f0, f1, a`` copied to each 128-bit lane
  (``vbroadcastf32x4``) then spread by three in-lane shuffles; 8 operations on the add pipes and 8 fused
  multiply-adds. In numba (session 14), the two offsets and three fractions were five loads, 13 a view on two
  load ports: 7.5 cycles a view and voxel column from L1 against 6.8 here (the add pipes' 8 operations and the
  shuffles bound it now). An empty inline assembly statement after each view (`_fence`) keeps LLVM's scheduler
  from loading the rows of all 8 views first and spilling half of them to the stack (1.2x the time).

Working the cells out in registers instead, one voxel column ahead of the sums as `bp_group.sum_group_row_64`
does for the global WBP, took 9.4 cycles a view: the splats and extractions of each view's five values from the
group's vectors cost more operations on the add pipes than the loads they save. The sums are those of session
14's numba step: the same operations in the same order, on the same cells (the volume equal to float32 rounding:
2.7e-7 of its largest value on BBa, as two compiles of the same numba code differ).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .bp_group import VIEW_GROUP, opaque

ROWS_64 = 64  # the block's rows (`local_blocks.ROWS`): four vectors
HALF = 32  # lanes of a group (`local_blocks.GROUP`): two vectors
LINE_FLOATS = 4 * VIEW_GROUP  # a voxel column's lines (`local_cells_8`): c0, c1, a0, a1 of each view
CELL_FLOATS = 48  # a voxel column's cells: each view's two offsets (int32, a 64-bit word), then its f0, f1, a, 0


def _splat(builder, vector, j, n):
    """Lane ``j`` of ``vector`` in each of ``n`` lanes."""
    return builder.shuffle_vector(vector, ir.Constant(vector.type, None),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [j] * n))


def _widen(builder, v, n):
    """An ``<8 x>`` vector repeated to ``n`` lanes."""
    if n == VIEW_GROUP:
        return v
    return builder.shuffle_vector(v, ir.Constant(v.type, None), ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                                             [k % VIEW_GROUP for k in range(n)]))


def _cells(builder, lines, consts, xx, zv, n=VIEW_GROUP):
    """The group's cells at voxel column ``xx`` and section ``zv`` (``<n x float>``: 8 views, at one section or two):
    per view, the offsets of the two groups' left cells (``<n x i32>``), their first lanes' fractions, and the
    fraction's change per lane."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8 = ir.VectorType(f32, VIEW_GROUP)
    gn, inv = ir.VectorType(f32, n), ir.VectorType(i32, n)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(gn, [gn, gn, gn]), f"llvm.fma.v{n}f32")
    row = builder.bitcast(builder.gep(lines, [builder.mul(xx, ir.Constant(i64, LINE_FLOATS))]), g8.as_pointer())
    c0, c1, a0, a1 = (_widen(builder, builder.load(builder.gep(row, [ir.Constant(i64, m)]), align=4), n)
                      for m in range(4))
    top, base, shift = (_widen(builder, c, n) for c in consts)
    a = builder.call(fma, [a1, zv, a0])
    um = builder.call(fma, [c1, zv, builder.fsub(c0, shift)])
    zero = ir.Constant(gn, [0.0] * n)
    out = []
    for side in (-1.0, 1.0):
        u = builder.call(fma, [a, ir.Constant(gn, [side * HALF / 2] * n), um])
        lo = builder.select(builder.fcmp_ordered(">", u, zero), u, zero)
        i = builder.sitofp(builder.fptosi(builder.select(builder.fcmp_ordered("<", lo, top), lo, top), inv), gn)
        f = builder.call(fma, [a, ir.Constant(gn, [-(HALF - 1) / 2] * n), builder.fsub(u, i)])
        o = builder.mul(builder.fptosi(builder.fadd(base, i), inv), ir.Constant(inv, [ROWS_64] * n))
        if side > 0:
            o = builder.add(o, ir.Constant(inv, [HALF] * n))
        out += [o, f]
    return (*out, a)


def _half(builder, v, h):
    """Lanes ``8 h .. 8 h + 8`` of a 16-lane vector."""
    return builder.shuffle_vector(v, ir.Constant(v.type, None), ir.Constant(ir.VectorType(ir.IntType(32), VIEW_GROUP),
                                                                             [8 * h + k for k in range(VIEW_GROUP)]))


def _cells_codegen(context, builder, signature, args):
    """The IR of `local_cells_8`."""
    lines, consts, table = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(3))
    xx, z, e = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (3, 4, 5))
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8 = ir.VectorType(f32, VIEW_GROUP)
    cv = builder.bitcast(consts.data, g8.as_pointer())
    top_base = [builder.load(builder.gep(cv, [ir.Constant(i64, m)]), align=4) for m in range(3)]
    zv = _splat(builder, builder.insert_element(ir.Constant(g8, None), builder.sitofp(z, f32), ir.Constant(i32, 0)),
                0, VIEW_GROUP)
    o0, f0, o1, f1, a = _cells(builder, lines.data, top_base, xx, zv)
    _store_cells(builder, table.data, e, o0, f0, o1, f1, a)
    return context.get_dummy_value()


def _store_cells(builder, data, e, o0, f0, o1, f1, a):
    """One section's cells (8-lane vectors) into the table at ``data + e`` (`local_cells_8`'s layout)."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8 = ir.VectorType(f32, VIEW_GROUP)
    at = builder.gep(data, [e])
    pairs = builder.shuffle_vector(o0, o1, ir.Constant(ir.VectorType(i32, 16), [m // 2 + 8 * (m % 2) for m in range(16)]))
    builder.store(pairs, builder.bitcast(at, pairs.type.as_pointer()), align=4)
    ff = builder.shuffle_vector(f0, f1, ir.Constant(ir.VectorType(i32, 16), list(range(16))))
    az = builder.shuffle_vector(a, ir.Constant(g8, [0.0] * VIEW_GROUP), ir.Constant(ir.VectorType(i32, 16), list(range(16))))
    quads = builder.shuffle_vector(ff, az, ir.Constant(ir.VectorType(i32, 32), [
        (j, 8 + j, 16 + j, 24 + j)[m] for j in range(VIEW_GROUP) for m in range(4)]))
    builder.store(quads, builder.bitcast(builder.gep(at, [ir.Constant(i64, 2 * VIEW_GROUP)]), quads.type.as_pointer()),
                  align=4)


def _cells16_codegen(context, builder, signature, args):
    """The IR of `local_cells_16`."""
    lines, consts, table = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(3))
    xx, z, e, e2 = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (3, 4, 5, 6))
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    g8, g16 = ir.VectorType(f32, VIEW_GROUP), ir.VectorType(f32, 16)
    cv = builder.bitcast(consts.data, g8.as_pointer())
    top_base = [builder.load(builder.gep(cv, [ir.Constant(i64, m)]), align=4) for m in range(3)]
    zf = builder.sitofp(z, f32)
    z2 = builder.insert_element(builder.insert_element(ir.Constant(g16, None), zf, ir.Constant(i32, 0)),
                                builder.fadd(zf, ir.Constant(f32, 1.0)), ir.Constant(i32, 1))
    zv = builder.shuffle_vector(z2, ir.Constant(g16, None), ir.Constant(ir.VectorType(i32, 16), [k // 8 for k in range(16)]))
    cells = _cells(builder, lines.data, top_base, xx, zv, 16)
    for h, at in enumerate((e, e2)):
        _store_cells(builder, table.data, at, *(_half(builder, c, h) for c in cells))
    return context.get_dummy_value()


@intrinsic
def local_cells_16(typingctx, lines, consts, table, xx, z, e, e2):  # pragma: no cover - compiled
    """`local_cells_8` at sections ``z`` (into ``table[e:]``) and ``z + 1`` (into ``table[e2:]``) at once, in 16-lane
    vectors."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.ndim == 1 for x in (lines, consts, table)):
        return None
    return types.void(lines, consts, table, xx, z, e, e2), _cells16_codegen


@intrinsic
def local_cells_8(typingctx, lines, consts, table, xx, z, e):  # pragma: no cover - compiled
    """The group's cells at voxel column ``xx`` and section ``z`` into ``table[e : e + CELL_FLOATS]``: per view the
    offsets of its two groups' left cells (int32, ``o0`` then ``o1``), then its ``f0, f1, a, 0``. From
    ``lines[xx * LINE_FLOATS + 8 m + j]`` (``m``: ``c0, c1, a0, a1``; `local_rows._group_lines`) and ``consts`` (``top``,
    ``base``, ``shift``, 8 each; `local_rows._pair_consts`): the drift ``a = a0 + a1 z``, the middle lane's column
    ``(c0 - shift) + c1 z`` in the pair's resampled columns, each group's middle lane's
    column ``u`` 16 lanes either side of it, its cell ``i = int(min(max(u, 0), top))``, ``o = (base + i) 64`` (+ 32
    for the second group) and ``f = u - i - 15.5 a``."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.ndim == 1 for x in (lines, consts, table)):
        return None
    return types.void(lines, consts, table, xx, z, e), _cells_codegen


def _fence(builder, values):
    """``values`` (vectors) through an empty inline assembly statement that may touch memory: each view's sums are
    made before it and the next view's rows loaded after it."""
    n = len(values)
    kind = ir.LiteralStructType([v.type for v in values])
    tied = ",".join(["=v"] * n + [str(i) for i in range(n)]) + ",~{memory}"
    out = builder.asm(ir.FunctionType(kind, [v.type for v in values]), "", tied, values, True, "fence")
    return [builder.extract_value(out, i) for i in range(n)]


def _add_codegen(fresh, n_views):
    """The IR of `local_add_8` (``fresh``: the sums start from zero, not from ``t``; ``n_views`` of the group's)."""
    return lambda context, builder, signature, args: _add_ir(context, builder, signature, args, fresh, n_views)


def _add_ir(context, builder, signature, args, fresh, n_views):
    """`_add_codegen`'s IR."""
    w, table, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(3))
    e = context.cast(builder, args[3], signature.args[3], types.int64)
    j0 = context.cast(builder, args[5], signature.args[5], types.int64)
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vec, quad = ir.VectorType(f32, 16), ir.VectorType(f32, 4)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
    at = builder.gep(table.data, [e])
    words = builder.bitcast(at, i64.as_pointer())
    t_vec = builder.bitcast(t.data, vec.as_pointer())
    acc2 = [ir.Constant(vec, [0.0] * 16) for _ in range(4)]
    acc = acc2[:] if fresh else [builder.load(builder.gep(t_vec, [ir.Constant(i64, k)]), align=64) for k in range(4)]
    lanes = [ir.Constant(vec, [float(16 * h + q) for q in range(16)]) for h in range(2)]
    words = builder.gep(words, [j0])
    quads = builder.gep(at, [builder.add(ir.Constant(i64, 2 * VIEW_GROUP), builder.mul(j0, ir.Constant(i64, 4)))])
    for j in range(n_views):
        word = builder.load(builder.gep(words, [ir.Constant(i64, j)]), align=4)
        offs = (builder.sext(builder.trunc(word, i32), i64), builder.sext(builder.trunc(builder.lshr(
            word, ir.Constant(i64, 32)), i32), i64))
        four = builder.load(builder.bitcast(builder.gep(quads, [ir.Constant(i64, 4 * j)]), quad.as_pointer()), align=4)
        lanes4 = opaque(builder, builder.shuffle_vector(four, ir.Constant(quad, None),
                                                         ir.Constant(ir.VectorType(i32, 16), [0, 1, 2, 3] * 4)))
        f0, f1, d = (builder.shuffle_vector(lanes4, ir.Constant(vec, None), ir.Constant(
            ir.VectorType(i32, 16), [4 * (q // 4) + m for q in range(16)])) for m in range(3))
        for g, f in enumerate((f0, f1)):
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


@intrinsic(prefer_literal=True)
def local_add_8(typingctx, w, table, t, e, fresh, j0, n_views):  # pragma: no cover - compiled
    """``t[k] += sum over views j0 <= j < j0 + n_views of w[o + k'] + (f + a k') (w[o + 64 + k'] - w[o + k'])`` for ``k <
    64``, the cells at ``table[e:]`` (`local_cells_8`): for ``k < 32`` view ``j``'s ``o0``, ``f0`` and ``k' = k``,
    else its ``o1``, ``f1`` and ``k' = k - 32``. ``w`` the flat resampled columns on a cache line (each offset a
    multiple of 32); ``t`` a tile's voxel column of 64 floats on a cache line. With ``fresh`` (a constant), ``=``
    instead of ``+=``: the first group of views sets the tile's sums (no zeroing, no load). ``n_views`` (a constant, at
    most `VIEW_GROUP`): the last group of a stack whose views are not a multiple of 8 adds only its own, in runs of 4,
    2 and 1 (`local_rows._add_tile`), not the padding's zero columns (61 views: 64 added, 5 % of the step)."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.ndim == 1 for x in (w, table, t)):
        return None
    if not isinstance(fresh, types.BooleanLiteral) or not isinstance(n_views, types.IntegerLiteral):
        return None
    if not 1 <= n_views.literal_value <= VIEW_GROUP or not isinstance(j0, types.Integer):
        return None
    return types.void(w, table, t, e, fresh, j0, n_views), _add_codegen(fresh.literal_value, n_views.literal_value)
