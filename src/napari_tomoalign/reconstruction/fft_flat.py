"""16-point FFTs over `LANES` complex columns, held in registers, between rows at fixed offsets (LLVM IR).

The kernels of `fft_padded`. Every array here is rows of `LANES` contiguous float32 (a C-contiguous
``(n, LANES)`` array or its flat view; ``q`` alone has any row stride), and row ``r`` starts at float
``LANES r`` of the array's data: a row's address is its base plus a multiple of 64 bytes that the
compiler folds into the load or store when the row is a constant offset from the loop's row (no multiply
by a stride read from the array, no table of rows). Each 16-point transform is two radix-4 rounds
(decimation in frequency): each input is loaded when its first round needs it and each output stored
when made.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fft_lanes import dft4

LANES = 16
_VEC = ir.VectorType(ir.FloatType(), LANES)
_I64 = ir.IntType(64)
_CONTRACT = ("contract",)  # a product and the sum it feeds may be one fused multiply-add


def _c(value):
    return ir.Constant(_I64, value)


def _data(context, builder, aty, value):
    """The float32 data pointer of an array argument."""
    return context.make_array(aty)(context, builder, value).data


def _row(builder, data, offset):
    """A pointer to the vector at float ``offset`` (an i64) of ``data``."""
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


def _load(builder, data, offset):
    return builder.load(_row(builder, data, offset), align=4)


def _store(builder, value, data, offset):
    builder.store(value, _row(builder, data, offset), align=4)


def _splat(builder, value):
    one = builder.insert_element(ir.Constant(_VEC, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _scalar(builder, data, index):
    return builder.load(builder.gep(data, [index]))


def _times(builder, re, im, c, d):
    """``(re + i im) (c + i d)`` with ``c, d`` vectors."""
    return (builder.fsub(builder.fmul(re, c, flags=_CONTRACT), builder.fmul(im, d, flags=_CONTRACT), flags=_CONTRACT),
            builder.fadd(builder.fmul(re, d, flags=_CONTRACT), builder.fmul(im, c, flags=_CONTRACT), flags=_CONTRACT))


def _rotate16(builder, re, im, e):
    """``(re + i im) exp(-2 pi i e / 16)``: nothing for ``e = 0``, a swap for ``e = 4``."""
    if e == 0:
        return re, im
    if e == 4:
        return im, builder.fneg(re)
    c = ir.Constant(_VEC, [math.cos(2 * math.pi * e / 16)] * LANES)
    d = ir.Constant(_VEC, [-math.sin(2 * math.pi * e / 16)] * LANES)
    return _times(builder, re, im, c, d)


def fft16(builder, load, store, n_out=16, store4=None):
    """A 16-point FFT: ``load(j)`` gives input ``j`` as a (real, imaginary) pair of vectors, ``store(o, re, im)``
    takes output ``o`` (only ``o < n_out``, a multiple of 4: the others are not computed), or ``store4(k, outs)``
    outputs ``4 m + k`` for ``m < 4`` together. Two halves, the outputs ``4 m + k`` of even ``k`` and then of odd
    ``k``, each loading the inputs again (from L1): the 16 values between the two radix-4 rounds of one half fit
    in the registers, where the whole transform's 32 would spill."""
    for half in ((0, 2), (1, 3)):
        z = {}
        for p in range(4):  # z[p, k] = (DFT4 over j of x[p + 4 j])[k] w^(p k)
            ins = [load(p + 4 * j) for j in range(4)]
            out = dft4(builder, [v[0] for v in ins], [v[1] for v in ins])
            for k in half:
                z[p, k] = _rotate16(builder, out[k][0], out[k][1], p * k)
        for k in half:  # X[4 m + k] = (DFT4 over p of z[p, k])[m]
            out = dft4(builder, [z[p, k][0] for p in range(4)], [z[p, k][1] for p in range(4)])
            if store4 is not None:
                store4(k, out)
                continue
            for m in range(n_out // 4):
                store(4 * m + k, *out[m])


def _rotate64(builder, re, im, e):
    """``(re + i im) exp(-2 pi i e / 64)``, a constant factor."""
    if e % 64 == 0:
        return re, im
    c = ir.Constant(_VEC, [math.cos(2 * math.pi * e / 64)] * LANES)
    d = ir.Constant(_VEC, [-math.sin(2 * math.pi * e / 64)] * LANES)
    return _times(builder, re, im, c, d)


def _twiddled(builder, re, im, wr, wi, index):
    """``(re + i im) (wr[index] + i wi[index])``."""
    c, d = _scalar(builder, wr, index), _scalar(builder, wi, index)
    return _times(builder, re, im, _splat(builder, c), _splat(builder, d))


@intrinsic
def fft16_columns_in(typingctx, tr, ti, t, lims, xr, xi, pitch, wr, wi):  # pragma: no cover - compiled
    """The forward transform of column ``t``: input ``j`` is padded row ``u = 64 j + t``, row ``u`` of ``t*`` below
    ``lims = (n_x, n_x + half)``, then row ``n_x - 1`` (the right edge), then row 0 (the left edge); output ``k``,
    times ``w[t k]``, goes to row ``k pitch + t`` of ``x*``. The rows are worked out by compares (a table of them
    cost more: its loads compete with the twiddles' for the load ports)."""
    def codegen(context, builder, signature, args):
        a = signature.args
        d_tr, d_ti, d_xr, d_xi, d_wr, d_wi = (_data(context, builder, a[i], args[i]) for i in (0, 1, 4, 5, 7, 8))
        col, pitch_ = args[2], args[6]
        n_x, lim2 = cgutils.unpack_tuple(builder, args[3], 2)
        right = builder.sub(n_x, _c(1))

        def load(j):
            u = builder.add(col, _c(64 * j))
            edge = builder.select(builder.icmp_signed("<", u, lim2), right, _c(0))
            off = builder.mul(builder.select(builder.icmp_signed("<", u, n_x), u, edge), _c(LANES))
            return _load(builder, d_tr, off), _load(builder, d_ti, off)

        def store(k, re, im):
            if k:
                re, im = _twiddled(builder, re, im, d_wr, d_wi, builder.mul(col, _c(k)))
            off = builder.mul(builder.add(builder.mul(pitch_, _c(k)), col), _c(LANES))
            _store(builder, re, d_xr, off)
            _store(builder, im, d_xi, off)

        fft16(builder, load, store)
        return context.get_dummy_value()

    return types.void(tr, ti, types.int64, types.UniTuple(types.int64, 2), xr, xi, types.int64, wr, wi), codegen


@intrinsic
def fft16_columns_out(typingctx, xr, xi, t, pitch, q, c0, imag, n2, n_x, n_out):  # pragma: no cover - compiled
    """The inverse transform of column ``t``: input ``k`` is row ``k pitch + t`` of ``x*``; output ``o < n_out`` (a
    literal 8 or 16), row ``u = o n2 + t``, is stored when ``u < n_x``: real parts into ``q[u, c0:c0 + LANES]``,
    imaginary parts into ``imag[u, :LANES]`` (``q[:, c0 + LANES:]``, or a junk row of stride 0)."""
    if not isinstance(n_out, types.IntegerLiteral) or n_out.literal_value not in (8, 16):
        return None
    count = n_out.literal_value

    def codegen(context, builder, signature, args):
        a = signature.args
        d_xr, d_xi = _data(context, builder, a[0], args[0]), _data(context, builder, a[1], args[1])
        qa = context.make_array(a[4])(context, builder, args[4])
        ia = context.make_array(a[6])(context, builder, args[6])
        q_step = builder.lshr(cgutils.unpack_tuple(builder, qa.strides, 2)[0], _c(2))
        i_step = builder.lshr(cgutils.unpack_tuple(builder, ia.strides, 2)[0], _c(2))
        col, pitch_, n2_, n_x_ = args[2], args[3], args[7], args[8]
        q_data = builder.gep(qa.data, [args[5]])

        def load(k):  # parts swapped: the forward transform of them is the inverse, swapped
            off = builder.mul(builder.add(builder.mul(pitch_, _c(k)), col), _c(LANES))
            return _load(builder, d_xi, off), _load(builder, d_xr, off)

        def store(o, re, im):
            u = builder.add(builder.mul(n2_, _c(o)), col)
            with builder.if_then(builder.icmp_signed("<", u, n_x_), likely=True):
                _store(builder, im, q_data, builder.mul(u, q_step))
                _store(builder, re, ia.data, builder.mul(u, i_step))

        fft16(builder, load, store, count)
        return context.get_dummy_value()

    return types.void(xr, xi, types.int64, types.int64, q, types.int64, imag, types.int64, types.int64, n_out), codegen


@intrinsic
def radix4_rows_in(typingctx, xr, xi, base, ar, ai):  # pragma: no cover - compiled
    """`fft_padded.rows_product`'s first radix-4 pass of a 64-point row: for each ``p < 16``, rows
    ``base + p + 16 i`` (``i < 4``) of ``x*``, their DFT4 output ``i`` times ``exp(-2 pi i p i / 64)`` (compiled
    in), into rows ``4 p + i`` of ``a*``."""
    def codegen(context, builder, signature, args):
        a = signature.args
        d_xr, d_xi, d_ar, d_ai = (_data(context, builder, a[i], args[i]) for i in (0, 1, 3, 4))
        first = builder.mul(args[2], _c(LANES))
        for p in range(16):
            vr, vi = [], []
            for i in range(4):
                off = builder.add(first, _c(LANES * (p + 16 * i)))
                vr.append(_load(builder, d_xr, off))
                vi.append(_load(builder, d_xi, off))
            for i, (re, im) in enumerate(dft4(builder, vr, vi)):
                re, im = _rotate64(builder, re, im, p * i)
                _store(builder, re, d_ar, _c(LANES * (4 * p + i)))
                _store(builder, im, d_ai, _c(LANES * (4 * p + i)))
        return context.get_dummy_value()

    return types.void(xr, xi, types.int64, ar, ai), codegen


@intrinsic
def fft16_filter_rows(typingctx, ar, ai, q, pr, pi, filt, k1):  # pragma: no cover - compiled
    """The middle of `fft_padded.rows_product`, in registers: the 16-point FFT ``X`` of rows ``q + 4 j`` of
    ``a*`` (row ``o = q + 4 k`` of the 64-point transform, frequency ``k1 + 16 o``), ``Y[k] = X[k] filt[k1 + 16 o]``,
    then the inverse's first radix-4 pass on what it holds: butterfly ``p = q + 4 k`` (on the parts swapped) of
    ``Y[k + 4 m]`` (``m < 4``), output ``m`` times ``exp(-2 pi i p m / 64)`` into row ``4 p + m`` of ``p*``.
    ``q`` is a literal (the factors are compiled in)."""
    if not isinstance(q, types.IntegerLiteral):
        return None
    qq = q.literal_value

    def codegen(context, builder, signature, args):
        a = signature.args
        d_ar, d_ai, d_pr, d_pi, d_f = (_data(context, builder, a[i], args[i]) for i in (0, 1, 3, 4, 5))
        f0 = builder.add(args[6], _c(16 * qq))

        def load(j):
            return _load(builder, d_ar, _c(LANES * (qq + 4 * j))), _load(builder, d_ai, _c(LANES * (qq + 4 * j)))

        def store4(k, outs):
            yr, yi = [], []
            for m, (re, im) in enumerate(outs):  # Y[k + 4 m], frequency k1 + 16 (q + 4 k + 16 m)
                c = _splat(builder, _scalar(builder, d_f, builder.add(f0, _c(64 * k + 256 * m))))
                yr.append(builder.fmul(im, c))  # the parts swapped: the inverse
                yi.append(builder.fmul(re, c))
            p = qq + 4 * k
            for m, (re, im) in enumerate(dft4(builder, yr, yi)):
                re, im = _rotate64(builder, re, im, p * m)
                _store(builder, re, d_pr, _c(LANES * (4 * p + m)))
                _store(builder, im, d_pi, _c(LANES * (4 * p + m)))

        fft16(builder, load, None, store4=store4)
        return context.get_dummy_value()

    return types.void(ar, ai, q, pr, pi, filt, types.int64), codegen


@intrinsic
def fft16_rows_out(typingctx, pr, pi, q, xr, xi, base, wr, wi, k1):  # pragma: no cover - compiled
    """`fft_padded.rows_product`'s last step: the 16-point FFT of rows ``q + 4 j`` of ``p*``, output ``k`` times
    ``w[k1 (q + 4 k)]`` into row ``base + q + 4 k`` of ``x*``."""
    def codegen(context, builder, signature, args):
        a = signature.args
        d_pr, d_pi, d_xr, d_xi, d_wr, d_wi = (_data(context, builder, a[i], args[i]) for i in (0, 1, 3, 4, 6, 7))
        q_, base_, k1_ = args[2], args[5], args[8]

        def load(j):
            off = builder.mul(builder.add(q_, _c(4 * j)), _c(LANES))
            return _load(builder, d_pr, off), _load(builder, d_pi, off)

        def store(k, re, im):
            o = builder.add(q_, _c(4 * k))
            re, im = _twiddled(builder, re, im, d_wr, d_wi, builder.mul(k1_, o))
            off = builder.mul(builder.add(base_, o), _c(LANES))
            _store(builder, re, d_xr, off)
            _store(builder, im, d_xi, off)

        fft16(builder, load, store)
        return context.get_dummy_value()

    return types.void(pr, pi, types.int64, xr, xi, types.int64, wr, wi, types.int64), codegen

