"""The weighted back-projection against this machine's limit, and against the kernel it replaced.

    python benchmarks/bench_wbp_limit.py            # 512 x 512 x 61 -> 128 thick, RADIAL 0.35 0.05
    python benchmarks/bench_wbp_limit.py --repeats 9

The bound (one core; ``bound_terms`` prints each term). Everything is counted in cycles of one core and
turned into time by the clock that the measured FMA rate implies: ``fma_per_s / (lanes x 2)``, two
512-bit FMA pipes (AMD Zen 5, family 26: 2 FMA/multiply pipes, 2 add pipes, two 64-byte loads and one
64-byte store per cycle from L1; Intel AVX-512 cores have the same two FMA ports and two load ports).

1. Back-projection, ``N = n_views x rows x cols x thickness`` voxel-view updates (2.0e9 here). Each is a
   linear interpolation between two filtered detector values, ``g a + f b``: 2 FMAs per voxel and, as
   the loop must be written (the block's rows as 16-lane vectors, the weights constant for a voxel
   column and view), 2 vector loads of ``q`` per 16 voxels. FMA pipes: ``2 N / 16 / 2`` cycles; load
   ports: ``2 N / 16 / 2`` cycles, the same, *if* the loads start on a cache line (a load that crosses
   two lines costs two; the filtered rows are allocated 64-byte aligned and a voxel column's rows are
   a multiple of 16, so no load has to cross: that cost is avoidable and not counted). Loads and FMAs
   issue in parallel, so the term is ``N / 16`` cycles, not twice that. The weights and offsets of each
   (x, z, view) (about 12 vector operations per 8 of them, float64 for exactness) issue on the integer
   and add pipes beside the FMAs: printed, not added. Not counted either, because a different loop
   order avoids it: refilling L1 from L2 (the loop that keeps the sums in registers over all views reads
   ~3.3 bytes per voxel-view from L2; views in groups summed into an L1 tile read ~0.7).
2. Filter: ``n_views x rows`` real rows, two to a complex column, 16 columns to a vector, so
   ``n_views x rows / 32`` vectors of columns, each transformed forward and back by an ``n_pad``-point
   FFT. Radix 4: ``n_pad / 4 x log4(n_pad)`` butterflies of 16 additions and 3 complex products (2
   multiplies + 2 FMAs each): ``3.5 n_pad log2 n_pad`` vector operations per transform, issued on the
   four FP pipes (two add, two FMA): ``0.875 n_pad log2 n_pad`` cycles (a last-pass store per output
   is avoidable with a larger radix held in registers, so stores are not added). The filter's product:
   ``2 n_pad`` operations per vector. The rows moved into and out of the transform's layout: one
   64-byte store per 16 values, ``3 n_pad`` per vector of columns (in: real and imaginary; out: the
   ``cols`` filtered values twice), on the one store port.
3. Memory: the views read once and the volume written once (``4 (n_views rows cols + thickness rows
   cols)`` bytes) at the rate of a STREAM-like numpy copy (bytes read + written / time). The filtered
   rows of a block (``n_views x cols x 64 x 4`` bytes, 8 MB here) stay in L3. The core's arithmetic and
   the memory traffic overlap (prefetch), so the bound is ``max(sum of the core's terms, memory)``.

Last, the full model (X-axis tilt and Z factors, `bp_full.backproject_block_full`) is timed against
the plain geometry on one thread, in the same run.

Times are medians of wall-clock runs interleaved with the baseline, and of the process's CPU time for
one thread (the machine is shared: CPU time is what one core spent, whatever else ran).
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
from baseline_wbp import baseline_wbp  # noqa: E402

from napari_tomoalign.reconstruction.bp_kernels import (  # noqa: E402
    CONTRACT,
    MAX_BLOCK,
    aligned_empty,
    stack_block,
    volume_empty,
)
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation as ncc  # noqa: E402
from napari_tomoalign.reconstruction.wbp import (  # noqa: E402
    angular_weights,
    backproject_views,
    full_filter,
    projection_coefficients,
    radial_filter,
    weighted_back_projection,
)


@numba.njit(fastmath=True, nogil=True)
def _fma_peak(a, b, n):  # pragma: no cover - compiled
    """``n`` rounds of 8 x 16 independent multiply-adds on register-held accumulators."""
    acc = numba.carray(stack_block(128), (128,))  # type: ignore[call-arg]
    for k in range(128):
        acc[k] = a[k]
    for _ in range(n):
        for k in range(128):
            acc[k] = acc[k] * a[k] + b[k]
    s = 0.0
    for k in range(128):
        s += acc[k]
    return s


@numba.njit(fastmath=CONTRACT, nogil=True)
def _view_loop(q1, off, wa, wb, reps, out):  # pragma: no cover - compiled
    """`bp_kernels._bp_tile`'s sum over the views of one voxel column (64 rows), ``reps`` times, on rows in L1."""
    acc = numba.carray(stack_block(256), (256,))  # type: ignore[call-arg]
    nb = 64
    one = numba.uint64(nb)
    for r in range(reps):
        for k in range(4 * nb):
            acc[k] = 0.0
        for v in range(0, off.size - 1, 2):
            o0, o1 = off[v], off[v + 1]
            g0, f0, g1, f1 = wa[v], wb[v], wa[v + 1], wb[v + 1]
            for kk in range(nb):
                ku = numba.uint64(kk)
                acc[kk] += g0 * q1[o0 + ku]
                acc[nb + kk] += f0 * q1[o0 + one + ku]
                acc[2 * nb + kk] += g1 * q1[o1 + ku]
                acc[3 * nb + kk] += f1 * q1[o1 + one + ku]
        for k in range(nb):
            out[r % 8, k] = (acc[k] + acc[nb + k]) + (acc[2 * nb + k] + acc[3 * nb + k])


