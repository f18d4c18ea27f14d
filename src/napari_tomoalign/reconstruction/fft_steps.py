"""The steps of `bp_fft`'s four-step FFT over columns of `LANES` complex values (one vector each part).

An ``n = n1 x n2``-point transform of the scratch rows ``x[j n2 + t]`` (kept in row `slot` of the scratch):

1. `forward_columns`: for each ``t``, the ``n1``-point transform of rows ``j n2 + t`` (over ``j``), times
   ``W^(t k1)`` (``W = exp(-2 pi i / n)``), back into rows ``k1 n2 + t``;
2. `rows_product`: for each ``k1``, the ``n2``-point transform of rows ``k1 n2 + t`` (over ``t``), which
   is frequency ``k1 + n1 k2`` in row ``k1 n2 + k2``, times the filter there; the inverse's first step on
   the same rows (the ``n2``-point transform back, times ``conj(W^(t k1))``);
3. `inverse_columns`: for each ``t``, the ``n1``-point transform back over ``k1``: row ``j n2 + t`` of the
   filtered rows, written to ``q``.

Every sub-transform is a Stockham FFT (radix 4, a last radix-2 pass when needed) between buffers on
the stack: a few KB that stay in L1, and that LLVM knows alias nothing else, so each butterfly is whole
vector operations with no overlap checks. The inverse is the forward transform with the real and
imaginary parts swapped on the way in and out.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # complex columns per transform: one AVX-512 vector of float32 for each part
SUB_MAX = 256  # the longest sub-transform, held on the stack: padded rows up to SUB_MAX ** 2
_STACK4 = 4 * SUB_MAX * LANES  # four sub-transform buffers (real, imaginary; ping and pong)


@intrinsic
def stack_block(typingctx, size):  # pragma: no cover - compiled
    """A pointer to ``size`` float32 on the stack: LLVM keeps such an accumulator in vector registers,
    which it cannot do for a heap array that might alias the views it reads."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size.literal_value)

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
def copy_lanes(typingctx, dst, src):  # pragma: no cover - compiled
    """``dst[:LANES] = src[:LANES]`` as one vector load and store (a loop of 16 copies is unrolled by LLVM,
    and then vectorised across the loop around it, as gathers)."""
    def codegen(context, builder, signature, args):
        value = _load(builder, _vector_at(context, builder, signature.args[1], args[1]))
        builder.store(value, _vector_at(context, builder, signature.args[0], args[0]), align=4)
        return context.get_dummy_value()

    return types.void(dst, src), codegen


