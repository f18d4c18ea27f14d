"""The back-projection kernel of session 12 (`bp_kernels.backproject_64` then), kept so that the benchmark times
today's kernel against it in the same process (`bench_wbp_limit.py --parts`, `probe_bp.py`).

Called as it was: ``q`` ``(views, cols, 64)``, the group's cells as 64-bit offsets and both weights in tables,
each loaded (a scalar and two broadcasts) for every view of every voxel column; today's kernel
(`bp_group.sum_group_64`) loads the offsets two to a word and the weights four to a vector.
"""

from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.bp_kernels import CONTRACT, X_TILE, stack_block, write_columns

VIEW_GROUP = 8  # session 12's, whatever `bp_kernels` uses now


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _group_cells_s12(base, cos_t, n_v, n_u, nb, z0, z1, x0, v0, off, wa, wb):  # pragma: no cover - compiled
    """The cells and weights of views ``v0 .. v0 + VIEW_GROUP`` for every voxel column of the tile: ``off[z - z0,
    j, x - x0]`` the flat index in ``q`` of view ``v0 + j``'s left column, ``wa``/``wb`` its two weights
    (zero off the detector). Vectorised over the ``X_TILE`` columns, in float64 as the geometry is."""
    top = n_u - 1.0
    for z in range(z0, z1):
        for j in range(VIEW_GROUP):
            v = v0 + j
            b, c = base[z, v], cos_t[v]
            first = min(v, n_v - 1) * n_u  # a padded view (weight 0) reads the last real one
            o, g, h = off[z - z0, j], wa[z - z0, j], wb[z - z0, j]
            for xx in range(X_TILE):
                u = b + np.float64(x0 + xx) * c
                inside = (u >= 0.0) & (u <= top)
                i = min(max(int(u), 0), n_u - 2)
                f = np.float32(u - i)
                o[xx] = numba.uint64((first + i) * nb)
                h[xx] = f if inside else np.float32(0.0)
                g[xx] = np.float32(1.0) - f if inside else np.float32(0.0)


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _bp_tile_s12(q, base, cos_t, vol, row0, n_valid, z0, z1, acc, nb):  # pragma: no cover - compiled
    """Sections ``z0 .. z1`` of the block: ``vol[z, row0 + k, x] = sum over views of q[v](u, k)``.

    Tiles of ``X_TILE`` columns by all the sections: the sums live in ``tile`` (the buffer that
    `write_columns` writes out), and the views are added a group of ``VIEW_GROUP`` at a time, so that a
    group's filtered columns, which neighbouring voxel columns share, come from L1 rather than L2 (summing
    all the views of one voxel column at once read them afresh from L2 for every column). For each column
    and group, the block's rows are ``nb / 16`` vector registers (two accumulators each: the two
    interpolation terms, so that eight independent FMA chains hide the FMA latency); ``nb`` is a constant
    where this is inlined, so the loops over the rows unroll. The group's cells and weights for the whole
    tile come first (`_group_cells_s12`).
    """
    n_v, n_u, _ = q.shape
    n_t = base.shape[1]  # n_v padded to a whole number of groups (`padded_geometry`)
    n_x = vol.shape[2]
    q1 = q.ravel()
    one = numba.uint64(nb)
    n_s = z1 - z0
    tile = np.empty((n_s, X_TILE, nb), dtype=np.float32)
    off = np.empty((n_s, VIEW_GROUP, X_TILE), dtype=np.uint64)
    wa = np.empty((n_s, VIEW_GROUP, X_TILE), dtype=np.float32)
    wb = np.empty((n_s, VIEW_GROUP, X_TILE), dtype=np.float32)
    for x0 in range(0, n_x, X_TILE):
        x1 = min(n_x, x0 + X_TILE)
        tile[:] = 0.0
        for v0 in range(0, n_t, VIEW_GROUP):
            _group_cells_s12(base, cos_t, n_v, n_u, nb, z0, z1, x0, v0, off, wa, wb)
            for s in range(n_s):
                for xx in range(x1 - x0):
                    t = tile[s, xx]
                    for k in range(nb):
                        acc[k] = t[k]
                        acc[nb + k] = 0.0
                    for j in range(VIEW_GROUP):
                        o, g, f = off[s, j, xx], wa[s, j, xx], wb[s, j, xx]
                        for kk in range(nb):
                            ku = numba.uint64(kk)  # unsigned indices: no wraparound code in the loop
                            acc[kk] += g * q1[o + ku]
                            acc[nb + kk] += f * q1[o + one + ku]
                    for k in range(nb):
                        t[k] = acc[k] + acc[nb + k]
        write_columns(tile, vol, z0, z1, x0, x1, row0, n_valid)


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_64_s12(q, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """`_bp_tile_s12` with 64 rows."""
    _bp_tile_s12(q, base, cos_t, vol, row0, n_valid, z0, z1, numba.carray(stack_block(128), (128,)), 64)  # type: ignore[call-arg]
