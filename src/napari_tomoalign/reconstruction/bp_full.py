"""The back-projection with IMOD's full model: X-axis tilt and Z factors move a voxel across rows with z.

A voxel ``(x, y, z)`` goes to column ``u = A0 x + A1 y + A2 z + A3`` and row ``r = B1 y + B2 z + B3`` of
each view (`wbp.projection_coefficients`). Each thread filters the rows its blocks of ``BLOCK`` rows
reach (`bp_fft`), and samples them in both ``u`` and the row (`backproject_block_full`), with the block's
rows as vectors where they read consecutive rows of the filtered views. The blocking, buffered writes
and tiles are those of the plain kernel (`bp_kernels`).
"""

from __future__ import annotations

import numba
import numpy as np

from .bp_fft import filter_block
from .bp_kernels import BLOCK, CONTRACT, X_TILE, Z_TILE, aligned_empty, stack_block, write_columns

FULL_CHUNK = 4  # blocks whose rows one thread filters together


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
def row_table(coef, cz, n_z, n_u, n_r, r_first, n_rows_all, y_first):  # pragma: no cover - compiled
    """Per section and view, what the block's rows read (it does not depend on x): ``kind`` 0 (no row of
    the view), 1 (rows ``start ..`` of ``q``'s flat array, consecutive, fraction ``f0`` drifting by
    ``B1 - 1`` per row: the vector paths), 2 (the same, some lanes off the view's rows: masked) or 3
    (lane by lane: the held rows' edges, or a row crossed within the block)."""
    n_v = coef.shape[0]
    last = BLOCK - 1.0
    top_r = n_rows_all - 1.0
    kind = np.zeros((n_z, n_v), dtype=np.uint8)
    start = np.zeros((n_z, n_v), dtype=np.uint64)
    f0 = np.zeros((n_z, n_v), dtype=np.float32)
    for z in range(n_z):
        zc = z - cz
        for v in range(n_v):
            b1 = coef[v, 4]
            r0 = b1 * y_first + coef[v, 5] * zc + coef[v, 6]
            r_lo, r_hi = min(r0, r0 + b1 * last), max(r0, r0 + b1 * last)
            if r_hi < 0.0 or r_lo > top_r:
                continue
            c = int(np.floor(r0))
            jr = c - r_first
            drift = r0 + (b1 - 1.0) * last - c
            if jr < 0 or jr + BLOCK + 1 > n_r or drift < 0.0 or drift >= 1.0:
                kind[z, v] = 3
                continue
            kind[z, v] = 2 if r_lo < 0.0 or r_hi > top_r else 1
            start[z, v] = numba.uint64(v * n_u * n_r + jr)
            f0[z, v] = np.float32(r0 - c)
    return kind, start, f0


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _masked_columns(q1, start, nr, j0, n_j, n_u, d0, a1f, f0, b1f, top_u, r_c, top_r, lanes):  # pragma: no cover
    """As the vector paths of `_full_columns` for lanes that may leave the view (masked) and any number of
    columns: each column ``j0 + jj`` adds with the hat weight ``max(0, 1 - |d - jj|)``. ``r_c`` is the view row of the
    block's first row in ``q``, ``start`` its flat index at column 0; ``lanes`` ``(4, BLOCK)``: scratch, and the sums
    (``lanes[3]``, kept apart from the caller's register-held ones)."""
    du, fr, ok, acc = lanes[0], lanes[1], lanes[2], lanes[3]
    lo_u, hi_u = np.float32(-j0), np.float32(top_u - j0)
    lo_r, hi_r = -r_c, np.float32(top_r) - r_c
    for k in range(BLOCK):
        kf = np.float32(k)
        d = d0 + a1f * kf
        f = f0 + b1f * kf
        du[k] = d
        fr[k] = f
        inside = (d >= lo_u) & (d <= hi_u) & (f + kf >= lo_r) & (f + kf <= hi_r)
        ok[k] = np.float32(1.0) if inside else np.float32(0.0)
    one = numba.uint64(1)
    for jj in range(n_j):
        j = j0 + jj
        if j < 0 or j >= n_u:
            continue
        base = start + numba.uint64(j) * nr
        jf = np.float32(jj)
        for k in range(BLOCK):
            ku = base + numba.uint64(k)
            a = q1[ku]
            t = a + fr[k] * (q1[ku + one] - a)
            w = max(np.float32(0.0), np.float32(1.0) - abs(du[k] - jf)) * ok[k]
            acc[k] += w * t


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def _full_columns(q, q1, coef, table, ub, z0, z1, cz, y_first, r_first, n_rows_all, n_valid, out):  # pragma: no cover
    """``out[z - z0] =`` the block's rows of the voxel column at one x (``ub``: each view's ``u`` at z = 0)
    for the sections ``z0 .. z1``, summed over the views (see `backproject_block_full`)."""
    n_v, n_u, n_r = q.shape
    kind, start, f0s = table
    acc = numba.carray(stack_block(BLOCK), (BLOCK,))  # type: ignore[call-arg]
    lanes = np.empty((4, BLOCK), dtype=np.float32)  # scratch of `_masked_columns`, and its sums (row 3)
    slow = lanes[3]
    top_u = n_u - 1.0
    last = BLOCK - 1.0
    nr = numba.uint64(n_r)
    one = numba.uint64(1)
    for z in range(z0, z1):
        zc = z - cz
        for k in range(BLOCK):
            acc[k] = 0.0
            slow[k] = 0.0
        for v in range(n_v):
            kv = kind[z, v]
            a1 = coef[v, 1]
            u0 = ub[v] + coef[v, 2] * zc
            u_lo, u_hi = min(u0, u0 + a1 * last), max(u0, u0 + a1 * last)
            if kv == 0 or u_hi < 0.0 or u_lo > top_u:
                continue
            if kv == 3:
                r0 = coef[v, 4] * y_first + coef[v, 5] * zc + coef[v, 6]
                _bilinear_lanes(q[v], r_first, u0, r0, a1, coef[v, 4], top_u, n_rows_all - 1.0, n_rows_all, acc,
                                n_valid)
                continue
            j0 = int(np.floor(u_lo))
            n_j = int(np.floor(u_hi)) - j0 + 2
            d0, a1f = np.float32(u0 - j0), np.float32(a1)
            f0, b1f = f0s[z, v], np.float32(coef[v, 4] - 1.0)
            if not (kv == 1 and n_j <= 3 and u_lo >= 0.0 and u_hi <= top_u and j0 + n_j - 1 < n_u):
                r_c = np.float32(r_first + (start[z, v] - numba.uint64(v * n_u * n_r)))  # view row of q's row
                _masked_columns(q1, start[z, v], nr, j0, n_j, n_u, d0, a1f, f0, b1f, top_u, r_c,
                                n_rows_all - 1.0, lanes)
                continue
            base = start[z, v] + numba.uint64(j0) * nr
            if n_j == 2:  # every lane between two columns: the column fraction is linear in the lane
                for k in range(BLOCK):
                    kf = np.float32(k)
                    d = d0 + a1f * kf
                    f = f0 + b1f * kf
                    ku = base + numba.uint64(k)
                    a = q1[ku]
                    b = q1[ku + nr]
                    lo = a + f * (q1[ku + one] - a)
                    hi = b + f * (q1[ku + nr + one] - b)
                    acc[k] += lo + d * (hi - lo)
                continue
            for k in range(BLOCK):  # the lanes cross a column: the first pair below fraction 1, the next above
                kf = np.float32(k)
                d = d0 + a1f * kf
                f = f0 + b1f * kf
                ku = base + numba.uint64(k)
                a = q1[ku]
                b = q1[ku + nr]
                c = q1[ku + nr + nr]
                t0 = a + f * (q1[ku + one] - a)
                t1 = b + f * (q1[ku + nr + one] - b)
                t2 = c + f * (q1[ku + nr + nr + one] - c)
                acc[k] += t0 + d * (t1 - t0) if d < np.float32(1.0) else t1 + (d - np.float32(1.0)) * (t2 - t1)
        o = out[z - z0]
        for k in range(BLOCK):
            o[k] = acc[k] + slow[k]


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, row0, y_first, n_valid):  # pragma: no cover
    """As the plain kernel, with the full model: the row read depends on the voxel's z and y too.

    ``q`` ``(n_views, n_u, n_r)`` holds rows ``r_first ..`` of the filtered views; ``coef`` ``(n_views, 7)``
    the projection ``u = A0 x + A1 y + A2 z + A3``, ``r = B1 y + B2 z + B3`` (columns A0..A3, B1..B3) of a
    voxel at ``(x, y, z)`` from the centre (``cx``, ``cz``; ``y`` from row ``y_first`` of the volume, whose
    block starts at ``row0``). A voxel whose position falls outside the views is left out for that view.

    Along the block's rows the position moves by ``(A1, B1)`` per row: nearly one row and a small part of
    a column. Where the ``BLOCK`` rows of a column read consecutive rows of ``q`` (the row's fraction
    drifts by ``B1 - 1`` but does not cross a row: `row_table`), the rows are vectors: the two columns
    of ``q`` that the lanes reach are read as contiguous vectors and interpolated with each lane's
    fractions (linear in the lane); where the lanes reach three columns or leave the view, each lane
    takes a hat weight ``max(0, 1 - |u - j|)`` per column and a mask, which is still exact linear
    interpolation. Other columns (rare) go lane by lane. Results go out ``X_TILE`` columns at a time.
    """
    n_v = q.shape[0]
    n_z, _, n_x = vol.shape
    q1 = q.ravel()
    table = row_table(coef, cz, n_z, q.shape[1], q.shape[2], r_first, n_rows_all, y_first)
    ub = np.empty(n_v)
    buf = np.empty((X_TILE, min(n_z, Z_TILE), BLOCK), dtype=np.float32)
    tile = np.empty((min(n_z, Z_TILE), X_TILE, BLOCK), dtype=np.float32)
    for z0 in range(0, n_z, Z_TILE):
        z1 = min(n_z, z0 + Z_TILE)
        for x0 in range(0, n_x, X_TILE):
            x1 = min(n_x, x0 + X_TILE)
            for x in range(x0, x1):
                for v in range(n_v):
                    ub[v] = coef[v, 0] * (x - cx) + coef[v, 1] * y_first + coef[v, 3]
                _full_columns(q, q1, coef, table, ub, z0, z1, cz, y_first, r_first, n_rows_all, n_valid, buf[x - x0])
            for zz in range(z1 - z0):
                for j in range(x1 - x0):
                    tile[zz, j] = buf[j, zz]
            write_columns(tile, vol, z0, z1, x0, x1, row0, n_valid)


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks_full(views, filt, wr, wi, coef, cx, cz, vol, row_first, n_rows_all, view_row0, threads):  # pragma: no cover
    """`wbp_blocks` with the full model (`backproject_block_full`): each thread filters the rows its blocks reach.

    ``views`` holds rows ``view_row0 ..`` of views that have ``n_rows_all`` rows; ``row_first`` is the
    view row of the volume's row 0 (rows count from the views' first row, whose centre ``coef`` uses).
    A thread takes up to ``FULL_CHUNK`` consecutive blocks and filters their rows once, so that the rows
    a z-dependent row shift adds around each block are filtered once per chunk, not once per block.
    """
    n_v, n_held, n_u = views.shape
    n_z, n_rows, _ = vol.shape
    n_blocks = (n_rows + BLOCK - 1) // BLOCK
    per_chunk = max(1, min(FULL_CHUNK, n_blocks // max(1, threads)))
    n_chunks = (n_blocks + per_chunk - 1) // per_chunk
    n_pad = filt.shape[1]
    cy = (n_rows_all - 1) / 2.0
    for c in numba.prange(n_chunks):
        b0 = c * per_chunk
        b1 = min(n_blocks, b0 + per_chunk)
        y_lo = row_first + b0 * BLOCK - cy
        y_hi = row_first + min(n_rows, b1 * BLOCK) - 1 - cy
        lo, hi = 1e30, -1e30
        for v in range(n_v):
            for yy in (y_lo, y_hi):
                for zz in (-cz, n_z - 1 - cz):
                    r = coef[v, 4] * yy + coef[v, 5] * zz + coef[v, 6]
                    lo, hi = min(lo, r), max(hi, r)
        r_first = min(max(view_row0, int(np.floor(lo))), view_row0 + n_held - 2)
        r_stop = max(min(view_row0 + n_held, int(np.floor(hi)) + 2), r_first + 2)
        n_r = ((r_stop - r_first + BLOCK - 1) // BLOCK) * BLOCK
        q = aligned_empty(n_v * n_u * n_r).reshape((n_v, n_u, n_r))
        hb = BLOCK if n_r % (2 * BLOCK) == 0 else BLOCK // 2
        bufs = aligned_empty(4 * n_pad * hb).reshape((4, n_pad, hb))
        for v in range(n_v):
            filter_block(views[v], r_first - view_row0, n_r, filt[v], wr, wi, bufs, q[v])
        for b in range(b0, b1):
            r0 = b * BLOCK
            backproject_block_full(q, r_first, coef, cx, cz, n_rows_all, vol, r0, row_first + r0 - cy,
                                   min(BLOCK, n_rows - r0))