@intrinsic
def copy_lanes_to(typingctx, dst, offset, src):  # pragma: no cover - compiled
    """``dst[offset:offset + LANES] = src[:LANES]``, one vector."""
    def codegen(context, builder, signature, args):
        value = _load(builder, _vector_at(context, builder, signature.args[2], args[2]))
        builder.store(value, _vector_at(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(dst, offset, src), codegen


@intrinsic
def scale_lanes(typingctx, a, h):  # pragma: no cover - compiled
    """``a[:LANES] *= h``, one vector."""
    def codegen(context, builder, signature, args):
        ptr = _vector_at(context, builder, signature.args[0], args[0])
        builder.store(builder.fmul(_load(builder, ptr), _splat(builder, args[1])), ptr, align=4)
        return context.get_dummy_value()

    return types.void(a, types.float32), codegen


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
def sum_difference_lanes(typingctx, dr0, di0, dr1, di1, sr0, si0, sr1, si1):  # pragma: no cover - compiled
    """``d0 = s0 + s1``, ``d1 = s0 - s1`` (complex, `LANES` each; the radix-2 butterfly), whole vectors."""
    def codegen(context, builder, signature, args):
        ar, ai, br, bi = (_load(builder, _vector_at(context, builder, signature.args[k], args[k])) for k in range(4, 8))
        out = (builder.fadd(ar, br), builder.fadd(ai, bi), builder.fsub(ar, br), builder.fsub(ai, bi))
        for k in range(4):
            builder.store(out[k], _vector_at(context, builder, signature.args[k], args[k]), align=4)
        return context.get_dummy_value()

    return types.void(dr0, di0, dr1, di1, sr0, si0, sr1, si1), codegen


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


@intrinsic
def butterfly4_lanes(typingctx, sr, si, dr, di, rows_in, rows_out, tw):  # pragma: no cover - compiled
    """The radix-4 butterfly (decimation in frequency) of rows ``rows_in`` of ``s*`` into rows ``rows_out`` of
    ``d*`` (4-tuples of row indices), outputs 1-3 times ``tw = (c1, d1, c2, d2, c3, d3)``: `LANES` columns as
    whole vectors, every input loaded before any output is stored."""
    def codegen(context, builder, signature, args):
        aty = signature.args
        src = [context.make_array(aty[k])(context, builder, args[k]) for k in range(4)]
        ins = cgutils.unpack_tuple(builder, args[4], 4)
        outs = cgutils.unpack_tuple(builder, args[5], 4)
        c1, d1, c2, d2, c3, d3 = cgutils.unpack_tuple(builder, args[6], 6)
        vr = [builder.load(_row_vector(context, builder, aty[0], src[0], r), align=4) for r in ins]
        vi = [builder.load(_row_vector(context, builder, aty[1], src[1], r), align=4) for r in ins]
        apcr, apci = builder.fadd(vr[0], vr[2]), builder.fadd(vi[0], vi[2])
        amcr, amci = builder.fsub(vr[0], vr[2]), builder.fsub(vi[0], vi[2])
        bpdr, bpdi = builder.fadd(vr[1], vr[3]), builder.fadd(vi[1], vi[3])
        jr, ji = builder.fsub(vi[3], vi[1]), builder.fsub(vr[1], vr[3])  # j (b - x)
        out = [(builder.fadd(apcr, bpdr), builder.fadd(apci, bpdi)),
               _times(builder, builder.fsub(amcr, jr), builder.fsub(amci, ji), c1, d1),
               _times(builder, builder.fsub(apcr, bpdr), builder.fsub(apci, bpdi), c2, d2),
               _times(builder, builder.fadd(amcr, jr), builder.fadd(amci, ji), c3, d3)]
        for r, (re, im) in zip(outs, out):
            builder.store(re, _row_vector(context, builder, aty[2], src[2], r), align=4)
            builder.store(im, _row_vector(context, builder, aty[3], src[3], r), align=4)
        return context.get_dummy_value()

    rows = types.UniTuple(types.int64, 4)
    return types.void(sr, si, dr, di, rows, rows, types.UniTuple(types.float32, 6)), codegen


@numba.njit(inline="always", nogil=True)
def slot(r, shift):  # pragma: no cover - compiled
    """Where row ``r`` of a transform is kept in its scratch: ``r`` with its low ``shift`` bits flipped by the next
    ``shift`` (a permutation of the rows). Rows a power of two apart, which the column steps read together,
    would otherwise share one set of the L1 cache."""
    return r ^ ((r >> shift) & ((1 << shift) - 1))


@numba.njit(inline="always", nogil=True)
def _u(i):  # pragma: no cover - compiled
    """``i`` as an unsigned index: numba adds no code for negative indices."""
    return numba.uint64(i)


@numba.njit(inline="always", fastmath=True, nogil=True)
def _pass4(sr, si, dr, di, wr, wi, n, s, wstep):  # pragma: no cover - compiled
    """One radix-4 Stockham pass (decimation in frequency) of length ``n`` and stride ``s`` from ``s*`` into
    ``d*``; the twiddle ``exp(-2 pi i m / n)`` is ``w[m s wstep]``."""
    n4 = n // 4
    for p in range(n4):
        j = p * s * wstep
        c1, d1, c2, d2, c3, d3 = wr[j], wi[j], wr[2 * j], wi[2 * j], wr[3 * j], wi[3 * j]
        for q in range(s):
            a, o = q + s * p, q + 4 * s * p
            butterfly4_lanes(sr, si, dr, di, (a, a + s * n4, a + 2 * s * n4, a + 3 * s * n4),  # type: ignore[call-arg]
                             (o, o + s, o + 2 * s, o + 3 * s), (c1, d1, c2, d2, c3, d3))


@numba.njit(inline="always", fastmath=True, nogil=True)
def _pass2(sr, si, dr, di, s):  # pragma: no cover - compiled
    """The last radix-2 Stockham pass (no twiddles) of stride ``s``."""
    for qq in range(s):
        q, b = _u(qq), _u(qq + s)
        sum_difference_lanes(dr[q], di[q], dr[b], di[b], sr[q], si[q], sr[b], si[b])  # type: ignore[call-arg]


@numba.njit(inline="always", fastmath=True, nogil=True)
def sub_fft(ar, ai, br, bi, wr, wi, n, wstep):  # pragma: no cover - compiled
    """Forward ``n``-point FFT of rows ``0..n-1`` of ``(ar, ai)``, with ``(br, bi)`` as the other buffer; the
    twiddle table ``w`` is for ``n wstep`` points. Returns True when the result is in ``(br, bi)``."""
    s = 1
    in_b = False
    while n > 1:
        if n == 2:
            if in_b:
                _pass2(br, bi, ar, ai, s)
            else:
                _pass2(ar, ai, br, bi, s)
            n, s = 1, 2 * s
        else:
            if in_b:
                _pass4(br, bi, ar, ai, wr, wi, n, s, wstep)
            else:
                _pass4(ar, ai, br, bi, wr, wi, n, s, wstep)
            n, s = n // 4, 4 * s
        in_b = not in_b
    return in_b


@numba.njit(cache=True, fastmath=True, nogil=True)
def forward_columns(tr, ti, n_x, half, xr, xi, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """Step 1 from the transposed rows ``t* (n_x, LANES)``, edge-padded (input row ``u >= n_x`` is row
    ``n_x - 1`` while ``u < n_x + half``, then row 0), into the scratch ``x* (n1 n2, LANES)``."""
    buffers = numba.carray(stack_block(_STACK4), (4, SUB_MAX, LANES))  # type: ignore[call-arg]
    ar, ai, br, bi = buffers[0], buffers[1], buffers[2], buffers[3]
    for t in range(n2):
        for j in range(n1):
            u = j * n2 + t
            src, jj = _u(u if u < n_x else (n_x - 1 if u < n_x + half else 0)), _u(j)
            copy_lanes(ar[jj], tr[src])
            copy_lanes(ai[jj], ti[src])
        in_b = sub_fft(ar, ai, br, bi, wr, wi, n1, n2)
        sr, si = (br, bi) if in_b else (ar, ai)
        for j in range(n1):
            c, d = wr[j * t], wi[j * t]
            row, jj = _u(slot(j * n2 + t, shift)), _u(j)
            twiddle_lanes(xr[row], xi[row], sr[jj], si[jj], c, d)


@numba.njit(cache=True, fastmath=True, nogil=True)
def rows_product(xr, xi, filt, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """Step 2 in place: each row of the ``(n1, n2)`` matrix transformed, times ``filt`` (natural order),
    transformed back, times the conjugate twiddle of the inverse's first step."""
    buffers = numba.carray(stack_block(_STACK4), (4, SUB_MAX, LANES))  # type: ignore[call-arg]
    ar, ai, br, bi = buffers[0], buffers[1], buffers[2], buffers[3]
    for k1 in range(n1):
        base = k1 * n2
        for t in range(n2):
            row, tt = _u(slot(base + t, shift)), _u(t)
            copy_lanes(ar[tt], xr[row])
            copy_lanes(ai[tt], xi[row])
        in_b = sub_fft(ar, ai, br, bi, wr, wi, n2, n1)
        sr, si = (br, bi) if in_b else (ar, ai)
        for t in range(n2):
            h, tt = filt[k1 + n1 * t], _u(t)
            scale_lanes(sr[tt], h)
            scale_lanes(si[tt], h)
        # the inverse: the forward transform of the parts swapped; its result, swapped back, is (pr, pi)
        if in_b:
            back = sub_fft(bi, br, ai, ar, wr, wi, n2, n1)
            pr, pi = (ar, ai) if back else (br, bi)
        else:
            back = sub_fft(ai, ar, bi, br, wr, wi, n2, n1)
            pr, pi = (br, bi) if back else (ar, ai)
        for t in range(n2):
            c, d = wr[k1 * t], wi[k1 * t]  # (pr + i pi) conj(w), written as the swapped parts times w
            row, tt = _u(slot(base + t, shift)), _u(t)
            twiddle_lanes(xi[row], xr[row], pi[tt], pr[tt], c, d)


@numba.njit(cache=True, fastmath=True, nogil=True)
def inverse_columns(xr, xi, q, c0, two, n_x, wr, wi, n1, n2, shift):  # pragma: no cover - compiled
    """Step 3: each column transformed back; row ``u < n_x`` into ``q[u, c0:c0 + LANES]`` (real parts) and,
    when ``two``, ``q[u, c0 + LANES:c0 + 2 LANES]`` (imaginary parts)."""
    buffers = numba.carray(stack_block(_STACK4), (4, SUB_MAX, LANES))  # type: ignore[call-arg]
    ar, ai, br, bi = buffers[0], buffers[1], buffers[2], buffers[3]
    for t in range(min(n2, n_x)):
        for j in range(n1):  # swapped: the forward transform computes the inverse
            row, jj = _u(slot(j * n2 + t, shift)), _u(j)
            copy_lanes(ar[jj], xi[row])
            copy_lanes(ai[jj], xr[row])
        in_b = sub_fft(ar, ai, br, bi, wr, wi, n1, n2)
        sr, si = (br, bi) if in_b else (ar, ai)
        for j in range(n1):
            u = j * n2 + t
            if u >= n_x:
                break
            out, jj = q[_u(u)], _u(j)
            copy_lanes_to(out, c0, si[jj])
            if two:
                copy_lanes_to(out, c0 + LANES, sr[jj])
