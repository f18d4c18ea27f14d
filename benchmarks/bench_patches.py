"""Patch tracking (no gold) scored end to end against simulated lamellae, and timed.

    python benchmarks/bench_patches.py                 # everything (renders 1024 x 1024 x 41 once, ~30 s)
    python benchmarks/bench_patches.py --only easy,hard --size 512 --seeds 3   # smaller and quicker (and worse: see below)
    python benchmarks/bench_patches.py --only scale    # observations and solve time on 1024 x 1024 x 41
    python benchmarks/bench_patches.py --only run      # `tomoalign run --patches` on 1024 x 1024 x 41
    python benchmarks/bench_patches.py --only easy --iterations 1   # the first pass alone (the old figure)

Data (`simulation.lamella`): FIB lamellae, textured slabs pre-tilted about the axis, with a dark
protective layer on the front edge, curtaining on the lower surface, vacuum beyond the edges at high tilt,
drift, rotation and magnification jitter. easy: 150 nm at 1 nm/px, 30 counts/px. hard: 300 nm at
0.8 nm/px, 5 counts/px, two stage jumps of a tenth of the field (100 px at 1024), a smooth non-rigid warp
of up to 3 px per view.

The figure (the project's end-to-end rule): 400 known 3-D points in the slab projected through the true
geometry (the warp included), mapped through the alignment's ``.xf`` and ``.tlt``, each point's 3-D position
fitted, the RMS of what is left (`simulation.lamella.end_to_end_error`). Beside it the same figure for an
alignment of those points' true positions with 0.3 px noise (same solver, same options). For the hard set
the figure is over the views that keep at least 20 % of the zero-tilt dose; the others are named.

Timings are medians on the machine this runs on (a shared 2-core machine when the figures in the README
were taken); the run figure is the whole `tomoalign run --patches` process (wall time, peak RSS).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from napari_tomoalign import align_markers
from napari_tomoalign.alignment.transforms import imod_transforms
from napari_tomoalign.simulation.lamella import end_to_end_error, make_lamella_series
from napari_tomoalign.tracking.patches import (
    PatchOptions,
    PatchTrackingError,
    patch_alignment_options,
    track_patches,
)

REPEATS = 3  # timed runs (``--repeats``)


def truth_reference(s, size: int, sigma: float = 0.3) -> float:
    """End-to-end error of an alignment of the known points' true positions plus ``sigma`` px noise."""
    n, m = s.true_xy.shape[:2]
    rng = np.random.default_rng(11)
    v, k = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
    xy = s.true_xy.reshape(-1, 2) + rng.normal(0.0, sigma, (n * m, 2))
    inside = np.all((xy >= 0) & (xy <= size - 1), axis=1)  # a stage jump carries some points out of the field
    v, k, xy = v[inside], k[inside], xy[inside]
    al = align_markers(v, k, xy, s.tilt_angles_deg, (size, size), patch_alignment_options(s.tilt_axis_deg),
                       warn=False)
    return end_to_end_error(imod_transforms(al), al.output_tilt_angles_deg(), (size, size), s.true_xy)


def score(kind: str, size: int, seed: int, options: PatchOptions) -> dict:
    s = make_lamella_series(kind, size, seed=seed)
    t0 = time.perf_counter()
    try:
        r = track_patches(s.images, s.tilt_angles_deg, tilt_axis_deg=s.tilt_axis_deg, options=options)
    except PatchTrackingError as exc:  # refused in one line: report it, with the reference
        return dict(seed=seed, refused=str(exc), truth=truth_reference(s, size))
    seconds = time.perf_counter() - t0
    al = r.alignment
    xf, tlt = imod_transforms(al), al.output_tilt_angles_deg()
    keep = np.flatnonzero(s.dose_fraction >= 0.2)
    return dict(seed=seed, all=end_to_end_error(xf, tlt, (size, size), s.true_xy),
                kept=end_to_end_error(xf, tlt, (size, size), s.true_xy, keep),
                excluded=[int(j) for j in np.setdiff1d(np.arange(len(xf)), keep)],
                truth=truth_reference(s, size), points=len(r.markers), contours=r.n_contours, seconds=seconds,
                rms=al.rms_residual_px, summary=r.summary())


def bench_sets(kinds: list[str], size: int, seeds: list[int], options: PatchOptions) -> None:
    for kind in kinds:
        rows = [score(kind, size, seed, options) for seed in seeds]
        print(f"\n{kind} lamella, {size} x {size} x 41, patches {options.size_for((size, size))} px overlapping"
              f" {options.overlap:g}, seeds {seeds}")
        for r in [r for r in rows if "refused" in r]:
            print(f"  seed {r['seed']}: refused: {r['refused']} (truth + 0.3 px noise {r['truth']:.3f} px)")
        rows = [r for r in rows if "refused" not in r]
        if not rows:
            continue
        for r in rows:
            print(f"  seed {r['seed']}: end-to-end {r['all']:.3f} px over all views, {r['kept']:.3f} px over views"
                  f" with >= 20% dose; truth + 0.3 px noise {r['truth']:.3f} px; {r['contours']} contours,"
                  f" {r['points']} points, fit RMS {r['rms']:.3f} px, {r['seconds']:.1f} s")
            if r["excluded"]:
                print(f"    views under 20% of the zero-tilt dose, left out of the figure: "
                      f"{' '.join(map(str, r['excluded']))}")
        print(f"  median end-to-end: {np.median([r['all'] for r in rows]):.3f} px (all views), "
              f"{np.median([r['kept'] for r in rows]):.3f} px (>= 20% dose); truth + noise "
              f"{np.median([r['truth'] for r in rows]):.3f} px")
        print("  " + rows[0]["summary"].replace("\n", "\n  "))


