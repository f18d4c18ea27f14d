"""The weighted back-projection against this machine's limit, and against the kernel it replaced.

    python benchmarks/bench_wbp_limit.py            # 512 x 512 x 61 -> 128 thick, RADIAL 0.35 0.05
    python benchmarks/bench_wbp_limit.py --repeats 9
    python benchmarks/bench_wbp_limit.py --parts     # the filter, the back-projection, the new volume, each alone
    python benchmarks/bench_wbp_limit.py --full      # the full model only (X-axis tilt, Z factors)

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
   issue in parallel, so the term is ``N / 16`` cycles, not twice that. Written ``a + f (b - a)`` with
   the differences stored, the FMAs halve (one FMA and one add, on the add pipes) but the loads do not:
   the load ports keep the term at ``N / 16``. The weights and offsets of each (x, z, view) (about 12
   vector operations per 8 of them, float64 for exactness) issue on the integer and add pipes beside
   the FMAs: printed, not added. Not counted either, because a different loop order avoids it:
   refilling L1 from L2 (the loop that keeps the sums in registers over all views reads ~3.3 bytes per
   voxel-view from L2; views in groups summed into an L1 tile read ~0.7).
2. Filter: ``n_views x rows`` real rows, two to a complex column, 16 columns to a vector, so
   ``n_views x rows / 32`` vectors of columns, each transformed forward and back by an ``n_pad``-point
   FFT. *Computed*, not measured: radix 4 does ``n_pad / 4 x log4(n_pad)`` butterflies of 16 additions
   and 3 complex products (2 multiplies + 2 FMAs each): ``3.5 n_pad log2 n_pad`` vector operations per
   transform, issued on the four FP pipes (two add, two FMA): ``0.875 n_pad log2 n_pad`` cycles (a
   last-pass store per output is avoidable with a larger radix held in registers, so stores are not
   added). A library FFT measured here cannot stand for "a good FFT": ``scipy.fft`` (pocketfft, one
   thread) on the same rows is printed and is slower than this kernel's own filter, so the computed
   count is the term. The filter's product: ``2 n_pad`` operations per vector. The rows moved into and
   out of the transform's layout: one 64-byte store per 16 values, ``3 n_pad`` per vector of columns
   (in: real and imaginary; out: the ``cols`` filtered values twice), on the one store port.
3. Memory: the views read once and the volume written once (``4 (n_views rows cols + thickness rows
   cols)`` bytes) at the rate of a STREAM-like numpy copy (bytes read + written / time). The filtered
   rows of a block (``n_views x cols x 64 x 4`` bytes, 8 MB here) stay in L3. The core's arithmetic and
   the memory traffic overlap (prefetch), so the kernel's bound is ``max(sum of the core's terms, memory)``.
4. Added for the whole call (`wbp.weighted_back_projection`), which returns a *new* volume: the OS hands
   out fresh pages zeroed, on the core that first touches them, in the page-fault handler, where nothing
   else of the job runs. That is one more write of the volume, at the measured cost of a fresh array's
   first touch over a touched one's; only memory that the caller passes in (which this API does not
   take) avoids it. The views' finite check is *not* added: it rides on the filter's own read of the rows
   (`bp_kernels.wbp_blocks` sums each view's rows just before filtering them, from the cache after).

Both bounds are printed, the kernel's (1-3) and the whole call's (1-4), and each measured part (filter
alone, back-projection alone, the new volume) against its own terms.

Last, the full model (X-axis tilt and Z factors) is timed against the plain geometry on one thread, in the same
run: BBa's X-axis tilt (2 degrees: `bp_full.backproject_block_full`) and a small one (0.15 degrees: the local one-row
kernel, `full_as_local`, against `bp_full` on the same geometry).

Times are medians of wall-clock runs interleaved with the baseline, and of the process's CPU time for
one thread (the machine is shared: CPU time is what one core spent, whatever else ran).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest.mock import patch

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from baseline_bp_s10 import backproject_64_s10  # noqa: E402
from baseline_bp_s12 import backproject_64_s12  # noqa: E402
from baseline_bp_s13 import backproject_64_s13  # noqa: E402
from baseline_wbp import baseline_wbp  # noqa: E402

from napari_tomoalign.reconstruction import wbp  # noqa: E402
from napari_tomoalign.reconstruction.bp_fft import filter_block, twiddles  # noqa: E402
from napari_tomoalign.reconstruction.bp_kernels import (  # noqa: E402
    CONTRACT,
    MAX_BLOCK,
    Z_TILE,  # noqa: E402
    aligned_empty,
    backproject_64,
    filtered_rows,
    padded_geometry,
    stack_block,
    volume_empty,
)
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation as ncc  # noqa: E402
from napari_tomoalign.reconstruction.kernel_choice import KernelChoice  # noqa: E402
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
    """Where one block of 64 rows loses against the port bound: A-C build up the loop that sums all the views of
    one voxel column at once (the kernel until session 8) one cost at a time; D is today's kernel."""
    numba.set_num_threads(1)
    t = np.radians(tilts)
    cos_t = np.cos(t)
    base = (np.arange(n_z) - (n_z - 1) / 2.0)[:, None] * np.sin(t)[None] + ((n - 1) / 2.0 * (1.0 - cos_t))[None]
    q1 = filtered_rows(n_v, n, 64)
    q = q1[: n_v * n * 64]
    q[:] = np.random.default_rng(1).normal(size=q.size)
    small = aligned_empty(n_v * 144)  # two columns of 64 rows and a cache line per view
    small[:] = 1.0
    vol = aligned_empty(n_z * 64 * n).reshape(n_z, 64, n)  # rows on cache lines: non-temporal stores
    junk = np.empty((8, 64), np.float32)
    stages = {
        "B. + each column's cells and weights worked out, rows in L1": lambda: _bp_stage(small, 144, n, base, cos_t, n,
                                                                                          1, junk),
        "C. + the real cells (rows from L2/L3; all views of a column at once, the loop before session 9)":
            lambda: _bp_stage(q, n * 64, n, base, cos_t, n, -1, junk),
        "D. the kernel (bp_kernels.backproject_64: groups of 8 views into a tile, the volume's writes)": lambda: [
            backproject_64(q1, n_v, n, *padded_geometry(base, cos_t), vol, 0, 64, z0, min(n_z, z0 + Z_TILE))
            for z0 in range(0, n_z, Z_TILE)],
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
            "cores": os.cpu_count(), "fresh_s_per_byte": fresh_page_cost(y)}