def l1_loop_rate(n_v: int = 60, reps: int = 100_000) -> float:
    """Voxel-views per second of the kernel's view loop when its 60 views' two columns (30 KB) sit in L1."""
    q1 = aligned_empty(n_v * 2 * 64)
    q1[:] = 1.0
    off = (np.arange(n_v) * 128).astype(np.uint64)
    wa, wb = np.full(n_v, 0.3, np.float32), np.full(n_v, 0.7, np.float32)
    out = np.zeros((8, 64), np.float32)
    _view_loop(q1, off, wa, wb, 10, out)
    times = []
    for _ in range(5):
        t0 = time.process_time()
        _view_loop(q1, off, wa, wb, reps, out)
        times.append(time.process_time() - t0)
    return reps * n_v * 64 / float(np.median(times))


@numba.njit(fastmath=CONTRACT, nogil=True)
def _bp_stage(q1, stride, n_u, base, cos_t, n_x, mask, junk):  # pragma: no cover - compiled
    """`bp_kernels._bp_tile` (64 rows) without the volume's writes: ``mask`` -1 reads each view's real cells,
    1 keeps every view on its first two columns (``q1`` then small enough for L1)."""
    acc = numba.carray(stack_block(256), (256,))  # type: ignore[call-arg]
    nb, n_v = 64, cos_t.size
    one = numba.uint64(nb)
    off = np.empty(n_v, dtype=np.uint64)
    wa = np.empty(n_v, dtype=np.float32)
    wb = np.empty(n_v, dtype=np.float32)
    for x in range(n_x):
        for z in range(base.shape[0]):
            for v in range(n_v):
                u = base[z, v] + x * cos_t[v]
                inside = (u >= 0.0) & (u <= n_u - 1.0)
                i = min(max(int(u), 0), n_u - 2)
                f = np.float32(u - i)
                off[v] = numba.uint64(v * stride + (i & mask) * nb)
                wb[v] = f if inside else np.float32(0.0)
                wa[v] = np.float32(1.0) - f if inside else np.float32(0.0)
            for k in range(4 * nb):
                acc[k] = 0.0
            for v in range(0, n_v - 1, 2):
                o0, o1 = off[v], off[v + 1]
                g0, f0, g1, f1 = wa[v], wb[v], wa[v + 1], wb[v + 1]
                for kk in range(nb):
                    ku = numba.uint64(kk)
                    acc[kk] += g0 * q1[o0 + ku]
                    acc[nb + kk] += f0 * q1[o0 + one + ku]
                    acc[2 * nb + kk] += g1 * q1[o1 + ku]
                    acc[3 * nb + kk] += f1 * q1[o1 + one + ku]
            for kk in range(nb):  # the odd view (61 here)
                ku = numba.uint64(kk)
                acc[kk] += wa[n_v - 1] * q1[off[n_v - 1] + ku] if n_v % 2 else np.float32(0.0)
            for k in range(nb):
                junk[(x + z) % 8, k] = (acc[k] + acc[nb + k]) + (acc[2 * nb + k] + acc[3 * nb + k])