def bench_scale(size: int = 1024) -> None:
    """Observations solved and the solve's time with dense patches (64 px, 75 % overlap)."""
    s = make_lamella_series("easy", size, seed=1)
    opt = PatchOptions(patch_size=64, overlap=0.75)
    times, obs = [], 0
    for _ in range(REPEATS):
        r = track_patches(s.images, s.tilt_angles_deg, tilt_axis_deg=s.tilt_axis_deg, options=opt)
        times.append(r.timings_s["fit"])
        obs = len(r.markers)
    al = r.alignment
    err = end_to_end_error(imod_transforms(al), al.output_tilt_angles_deg(), (size, size), s.true_xy)
    t = r.markers
    w0, c0 = time.perf_counter(), time.process_time()  # the solve again: wall and CPU (a loaded machine)
    align_markers(t.view, t.marker, t.xy, s.tilt_angles_deg, (size, size), patch_alignment_options(s.tilt_axis_deg),
                  warn=False)
    print(f"\nthe solve alone again: wall {time.perf_counter() - w0:.2f} s, CPU {time.process_time() - c0:.2f} s")
    print(f"\nscale: {size} x {size} x 41 easy, 64 px patches overlapping 75 %: {obs} observations in "
          f"{r.n_contours} contours; robust solve median {np.median(times):.2f} s (runs {np.round(times, 2)}); "
          f"tracking {r.timings_s['track']:.1f} s; end-to-end {err:.3f} px")


def bench_run(data_dir: Path, size: int = 1024) -> None:
    """The whole `tomoalign run --patches` process on a 1024 x 1024 x 41 stack: wall time and peak RSS."""
    from napari_tomoalign.io.mrc import write_mrc

    stack = data_dir / f"lamella{size}.st"
    if not stack.exists():
        s = make_lamella_series("easy", size, seed=1)
        write_mrc(stack, s.images, 10.0 * s.pixel_size_nm)
        stack.with_suffix(".rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    walls = []
    before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    for k in range(REPEATS):
        out = data_dir / f"run{k}"
        before = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "napari_tomoalign.cli", "run", str(stack), "--patches",
                               "--tilt-axis", "-4", "--output", str(out), "--force", "--quiet"], check=False)
        walls.append(time.perf_counter() - before)
        if proc.returncode != 0:
            print(f"run failed with exit {proc.returncode}")
            return
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = after.ru_maxrss / 1024**2
    cpu = (after.ru_utime + after.ru_stime - before_cpu.ru_utime - before_cpu.ru_stime) / REPEATS
    print(f"\ntomoalign run --patches, {size} x {size} x 41: wall {np.median(walls):.1f} s median "
          f"(runs {np.round(walls, 1)}), CPU {cpu:.1f} s per run (user + system, all threads), peak RSS "
          f"{peak:.2f} GiB; load average {os.getloadavg()[0]:.1f}")
    from napari_tomoalign.io.imod import read_xf
    from napari_tomoalign.io.tilts import read_tilt_angles

    s = make_lamella_series("easy", size, seed=1)  # the same series again, for its truth
    folder = data_dir / "run0" / "alignment"
    err = end_to_end_error(read_xf(folder / f"{stack.stem}.xf"), read_tilt_angles(folder / f"{stack.stem}.tlt"),
                           (size, size), s.true_xy)
    print(f"  its alignment end to end (easy lamella, {size} x {size}): {err:.3f} px; truth + 0.3 px noise "
          f"{truth_reference(s, size):.3f} px")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="easy,hard,scale,run")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--patch-size", type=int)
    ap.add_argument("--overlap", type=float, default=PatchOptions.overlap,
                    help="patch overlap (default the PatchOptions default; etomo's is 0.33)")
    ap.add_argument("--iterations", type=int, default=2,
                    help="2 (default): the second pass with windows placed by the first fit; 1: the first pass only")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the scale and run figures")
    ap.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "tomoalign-bench-patches"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    global REPEATS
    REPEATS = max(1, args.repeats)
    only = args.only.split(",")
    kinds = [k for k in ("easy", "hard") if k in only]
    if kinds:
        bench_sets(kinds, args.size, list(range(1, args.seeds + 1)), PatchOptions(patch_size=args.patch_size,
                                                                                overlap=args.overlap,
                                                                                iterations=args.iterations))
    if "scale" in only:
        bench_scale()
    if "run" in only:
        data = Path(args.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        bench_run(data)


if __name__ == "__main__":
    main()
