"""Robust fitting, leave-out error and warm-started re-solves, measured against their baselines.

    python benchmarks/bench_robust.py [--seeds N]

1. Simulated 40 markers x 41 views, 2% gross outliers (8-25 px), beads lost at high tilt, click
   noise 0.3 px. For each seed: RMS error of the predicted positions against the truth over all
   marker x view pairs, for the robust fit with outliers and for the same fit without them (and
   plain least squares, for scale); the share of outliers and of good points flagged; and on clean
   data, the robust fit's RMS residual against least squares.
2. Leave-out error on the paper-scale problem (109 views x 30 markers), against the naive way: a
   full staged solve without each marker.
3. Re-solving after a few edits: warm start from the last solution against a fresh solve.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.alignment.leaveout import leave_out_error


def solve(sim, keep=None, **kw):
    keep = np.ones(len(sim.view), bool) if keep is None else keep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align_markers(sim.view[keep], sim.marker[keep], sim.xy[keep], sim.nominal_tilt_angles_deg,
                             sim.image_size, AlignmentOptions(**kw))


def pred_error(al, sim):
    return float(np.sqrt(np.mean(np.sum((al.predicted_xy_px - sim.true_xy) ** 2, axis=2))))


def median_time(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_robust(seeds: int) -> None:
    print("Robust fitting: 40 markers x 41 views, 2% outliers of 8-25 px, beads lost at high tilt")
    print(" seed  robust/robust-clean  robust/LS-clean  LS/LS-clean  outliers flagged  good flagged"
          "  clean RMS robust/LS  robust time")
    rows = []
    for seed in range(seeds):
        sim = simulate_markers(n_views=41, n_markers=40, noise_px=0.3, high_tilt_loss=0.5, always_visible=6,
                               outlier_fraction=0.02, seed=seed)
        clean = ~sim.is_outlier
        t_rob, rob = median_time(lambda sim=sim: solve(sim, robust=True), 3)
        rob_clean, ls, ls_clean = solve(sim, clean, robust=True), solve(sim), solve(sim, clean)
        r = (pred_error(rob, sim) / pred_error(rob_clean, sim), pred_error(rob, sim) / pred_error(ls_clean, sim),
             pred_error(ls, sim) / pred_error(ls_clean, sim), rob.flagged[sim.is_outlier].mean(),
             rob.flagged[clean].mean(), rob_clean.rms_residual_px / ls_clean.rms_residual_px, t_rob)
        rows.append(r)
        print(f" {seed:4d}  {r[0]:19.3f}  {r[1]:15.3f}  {r[2]:11.2f}  {100 * r[3]:15.1f}%  {100 * r[4]:11.2f}%"
              f"  {r[5]:19.4f}  {1000 * r[6]:8.0f} ms")
    a = np.asarray(rows)
    print(f" worst: robust/robust-clean {a[:, 0].max():.3f} (target <= 1.1), outliers flagged "
          f"{100 * a[:, 3].min():.1f}% (>= 95%), good flagged {100 * a[:, 4].max():.2f}% (<= 1%), "
          f"clean RMS ratio {a[:, 5].max():.4f} (<= 1.01)")


def bench_leave_out() -> None:
    sim = simulate_markers(n_views=109, tilt_range_deg=(-55.0, 53.0), n_markers=30, noise_px=0.3,
                           high_tilt_loss=0.6, always_visible=6, seed=3)
    print(f"\nLeave-out error, paper-scale problem: 109 views x 30 markers, {len(sim.view)} observations")
    for robust in (False, True):
        al = solve(sim, robust=robust)
        leave_out_error(al)
        t, lo = median_time(lambda al=al: leave_out_error(al), 5)
        extra = "" if lo.overall_robust_px is None else f", robust {lo.overall_robust_px:.4f} px"
        print(f"  {'robust' if robust else 'least-squares'} fit: {1000 * t:6.0f} ms (target < 1 s), "
              f"leave-out error {lo.overall_px:.4f} px{extra}; RMS residual {al.rms_residual_px:.4f} px")
    al = solve(sim)
    t0 = time.perf_counter()
    for m in al.marker_ids:
        solve(sim, sim.marker != m)
    naive = time.perf_counter() - t0
    print(f"  naive (a full staged solve without each marker): {1000 * naive:6.0f} ms, "
          f"{naive / t:.1f}x slower")


def bench_warm_start() -> None:
    sim = simulate_markers(n_views=61, n_markers=30, noise_px=0.3, high_tilt_loss=0.5, always_visible=6,
                           outlier_fraction=0.01, seed=2)
    print("\nRe-solve after edits (61 views x 30 markers; delete the worst point, move the next to predicted)")
    for robust in (False, True):
        al = solve(sim, robust=robust)
        r = np.nan_to_num(np.hypot(*al.residuals_px.T))
        order = np.argsort(-r)
        keep = np.ones(len(sim.view), bool)
        keep[order[0]] = False
        xy = sim.xy.copy()
        j = order[1]
        xy[j] = al.predicted_xy_px[sim.view[j], al.obs_marker[j]]
        args = (sim.view[keep], sim.marker[keep], xy[keep], sim.nominal_tilt_angles_deg, sim.image_size,
                AlignmentOptions(robust=robust))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_fresh, fresh = median_time(lambda args=args: align_markers(*args), 7)
            t_warm, warm = median_time(lambda args=args, al=al: align_markers(*args, start=al), 7)
        print(f"  {'robust' if robust else 'least squares'}: fresh {1000 * t_fresh:6.1f} ms, warm "
              f"{1000 * t_warm:6.1f} ms, ratio {t_warm / t_fresh:.2f} (target < 0.5); RMS {fresh.rms_residual_px:.6f}"
              f" / {warm.rms_residual_px:.6f} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    bench_robust(args.seeds)
    bench_leave_out()
    bench_warm_start()


if __name__ == "__main__":
    main()