def breakdown(n_v: int, n: int, n_z: int, tilts: np.ndarray, repeats: int) -> None:
    """Where one block of 64 rows loses against the port bound: the kernel built up one cost at a time."""
    from napari_tomoalign.reconstruction.bp_kernels import backproject_64, padded_geometry

    numba.set_num_threads(1)
    t = np.radians(tilts)
    cos_t = np.cos(t)
    base = (np.arange(n_z) - (n_z - 1) / 2.0)[:, None] * np.sin(t)[None] + ((n - 1) / 2.0 * (1.0 - cos_t))[None]
    q = aligned_empty(n_v * n * 64)
    q[:] = np.random.default_rng(1).normal(size=q.size)
    small = aligned_empty(n_v * 144)  # two columns of 64 rows and a cache line per view
    small[:] = 1.0
    vol = aligned_empty(n_z * 64 * n).reshape(n_z, 64, n)  # rows on cache lines: non-temporal stores
    junk = np.empty((8, 64), np.float32)
    stages = {
        "B. + each column's cells and weights worked out, rows in L1": lambda: _bp_stage(small, 144, n, base, cos_t, n,
                                                                                          1, junk),
        "C. + the real cells (rows from L2/L3)": lambda: _bp_stage(q, n * 64, n, base, cos_t, n, -1, junk),
        "D. + the volume's writes: the kernel (bp_kernels.backproject_64)": lambda: [
            backproject_64(q.reshape(n_v, n, 64), *padded_geometry(base, cos_t), vol, 0, 64, z0, min(n_z, z0 + 32))
            for z0 in range(0, n_z, 32)],
    }
    print(f"  one block of 64 rows, one thread, G voxel-views/s (CPU medians of {repeats}):")
    print(f"    {l1_loop_rate() / 1e9:5.1f}  A. the view loop alone, its cells fixed and its rows in L1")
    for name, fn in stages.items():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        print(f"    {n_v * n * n_z * 64 / float(np.median(times)) / 1e9:5.1f}  {name}")


