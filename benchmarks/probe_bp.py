"""Where the global back-projection's time goes: session 13's kernel beside copies of it with one cost taken out.

    python benchmarks/probe_bp.py               # 512 x 512 x 61 -> 128 thick, one thread, 7 interleaved repeats
    python benchmarks/probe_bp.py --repeats 11

Each probe is session 13's kernel (`baseline_bp_s13`: the cells of a group for the whole tile in a table first,
then the sums) with one part removed, so its result is wrong on purpose; what it saves against that kernel, timed in
the same interleaved runs, is what that part costs. Today's kernel (`bp_kernels.backproject_64`: each column's
cells worked out in registers a column ahead of its sums, `bp_group.sum_group_row_64`, and its tiles on cache lines)
and session 12's (`baseline_bp_s12`) are timed beside them. The probes' tiles are `np.empty` as session 13's were,
at random 0 or 32 bytes past a cache line (numba's arrays), so a probe can come out slower than the kernel it
lightens: read their costs as rough.

- ``no writes``: the tile is summed but not written to the volume (`bp_kernels.write_columns` left out);
- ``no tile loads``: each column's sums start at zero instead of from the tile (its read from L2 left out);
- ``writes in a burst``: the kernel with its writes as session 12 made them, a tile's all at once after its sums
  (here they are spread over the next tile's steps);
- ``rows in L1``: every view's reads fall on its first two cells (30 KB for 61 views), so no read of the
  filtered rows misses L1;
- ``tables only``: the cells and weights (`baseline_bp_s13._group_cells_s13`) and nothing else;
- ``rows in L1, no writes``: both at once, so what is left is the tables and the view loop with its reads in L1
  (against `bench_wbp_limit.py`'s "own view loop", which sums 60 views per column with fixed cells).

The protocol is `bench_wbp_limit.py --parts`': each block of 64 rows is filtered into ``q`` (not timed), then
back-projected by every kernel in turn, the order alternating between repeats; CPU time (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from baseline_bp_s12 import backproject_64_s12  # noqa: E402
from baseline_bp_s13 import _group_cells_s13 as _group_cells  # noqa: E402
from baseline_bp_s13 import backproject_64_s13  # noqa: E402
from bench_wbp_limit import _filter_all  # noqa: E402

from napari_tomoalign.reconstruction.bp_fft import twiddles  # noqa: E402
from napari_tomoalign.reconstruction.bp_group import sum_group_64  # noqa: E402
from napari_tomoalign.reconstruction.bp_kernels import (  # noqa: E402
    CONTRACT,
    MAX_BLOCK,
    VIEW_GROUP,
    X_TILE,
    Z_TILE,
    backproject_64,
    filtered_rows,
    padded_geometry,
    volume_empty,
    write_columns,
)
from napari_tomoalign.reconstruction.wbp import (  # noqa: E402
    angular_weights,
    full_filter,
    projection_coefficients,
    radial_filter,
)

NO_WRITES, NO_TILE_LOADS, ROWS_IN_L1, TABLES_ONLY, LOOP_AND_TABLES, BURST = 1, 2, 3, 4, 5, 6


def probe(mode: int):
    """`baseline_bp_s13.backproject_64_s13` with the part ``mode`` names taken out (its writes, when taken out, are not
    spread over the next tile's steps: there are none)."""

    @numba.njit(fastmath=CONTRACT, nogil=True)
    def kernel(q1, n_v, n_u, base, cos_t, vol, row0, n_valid, z0, z1):  # pragma: no cover - compiled
        nb = 64
        n_t, n_x = base.shape[1], vol.shape[2]
        n_s = z1 - z0
        tile = np.empty((n_s, X_TILE, nb), dtype=np.float32)
        off = np.empty((n_s, X_TILE, VIEW_GROUP), dtype=np.uint32)
        wf = np.empty((n_s, X_TILE, VIEW_GROUP), dtype=np.float32)
        for x0 in range(0, n_x, X_TILE):
            x1 = min(n_x, x0 + X_TILE)
            tile[:] = 0.0
            for v0 in range(0, n_t, VIEW_GROUP):
                _group_cells(base, cos_t, n_v, n_u, nb, z0, z1, x0, v0, off, wf)
                if mode == ROWS_IN_L1 or mode == LOOP_AND_TABLES:
                    for s in range(n_s):
                        for xx in range(X_TILE):
                            for j in range(VIEW_GROUP):
                                off[s, xx, j] = numba.uint32(min(v0 + j, n_v - 1) * n_u * nb)
                if mode == TABLES_ONLY:
                    tile[0, 0, 0] += wf[0, 0, 0] + wf[n_s - 1, X_TILE - 1, VIEW_GROUP - 1] + off[n_s - 1, 0, 0]
                    continue
                for s in range(n_s):
                    for xx in range(x1 - x0):
                        t = tile[s, xx]
                        if mode == NO_TILE_LOADS:
                            t[:] = 0.0
                        sum_group_64(q1, off[s, xx], wf[s, xx], t)  # type: ignore[call-arg]
            if mode == NO_WRITES or mode == TABLES_ONLY or mode == LOOP_AND_TABLES:
                vol[z0, row0, x0] = tile[0, 0, 0]
            else:
                write_columns(tile, vol, z0, z1, x0, x1, row0, n_valid)

    return kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    numba.set_num_threads(1)
    n_v, n, n_z = 61, 512, 128
    stack = np.random.default_rng(0).normal(size=(n_v, n, n)).astype(np.float32)
    tilts = np.linspace(-60.0, 60.0, n_v)
    n_pad = int(2 ** np.ceil(np.log2(2 * n)))
    filt = full_filter(radial_filter(n_pad, lowpass_cutoff=0.35, lowpass_falloff=0.05),
                       angular_weights(tilts).astype(np.float32))
    wr, wi = twiddles(n_pad)
    coef = projection_coefficients(tilts, (n, n), n_z)
    base = (np.arange(n_z) - (n_z - 1) / 2.0)[:, None] * coef[None, :, 2] + (coef[:, 3] - coef[:, 0] * (n - 1) / 2.0)
    geometry = padded_geometry(base, np.ascontiguousarray(coef[:, 0]))
    q1 = filtered_rows(n_v, n, MAX_BLOCK)
    q = q1[: n_v * n * MAX_BLOCK].reshape(n_v, n, MAX_BLOCK)
    blocks = [np.ascontiguousarray(stack[:, r : r + MAX_BLOCK]) for r in range(0, n - MAX_BLOCK + 1, MAX_BLOCK)]
    kernels = {"session 13's kernel (baseline_bp_s13)": backproject_64_s13,
               "today's kernel (bp_kernels.backproject_64)": backproject_64,
               "session 12's kernel (baseline_bp_s12)": lambda q1, n_v, n_u, *rest: backproject_64_s12(q, *rest),
               "writes in a burst": probe(BURST), "no writes": probe(NO_WRITES), "no tile loads": probe(NO_TILE_LOADS),
               "rows in L1": probe(ROWS_IN_L1), "tables only": probe(TABLES_ONLY),
               "rows in L1, no writes": probe(LOOP_AND_TABLES)}
    vol = volume_empty((n_z, n, n))
    vol.fill(0.0)

    def run(kernel) -> float:
        spent = 0.0
        for k, rows in enumerate(blocks):
            _filter_all(rows, filt, wr, wi, q)
            t0 = time.process_time()
            for z0 in range(0, n_z, Z_TILE):
                kernel(q1, n_v, n, *geometry, vol, k * MAX_BLOCK, MAX_BLOCK, z0, min(n_z, z0 + Z_TILE))
            spent += time.process_time() - t0
        return spent

    names = list(kernels)
    for name in names:
        run(kernels[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(run(kernels[name]))
    ref = float(np.median(times[names[0]]))
    print(f"back-projection of {n} x {n} x {n_v} -> {n_z}, one thread, CPU medians of {args.repeats} interleaved runs:")
    for name in names:
        t = float(np.median(times[name]))
        cost = "" if name == names[0] else f"   (that part costs {1000 * (ref - t):5.1f} ms)"
        if name == "tables only":
            cost = "   (what the tables cost alone)"
        if name.startswith("today"):
            cost = f"   (saves {1000 * (ref - t):5.1f} ms against session 13's)"
        if name.startswith(("session 12", "writes in a burst")):
            cost = f"   (the kernel saves {1000 * (t - ref):5.1f} ms against it)"
        if name == "rows in L1, no writes":
            rate = n_v * n * n * n_z / t / 1e9
            cost = f"   (the tables and the view loop in L1: {rate:.1f} G voxel-views/s)"
        print(f"  {1000 * t:6.1f} ms  {t / ref:5.2f}  {name}{cost}")
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
