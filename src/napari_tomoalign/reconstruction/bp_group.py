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
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

VIEW_GROUP = 8  # views summed together into a tile of columns; views are padded to a multiple of it


def _opaque(builder, value):
    """``value`` through an empty inline assembly statement: LLVM can no longer see where it came from."""
    return builder.asm(ir.FunctionType(value.type, [value.type]), "", "=v,0", [value], False, "opaque")


def _sum_group_codegen(nb):
    """The IR of `sum_group_64` / `sum_group_32`: ``nb`` rows, ``nb // 16`` vectors."""
    def codegen(context, builder, signature, args):
        q, off, fw, t = (context.make_array(signature.args[i])(context, builder, args[i]) for i in range(4))
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec, quad = ir.VectorType(f32, 16), ir.VectorType(f32, 4)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
        n = nb // 16
        t_vec = builder.bitcast(t.data, vec.as_pointer())
        acc = [builder.load(builder.gep(t_vec, [ir.Constant(i64, k)]), align=4) for k in range(n)]
        acc2 = [ir.Constant(vec, [0.0] * 16) for _ in range(n)]
        quads = builder.bitcast(fw.data, quad.as_pointer())
        spread = ir.Constant(ir.VectorType(i32, 16), [0, 1, 2, 3] * 4)
        weights = [_opaque(builder, builder.shuffle_vector(builder.load(builder.gep(quads, [ir.Constant(i64, m)]),
                                                                        align=4), ir.Constant(quad, None), spread))
                   for m in range(VIEW_GROUP // 4)]
        words = builder.bitcast(off.data, i64.as_pointer())
        ones = ir.Constant(vec, [1.0] * 16)
        word = None
        for j in range(VIEW_GROUP):
            if j % 2 == 0:
                word = builder.load(builder.gep(words, [ir.Constant(i64, j // 2)]), align=4)
                o = builder.and_(word, ir.Constant(i64, 0xFFFFFFFF))
            else:
                o = builder.lshr(word, ir.Constant(i64, 32))
            lane = ir.Constant(ir.VectorType(i32, 16), [4 * (e // 4) + j % 4 for e in range(16)])
            f = builder.shuffle_vector(weights[j // 4], ir.Constant(vec, None), lane)
            g = builder.fsub(ones, f)
            cells = builder.bitcast(builder.gep(q.data, [o]), vec.as_pointer())
            for k in range(n):
                a = builder.load(builder.gep(cells, [ir.Constant(i64, k)]), align=64)
                b = builder.load(builder.gep(cells, [ir.Constant(i64, n + k)]), align=64)
                acc[k] = builder.call(fma, [g, a, acc[k]])
                acc2[k] = builder.call(fma, [f, b, acc2[k]])
        for k in range(n):
            builder.store(builder.fadd(acc[k], acc2[k]), builder.gep(t_vec, [ir.Constant(i64, k)]), align=4)
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


@intrinsic
def sum_group_32(typingctx, q, off, fw, t):  # pragma: no cover - compiled
    """`sum_group_64` over 32 rows."""
    if not _checked(q, off, fw, t):
        return None
    return types.void(q, off, fw, t), _sum_group_codegen(32)
