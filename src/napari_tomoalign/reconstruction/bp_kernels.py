"""The compiled back-projection of the weighted back-projection: blocks of rows filtered and summed in cache.

The volume is made one block of ``MAX_BLOCK`` rows (slices) at a time (``BLOCK`` for a short tail):

1. **Filter** (`bp_fft.filter_block`): the threads share the views; each view's rows of the block come
   out as ``q[view, u, row]``, exactly the layout the back-projection reads.
2. **Back-project**: the threads share tiles of ``Z_TILE`` sections. For each voxel column ``(x, z)``
   and view, the detector position ``u`` is the same in every row of the block, so the block's rows are
   a few vectors: two contiguous reads of ``q`` and two fused multiply-adds per voxel and view. The
   views' cells and weights of a column are worked out first in one vectorised pass; the sum over the
   views then runs on register-held accumulators (two views and both interpolation terms apart, so that
   eight or more independent FMA chains hide the FMA latency). The columns of ``X_TILE`` neighbouring
   ``x`` are kept in a small buffer and written as whole cache lines of the volume's rows: writing each
   column straight into ``(z, y, x)`` touches a cache line (and often a page) per voxel, and cost more
   than the arithmetic. The ``q`` rows one ``x`` needs for a tile of sections stay in L2 as ``x`` advances.

With an X-axis tilt or Z factors that move points across rows (IMOD's full model), the row of a voxel
depends on its ``z``: the block then filters the rows around it as well and samples ``q`` in both
``u`` and the row (`backproject_block_full`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .bp_fft import filter_block

BLOCK = 32  # the fewest rows in a block: two AVX-512 vectors of float32
MAX_BLOCK = 64  # rows in a full block: four AVX-512 vectors per voxel column
# Fused multiply-adds but no reassociation: ``acc += g a`` then ``acc += f b`` stay two FMAs per vector.
CONTRACT = {"contract", "nnan", "ninf", "nsz", "arcp", "afn"}
X_TILE = 16  # voxel columns whose results are written together: a cache line of each output row
Z_TILE = 32  # sections per tile of the back-projection: the q rows one x needs stay in L2


@intrinsic
def stack_block(typingctx, size):  # pragma: no cover - compiled
    """A pointer to ``size`` float32 on the stack: LLVM keeps such an accumulator in vector registers,
    which it cannot do for a heap array that might alias the views it reads."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size.literal_value)

    return types.CPointer(types.float32)(size), codegen


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _bp_tile(q, base, cos_t, vol, row0, n_valid, z0, z1, acc, nb):  # pragma: no cover - compiled
    """Sections ``z0 .. z1`` of the block: ``vol[z, row0 + k, x] = sum over views of q[v](u, k)``.

    ``nb`` is the block's rows, a constant where this is inlined, so that the ``k`` loops unroll into
    ``nb / 16`` vector registers (four accumulators each: the two interpolation terms of two views, so
    that eight or more independent FMA chains hide the FMA latency). For each voxel column the views'
    cells and weights are worked out first, in one vectorised pass over the views. The columns of
    ``X_TILE`` neighbouring ``x`` go to a small buffer that is then written as whole cache lines.
    """
    n_v, n_u, _ = q.shape
    n_x = vol.shape[2]
    top = n_u - 1.0
    q1 = q.ravel()
    one = numba.uint64(nb)
    off = np.empty(n_v, dtype=np.uint64)
    wa = np.empty(n_v, dtype=np.float32)
    wb = np.empty(n_v, dtype=np.float32)
    buf = np.empty((z1 - z0, X_TILE, nb), dtype=np.float32)
    for x0 in range(0, n_x, X_TILE):
        x1 = min(n_x, x0 + X_TILE)
        for x in range(x0, x1):
            xf = np.float64(x)
            for z in range(z0, z1):
                bz = base[z]
                for v in range(n_v):
                    u = bz[v] + xf * cos_t[v]
                    inside = (u >= 0.0) & (u <= top)
                    i = min(max(int(u), 0), n_u - 2)
                    f = np.float32(u - i)
                    off[v] = numba.uint64((v * n_u + i) * nb)
                    wb[v] = f if inside else np.float32(0.0)
                    wa[v] = np.float32(1.0) - f if inside else np.float32(0.0)
                for k in range(4 * nb):
                    acc[k] = 0.0
                for v in range(0, n_v - 1, 2):
                    o0, o1 = off[v], off[v + 1]
                    g0, f0, g1, f1 = wa[v], wb[v], wa[v + 1], wb[v + 1]
                    for kk in range(nb):
                        ku = numba.uint64(kk)  # unsigned indices: no wraparound code in the loop
                        acc[kk] += g0 * q1[o0 + ku]
                        acc[nb + kk] += f0 * q1[o0 + one + ku]
                        acc[2 * nb + kk] += g1 * q1[o1 + ku]
                        acc[3 * nb + kk] += f1 * q1[o1 + one + ku]
                if n_v % 2 == 1:
                    o0 = off[n_v - 1]
                    g0, f0 = wa[n_v - 1], wb[n_v - 1]
                    for kk in range(nb):
                        ku = numba.uint64(kk)
                        acc[kk] += g0 * q1[o0 + ku]
                        acc[nb + kk] += f0 * q1[o0 + one + ku]
                out = buf[z - z0, x - x0]
                for k in range(nb):
                    out[k] = (acc[k] + acc[nb + k]) + (acc[2 * nb + k] + acc[3 * nb + k])
        for z in range(z0, z1):
            tile = buf[z - z0]
            for k in range(n_valid):
                row = vol[z, row0 + k]
                for j in range(x1 - x0):
                    row[x0 + j] = tile[j, k]


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_64(q, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """`_bp_tile` with 64 rows."""
    _bp_tile(q, base, cos_t, vol, row0, n_valid, z0, z1, numba.carray(stack_block(256), (256,)), 64)  # type: ignore[call-arg]


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_32(q, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """`_bp_tile` with 32 rows."""
    _bp_tile(q, base, cos_t, vol, row0, n_valid, z0, z1, numba.carray(stack_block(128), (128,)), 32)  # type: ignore[call-arg]


@numba.njit(cache=True, fastmath=True, nogil=True)
def block_rows(left):  # pragma: no cover - compiled
    """The rows of the next block when ``left`` rows remain: ``MAX_BLOCK``, or ``BLOCK`` for a short tail."""
    return MAX_BLOCK if left > BLOCK else BLOCK


@numba.njit(inline="always", fastmath=True, nogil=True)
def _bilinear_lanes(qv, r_first, u0, r0, a1, b1, top_u, top_r, n_rows_all, acc, n_valid):  # pragma: no cover
    """Lane by lane, ``acc[k] += q(u0 + a1 k, r0 + b1 k)`` (bilinear, zero outside the view): the exact
    fallback of `backproject_block_full` for columns at the held rows' edges or crossing a row."""
    n_u = qv.shape[0]
    for k in range(n_valid):
        u = u0 + a1 * k
        r = r0 + b1 * k
        if u < 0.0 or u > top_u or r < 0.0 or r > top_r:
            continue
        iu = min(int(u), n_u - 2)
        ir = min(int(r), n_rows_all - 2)
        fu = np.float32(u - iu)
        fr = np.float32(r - ir)
        j = ir - r_first
        lo = qv[iu, j] + fu * (qv[iu + 1, j] - qv[iu, j])
        hi = qv[iu, j + 1] + fu * (qv[iu + 1, j + 1] - qv[iu, j + 1])
        acc[k] += lo + fr * (hi - lo)


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, row0, y_first, n_valid):  # pragma: no cover
    """As the plain kernel, with the full model: the row read depends on the voxel's z and y too.

    ``q`` ``(n_views, n_u, n_r)`` holds rows ``r_first ..`` of the filtered views; ``coef`` ``(n_views, 7)``
    the projection ``u = A0 x + A1 y + A2 z + A3``, ``r = B1 y + B2 z + B3`` (columns A0..A3, B1..B3) of a
    voxel at ``(x, y, z)`` from the centre (``cx``, ``cz``; ``y`` from row ``y_first`` of the volume, whose
    block starts at ``row0``). A voxel whose position falls outside the views is left out for that view.

    Along the block's rows the position moves by ``(A1, B1)`` per row: nearly one row and a small part of
    a column. Where the ``BLOCK`` rows of a column read consecutive rows of ``q`` (the row's fraction
    drifts by ``B1 - 1`` but does not cross a row), the rows are vectors: each of the two or three
    columns of ``q`` that the lanes reach is read as two contiguous vectors, interpolated across the
    rows with each lane's fraction and added with each lane's hat weight ``max(0, 1 - |u - j|)`` in u,
    which is exact linear interpolation. Other columns (rare) go lane by lane.
    """
    n_v, n_u, n_r = q.shape
    n_z, _, n_x = vol.shape
    acc = numba.carray(stack_block(BLOCK), (BLOCK,))  # type: ignore[call-arg]
    du = numba.carray(stack_block(BLOCK), (BLOCK,))
    fr = numba.carray(stack_block(BLOCK), (BLOCK,))
    ok = numba.carray(stack_block(BLOCK), (BLOCK,))
    top_u = n_u - 1.0
    top_r = n_rows_all - 1.0
    last = BLOCK - 1.0
    for x in range(n_x):
        xc = x - cx
        for z in range(n_z):
            zc = z - cz
            for k in range(BLOCK):
                acc[k] = 0.0
            for v in range(n_v):
                a1, b1 = coef[v, 1], coef[v, 4]
                u0 = coef[v, 0] * xc + a1 * y_first + coef[v, 2] * zc + coef[v, 3]
                r0 = b1 * y_first + coef[v, 5] * zc + coef[v, 6]
                u_lo, u_hi = min(u0, u0 + a1 * last), max(u0, u0 + a1 * last)
                r_lo, r_hi = min(r0, r0 + b1 * last), max(r0, r0 + b1 * last)
                if u_hi < 0.0 or u_lo > top_u or r_hi < 0.0 or r_lo > top_r:
                    continue
                c = int(np.floor(r0))
                j0 = int(np.floor(u_lo))
                n_j = int(np.floor(u_hi)) - j0 + 2
                jr = c - r_first
                drift = r0 + (b1 - 1.0) * last - c
                if (jr < 0 or jr + BLOCK + 1 > n_r or drift < 0.0 or drift >= 1.0 or n_j > 4
                        or (n_j == 2 and (j0 < 0 or j0 + 1 >= n_u))):
                    _bilinear_lanes(q[v], r_first, u0, r0, a1, b1, top_u, top_r, n_rows_all, acc, n_valid)
                    continue
                d0, a1f = np.float32(u0 - j0), np.float32(a1)
                f0, b1f = np.float32(r0 - c), np.float32(b1 - 1.0)
                lo_u, hi_u = np.float32(-j0), np.float32(top_u - j0)
                lo_r, hi_r = np.float32(-c), np.float32(top_r - c)
                for k in range(BLOCK):
                    kf = np.float32(k)
                    d = d0 + a1f * kf
                    f = f0 + b1f * kf
                    du[k] = d
                    fr[k] = f
                    inside = (d >= lo_u) & (d <= hi_u) & (f + kf >= lo_r) & (f + kf <= hi_r)
                    ok[k] = np.float32(1.0) if inside else np.float32(0.0)
                start = numba.uint64(jr)
                one = numba.uint64(1)
                if n_j == 2:  # the lanes stay between two columns: weights linear in the lane
                    p0, p1 = q[v, j0], q[v, j0 + 1]
                    for k in range(BLOCK):
                        ku = start + numba.uint64(k)
                        a = p0[ku]
                        b = p1[ku]
                        lo = a + fr[k] * (p0[ku + one] - a)
                        hi = b + fr[k] * (p1[ku + one] - b)
                        acc[k] += ok[k] * (lo + du[k] * (hi - lo))
                    continue
                for jj in range(n_j):
                    j = j0 + jj
                    if j < 0 or j >= n_u:
                        continue
                    row = q[v, j]
                    jf = np.float32(jj)
                    for k in range(BLOCK):
                        ku = start + numba.uint64(k)
                        a = row[ku]
                        t = a + fr[k] * (row[ku + one] - a)
                        w = max(np.float32(0.0), np.float32(1.0) - abs(du[k] - jf)) * ok[k]
                        acc[k] += w * t
            for k in range(n_valid):
                vol[z, row0 + k, x] = acc[k]


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks(views, filt, wr, wi, base, cos_t, vol, row_first, threads):  # pragma: no cover - compiled
    """Filter and back-project ``vol`` ``(n_z, n_rows, n_x)``: its row ``k`` is row ``row_first + k`` of ``views``.

    ``views`` ``(n_views, rows, cols)``; ``filt`` ``(n_views, n_pad)`` each view's filter and weight;
    ``base`` ``(n_z, n_views)`` the detector position of column 0 and ``cos_t`` its step per column.
    One block of rows at a time: the ``threads`` filter its views, then back-project its tiles of sections.
    """
    n_v, _, n_u = views.shape
    n_z, n_rows, _ = vol.shape
    z_tile = min(Z_TILE, max(1, -(-n_z // threads)))
    n_tiles = -(-n_z // z_tile)
    r0 = 0
    while r0 < n_rows:
        nb = block_rows(n_rows - r0)
        n_valid = min(nb, n_rows - r0)
        q = np.empty((n_v, n_u, nb), dtype=np.float32)
        for v in numba.prange(n_v):
            bufs = np.empty((4, filt.shape[1], nb // 2), dtype=np.float32)
            filter_block(views[v], row_first + r0, nb, filt[v], wr, wi, bufs, q[v])
        for t in numba.prange(n_tiles):
            z0 = t * z_tile
            z1 = min(n_z, z0 + z_tile)
            if nb == MAX_BLOCK:
                backproject_64(q, base, cos_t, vol, r0, n_valid, z0, z1)
            else:
                backproject_32(q, base, cos_t, vol, r0, n_valid, z0, z1)
        r0 += nb


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks_full(views, filt, wr, wi, coef, cx, cz, vol, row_first, n_rows_all, view_row0):  # pragma: no cover
    """`wbp_blocks` with the full model (`backproject_block_full`): each block filters the rows it reaches.

    ``views`` holds rows ``view_row0 ..`` of views that have ``n_rows_all`` rows; ``row_first`` is the
    view row of the volume's row 0 (rows count from the views' first row, whose centre ``coef`` uses).
    """
    n_v, n_held, n_u = views.shape
    n_z, n_rows, _ = vol.shape
    n_blocks = (n_rows + BLOCK - 1) // BLOCK
    n_pad = filt.shape[1]
    cy = (n_rows_all - 1) / 2.0
    for b in numba.prange(n_blocks):
        r0 = b * BLOCK
        y_first = row_first + r0 - cy
        n_valid = min(BLOCK, n_rows - r0)
        lo, hi = 1e30, -1e30
        for v in range(n_v):
            for yy in (y_first, y_first + n_valid - 1):
                for zz in (-cz, n_z - 1 - cz):
                    r = coef[v, 4] * yy + coef[v, 5] * zz + coef[v, 6]
                    lo, hi = min(lo, r), max(hi, r)
        r_first = min(max(view_row0, int(np.floor(lo))), view_row0 + n_held - 2)
        r_stop = max(min(view_row0 + n_held, int(np.floor(hi)) + 2), r_first + 2)
        n_r = ((r_stop - r_first + BLOCK - 1) // BLOCK) * BLOCK
        q = np.empty((n_v, n_u, n_r), dtype=np.float32)
        bufs = np.empty((4, n_pad, BLOCK // 2), dtype=np.float32)
        for v in range(n_v):
            filter_block(views[v], r_first - view_row0, n_r, filt[v], wr, wi, bufs, q[v])
        backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, r0, y_first, n_valid)
