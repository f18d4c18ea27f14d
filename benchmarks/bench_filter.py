"""The WBP's filter alone (`bp_fft.filter_block`) against the one it replaced and against its terms of the bound.

    python benchmarks/bench_filter.py                # 512 x 512 x 61 views, blocks of 64 rows, one thread
    python benchmarks/bench_filter.py --size 1024 --repeats 9

Every view's rows filtered block by block, as `bp_kernels.wbp_blocks` runs it (a view's 64 rows at a time
into one block's ``q``), by today's `filter_block`, by session 10's (`baseline_filter.py`, kept
unchanged), by session 11's (`baseline_filter_s11.py`) and by session 12's (`baseline_filter_s12.py`),
alternating in one process on one thread. Prints
the medians of the process's CPU time (the machine may be shared: CPU time is what one core spent), their
ratios, the largest difference of the outputs over the largest output, and the filter's computed terms of the bound
(`bench_wbp_limit.bound_terms`: the FFTs, the product, the rows into and out of the transform's layout).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import baseline_filter  # noqa: E402
import baseline_filter_s11  # noqa: E402
import baseline_filter_s12  # noqa: E402
from bench_wbp_limit import bound_terms, machine  # noqa: E402

from napari_tomoalign.reconstruction.bp_fft import filter_block, filter_scratch, twiddles  # noqa: E402
from napari_tomoalign.reconstruction.bp_kernels import MAX_BLOCK, aligned_empty  # noqa: E402
from napari_tomoalign.reconstruction.wbp import angular_weights, full_filter, radial_filter  # noqa: E402


@numba.njit(nogil=True)
def _filter_new(views, filt, wr, wi, q):  # pragma: no cover - compiled
    n_v, n_r, _ = views.shape
    nb = q.shape[2]
    bufs = filter_scratch(filt.shape[1])
    for r0 in range(0, n_r - nb + 1, nb):
        for v in range(n_v):
            filter_block(views[v], r0, nb, filt[v], wr, wi, bufs, q[v])


@numba.njit(nogil=True)
def _filter_old(views, filt, wr, wi, q):  # pragma: no cover - compiled
    n_v, n_r, _ = views.shape
    nb = q.shape[2]
    bufs = aligned_empty(4 * filt.shape[1] * (nb // 2)).reshape((4, filt.shape[1], nb // 2))
    for r0 in range(0, n_r - nb + 1, nb):
        for v in range(n_v):
            baseline_filter.filter_block(views[v], r0, nb, filt[v], wr, wi, bufs, q[v])


@numba.njit(nogil=True)
def _filter_s11(views, filt, wr, wi, q):  # pragma: no cover - compiled
    n_v, n_r, _ = views.shape
    nb = q.shape[2]
    bufs = filter_scratch(filt.shape[1])
    for r0 in range(0, n_r - nb + 1, nb):
        for v in range(n_v):
            baseline_filter_s11.filter_block(views[v], r0, nb, filt[v], wr, wi, bufs, q[v])


@numba.njit(nogil=True)
def _filter_s12(views, filt, wr, wi, q):  # pragma: no cover - compiled
    n_v, n_r, _ = views.shape
    nb = q.shape[2]
    bufs = filter_scratch(filt.shape[1])
    for r0 in range(0, n_r - nb + 1, nb):
        for v in range(n_v):
            baseline_filter_s12.filter_block(views[v], r0, nb, filt[v], wr, wi, bufs, q[v])


def cpu(fn, *args) -> float:
    t0 = time.process_time()
    fn(*args)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each view")
    parser.add_argument("--views", type=int, default=61)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    numba.set_num_threads(1)
    n_v, n = args.views, args.size
    n_pad = int(2 ** np.ceil(np.log2(2 * n)))
    tilts = np.linspace(-60.0, 60.0, n_v)
    filt = full_filter(radial_filter(n_pad, lowpass_cutoff=0.35, lowpass_falloff=0.05),
                       angular_weights(tilts).astype(np.float32))
    wr, wi = twiddles(n_pad)
    views = np.random.default_rng(0).normal(size=(n_v, n, n)).astype(np.float32)
    q_old = aligned_empty(n_v * n * MAX_BLOCK).reshape(n_v, n, MAX_BLOCK)
    q_new = aligned_empty(n_v * n * MAX_BLOCK).reshape(n_v, n, MAX_BLOCK)
    q_s11 = aligned_empty(n_v * n * MAX_BLOCK).reshape(n_v, n, MAX_BLOCK)
    q_s12 = aligned_empty(n_v * n * MAX_BLOCK).reshape(n_v, n, MAX_BLOCK)
    old, new, s11, s12 = [], [], [], []
    for _ in range(args.repeats + 1):  # the first round compiles and warms up; dropped
        old.append(cpu(_filter_old, views, filt, wr, wi, q_old))
        s11.append(cpu(_filter_s11, views, filt, wr, wi, q_s11))
        s12.append(cpu(_filter_s12, views, filt, wr, wi, q_s12))
        new.append(cpu(_filter_new, views, filt, wr, wi, q_new))
    t_old, t_new, t_s11, t_s12 = (float(np.median(t[1:])) for t in (old, new, s11, s12))
    diff = float(np.abs(q_new - q_old).max() / np.abs(q_old).max())
    terms = bound_terms(machine(), n_v, n, n, 128)
    computed = sum(v for k, v in terms.items() if k.startswith(("FFTs", "filter product", "rows into")))
    print(f"filter of {n_v} views of {n} x {n} (n_pad {n_pad}), blocks of {MAX_BLOCK} rows, one thread, "
          f"CPU medians of {args.repeats} (the machine may be shared):")
    print(f"  old (baseline_filter) {1000 * t_old:7.1f} ms   rounds {' '.join(f'{1000 * t:.0f}' for t in old[1:])}")
    print(f"  s11 (baseline_s11)    {1000 * t_s11:7.1f} ms   rounds {' '.join(f'{1000 * t:.0f}' for t in s11[1:])}")
    print(f"  s12 (baseline_s12)    {1000 * t_s12:7.1f} ms   rounds {' '.join(f'{1000 * t:.0f}' for t in s12[1:])}")
    print(f"  new (bp_fft)          {1000 * t_new:7.1f} ms   rounds {' '.join(f'{1000 * t:.0f}' for t in new[1:])}")
    diff11 = float(np.abs(q_new - q_s11).max() / np.abs(q_s11).max())
    diff12 = float(np.abs(q_new - q_s12).max() / np.abs(q_s12).max())
    per_round = ", ".join(f"{a / b:.3f}" for a, b in zip(new[1:], s12[1:]))
    print(f"  new / old {t_new / t_old:.3f}, new / s11 {t_new / t_s11:.3f}, new / s12 {t_new / t_s12:.3f} (per round: "
          f"{per_round})")
    print(f"  max |new - old| / max |old| = {diff:.2e}, against s11 {diff11:.2e}, against s12 {diff12:.2e} "
          "(the last block's rows)")
    print(f"  computed terms of the bound {1000 * computed:.1f} ms: new = {t_new / computed:.1f}x, "
          f"s12 = {t_s12 / computed:.1f}x, s11 = {t_s11 / computed:.1f}x, old = {t_old / computed:.1f}x")


if __name__ == "__main__":
    main()
