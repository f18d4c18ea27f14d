"""Whole-vector operations on rows of `LANES` float32 for the FFTs of `bp_fft`, written as LLVM IR.

numba has no vector type, and LLVM decides for itself how to vectorise a loop of 16 lanes: a short one it
unrolls and then vectorises across the loop around it, as gathers. These intrinsics load and store whole
rows (``array[row, :LANES]``, any strides between rows) as one vector each, so each butterfly is exactly
its vector arithmetic, every input loaded before any output is stored.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # complex columns per transform: one AVX-512 vector of float32 for each part


@intrinsic
def stack_block(typingctx, size):  # pragma: no cover - compiled
    """A pointer to ``size`` float32 on the stack, starting on a cache line: LLVM keeps such an accumulator in
    vector registers, which it cannot do for a heap array that might alias the views it reads; where it stays in
    memory, a block that started anywhere had every vector load and store cross two lines (session 13's filter)."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size.literal_value)
        ptr.align = 64
        return ptr

    return types.CPointer(types.float32)(size), codegen


def _vector_at(context, builder, aty, arr, offset=None):
    """A pointer to the `LANES` float32 of the 1-D array ``arr`` from ``offset`` (or its start)."""
    data = context.make_array(aty)(context, builder, arr).data
    if offset is not None:
        data = builder.gep(data, [offset])
    return builder.bitcast(data, ir.VectorType(ir.FloatType(), LANES).as_pointer())


def _load(builder, ptr):
    return builder.load(ptr, align=4)


@intrinsic
def prefetch_row(typingctx, arr, row, col):  # pragma: no cover - compiled
    """Ask for the cache line holding ``arr[row, col]`` (2-D) to be brought into L2, without waiting for it."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1], args[2]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, types.int64, types.int64), codegen


@intrinsic
def copy_lanes(typingctx, dst, src):  # pragma: no cover - compiled
    """``dst[:LANES] = src[:LANES]`` as one vector load and store (a loop of 16 copies is unrolled by LLVM,
    and then vectorised across the loop around it, as gathers)."""
    def codegen(context, builder, signature, args):
        value = _load(builder, _vector_at(context, builder, signature.args[1], args[1]))
        builder.store(value, _vector_at(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.void(dst, src), codegen


def _splat(builder, value):
    vec = ir.VectorType(ir.FloatType(), LANES)
    one = builder.insert_element(ir.Constant(vec, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


@intrinsic
def twiddle_lanes(typingctx, dr, di, sr, si, c, d):  # pragma: no cover - compiled
    """``(dr + i di)[:LANES] = (sr + i si)[:LANES] (c + i d)``, whole vectors."""
    def codegen(context, builder, signature, args):
        a = [_load(builder, _vector_at(context, builder, signature.args[k], args[k])) for k in (2, 3)]
        cv, dv = _splat(builder, args[4]), _splat(builder, args[5])
        re = builder.fsub(builder.fmul(a[0], cv), builder.fmul(a[1], dv))
        im = builder.fadd(builder.fmul(a[0], dv), builder.fmul(a[1], cv))
        builder.store(re, _vector_at(context, builder, signature.args[0], args[0]), align=4)
        builder.store(im, _vector_at(context, builder, signature.args[1], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(dr, di, sr, si, types.float32, types.float32), codegen


@intrinsic
def transpose_lanes(typingctx, dst, d0, src, s0, c0):  # pragma: no cover - compiled
    """``dst[d0 + c, r] = src[s0 + r, c0 + c]`` for ``r, c < LANES``: a 16 x 16 block transposed in registers
    (16 vector loads, four rounds of 16 two-vector shuffles, 16 vector stores)."""
    def codegen(context, builder, signature, args):
        dty, sty = signature.args[0], signature.args[2]
        dary, sary = context.make_array(dty)(context, builder, args[0]), context.make_array(sty)(context, builder, args[2])
        vec = ir.VectorType(ir.FloatType(), LANES)
        one = ir.Constant(ir.IntType(64), 1)
        rows, r = [], args[3]
        for _ in range(LANES):
            ptr = cgutils.get_item_pointer(context, builder, sty, sary, [r, args[4]], wraparound=False)
            rows.append(builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4))
            r = builder.add(r, one)
        step = LANES // 2
        while step:  # swap the off-diagonal blocks of side `step`
            for i in range(LANES):
                if i & step:
                    continue
                lo = [j if not j & step else LANES + j - step for j in range(LANES)]
                hi = [j + step if not j & step else LANES + j for j in range(LANES)]
                a, b = rows[i], rows[i + step]
                rows[i] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), LANES), lo))
                rows[i + step] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), LANES), hi))
            step //= 2
        zero, r = ir.Constant(ir.IntType(64), 0), args[1]
        for k in range(LANES):
            ptr = cgutils.get_item_pointer(context, builder, dty, dary, [r, zero], wraparound=False)
            builder.store(rows[k], builder.bitcast(ptr, vec.as_pointer()), align=4)
            r = builder.add(r, one)
        return context.get_dummy_value()

    return types.void(dst, types.int64, src, types.int64, types.int64), codegen


_CONTRACT = ("contract",)  # a product and the sum it feeds may be one fused multiply-add


def _row_vector(context, builder, aty, ary, row):
    """A pointer to the first `LANES` values of row ``row`` of the 2-D array ``ary``."""
    zero = ir.Constant(ir.IntType(64), 0)
    ptr = cgutils.get_item_pointer(context, builder, aty, ary, [row, zero], wraparound=False)
    return builder.bitcast(ptr, ir.VectorType(ir.FloatType(), LANES).as_pointer())


def _times(builder, re, im, c, d):
    """``(re + i im) (c + i d)`` with ``c, d`` splatted scalars."""
    cv, dv = _splat(builder, c), _splat(builder, d)
    return (builder.fsub(builder.fmul(re, cv, flags=_CONTRACT), builder.fmul(im, dv, flags=_CONTRACT), flags=_CONTRACT),
            builder.fadd(builder.fmul(re, dv, flags=_CONTRACT), builder.fmul(im, cv, flags=_CONTRACT), flags=_CONTRACT))


def dft4(builder, yr, yi):
    """The 4-point DFT (decimation in frequency, ``exp(-2 pi i / 4) = -i``) of vectors ``y``: (real, imaginary) pairs."""
    apcr, apci = builder.fadd(yr[0], yr[2]), builder.fadd(yi[0], yi[2])
    amcr, amci = builder.fsub(yr[0], yr[2]), builder.fsub(yi[0], yi[2])
    bpdr, bpdi = builder.fadd(yr[1], yr[3]), builder.fadd(yi[1], yi[3])
    jr, ji = builder.fsub(yi[3], yi[1]), builder.fsub(yr[1], yr[3])  # i (y1 - y3)
    return [(builder.fadd(apcr, bpdr), builder.fadd(apci, bpdi)), (builder.fsub(amcr, jr), builder.fsub(amci, ji)),
            (builder.fsub(apcr, bpdr), builder.fsub(apci, bpdi)), (builder.fadd(amcr, jr), builder.fadd(amci, ji))]


@intrinsic
def butterfly4_lanes(typingctx, sr, si, dr, di, rows_in, rows_out, tw):  # pragma: no cover - compiled
    """The radix-4 butterfly (decimation in frequency) of rows ``rows_in`` of ``s*`` into rows ``rows_out`` of
    ``d*`` (4-tuples of row indices), outputs 1-3 times ``tw = (c1, d1, c2, d2, c3, d3)``."""
    def codegen(context, builder, signature, args):
        aty = signature.args
        arr = [context.make_array(aty[k])(context, builder, args[k]) for k in range(4)]
        ins = cgutils.unpack_tuple(builder, args[4], 4)
        outs = cgutils.unpack_tuple(builder, args[5], 4)
        c1, d1, c2, d2, c3, d3 = cgutils.unpack_tuple(builder, args[6], 6)
        vr = [builder.load(_row_vector(context, builder, aty[0], arr[0], r), align=4) for r in ins]
        vi = [builder.load(_row_vector(context, builder, aty[1], arr[1], r), align=4) for r in ins]
        out = dft4(builder, vr, vi)
        out[1:] = [_times(builder, out[k][0], out[k][1], c, d) for k, c, d in ((1, c1, d1), (2, c2, d2), (3, c3, d3))]
        _store_rows(context, builder, aty, arr, outs, out, False)
        return context.get_dummy_value()

    rows = types.UniTuple(types.int64, 4)
    return types.void(sr, si, dr, di, rows, rows, types.UniTuple(types.float32, 6)), codegen




def _store_rows(context, builder, aty, arr, rows, values, skip_negative):
    for r, (re, im) in zip(rows, values):
        def store(r=r, re=re, im=im):
            builder.store(re, _row_vector(context, builder, aty[2], arr[2], r), align=4)
            builder.store(im, _row_vector(context, builder, aty[3], arr[3], r), align=4)
        if skip_negative:
            with builder.if_then(builder.icmp_signed(">=", r, ir.Constant(ir.IntType(64), 0)), likely=True):
                store()
        else:
            store()


@intrinsic
def butterfly4_out_lanes(typingctx, sr, si, dr, di, rows_in, rows_out, tw):  # pragma: no cover - compiled
    """`butterfly4_lanes` with its four outputs times ``tw = (c0, d0, c1, d1, c2, d2, c3, d3)`` (the last
    pass of a transform with the twiddle or filter that follows it); an output row below 0 is not stored."""
    def codegen(context, builder, signature, args):
        aty = signature.args
        arr = [context.make_array(aty[k])(context, builder, args[k]) for k in range(4)]
        ins = cgutils.unpack_tuple(builder, args[4], 4)
        outs = cgutils.unpack_tuple(builder, args[5], 4)
        tw = cgutils.unpack_tuple(builder, args[6], 8)
        vr = [builder.load(_row_vector(context, builder, aty[0], arr[0], r), align=4) for r in ins]
        vi = [builder.load(_row_vector(context, builder, aty[1], arr[1], r), align=4) for r in ins]
        out = [_times(builder, re, im, tw[2 * k], tw[2 * k + 1]) for k, (re, im) in enumerate(dft4(builder, vr, vi))]
        _store_rows(context, builder, aty, arr, outs, out, True)
        return context.get_dummy_value()

    rows = types.UniTuple(types.int64, 4)
    return types.void(sr, si, dr, di, rows, rows, types.UniTuple(types.float32, 8)), codegen


@intrinsic
def butterfly2_lanes(typingctx, sr, si, dr, di, rows_in, rows_out, tw):  # pragma: no cover - compiled
    """The radix-2 butterfly (decimation in frequency): ``a + b`` and ``(a - b) (c + i d)``, ``tw = (c, d)``."""
    def codegen(context, builder, signature, args):
        aty = signature.args
        arr = [context.make_array(aty[k])(context, builder, args[k]) for k in range(4)]
        ins = cgutils.unpack_tuple(builder, args[4], 2)
        outs = cgutils.unpack_tuple(builder, args[5], 2)
        c, d = cgutils.unpack_tuple(builder, args[6], 2)
        vr = [builder.load(_row_vector(context, builder, aty[0], arr[0], r), align=4) for r in ins]
        vi = [builder.load(_row_vector(context, builder, aty[1], arr[1], r), align=4) for r in ins]
        out = [(builder.fadd(vr[0], vr[1]), builder.fadd(vi[0], vi[1])),
               _times(builder, builder.fsub(vr[0], vr[1]), builder.fsub(vi[0], vi[1]), c, d)]
        _store_rows(context, builder, aty, arr, outs, out, False)
        return context.get_dummy_value()

    rows = types.UniTuple(types.int64, 2)
    return types.void(sr, si, dr, di, rows, rows, types.UniTuple(types.float32, 2)), codegen


def _constant_times(builder, re, im, e):
    """``(re + i im) exp(-2 pi i e / 16)``: nothing for ``e = 0``, a swap for ``e = 4`` (times ``-i``)."""
    if e == 0:
        return re, im
    if e == 4:
        return im, builder.fneg(re)
    vec = ir.VectorType(ir.FloatType(), LANES)
    c = ir.Constant(vec, [math.cos(2 * math.pi * e / 16)] * LANES)
    d = ir.Constant(vec, [-math.sin(2 * math.pi * e / 16)] * LANES)
    return (builder.fsub(builder.fmul(re, c, flags=_CONTRACT), builder.fmul(im, d, flags=_CONTRACT), flags=_CONTRACT),
            builder.fadd(builder.fmul(re, d, flags=_CONTRACT), builder.fmul(im, c, flags=_CONTRACT), flags=_CONTRACT))


def _element(context, builder, aty, ary, index):
    return builder.load(cgutils.get_item_pointer(context, builder, aty, ary, [index], wraparound=False))


def _first_round16(context, builder, aty, arr, row_in):
    """The first radix-4 round of a 16-point FFT of rows ``row_in(j)`` of arrays 0 and 1: ``z[p][k]`` = (DFT4 over
    ``j`` of ``x[p + 4 j]``)``[k] w^(p k)``. The second round, ``X[4 m + k]`` = (DFT4 over ``p`` of ``z[p][k]``)``[m]``,
    is the caller's."""
    z = []
    for p in range(4):
        rows = [row_in(p + 4 * j) for j in range(4)]
        vr = [builder.load(_row_vector(context, builder, aty[0], arr[0], r), align=4) for r in rows]
        vi = [builder.load(_row_vector(context, builder, aty[1], arr[1], r), align=4) for r in rows]
        z.append([_constant_times(builder, re, im, p * k) for k, (re, im) in enumerate(dft4(builder, vr, vi))])
    return z


def _fft16_codegen(context, builder, signature, args, n_out=16):
    """The code of `fft16_lanes` (of its outputs below ``n_out`` only: the others are not even computed). Each
    input is loaded when its first radix-4 round needs it and each output stored when made, so that no more
    than the 32 vectors between the rounds are alive at once."""
    aty = signature.args
    arr = {k: context.make_array(aty[k])(context, builder, args[k]) for k in range(len(aty))
           if isinstance(aty[k], types.Array)}
    i64 = ir.IntType(64)
    in0, in_step, lim1, lim2, in_shift = cgutils.unpack_tuple(builder, args[3], 5)
    out0, out_step, out_lim, out_shift = cgutils.unpack_tuple(builder, args[7], 4)
    f0, f_step = cgutils.unpack_tuple(builder, args[10], 2)

    def at(base, step, j):
        return builder.add(base, builder.mul(step, ir.Constant(i64, j)))

    def slot(r, shift):  # fft_steps.slot
        mask = builder.sub(builder.shl(ir.Constant(i64, 1), shift), ir.Constant(i64, 1))
        return builder.xor(r, builder.and_(builder.lshr(r, shift), mask))

    def row_in(j):
        u = at(in0, in_step, j)
        if 2 in arr:
            return _element(context, builder, aty[2], arr[2], u)
        edge = builder.select(builder.icmp_signed("<", u, lim2), builder.sub(lim1, ir.Constant(i64, 1)),
                              ir.Constant(i64, 0))
        return slot(builder.select(builder.icmp_signed("<", u, lim1), u, edge), in_shift)

    z = _first_round16(context, builder, aty, arr, row_in)
    dst_ty, dst = (None, None, aty[4], aty[5]), (None, None, arr[4], arr[5])
    for k in range(4):  # X[4 m + k] = (DFT4 over p of z[p][k])[m]
        out = dft4(builder, [z[p][k][0] for p in range(4)], [z[p][k][1] for p in range(4)])
        for m in range(n_out // 4):
            o, f = at(out0, out_step, 4 * m + k), at(f0, f_step, 4 * m + k)
            re, im = out[m]
            if 8 in arr and 9 in arr:
                re, im = _times(builder, re, im, _element(context, builder, aty[8], arr[8], f),
                                _element(context, builder, aty[9], arr[9], f))
            elif 8 in arr:
                c = _splat(builder, _element(context, builder, aty[8], arr[8], f))
                re, im = builder.fmul(re, c), builder.fmul(im, c)
            row = _element(context, builder, aty[6], arr[6], o) if 6 in arr else slot(o, out_shift)
            with builder.if_then(builder.icmp_signed("<", o, out_lim), likely=True):
                _store_rows(context, builder, dst_ty, dst, [row], [(re, im)], 6 in arr)


@intrinsic
def fft16_lanes(typingctx, sr, si, rows_in, src, dr, di, rows_out, dst, fr, fi, fac):  # pragma: no cover - compiled
    """A whole 16-point FFT (decimation in frequency) held in registers: 32 vector loads, the arithmetic, at most
    32 vector stores (no round trip through memory).

    Input ``j`` is row ``rows_in[u]`` of ``s*`` with ``u = in0 + j in_step``; when ``rows_in`` is None, row
    ``slot(u', in_shift)`` with ``u'`` = ``u`` below ``lim1``, ``lim1 - 1`` below ``lim2``, else 0 (the edge
    padding); ``src = (in0, in_step, lim1, lim2, in_shift)``. Output ``k`` goes to row ``rows_out[o]`` of ``d*``
    (not when below 0), or to ``slot(o, out_shift)`` when ``rows_out`` is None, ``o = out0 + k out_step``, and
    only while ``o < out_lim``; ``dst = (out0, out_step, out_lim, out_shift)``. Outputs are times ``fr[f] + i
    fi[f]``, ``f = f0 + k f_step`` (``fac = (f0, f_step)``): times ``fr[f]`` when ``fi`` is None, as they are
    when both are None."""
    index = types.int64
    sig = types.void(sr, si, rows_in, types.UniTuple(index, 5), dr, di, rows_out, types.UniTuple(index, 4), fr, fi,
                     types.UniTuple(index, 2))
    return sig, _fft16_codegen


@intrinsic
def fft16_low_lanes(typingctx, sr, si, rows_in, src, dr, di, rows_out, dst, fr, fi, fac):  # pragma: no cover - compiled
    """`fft16_lanes` when only outputs 0 to 7 are wanted (the first half of an inverse transform, which the
    edge padding past the row fills): the rest is not computed."""
    index = types.int64
    sig = types.void(sr, si, rows_in, types.UniTuple(index, 5), dr, di, rows_out, types.UniTuple(index, 4), fr, fi,
                     types.UniTuple(index, 2))
    return sig, lambda context, builder, signature, args: _fft16_codegen(context, builder, signature, args, 8)


@intrinsic
def fft16_filter_lanes(typingctx, sr, si, q, dr, di, filt, f0, f_step, wr, wi, w_step):  # pragma: no cover - compiled
    """The middle of `fft_fixed.rows_product64`, in registers: the 16-point FFT ``X`` of rows ``q + 4 j`` of
    ``s*``, ``Y[k] = X[k] filt[f0 + k f_step]``, then the inverse transform's first radix-4 pass on what it
    holds: butterfly ``p = q + 4 m`` (decimation in frequency, on the parts swapped) of ``Y[m + 4 i]``, output
    ``i`` times ``w[p i w_step]`` into row ``4 p + i`` of ``d*``."""
    def codegen(context, builder, signature, args):
        aty = signature.args
        arr = {k: context.make_array(aty[k])(context, builder, args[k]) for k in (0, 1, 3, 4, 5, 8, 9)}
        i64 = ir.IntType(64)

        def const(j):
            return ir.Constant(i64, j)

        qq, f0_, fs, ws = args[2], args[6], args[7], args[10]
        z = _first_round16(context, builder, aty, arr, lambda j: builder.add(qq, const(4 * j)))
        dst_ty, dst = (None, None, aty[3], aty[4]), (None, None, arr[3], arr[4])
        for m in range(4):  # second round m gives X[m + 4 i], i < 4: butterfly p = q + 4 m's inputs
            x = dft4(builder, [z[p][m][0] for p in range(4)], [z[p][m][1] for p in range(4)])
            yr, yi = [], []
            for i, (re, im) in enumerate(x):
                c = _splat(builder, _element(context, builder, aty[5], arr[5],
                                             builder.add(f0_, builder.mul(fs, const(m + 4 * i)))))
                yr.append(builder.fmul(im, c))  # the parts swapped: the inverse
                yi.append(builder.fmul(re, c))
            p = builder.add(qq, const(4 * m))
            out = dft4(builder, yr, yi)
            rows = [builder.add(builder.mul(p, const(4)), const(i)) for i in range(4)]
            for i in range(1, 4):
                w = builder.mul(builder.mul(p, ws), const(i))
                out[i] = _times(builder, out[i][0], out[i][1], _element(context, builder, aty[8], arr[8], w),
                                _element(context, builder, aty[9], arr[9], w))
            _store_rows(context, builder, dst_ty, dst, rows, out, False)
        return context.get_dummy_value()

    index = types.int64
    return types.void(sr, si, index, dr, di, filt, index, index, wr, wi, index), codegen
