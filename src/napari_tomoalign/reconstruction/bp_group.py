"""One voxel column's sum over a group of views, with no load but the filtered rows' (`bp_kernels._bp_tile`).

The back-projection's inner step adds `VIEW_GROUP` views to the block's rows of one voxel column: per view,
two vectors of ``q`` per 16 rows and two fused multiply-adds. One core does two 512-bit FMAs and two loads
a cycle (AMD Zen 5, as Intel's AVX-512 cores), so the ``q`` loads alone fill the load ports as the FMAs fill
theirs, and every other load costs a cycle in two. Written in numba, the step also loaded each view's
offset (a scalar) and both weights (two broadcasts from memory): 11 loads per 8 FMAs, and the step ran at
0.7x the ports' rate (`bench_wbp_limit.py`'s view loop). Here, emitted as LLVM IR:

- the group's offsets are 32-bit, two to a 64-bit load, split by a shift (integer pipes);
- its weights ``f`` (of the right cell) are loaded four at a time, each four copied to every 128-bit lane of a
  vector by the load itself (``vbroadcastf32x4``), then spread by an in-lane shuffle (``vshufps``, one per
  view); the left cell's weight ``1 - f`` is a subtraction on the add pipes. An empty inline assembly
  statement keeps LLVM from turning the shuffles back into one broadcast load per weight;
- a view off the detector points at a zero cell (two columns of zeros after the filtered rows), so the
  weights need no mask.

So a group of 8 views over 64 rows loads 64 vectors of ``q``, 4 of the tile, 2 of weights and 4 words of
offsets, against 64 + 4 + 16 + 8 before. The sums are those of the numba loop: the same FMAs in the same
order (``acc += (1 - f) a`` from the tile, ``acc2 += f b`` from zero, then ``acc + acc2``).

`sum_group_row_64` (today's kernel) does the same for a section's columns of a tile, each column's cells and weights
worked out in registers (float64, as the geometry is, vectorised over the group's views) while the column before is
summed: no load at all but the rows' and the tile's; `sum_group_64` takes them from a table the caller made (session
13's kernel, a benchmark baseline).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

VIEW_GROUP = 8  # views summed together into a tile of columns; views are padded to a multiple of it


def opaque(builder, value):
    """``value`` through an empty inline assembly statement: LLVM can no longer see where it came from."""
    return builder.asm(ir.FunctionType(value.type, [value.type]), "", "=v,0", [value], False, "opaque")


def _add_group(builder, q_data, offsets, weights, t_vec, nb, fresh=False):
    """The IR of one voxel column's sum over the group: ``t_vec`` (``nb // 16`` vectors) ``+=`` view ``j``'s cells at
    ``q_data + offsets[j]`` weighted by ``1 - f`` and ``f``, ``f`` lane ``j % 4`` of ``weights[j // 4]`` (four weights
    copied to every 128-bit lane); ``=`` if ``fresh`` (the sums start from zero, not from ``t_vec``)."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vec = ir.VectorType(f32, 16)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
    n = nb // 16
    acc2 = [ir.Constant(vec, [0.0] * 16) for _ in range(n)]
    acc = acc2[:] if fresh else [builder.load(builder.gep(t_vec, [ir.Constant(i64, k)]), align=4) for k in range(n)]
    ones = ir.Constant(vec, [1.0] * 16)
    for j in range(VIEW_GROUP):
        lane = ir.Constant(ir.VectorType(i32, 16), [4 * (e // 4) + j % 4 for e in range(16)])
        f = builder.shuffle_vector(weights[j // 4], ir.Constant(vec, None), lane)
        g = builder.fsub(ones, f)
        cells = builder.bitcast(builder.gep(q_data, [offsets[j]]), vec.as_pointer())
        for k in range(n):
            a = builder.load(builder.gep(cells, [ir.Constant(i64, k)]), align=64)
            b = builder.load(builder.gep(cells, [ir.Constant(i64, n + k)]), align=64)
            acc[k] = builder.call(fma, [g, a, acc[k]])
            acc2[k] = builder.call(fma, [f, b, acc2[k]])
    for k in range(n):
        builder.store(builder.fadd(acc[k], acc2[k]), builder.gep(t_vec, [ir.Constant(i64, k)]), align=4)


def _split_words(builder, words):
    """The group's offsets from ``VIEW_GROUP // 2`` 64-bit words, two 32-bit offsets to a word (low half first)."""
    i64 = ir.IntType(64)
    out = []
    for word in words:
        out.append(builder.and_(word, ir.Constant(i64, 0xFFFFFFFF)))
        out.append(builder.lshr(word, ir.Constant(i64, 32)))
    return out


def _sum_group_codegen(nb):
    """The IR of `sum_group_64`: ``nb`` rows, ``nb // 16`` vectors."""
    def codegen(context, builder, signature, args):
        q, off, fw, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(4))
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec, quad = ir.VectorType(f32, 16), ir.VectorType(f32, 4)
        quads = builder.bitcast(fw.data, quad.as_pointer())
        spread = ir.Constant(ir.VectorType(i32, 16), [0, 1, 2, 3] * 4)
        weights = [opaque(builder, builder.shuffle_vector(builder.load(builder.gep(quads, [ir.Constant(i64, m)]),
                                                                        align=4), ir.Constant(quad, None), spread))
                   for m in range(VIEW_GROUP // 4)]
        words = builder.bitcast(off.data, i64.as_pointer())
        offsets = _split_words(builder, [builder.load(builder.gep(words, [ir.Constant(i64, m)]), align=4)
                                         for m in range(VIEW_GROUP // 2)])
        _add_group(builder, q.data, offsets, weights, builder.bitcast(t.data, vec.as_pointer()), nb)
        return context.get_dummy_value()

    return codegen


def _checked(q, off, fw, t):
    """Whether the arguments of a `sum_group_*` are what its IR reads: float32, uint32 offsets, 1-D."""
    return all(isinstance(a, types.Array) and a.ndim == 1 for a in (q, off, fw, t)) and (
        q.dtype == fw.dtype == t.dtype == types.float32 and off.dtype == types.uint32)


@intrinsic
def sum_group_64(typingctx, q, off, fw, t):  # pragma: no cover - compiled
    """``t[k] += sum over j of (1 - fw[j]) q[off[j] + k] + fw[j] q[off[j] + 64 + k]`` for ``k < 64``, ``j <
    VIEW_GROUP``: ``q`` the flat filtered rows (each ``off[j]`` on a cache line), ``t`` a tile's column."""
    if not _checked(q, off, fw, t):
        return None
    return types.void(q, off, fw, t), _sum_group_codegen(64)


def _cells(builder, b, c, x, n_u, vbase, zero, nb):
    """View ``j``'s left cell (flat offset in ``q``, ``<8 x i32>``) and right weight (``<8 x float>``) for the voxel
    column at ``x`` (float64), as `baseline_bp_s13`'s table held them: ``u = b + x c``, the cell ``min(max(int(u), 0),
    n_u - 2)``, the weight ``float32(u - cell)``; off the detector the zero cell and weight 0."""
    f64, i32 = ir.DoubleType(), ir.IntType(32)
    dv, iv = ir.VectorType(f64, VIEW_GROUP), ir.VectorType(i32, VIEW_GROUP)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(dv, [dv, dv, dv]), "llvm.fma.v8f64")
    u = builder.call(fma, [_splat(builder, x, VIEW_GROUP), c, b])
    top = builder.sitofp(builder.sub(n_u, ir.Constant(i32, 1)), f64)
    last = builder.sitofp(builder.sub(n_u, ir.Constant(i32, 2)), f64)
    zeros = ir.Constant(dv, [0.0] * VIEW_GROUP)
    inside = builder.and_(builder.fcmp_ordered(">=", u, zeros), builder.fcmp_ordered("<=", u, _splat(builder, top,
                                                                                                   VIEW_GROUP)))
    lo = builder.select(builder.fcmp_ordered(">", u, zeros), u, zeros)
    last_v = _splat(builder, last, VIEW_GROUP)
    floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(dv, [dv]), "llvm.floor.v8f64")
    left = builder.call(floor, [builder.select(builder.fcmp_ordered("<", lo, last_v), lo, last_v)])
    cell = builder.fptosi(left, iv)  # exact: ``left`` is a whole number, >= 0
    w = builder.fptrunc(builder.fsub(u, left), ir.VectorType(ir.FloatType(), VIEW_GROUP))
    w = builder.select(inside, w, ir.Constant(w.type, [0.0] * VIEW_GROUP))
    o = builder.add(vbase, builder.mul(cell, ir.Constant(iv, [nb] * VIEW_GROUP)))
    return builder.select(inside, o, _splat(builder, zero, VIEW_GROUP)), w


def _splat(builder, scalar, n):
    """``n`` copies of ``scalar`` as a vector."""
    vt = ir.VectorType(scalar.type, n)
    one = builder.insert_element(ir.Constant(vt, None), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, None), ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


def _sum_row_codegen(nb, fresh):
    """The IR of `sum_group_row_64` / `_32`: the tile's ``nx`` voxel columns of one section, each its cells worked
    out in registers (`_cells`, one column ahead) and its sum over the group added (`_add_group`)."""
    def codegen(context, builder, signature, args):
        q, b, c, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(4))
        x0, nx, n_u, v0, zero = (context.cast(builder, args[i], signature.args[i], types.int64) for i in range(4, 9))
        f32, f64, i32, i64 = ir.FloatType(), ir.DoubleType(), ir.IntType(32), ir.IntType(64)
        vec, dv = ir.VectorType(f32, 16), ir.VectorType(f64, VIEW_GROUP)
        bv = builder.load(builder.bitcast(b.data, dv.as_pointer()), align=8)
        cv = builder.load(builder.bitcast(c.data, dv.as_pointer()), align=8)
        n_u32, zero32 = builder.trunc(n_u, i32), builder.trunc(zero, i32)
        per_view = builder.mul(n_u32, ir.Constant(i32, nb))
        vbase = builder.mul(builder.add(_splat(builder, builder.trunc(v0, i32), VIEW_GROUP),
                                        ir.Constant(ir.VectorType(i32, VIEW_GROUP), list(range(VIEW_GROUP)))),
                            _splat(builder, per_view, VIEW_GROUP))
        t_vec = builder.bitcast(t.data, vec.as_pointer())
        spread = [ir.Constant(ir.VectorType(i32, 16), [4 * m + e % 4 for e in range(16)]) for m in range(2)]

        def cells(xx):
            return _cells(builder, bv, cv, builder.sitofp(builder.add(x0, xx), f64), n_u32, vbase, zero32, nb)

        # Software-pipelined: column xx + 1's cells are worked out while column xx's views are summed, and held in
        # registers (phi nodes). A table of the row's cells in L1 instead (worked out first, loaded per column: 6
        # more loads a column) took 1.07x the time; each column's cells worked out just before its sums, its loads
        # waited on the ~30 cycles of the conversions.
        first = cells(ir.Constant(i64, 0))
        pre, body, after = builder.basic_block, builder.append_basic_block("row"), builder.append_basic_block("done")
        builder.cbranch(builder.icmp_signed(">", nx, ir.Constant(i64, 0)), body, after)
        builder.position_at_end(body)
        xx, o, w = builder.phi(i64), builder.phi(first[0].type), builder.phi(first[1].type)
        for phi, value in zip((xx, o, w), (ir.Constant(i64, 0), *first)):
            phi.add_incoming(value, pre)
        following = builder.add(xx, ir.Constant(i64, 1))
        ahead = cells(following)
        weights = [opaque(builder, builder.shuffle_vector(w, ir.Constant(w.type, None), spread[m]))
                   for m in range(VIEW_GROUP // 4)]
        pairs = builder.bitcast(o, ir.VectorType(i64, VIEW_GROUP // 2))
        offsets = _split_words(builder, [builder.extract_element(pairs, ir.Constant(i32, m))
                                         for m in range(VIEW_GROUP // 2)])
        _add_group(builder, q.data, offsets, weights, builder.gep(t_vec, [builder.mul(xx, ir.Constant(i64, nb // 16))]),
                   nb, fresh)
        end = builder.basic_block
        for phi, value in zip((xx, o, w), (following, *ahead)):
            phi.add_incoming(value, end)
        builder.cbranch(builder.icmp_signed("<", following, nx), body, after)
        builder.position_at_end(after)
        return context.get_dummy_value()

    return codegen


def _row_checked(q, b, c, t, fresh):
    """Whether the arguments of a `sum_group_row_*` are what its IR reads (``fresh`` a constant)."""
    arrays = all(isinstance(a, types.Array) for a in (q, b, c, t))
    return isinstance(fresh, types.BooleanLiteral) and arrays and q.ndim == b.ndim == c.ndim == 1 and (
        t.ndim == 2 and t.layout == "C" and q.dtype == t.dtype == types.float32 and b.dtype == c.dtype == types.float64)


@intrinsic(prefer_literal=True)
def sum_group_row_64(typingctx, q, b, c, t, x0, nx, n_u, v0, zero, fresh):  # pragma: no cover - compiled
    """``t[xx, k] += sum over j < VIEW_GROUP of (1 - f) q[o + k] + f q[o + 64 + k]`` for ``xx < nx``, ``k < 64``: view
    ``v0 + j`` at the voxel column ``x = x0 + xx`` falls at ``u = b[j] + x c[j]`` (``b``, ``c`` the group's slice of
    the section's geometry, contiguous), its left cell ``o = ((v0 + j) n_u + int(u)) 64`` and ``f = u - int(u)``;
    ``o = zero`` (the zero cell) and ``f = 0`` off the detector. ``t`` a section of a tile, ``(X_TILE, 64)``; with
    ``fresh`` (a constant) ``=`` instead of ``+=`` (the first group: the tile needs no zeroing, its sums no load)."""
    if not _row_checked(q, b, c, t, fresh):
        return None
    return types.void(q, b, c, t, x0, nx, n_u, v0, zero, fresh), _sum_row_codegen(64, fresh.literal_value)


@intrinsic(prefer_literal=True)
def sum_group_row_32(typingctx, q, b, c, t, x0, nx, n_u, v0, zero, fresh):  # pragma: no cover - compiled
    """`sum_group_row_64` over 32 rows."""
    if not _row_checked(q, b, c, t, fresh):
        return None
    return types.void(q, b, c, t, x0, nx, n_u, v0, zero, fresh), _sum_row_codegen(32, fresh.literal_value)
