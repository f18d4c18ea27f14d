"""The compiled back-projection of the weighted back-projection: blocks of rows filtered and summed in cache.

The volume is made one block of ``MAX_BLOCK`` rows (slices) at a time (``BLOCK`` for a short tail):

1. **Filter** (`bp_fft.filter_block`): the threads share the views; each view's rows of the block come
   out as ``q[view, u, row]``, exactly the layout the back-projection reads.
2. **Back-project**: the threads share tiles of ``Z_TILE`` sections. For each voxel column ``(x, z)``
   and view, the detector position ``u`` is the same in every row of the block, so the block's rows are
   a few vectors: two contiguous reads of ``q`` and two fused multiply-adds per voxel and view. A tile of
   ``X_TILE`` columns by the sections is summed in a buffer, ``VIEW_GROUP`` views at a time: each column's
   cells and weights are worked out in registers (vectorised over the views) while the column before adds the
   group on register-held accumulators (`bp_group.sum_group_row_64`: no load but the rows' and the tile's).
   A group's filtered columns are shared by neighbouring voxel columns and stay in L1 (all 61 views at
   once did not fit, and were read from L2 for every column: 0.75x the time now). The buffer is written
   as whole cache lines of the volume's rows, 16 rows transposed in registers at a time, by non-temporal
   stores spread over the next tile's sums (writing each column straight into ``(z, y, x)`` touches a
   cache line, and often a page, per voxel; a tile's lines all at once filled the store queue, and the
   core waited for memory: 0.87x the time now).

With an X-axis tilt or Z factors that move points across rows (IMOD's full model), the row of a voxel
depends on its ``z``: see `bp_full`.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from .bp_fft import filter_block
from .bp_fft import stack_block as stack_block  # the kernels of `bp_full`, `local_blocks`, `local_rows` take it here
from .bp_group import VIEW_GROUP, sum_group_row_32, sum_group_row_64
from .bp_write import store_fence, stream_transposed, write_columns

BLOCK = 32  # the fewest rows in a block: two AVX-512 vectors of float32
MAX_BLOCK = 64  # rows in a full block: four AVX-512 vectors per voxel column
# Fused multiply-adds but no reassociation: ``acc += g a`` then ``acc += f b`` stay two FMAs per vector.
CONTRACT = {"contract", "nnan", "ninf", "nsz", "arcp", "afn"}
X_TILE = 16  # voxel columns whose results are written together: a cache line of each output row
OWN_BLOCKS_BYTES = 16 * 2**20  # each thread its own filtered rows (`own_blocks`) up to this size: both in L3
Z_TILE = 32  # sections per tile of the back-projection: its sums (32 x X_TILE x 64 rows, 128 KB) stay in L2


@numba.njit(cache=True, nogil=True)
def aligned_empty(size):  # pragma: no cover - compiled
    """``size`` uninitialised float32 that start on a cache line (64 bytes). numpy aligns to 16 bytes only,
    and then every 64-byte vector load of the filtered rows crosses two cache lines and costs two loads:
    the back-projection took 1.4x the time."""
    raw = np.empty(size + 16, dtype=np.float32)
    s = (16 - (raw.ctypes.data // 4) % 16) % 16
    return raw[s : s + size]


PAGE_FLOATS = 1024  # a 4 kB page of float32
TOUCH_MIN_BYTES = 2**25  # `volume_empty` touches the pages of volumes from 32 MB, on all the threads


@numba.njit(parallel=True, cache=True, nogil=True)
def _first_touch(flat, n_parts):  # pragma: no cover - compiled
    """One value of each page of ``flat`` set to zero, ``n_parts`` contiguous runs of pages side by side: the system
    zeroes and maps each page (a huge page of 2 MB where it can) on the thread that touches it first."""
    pages = -(-flat.size // PAGE_FLOATS)
    for p in numba.prange(n_parts):
        for k in range(p * pages // n_parts, (p + 1) * pages // n_parts):
            flat[k * PAGE_FLOATS] = 0.0


def volume_empty(shape: tuple[int, ...]) -> NDArray[np.float32]:
    """An uninitialised float32 volume that starts on a cache line, so that the kernels can write its rows
    by non-temporal stores (`write_columns`) when their length is a multiple of 16.

    On more than one thread, a volume of `TOUCH_MIN_BYTES` or more has its pages touched first, half by each thread
    (`_first_touch`): the kernels' first chunk of rows reaches every section, so every page of it, and its threads
    waited on each other's faults (a 2 MB huge page holds two sections of 512 x 512). 512 x 512 x 128 on two
    threads: 4.3 ms of faults (6.5 on one), and the whole WBP 1.65-1.67x one thread's speed before, 1.68-1.79x after
    (`benchmarks/bench_wbp_threads.py`)."""
    size = int(np.prod(shape))
    raw = np.empty(size + 16, dtype=np.float32)
    start = (-(raw.ctypes.data // 4)) % 16
    threads = numba.get_num_threads()
    if threads > 1 and 4 * size >= TOUCH_MIN_BYTES:
        _first_touch(raw, threads)
    return raw[start : start + size].reshape(shape)


@numba.njit(inline="always", fastmath=CONTRACT, nogil=True)
def _bp_tile(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1, nb):  # pragma: no cover - compiled
    """Sections ``z0 .. z1`` of the block: ``vol[z, row0 + k, x] = sum over views of q[v](u, k)``.

    ``q1`` is the block's filtered rows, flat: ``(n_v, n_u, nb)`` then the zero cell (``2 nb`` zeros).
    Tiles of ``X_TILE`` columns by all the sections: the sums live in ``tile`` (the buffer that
    `write_columns` writes out), and the views are added a group of ``VIEW_GROUP`` at a time, so that a
    group's filtered columns, which neighbouring voxel columns share, come from L1 rather than L2 (summing
    all the views of one voxel column at once read them afresh from L2 for every column). For each section
    and group, `bp_group.sum_group_row_64` (or ``_32``) works out the cells and weights of each of the tile's columns
    in registers and adds the group to it on register-held accumulators (session 13 worked out the cells of the
    whole tile first, a table of 32 KB in memory, then loaded 6 words of it per column: 0.78x its time now, with
    the tiles aligned, in `bench_wbp_limit.py --parts`).
    The tiles start on a cache line (numba's arrays start 32 bytes past one: every vector of the tile was
    two loads or stores).
    """
    n_t = base.shape[1]  # n_v padded to a whole number of groups (`padded_geometry`)
    n_x = vol.shape[2]
    n_s = z1 - z0
    tiles = aligned_empty(2 * n_s * X_TILE * nb).reshape((2, n_s, X_TILE, nb))  # numba's np.empty: 32 mod 64 bytes
    zero = n_v * n_u * nb  # the zero cell
    n_steps = n_t // VIEW_GROUP * n_s  # (group, section) steps per tile
    per = n_valid // 16
    n_units = n_s * per  # a tile's output: 16 rows of a section at a time (`stream_transposed`)
    for t in range(-(-n_x // X_TILE) + 1):
        x0, xp = t * X_TILE, (t - 1) * X_TILE
        tile, done = tiles[t % 2], tiles[(t + 1) % 2]  # done: the previous tile, columns ``xp .. x0``
        spread = t > 0 and _streams(vol, row0, n_valid, xp, min(n_x, x0))  # its writes spread over this tile's steps
        if t > 0 and not spread:
            write_columns(done, vol, z0, z1, xp, min(n_x, x0), row0, n_valid)
        if x0 >= n_x:  # the last tile's writes: nothing left to spread them over
            if spread:
                _stream_units(done, vol, z0, row0, xp, per, 0, n_units)
            break
        n_c = min(n_x, x0 + X_TILE) - x0
        sent, owed = 0, 0  # units of ``done`` written; ``owed / n_steps`` more are due (no division per step)
        for v0 in range(0, n_t, VIEW_GROUP):
            c = cos_t[v0 : v0 + VIEW_GROUP]
            for s in range(n_s):
                b = base[z0 + s, v0 : v0 + VIEW_GROUP]
                if nb == MAX_BLOCK and v0 == 0:  # the first group sets the tile's sums (no zeroing, no load)
                    sum_group_row_64(q1, b, c, tile[s], x0, n_c, n_u, v0, zero, True)  # type: ignore[call-arg]
                elif nb == MAX_BLOCK:
                    sum_group_row_64(q1, b, c, tile[s], x0, n_c, n_u, v0, zero, False)  # type: ignore[call-arg]
                elif v0 == 0:
                    sum_group_row_32(q1, b, c, tile[s], x0, n_c, n_u, v0, zero, True)  # type: ignore[call-arg]
                else:
                    sum_group_row_32(q1, b, c, tile[s], x0, n_c, n_u, v0, zero, False)  # type: ignore[call-arg]
                if spread:  # after step j, units up to (j + 1) n_units // n_steps
                    owed += n_units
                    due = sent
                    while owed >= n_steps:
                        owed -= n_steps
                        due += 1
                    _stream_units(done, vol, z0, row0, xp, per, sent, due)
                    sent = due
    store_fence()  # type: ignore[call-arg]


@numba.njit(inline="always", nogil=True)
def _stream_units(done, vol, z0, row0, x0, per, lo, hi):  # pragma: no cover - compiled
    """Units ``lo .. hi`` of the tile ``done`` (sections by ``X_TILE`` columns by rows) into ``vol``'s columns ``x0 ..
    x0 + 16``: unit ``u`` is rows ``16 (u % per) ..`` (16 of them) of section ``u // per``, transposed in registers
    (`stream_transposed`)."""
    for u in range(lo, hi):
        k = u % per * 16
        stream_transposed(done[u // per], k, vol[z0 + u // per], row0 + k, x0)  # type: ignore[call-arg]


@numba.njit(inline="always", nogil=True)
def _streams(vol, row0, n_valid, x0, x1):  # pragma: no cover - compiled
    """Whether the columns ``x0 .. x1`` of ``vol``'s rows ``row0 .. row0 + n_valid`` are whole cache lines, 16 rows
    at a time: written by `stream_transposed` alone, a piece after each step of the next tile's sums (all at
    once, the non-temporal stores filled the store queue and the core waited for memory)."""
    return x1 - x0 == 16 and n_valid % 16 == 0 and vol.strides[1] % 64 == 0 and (
        vol[0, row0].ctypes.data + 4 * x0) % 64 == 0


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_64(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """`_bp_tile` with 64 rows (``q1`` from `filtered_rows`)."""
    _bp_tile(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1, 64)


@numba.njit(cache=True, fastmath=CONTRACT, nogil=True)
def backproject_32(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
    """`_bp_tile` with 32 rows (``q1`` from `filtered_rows`)."""
    _bp_tile(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1, 32)


@numba.njit(cache=True, nogil=True)
def filtered_rows(n_v, n_u, nb):  # pragma: no cover - compiled
    """Room for a block's filtered rows as the kernels read them: ``n_v x n_u x nb`` float32 on a cache line
    (uninitialised), then the zero cell, ``2 nb`` zeros that a view reads where it falls off the detector."""
    q1 = aligned_empty(n_v * n_u * nb + 2 * nb)
    q1[n_v * n_u * nb :] = 0.0
    return q1


@numba.njit(cache=True, nogil=True)
def padded_geometry(base, cos_t):  # pragma: no cover - compiled
    """``base`` and ``cos_t`` with the views padded to a multiple of `VIEW_GROUP` by views that fall outside the
    detector (``u = -1``, weight 0): the kernel sums whole groups of views, with no tail."""
    n_z, n_v = base.shape
    n_t = -(-n_v // VIEW_GROUP) * VIEW_GROUP
    base_p = np.full((n_z, n_t), -1.0)
    base_p[:, :n_v] = base
    cos_p = np.zeros(n_t)
    cos_p[:n_v] = cos_t
    return base_p, cos_p


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"}, nogil=True)
def view_sums(stack, views):  # pragma: no cover - compiled
    """The float64 sum of each of ``views`` of the float32 ``stack``, the threads sharing the views: NaN or
    infinite where a pixel is (reassociated for vectors, but no fast-math assumption that values are finite)."""
    out = np.empty(views.size)
    for j in numba.prange(views.size):
        v = stack[views[j]]
        s = 0.0
        for r in range(v.shape[0]):
            for c in range(v.shape[1]):
                s += v[r, c]
        out[j] = s
    return out


@numba.njit(cache=True, fastmath={"reassoc"}, nogil=True)
def add_row_sums(sums, v, view, lo, hi):  # pragma: no cover - compiled
    """``sums[v] +=`` the float64 sum of rows ``lo .. hi`` of ``view``: NaN or infinite where a pixel is. Compiled
    apart (called, not inlined into the fast-math kernel), with no fast-math assumption that values are finite."""
    s = 0.0
    for r in range(lo, hi):
        for c in range(view.shape[1]):
            s += view[r, c]
    sums[v] += s


@numba.njit(cache=True, nogil=True)
def all_finite(sums):  # pragma: no cover - compiled
    """Whether every value of ``sums`` is finite (compiled apart from the fast-math kernel, which may assume it)."""
    for x in sums:
        if not np.isfinite(x):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def section_tile(n_z, threads):  # pragma: no cover - compiled
    """Sections per tile of the back-projection: at most `Z_TILE`, and as even as the threads need, a whole
    number of tiles for each (100 sections on two threads: four tiles of 25, not 32, 32, 32 and 4, which left
    one thread 64 sections and the other 36)."""
    rounds = max(1, -(-n_z // (threads * Z_TILE)))  # tiles per thread
    return max(1, -(-n_z // (threads * rounds)))


@numba.njit(cache=True, fastmath=True, nogil=True)
def block_rows(left):  # pragma: no cover - compiled
    """The rows of the next block when ``left`` rows remain: ``MAX_BLOCK``, or ``BLOCK`` for a short tail."""
    return MAX_BLOCK if left > BLOCK else BLOCK


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def wbp_blocks(views, filt, wr, wi, base, cos_t, vol, row_first, threads, sums):  # pragma: no cover - compiled
    """Filter and back-project ``vol`` ``(n_z, n_rows, n_x)``: its row ``k`` is row ``row_first + k`` of ``views``.

    ``views`` ``(n_views, rows, cols)``; ``filt`` ``(n_views, n_pad)`` each view's filter and weight;
    ``base`` ``(n_z, n_views)`` the detector position of column 0 and ``cos_t`` its step per column.
    The whole blocks that the ``threads`` can share evenly go first, each thread its own blocks from filter
    to volume (`own_blocks`); the rest one block at a time: the threads filter its views, then
    back-project its tiles of sections. Each view's rows are summed into ``sums[view]`` (float64) just before
    they are filtered, which brings them into the cache for the filter: a view with a NaN or infinite pixel
    has a sum that is not, and the work stops at that block (the caller names the view).
    """
    n_v, n_r, n_u = views.shape
    n_z, n_rows, _ = vol.shape
    base, cos_t = padded_geometry(base, cos_t)
    r0 = 0
    if threads > 1 and 4 * n_v * n_u * MAX_BLOCK <= OWN_BLOCKS_BYTES:
        r0 = n_rows // MAX_BLOCK // threads * threads * MAX_BLOCK
        if r0 > 0:
            own_blocks(views, filt, wr, wi, base, cos_t, vol, row_first, threads, sums, r0 // MAX_BLOCK)
            if not all_finite(sums):
                return
    z_tile = section_tile(n_z, threads)
    n_tiles = -(-n_z // z_tile)
    q_all = filtered_rows(n_v, n_u, block_rows(n_rows))  # one allocation: no page faults per block
    while r0 < n_rows:
        nb = block_rows(n_rows - r0)
        n_valid = min(nb, n_rows - r0)
        q1 = q_all[: n_v * n_u * nb + 2 * nb]
        q1[n_v * n_u * nb :] = 0.0  # the zero cell, after a shorter block's rows
        q = q1[: n_v * n_u * nb].reshape((n_v, n_u, nb))
        lo, hi = max(0, row_first + r0), min(n_r, row_first + r0 + nb)  # the rows the filter reads
        for v in numba.prange(n_v):
            add_row_sums(sums, v, views[v], lo, hi)
            bufs = aligned_empty(4 * filt.shape[1] * (nb // 2)).reshape((4, filt.shape[1], nb // 2))
            filter_block(views[v], row_first + r0, nb, filt[v], wr, wi, bufs, q[v])
        if not all_finite(sums):
            return
        for t in numba.prange(n_tiles):
            z0 = t * z_tile
            z1 = min(n_z, z0 + z_tile)
            if nb == MAX_BLOCK:
                backproject_64(q1, n_v, n_u, base, cos_t, vol, r0, n_valid, z0, z1)
            else:
                backproject_32(q1, n_v, n_u, base, cos_t, vol, r0, n_valid, z0, z1)
        r0 += nb


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def own_blocks(views, filt, wr, wi, base, cos_t, vol, row_first, threads, sums, n_blocks):  # pragma: no cover
    """The first ``n_blocks`` blocks of `MAX_BLOCK` rows of `wbp_blocks` (a multiple of ``threads``; ``base`` and
    ``cos_t`` padded): thread ``t`` filters and back-projects blocks ``t``, ``t + threads``, ... into filtered rows
    of its own, with no fork or join between (one block shared by the threads waited for both at two joins
    per block). A thread stops after a block whose sums are not finite."""
    n_v, n_r, n_u = views.shape
    n_z = vol.shape[0]
    z_tile = section_tile(n_z, 1)
    part = np.zeros((threads, n_v))  # each thread's sums, added to ``sums`` after
    for t in numba.prange(threads):
        q1 = filtered_rows(n_v, n_u, MAX_BLOCK)
        q = q1[: n_v * n_u * MAX_BLOCK].reshape((n_v, n_u, MAX_BLOCK))
        bufs = aligned_empty(4 * filt.shape[1] * (MAX_BLOCK // 2)).reshape((4, filt.shape[1], MAX_BLOCK // 2))
        for b in range(t, n_blocks, threads):
            r0 = b * MAX_BLOCK
            lo, hi = max(0, row_first + r0), min(n_r, row_first + r0 + MAX_BLOCK)
            for v in range(n_v):
                add_row_sums(part[t], v, views[v], lo, hi)
                filter_block(views[v], row_first + r0, MAX_BLOCK, filt[v], wr, wi, bufs, q[v])
            if not all_finite(part[t]):
                break
            for z0 in range(0, n_z, z_tile):
                backproject_64(q1, n_v, n_u, base, cos_t, vol, r0, MAX_BLOCK, z0, min(n_z, z0 + z_tile))
    for t in range(threads):
        for v in range(n_v):
            sums[v] += part[t, v]
