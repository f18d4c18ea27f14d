"""The back-projection kernel of session 13 (`bp_kernels.backproject_64` then), kept so that the benchmarks time
today's kernel against it in the same process (`bench_wbp_limit.py --parts`, `probe_bp.py`).

Called as today's: ``q1`` the flat filtered rows and the zero cell. For each group of views it worked out the
cells and weights of the whole tile first (`_group_cells_s13`, a table of ``Z_TILE x X_TILE x VIEW_GROUP``
offsets and weights in memory), then summed each voxel column from the table (`bp_group.sum_group_64`); today's
kernel works the cells out in registers inside the column loop (`bp_group.sum_group_row_64`).
"""

from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.bp_group import sum_group_64
from napari_tomoalign.reconstruction.bp_kernels import CONTRACT, X_TILE
from napari_tomoalign.reconstruction.bp_write import store_fence, stream_transposed, write_columns

VIEW_GROUP = 8  # session 13's, whatever `bp_kernels` uses now


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _group_cells_s13(base, cos_t, n_v, n_u, nb, z0, z1, x0, v0, off, wf):  # pragma: no cover - compiled
    """The cells and weights of views ``v0 .. v0 + VIEW_GROUP`` for every voxel column of the tile: ``off[z - z0,
    x - x0, j]`` the flat index in ``q`` of view ``v0 + j``'s left cell, ``wf`` the right cell's weight."""
    top = n_u - 1.0
    zero = numba.uint32(n_v * n_u * nb)
    for z in range(z0, z1):
        b, o, w = base[z, v0 : v0 + VIEW_GROUP], off[z - z0], wf[z - z0]
        c = cos_t[v0 : v0 + VIEW_GROUP]
        for xx in range(X_TILE):
            x = np.float64(x0 + xx)
            for j in range(VIEW_GROUP):
                u = b[j] + x * c[j]
                inside = (u >= 0.0) & (u <= top)
                i = min(max(int(u), 0), n_u - 2)
                o[xx, j] = numba.uint32(((v0 + j) * n_u + i) * nb) if inside else zero
                w[xx, j] = np.float32(u - i) if inside else np.float32(0.0)


@numba.njit(inline="always", nogil=True)
def _stream_units_s13(done, vol, z0, row0, x0, per, lo, hi):  # pragma: no cover - compiled
    for u in range(lo, hi):
        k = u % per * 16
        stream_transposed(done[u // per], k, vol[z0 + u // per], row0 + k, x0)  # type: ignore[call-arg]


@numba.njit(inline="always", nogil=True)
def _streams_s13(vol, row0, n_valid, x0, x1):  # pragma: no cover - compiled
    return x1 - x0 == 16 and n_valid % 16 == 0 and vol.strides[1] % 64 == 0 and (
        vol[0, row0].ctypes.data + 4 * x0) % 64 == 0


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_64_s13(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """Session 13's `bp_kernels._bp_tile` with 64 rows: sections ``z0 .. z1`` of the block."""
    nb = 64
    n_t = base.shape[1]
    n_x = vol.shape[2]
    n_s = z1 - z0
    tiles = np.empty((2, n_s, X_TILE, nb), dtype=np.float32)
    off = np.empty((n_s, X_TILE, VIEW_GROUP), dtype=np.uint32)
    wf = np.empty((n_s, X_TILE, VIEW_GROUP), dtype=np.float32)
    n_steps = n_t // VIEW_GROUP * n_s
    per = n_valid // 16
    n_units = n_s * per
    for t in range(-(-n_x // X_TILE) + 1):
        x0, xp = t * X_TILE, (t - 1) * X_TILE
        tile, done = tiles[t % 2], tiles[(t + 1) % 2]
        spread = t > 0 and _streams_s13(vol, row0, n_valid, xp, min(n_x, x0))
        if t > 0 and not spread:
            write_columns(done, vol, z0, z1, xp, min(n_x, x0), row0, n_valid)
        if x0 >= n_x:
            if spread:
                _stream_units_s13(done, vol, z0, row0, xp, per, 0, n_units)
            break
        tile[:] = 0.0
        for v0 in range(0, n_t, VIEW_GROUP):
            _group_cells_s13(base, cos_t, n_v, n_u, nb, z0, z1, x0, v0, off, wf)
            for s in range(n_s):
                for xx in range(min(n_x, x0 + X_TILE) - x0):
                    sum_group_64(q1, off[s, xx], wf[s, xx], tile[s, xx])  # type: ignore[call-arg]
                step = v0 // VIEW_GROUP * n_s + s
                if spread:
                    _stream_units_s13(done, vol, z0, row0, xp, per, step * n_units // n_steps,
                                      (step + 1) * n_units // n_steps)
    store_fence()  # type: ignore[call-arg]