def machine() -> dict:
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    lanes = 16 if " avx512f" in flags else 8 if " avx2" in flags else 4
    caches = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        level, kind = (idx / "level").read_text().strip(), (idx / "type").read_text().strip()
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        caches[f"L{level}{suffix}"] = (idx / "size").read_text().strip()
    a = np.full(128, 0.999, np.float32)
    b = np.full(128, 1e-3, np.float32)
    _fma_peak(a, b, 10)
    rates = []
    for _ in range(5):
        n = 2_000_000
        t0 = time.process_time()
        _fma_peak(a, b, n)
        rates.append(128 * n / (time.process_time() - t0))
    x = np.ones(2**27 // 4, np.float32)
    y = np.empty_like(x)
    np.copyto(y, x)
    bws = []
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(y, x)
        bws.append(2 * x.nbytes / (time.perf_counter() - t0))
    return {"lanes": lanes, "caches": caches, "fma_per_s": float(np.max(rates)), "copy_bytes_per_s": float(np.max(bws)),
            "cores": os.cpu_count()}


def bound_terms(m: dict, n_v: int, n_y: int, n_x: int, n_z: int) -> dict[str, float]:
    """The bound's terms in seconds on one core (the module docstring's arithmetic) and the bound itself."""
    hz = m["fma_per_s"] / (m["lanes"] * 2)  # cycles per second: two FMA pipes of ``lanes`` lanes
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    voxel_views = float(n_v) * n_y * n_x * n_z
    col_vectors = n_v * n_y / (2 * m["lanes"])
    terms = {
        "back-projection FMAs (2 per 16 voxel-views, 2 pipes)": 2 * voxel_views / m["lanes"] / 2 / hz,
        "back-projection loads (2 per 16, 2 ports; in parallel with the FMAs)": 2 * voxel_views / m["lanes"] / 2 / hz,
        "FFTs (3.5 n log2 n ops per transform, 4 FP pipes)": col_vectors * 2 * 0.875 * n_pad * np.log2(n_pad) / hz,
        "filter product (2 n_pad ops per vector, 4 pipes)": col_vectors * 2 * n_pad / 4 / hz,
        "rows into and out of the FFT layout (3 n_pad stores per vector)": col_vectors * 3 * n_pad / hz,
    }
    core = sum(v for k, v in terms.items() if "in parallel" not in k)
    memory = 4.0 * (n_v * n_y * n_x + n_z * n_y * n_x) / m["copy_bytes_per_s"]
    terms["memory: views read + volume written (copy rate)"] = memory
    weights = n_v * n_x * n_z * -(-n_y // MAX_BLOCK) * 12 / 8 / 4 / hz
    terms["not added: weights of each (x, z, view), ~12 ops per 8 on other pipes"] = weights
    terms["bound = max(core terms summed, memory)"] = max(core, memory)
    return terms


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def full_model(stack: np.ndarray, tilts: np.ndarray, kw: dict, repeats: int) -> None:
    """One thread, IMOD's full model (BBa-like X-axis tilt 2.07 +- 0.4 deg and Z factors) over the plain geometry."""
    numba.set_num_threads(1)
    s = np.linspace(-1.0, 1.0, tilts.size)
    model = {"x_tilt_deg": 2.07 + 0.4 * s, "z_factors": np.column_stack([0.03 * s + 0.01 * s**2, -0.02 + 0.015 * s])}
    weighted_back_projection(stack[:, :64], tilts, **kw, **model)
    runs: dict[str, list[float]] = {"plain": [], "full": []}
    for _ in range(repeats):
        for name, extra in (("plain", {}), ("full", model)):
            runs[name].append(timed(lambda extra=extra: weighted_back_projection(stack, tilts, **kw, **extra))[1])
    plain, full = float(np.median(runs["plain"])), float(np.median(runs["full"]))
    print(f"  full model (X-axis tilt, Z factors), one thread: cpu {1000 * full:.0f} ms against {1000 * plain:.0f} ms"
          f" plain = {full / plain:.1f}x (target ~2)")


def into_volume(stack: np.ndarray, tilts: np.ndarray, kw: dict, repeats: int) -> float:
    """CPU median of the filter and back-projection alone (`wbp.backproject_views`, one thread) into a volume
    made once: the whole call also pays for its new output (the OS zeroes 128 MB of fresh pages on first
    touch), its input checks and its geometry, which the bound does not count."""
    numba.set_num_threads(1)
    n_v, n_y, n_x = stack.shape
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    radial = radial_filter(n_pad, lowpass_cutoff=kw["lowpass_cutoff"], lowpass_falloff=kw["lowpass_falloff"])
    filt = full_filter(radial, angular_weights(tilts).astype(np.float32))
    coef = projection_coefficients(tilts, (n_y, n_x), kw["thickness"])
    vol = volume_empty((kw["thickness"], n_y, n_x))
    backproject_views(stack, filt, coef, vol, 0)
    times = []
    for _ in range(repeats):
        times.append(timed(lambda: backproject_views(stack, filt, coef, vol, 0))[1])
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--thickness", type=int, default=128)
    parser.add_argument("--breakdown", action="store_true", help="only the back-projection's losses, stage by stage")
    args = parser.parse_args()
    n_v, n, n_z = 61, args.size, args.thickness
    m = machine()
    print(f"machine: {m['cores']} cores, {m['lanes']} float32 lanes, caches {m['caches']}")
    print(f"  measured: {m['fma_per_s'] / 1e9:.1f} G multiply-adds/s on one core (register-held, {m['lanes']} wide);"
          f" copy {m['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write)")
    terms = bound_terms(m, n_v, n, n, n_z)
    bound = terms["bound = max(core terms summed, memory)"]
    print(f"  bound for {n} x {n} x {n_v} -> {n_z} thick on one core (implied clock"
          f" {m['fma_per_s'] / (m['lanes'] * 2) / 1e9:.2f} GHz; blocks of {MAX_BLOCK} rows):")
    for name, t in terms.items():
        print(f"    {1000 * t:6.1f} ms  {name}")
    print(f"  the kernel's own view loop with its rows in L1: {l1_loop_rate() / 1e9:.1f} G voxel-views/s"
          f" (the port bound: {m['fma_per_s'] / 2 / 1e9:.1f})")
    if args.breakdown:
        breakdown(n_v, n, n_z, np.linspace(-60.0, 60.0, n_v), args.repeats)
        return
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(n_v, n, n)).astype(np.float32)
    tilts = np.linspace(-60.0, 60.0, n_v)
    kw = {"thickness": n_z, "lowpass_cutoff": 0.35, "lowpass_falloff": 0.05}
    rows: dict[str, list[tuple[float, float]]] = {"old, 1 thread": [], "new, 1 thread": [], "old, 2 threads": [],
                                                  "new, 2 threads": []}
    outs = {}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        baseline_wbp(stack[:, :64], tilts, **kw)
        weighted_back_projection(stack[:, :64], tilts, **kw)
    for _ in range(args.repeats):
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for name, fn in (("old", baseline_wbp), ("new", weighted_back_projection)):
                wall, cpu, outs[name] = timed(lambda fn=fn: fn(stack, tilts, **kw))
                rows[f"{name}, {threads} thread{'s' if threads > 1 else ''}"].append((wall, cpu))
    med = {k: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v]))) for k, v in rows.items()}
    for k, (w, c) in med.items():
        print(f"  {k:16s} wall {1000 * w:7.0f} ms   cpu {1000 * c:7.0f} ms")
    diff = float(np.abs(outs["new"] - outs["old"]).max() / np.abs(outs["old"]).max())
    print(f"  new / old, one thread: wall {med['new, 1 thread'][0] / med['old, 1 thread'][0]:.2f},"
          f" cpu {med['new, 1 thread'][1] / med['old, 1 thread'][1]:.2f} (target <= 0.4)")
    print(f"  new, one thread, over the bound: wall {med['new, 1 thread'][0] / bound:.2f},"
          f" cpu {med['new, 1 thread'][1] / bound:.2f} (target <= 2)")
    kernel = into_volume(stack, tilts, kw, args.repeats)
    print(f"  new, one thread, filter + back-projection into a volume made once: cpu {1000 * kernel:.0f} ms"
          f" = {kernel / bound:.2f}x the bound")
    print(f"  two threads over one, new: {med['new, 1 thread'][0] / med['new, 2 threads'][0]:.2f}x (target >= 1.8);"
          f" old: {med['old, 1 thread'][0] / med['old, 2 threads'][0]:.2f}x")
    print(f"  same result: max |new - old| / max |old| = {diff:.1e}, NCC {ncc(outs['new'], outs['old']):.7f}")
    full_model(stack, tilts, kw, args.repeats)
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {m['cores']} cores")


if __name__ == "__main__":
    main()
