"""Two threads: the machine's own ceiling, and the WBP's split of the work, against one thread.

    python benchmarks/bench_wbp_threads.py              # 512 x 512 x 61 -> 128 thick, 9 interleaved repeats
    python benchmarks/bench_wbp_threads.py --repeats 15

1. **Ceiling.** Register-held FMAs (`bench_wbp_limit._fma_peak`) and the back-projection's view loop with its
   rows in L1 (`bench_wbp_limit._view_loop`), each on one Python thread alone, then on two at once (numba
   releases the GIL): the rate per thread by its own CPU time (`time.thread_time`), so that a clock that
   drops when both cores run AVX-512 shows as a lower rate, whatever else the machine runs; and the wall
   speed-up, which needs a quiet machine.
2. **The split.** `bp_kernels.wbp_blocks` over all the rows, in chunks as `wbp.backproject_views` calls it:
   one thread; two threads sharing each block (session 12: the views' filter, a join, the tiles of
   sections, a join, per block of 64 rows; run here by passing ``threads=1`` to two numba threads, which
   skips `bp_kernels.own_blocks` and tiles the sections as before); two threads each with its own blocks
   (`own_blocks`).
3. **The whole call** (`wbp.weighted_back_projection`, a new volume each time) on one and two threads.

Wall and CPU medians of runs interleaved in one process; the load average is printed (the machine is shared:
wall figures of two threads mean little unless it is near 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_wbp_limit import _fma_peak, _view_loop  # noqa: E402

from napari_tomoalign.reconstruction.bp_fft import twiddles  # noqa: E402
from napari_tomoalign.reconstruction.bp_kernels import BLOCK, aligned_empty, volume_empty, wbp_blocks  # noqa: E402
from napari_tomoalign.reconstruction.wbp import (  # noqa: E402
    angular_weights,
    full_filter,
    projection_coefficients,
    radial_filter,
    weighted_back_projection,
)


def ceiling(repeats: int) -> None:
    a, b = np.full(128, 0.999, np.float32), np.full(128, 1e-3, np.float32)
    q1 = aligned_empty(60 * 2 * 64)
    q1[:] = 1.0
    off = (np.arange(60) * 128).astype(np.uint64)
    wa, wb = np.full(60, 0.3, np.float32), np.full(60, 0.7, np.float32)
    outs = [np.zeros((8, 64), np.float32) for _ in range(2)]
    work = {"FMAs, register-held (G FMA/s)": (lambda i: _fma_peak(a, b, 1_000_000), 128e6),
            "view loop, rows in L1 (G voxel-views/s)": (lambda i: _view_loop(q1, off, wa, wb, 30_000, outs[i]),
                                                        30_000 * 60 * 64.0)}
    for fn, _ in work.values():
        fn(0)

    def run(fn, i: int, res: list) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(10):
            fn(i)
        res[i] = (time.thread_time() - c0, time.perf_counter() - t0)

    print("  the machine's ceiling: one Python thread alone, then two at once (rate per thread by its CPU time):")
    for name, (fn, n) in work.items():
        alone, both, walls = [], [], []
        for _ in range(repeats):
            res: list = [None, None]
            run(fn, 0, res)
            alone.append(10 * n / res[0][0])
            one_wall = res[0][1]
            res = [None, None]
            threads = [threading.Thread(target=run, args=(fn, i, res)) for i in range(2)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            both.append(float(np.mean([10 * n / r[0] for r in res])))
            walls.append(2 * one_wall / (time.perf_counter() - t0))
        print(f"    {name}: alone {np.median(alone) / 1e9:.1f}, two at once {np.median(both) / 1e9:.1f} per thread"
              f" ({np.median(both) / np.median(alone):.3f}); wall speed-up of two {np.median(walls):.2f}x")


def split(stack, tilts, n_z: int, repeats: int) -> None:
    n_v, n, _ = stack.shape
    filt = full_filter(radial_filter(1024, lowpass_cutoff=0.35, lowpass_falloff=0.05),
                       angular_weights(tilts).astype(np.float32))
    wr, wi = twiddles(filt.shape[1])
    coef = projection_coefficients(tilts, (n, n), n_z)
    base = (np.arange(n_z) - (n_z - 1) / 2.0)[:, None] * coef[None, :, 2] + (coef[:, 3] - coef[:, 0] * (n - 1) / 2.0)
    cos_t = np.ascontiguousarray(coef[:, 0])
    vol = volume_empty((n_z, n, n))
    vol.fill(0.0)

    def run(threads: int, arg: int) -> tuple[float, float]:
        numba.set_num_threads(threads)
        chunk = BLOCK * threads * 4  # as `wbp.backproject_views`
        sums = np.zeros(n_v)
        t0, c0 = time.perf_counter(), time.process_time()
        for c in range(0, n, chunk):
            wbp_blocks(stack, filt, wr, wi, base, cos_t, vol[:, c : c + chunk], c, arg, sums)
        return time.perf_counter() - t0, time.process_time() - c0

    cases = {"one thread": (1, 1), "two threads sharing each block (session 12)": (2, 1),
             "two threads, each its own blocks (own_blocks)": (2, 2)}
    _table("  filter and back-projection into a volume made once (bp_kernels.wbp_blocks):", cases, run, repeats)


def whole(stack, tilts, n_z: int, repeats: int) -> None:
    kw = {"thickness": n_z, "lowpass_cutoff": 0.35, "lowpass_falloff": 0.05}

    def run(threads: int, _: int) -> tuple[float, float]:
        numba.set_num_threads(threads)
        t0, c0 = time.perf_counter(), time.process_time()
        weighted_back_projection(stack, tilts, **kw)
        return time.perf_counter() - t0, time.process_time() - c0

    _table("  the whole call (wbp.weighted_back_projection, a new volume):", {"one thread": (1, 1),
                                                                            "two threads": (2, 2)}, run, repeats)


def _table(title: str, cases: dict, run, repeats: int) -> None:
    for args in cases.values():
        run(*args)
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for r in range(repeats):
        for k in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
            res[k].append(run(*cases[k]))
    print(title)
    one = float(np.median([w for w, _ in res["one thread"]]))
    for k in cases:
        w, c = float(np.median([w for w, _ in res[k]])), float(np.median([c for _, c in res[k]]))
        print(f"    {k:48s} wall {1000 * w:6.1f} ms  cpu {1000 * c:6.1f} ms  = {one / w:.2f}x one thread's speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    n_v, n, n_z = 61, 512, 128
    stack = np.random.default_rng(0).normal(size=(n_v, n, n)).astype(np.float32)
    tilts = np.linspace(-60.0, 60.0, n_v)
    print(f"{n} x {n} x {n_v} -> {n_z} thick; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    ceiling(args.repeats)
    split(stack, tilts, n_z, args.repeats)
    whole(stack, tilts, n_z, args.repeats)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
