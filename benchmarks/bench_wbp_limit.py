"""The weighted back-projection against this machine's limit, and against the kernel it replaced.

    python benchmarks/bench_wbp_limit.py            # 512 x 512 x 61 -> 128 thick, RADIAL 0.35 0.05
    python benchmarks/bench_wbp_limit.py --repeats 9

The bound. The job is ``n_views x rows x cols x thickness`` voxel-view updates, each a linear
interpolation between two filtered detector values: two fused multiply-adds per voxel and view, on
data that the blocking keeps in cache; and ``n_views x rows`` real rows filtered by an FFT of
``n_pad`` points (a forward and an inverse: ``5 n_pad log2 n_pad`` flops per row, counted as
multiply-adds at two flops each). The machine's rate for that arithmetic is measured here: a
compiled loop of independent 16-wide FMAs on accumulators held in registers (vector width from the
CPU flags: AVX-512 is 16 float32 lanes). Memory: the views are read once and the volume written
once, at the rate of a STREAM-like numpy copy (``bytes moved / time``, read + write). The bound is
the larger of the arithmetic time and the memory time; with blocks of 64 rows the filtered rows a
block needs (``n_views x n_u x 64 x 4`` bytes, 8 MB here) sit in L3, the rows one tile of sections
needs at one x in L2, and the accumulators in registers, so the memory term is the volume's write and
the views' read only.

Last, the full model (X-axis tilt and Z factors, `bp_kernels.backproject_block_full`) is timed against
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

from napari_tomoalign.reconstruction.bp_kernels import MAX_BLOCK, stack_block  # noqa: E402
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation as ncc  # noqa: E402
from napari_tomoalign.reconstruction.wbp import weighted_back_projection  # noqa: E402


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


def bound_s(m: dict, n_v: int, n_y: int, n_x: int, n_z: int) -> tuple[float, float, float]:
    """(arithmetic time, memory time, bound) for the job on one core."""
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    fma = 2.0 * n_v * n_y * n_x * n_z + n_v * n_y * 5 * n_pad * np.log2(n_pad) / 2.0
    t_arith = fma / m["fma_per_s"]
    t_mem = 4.0 * (n_v * n_y * n_x + n_z * n_y * n_x) / m["copy_bytes_per_s"]
    return t_arith, t_mem, max(t_arith, t_mem)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--thickness", type=int, default=128)
    args = parser.parse_args()
    n_v, n, n_z = 61, args.size, args.thickness
    m = machine()
    print(f"machine: {m['cores']} cores, {m['lanes']} float32 lanes, caches {m['caches']}")
    print(f"  measured: {m['fma_per_s'] / 1e9:.1f} G multiply-adds/s on one core (register-held, {m['lanes']} wide);"
          f" copy {m['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write)")
    t_a, t_m, bound = bound_s(m, n_v, n, n, n_z)
    print(f"  bound for {n} x {n} x {n_v} -> {n_z} thick: arithmetic {1000 * t_a:.0f} ms, memory {1000 * t_m:.0f} ms"
          f" -> {1000 * bound:.0f} ms on one core (blocks of {MAX_BLOCK} rows)")
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
    print(f"  two threads over one, new: {med['new, 1 thread'][0] / med['new, 2 threads'][0]:.2f}x (target >= 1.8);"
          f" old: {med['old, 1 thread'][0] / med['old, 2 threads'][0]:.2f}x")
    print(f"  same result: max |new - old| / max |old| = {diff:.1e}, NCC {ncc(outs['new'], outs['old']):.7f}")
    full_model(stack, tilts, kw, args.repeats)
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {m['cores']} cores")


if __name__ == "__main__":
    main()