def fresh_page_cost(touched: np.ndarray, repeats: int = 7) -> float:
    """Seconds per byte that a new array's first write costs over a write of memory already touched: the OS
    zeroing fresh pages (numpy asks for huge pages; CPU time of both, minimum of ``repeats``)."""
    fresh, warm = [], []
    for _ in range(repeats):
        t0 = time.process_time()
        volume_empty(touched.shape).fill(1.0)
        fresh.append(time.process_time() - t0)
        t0 = time.process_time()
        touched.fill(1.0)
        warm.append(time.process_time() - t0)
    return max(0.0, min(fresh) - min(warm)) / touched.nbytes


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
    terms["+ the OS zeroing the new volume (measured first-touch cost)"] = 4.0 * n_z * n_y * n_x * m["fresh_s_per_byte"]
    terms["bound of the whole call (a new volume)"] = max(core, memory) + terms[
        "+ the OS zeroing the new volume (measured first-touch cost)"]
    return terms


@numba.njit(nogil=True)
def _filter_all(views, filt, wr, wi, q):  # pragma: no cover - compiled
    """Every block's filter (`bp_fft.filter_block`, as `bp_kernels.wbp_blocks` runs it) into one block's ``q``."""
    n_v, n_r, _ = views.shape
    nb = q.shape[2]
    bufs = aligned_empty(4 * filt.shape[1] * (nb // 2)).reshape((4, filt.shape[1], nb // 2))
    for r0 in range(0, n_r - nb + 1, nb):
        for v in range(n_v):
            filter_block(views[v], r0, nb, filt[v], wr, wi, bufs, q[v])


def parts(stack: np.ndarray, tilts: np.ndarray, kw: dict, terms: dict[str, float], m: dict, repeats: int) -> None:
    """One thread, CPU medians: the filter and the back-projection (blocks of `MAX_BLOCK` rows into a volume
    made once), each block's rows filtered and then back-projected as `bp_kernels.wbp_blocks` runs them and the
    two timed apart, against their terms of the bound; sessions 10, 12 and 13's back-projections (`baseline_bp_s*`) in
    the same runs; the new volume's first touch; and ``scipy.fft`` (pocketfft) filtering the same padded
    rows, for scale."""
    import scipy.fft

    numba.set_num_threads(1)
    n_v, n_y, n_x = stack.shape
    n_z = kw["thickness"]
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    radial = radial_filter(n_pad, lowpass_cutoff=kw["lowpass_cutoff"], lowpass_falloff=kw["lowpass_falloff"])
    filt = full_filter(radial, angular_weights(tilts).astype(np.float32))
    wr, wi = twiddles(n_pad)
    coef = projection_coefficients(tilts, (n_y, n_x), n_z)
    base = (np.arange(n_z) - (n_z - 1) / 2.0)[:, None] * coef[None, :, 2] + (coef[:, 3] - coef[:, 0] * (n_x - 1) / 2.0)
    geometry = padded_geometry(base, np.ascontiguousarray(coef[:, 0]))
    q1 = filtered_rows(n_v, n_x, MAX_BLOCK)
    q = q1[: n_v * n_x * MAX_BLOCK].reshape(n_v, n_x, MAX_BLOCK)
    vol = volume_empty((n_z, n_y, n_x))
    vol.fill(0.0)
    blocks = [np.ascontiguousarray(stack[:, r : r + MAX_BLOCK]) for r in range(0, n_y - MAX_BLOCK + 1, MAX_BLOCK)]
    padded = np.concatenate([stack[:, : n_y // 2], np.repeat(stack[:, : n_y // 2, -1:], n_pad - n_x, axis=2)], axis=2)

    def pipeline(kernel) -> tuple[float, float]:
        """(filter, back-projection) CPU seconds: each block filtered into ``q``, then back-projected."""
        spent = [0.0, 0.0]
        for k, rows in enumerate(blocks):
            t0 = time.process_time()
            _filter_all(rows, filt, wr, wi, q)
            t1 = time.process_time()
            for z0 in range(0, n_z, Z_TILE):
                kernel(vol, k * MAX_BLOCK, z0, min(n_z, z0 + Z_TILE))
            spent[0] += t1 - t0
            spent[1] += time.process_time() - t1
        return spent[0], spent[1]

    def today() -> tuple[float, float]:
        return pipeline(lambda vol, r0, z0, z1: backproject_64(q1, n_v, n_x, *geometry, vol, r0, MAX_BLOCK, z0, z1))

    def session13() -> tuple[float, float]:
        return pipeline(lambda vol, r0, z0, z1: backproject_64_s13(q1, n_v, n_x, *geometry, vol, r0, MAX_BLOCK, z0, z1))

    def session12() -> tuple[float, float]:
        return pipeline(lambda vol, r0, z0, z1: backproject_64_s12(q, *geometry, vol, r0, MAX_BLOCK, z0, z1))

    def session10() -> tuple[float, float]:
        return pipeline(lambda vol, r0, z0, z1: backproject_64_s10(q, *geometry, vol, r0, MAX_BLOCK, z0, z1))

    def library() -> None:  # half the rows, twice: rfft + irfft of every padded row, a view at a time
        h = radial.astype(np.float32)
        for _ in range(2):
            for rows in padded:
                scipy.fft.irfft(scipy.fft.rfft(rows, axis=1, workers=1) * h, n=n_pad, axis=1, workers=1)

    bp_new = "back-projection (bp_kernels.backproject_64)"
    bp_old = "back-projection, session 10's kernel (baseline_bp_s10, in the same runs)"
    bp_s12 = "back-projection, session 12's kernel (baseline_bp_s12, in the same runs)"
    bp_s13 = "back-projection, session 13's kernel (baseline_bp_s13, in the same runs)"
    times: dict[str, list[float]] = {"filter": [], bp_new: [], bp_s13: [], bp_s12: [], bp_old: [],
                                     "new volume (made and written once)": [],
                                     "scipy.fft rfft + irfft of the same rows": []}
    today()
    session13()
    session12()
    session10()
    for r in range(repeats):  # interleaved: each repeat runs every part once (scipy's only in the first)
        f, b = today()
        times["filter"].append(f)
        times[bp_new].append(b)
        times[bp_s13].append(session13()[1])
        times[bp_s12].append(session12()[1])
        times[bp_old].append(session10()[1])
        times["new volume (made and written once)"].append(timed(lambda: volume_empty(vol.shape).fill(1.0))[1])
        if r == 0:
            times["scipy.fft rfft + irfft of the same rows"].append(timed(library)[1])
    fft_terms = sum(v for k, v in terms.items() if k.startswith(("FFTs", "filter product", "rows into")))
    bp_term = terms[next(k for k in terms if k.startswith("back-projection F"))]
    against = {"filter": fft_terms, bp_new: bp_term, bp_s13: bp_term, bp_s12: bp_term, bp_old: bp_term,
               "new volume (made and written once)": 4.0 * vol.size / m["copy_bytes_per_s"]
               + terms["+ the OS zeroing the new volume (measured first-touch cost)"]}
    print("  parts, one thread (CPU medians, interleaved), against their terms of the bound:")
    med = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in med.items():
        ref = f" = {t / against[name]:.1f}x its terms ({1000 * against[name]:.1f} ms)" if name in against else ""
        print(f"    {1000 * t:6.1f} ms  {name}{ref}")
    for name, old in (("13", bp_s13), ("12", bp_s12), ("10", bp_old)):
        print(f"    back-projection today / session {name}'s: {med[bp_new] / med[old]:.2f} (medians; per repeat:"
              f" {', '.join(f'{a / b:.2f}' for a, b in zip(times[bp_new], times[old]))})")


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def full_model(stack: np.ndarray, tilts: np.ndarray, kw: dict, repeats: int) -> None:
    """One thread, IMOD's full model over the plain geometry: BBa-like (X-axis tilt 2.07 +- 0.4 deg and Z factors:
    `bp_full`'s kernel), and a small X-axis tilt (0.15 +- 0.05 deg, a tenth of those Z factors: the local one-row
    kernel, `full_as_local`) against `bp_full` on the same geometry (kept here as the baseline), with the NCC of
    the two tomograms."""
    numba.set_num_threads(1)
    s = np.linspace(-1.0, 1.0, tilts.size)
    zf = np.column_stack([0.03 * s + 0.01 * s**2, -0.02 + 0.015 * s])
    models = {"BBa-like": {"x_tilt_deg": 2.07 + 0.4 * s, "z_factors": zf},
              "small": {"x_tilt_deg": 0.15 + 0.05 * s, "z_factors": 0.1 * zf}}

    def exact(**extra):  # `bp_full` whatever the geometry: the kernel the small tilt took before session 16
        with patch.object(wbp, "full_model_kernel", lambda *a, **k: KernelChoice("exact", "full model")):
            return weighted_back_projection(stack, tilts, **kw, **extra)

    runs: dict[str, list[float]] = {"plain": [], "BBa-like": [], "small": [], "small, bp_full": []}
    calls = {"plain": lambda: weighted_back_projection(stack, tilts, **kw),
             "BBa-like": lambda: weighted_back_projection(stack, tilts, **kw, **models["BBa-like"]),
             "small": lambda: weighted_back_projection(stack, tilts, **kw, **models["small"]),
             "small, bp_full": lambda: exact(**models["small"])}
    out = {name: fn() for name, fn in calls.items()}  # compile / load the kernels
    for _ in range(repeats):
        for name, fn in calls.items():
            runs[name].append(timed(fn)[1])
    med = {name: float(np.median(t)) for name, t in runs.items()}
    inner = (slice(4, -4), slice(16, -16), slice(16, -16))
    score = ncc(out["small"][inner], out["small, bp_full"][inner])
    print(f"  full model, one thread (CPU medians): plain {1000 * med['plain']:.0f} ms; BBa-like (bp_full)"
          f" {1000 * med['BBa-like']:.0f} ms = {med['BBa-like'] / med['plain']:.1f}x plain; small X-axis tilt (one-row)"
          f" {1000 * med['small']:.0f} ms = {med['small'] / med['plain']:.1f}x plain, against bp_full on it"
          f" {1000 * med['small, bp_full']:.0f} ms: {med['small'] / med['small, bp_full']:.2f}x; NCC of the two"
          f" {score:.6f}")


def into_volume(stack: np.ndarray, tilts: np.ndarray, kw: dict, repeats: int, threads: int = 1) -> tuple[float, float]:
    """(wall, CPU) medians of the filter and back-projection alone (`wbp.backproject_views`) into a volume made
    once: the whole call also pays for its new output (the OS zeroes 128 MB of fresh pages on first touch),
    its input checks and its geometry."""
    numba.set_num_threads(threads)
    n_v, n_y, n_x = stack.shape
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    radial = radial_filter(n_pad, lowpass_cutoff=kw["lowpass_cutoff"], lowpass_falloff=kw["lowpass_falloff"])
    filt = full_filter(radial, angular_weights(tilts).astype(np.float32))
    coef = projection_coefficients(tilts, (n_y, n_x), kw["thickness"])
    vol = volume_empty((kw["thickness"], n_y, n_x))
    backproject_views(stack, filt, coef, vol, 0)
    times = [timed(lambda: backproject_views(stack, filt, coef, vol, 0))[:2] for _ in range(repeats)]
    return float(np.median([w for w, _ in times])), float(np.median([c for _, c in times]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--thickness", type=int, default=128)
    parser.add_argument("--breakdown", action="store_true", help="only the back-projection's losses, stage by stage")
    parser.add_argument("--parts", action="store_true", help="only the parts (filter, back-projection, new volume)")
    parser.add_argument("--full", action="store_true", help="only the full model (X-axis tilt, Z factors)")
    args = parser.parse_args()
    n_v, n, n_z = 61, args.size, args.thickness
    m = machine()
    print(f"machine: {m['cores']} cores, {m['lanes']} float32 lanes, caches {m['caches']}")
    print(f"  measured: {m['fma_per_s'] / 1e9:.1f} G multiply-adds/s on one core (register-held, {m['lanes']} wide);"
          f" copy {m['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write)")
    terms = bound_terms(m, n_v, n, n, n_z)
    bound = terms["bound = max(core terms summed, memory)"]
    call_bound = terms["bound of the whole call (a new volume)"]
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
    if args.parts:
        parts(stack, tilts, kw, terms, m, args.repeats)
        return
    if args.full:
        full_model(stack, tilts, kw, args.repeats)
        return
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
    print(f"  new, one thread, over the kernel's bound ({1000 * bound:.1f} ms): wall {med['new, 1 thread'][0] / bound:.2f},"
          f" cpu {med['new, 1 thread'][1] / bound:.2f} (target <= 2); over the whole call's ({1000 * call_bound:.1f} ms):"
          f" cpu {med['new, 1 thread'][1] / call_bound:.2f}")
    kernel = into_volume(stack, tilts, kw, args.repeats)
    kernel2 = into_volume(stack, tilts, kw, args.repeats, threads=2)
    print(f"  new, one thread, filter + back-projection into a volume made once: cpu {1000 * kernel[1]:.0f} ms"
          f" = {kernel[1] / bound:.2f}x the kernel's bound")
    print(f"  two threads over one, new: {med['new, 1 thread'][0] / med['new, 2 threads'][0]:.2f}x (target >= 1.8);"
          f" old: {med['old, 1 thread'][0] / med['old, 2 threads'][0]:.2f}x; the kernel into a volume made once:"
          f" {kernel[0] / kernel2[0]:.2f}x (wall {1000 * kernel[0]:.0f} -> {1000 * kernel2[0]:.0f} ms)")
    print(f"  same result: max |new - old| / max |old| = {diff:.1e}, NCC {ncc(outs['new'], outs['old']):.7f}")
    parts(stack, tilts, kw, terms, m, args.repeats)
    full_model(stack, tilts, kw, args.repeats)
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {m['cores']} cores")


if __name__ == "__main__":
    main()
