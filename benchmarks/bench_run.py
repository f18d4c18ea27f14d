"""``tomoalign run`` with the job layer (`jobs.run.run_job`: the tracker's last robust fit kept, one pass over
the stack, one warp per view) against the chain it replaced, kept here as the baseline: track, solve again
with the same options from the tracked markers (`align_to_folder`), then `aligned_stack_to_file` and
`reconstruct_to_file`, each reading and warping the stack again (and the alignment back from disk).

    python benchmarks/bench_run.py                   # 512 x 512 x 61 plastic-like series, 3 rounds
    python benchmarks/bench_run.py --size 1024 --rounds 5

Both run in this process on the same stack, alternating, after one warm-up round; the tracking is the
same in both and timed apart. Prints the median time after the tracking (align + images) and the whole
run, each new/old, and checks that both wrote the same ``.xf`` (1e-3 px). The machine may be shared:
read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.markers import write_markers_csv
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.jobs.run import RunJob, run_job
from napari_tomoalign.jobs.solver_options import SolverSettings
from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.tracking.jobs import run_options, track_to_file
from napari_tomoalign.workflows import align_to_folder, aligned_stack_to_file, reconstruct_to_file


def old_run(stack: Path, out: Path, diameter_px: float, binning: int) -> tuple[float, float]:
    """The chain before the job layer: ``(tracking s, after-tracking s)``."""
    t0 = time.perf_counter()
    tracked = track_to_file(stack, out / f"{stack.stem}.fid", bead_diameter_px=diameter_px)
    write_markers_csv(out / f"{stack.stem}_markers.csv", tracked.result.markers)
    t1 = time.perf_counter()
    table = tracked.result.markers
    align_to_folder(f"{stack.stem}.fid", tracked.tilt_source, out / "alignment", run_options(None),
                    image_size=table.image_size, pixel_size_nm=tracked.pixel_size_nm, markers=table,
                    tilt_angles_deg=tracked.result.alignment.nominal_tilt_angles_deg,
                    inputs={"stack": str(stack), "markers": "tracked", "tilt_angles": tracked.tilt_source})
    aligned_stack_to_file(stack, out / "alignment", out / f"{stack.stem}.ali")
    reconstruct_to_file(stack, out / "alignment", out / f"{stack.stem}_bin{binning}.rec", binning=binning)
    return t1 - t0, time.perf_counter() - t1


def new_run(stack: Path, out: Path, diameter_px: float, binning: int) -> tuple[float, float]:
    res = run_job(RunJob(stack, out, bead_diameter_px=diameter_px, settings=SolverSettings(run_options(None)),
                         binning=binning))
    t = res.timings_s
    return t["track"], t["align"] + t["images"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--views", type=int, default=61)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        s = make_bead_series("plastic", size=args.size, n_views=args.views, seed=2)
        stack = work / "beads.st"
        write_mrc(stack, s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
        (work / "beads.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
        times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        for r in range(args.rounds + 1):
            for name, fn in (("old", old_run), ("new", new_run)) if r % 2 else (("new", new_run), ("old", old_run)):
                out = work / f"{name}{r}"
                t = fn(stack, out, s.bead_diameter_px, args.bin)
                if r:  # round 0 warms the kernels up
                    times[name].append(t)
        a, b = read_xf(work / f"old{args.rounds}" / "alignment" / "beads.xf"), read_xf(
            work / f"new{args.rounds}" / "alignment" / "beads.xf")
        print(f"{args.size} x {args.size} x {args.views}, bin {args.bin}, {args.rounds} rounds (medians; machine may be"
              f" shared); same .xf: max difference {np.abs(a - b).max():.2e} px")
        for label, k in (("after tracking (align + images)", 1), ("tracking", 0)):
            old = statistics.median(t[k] for t in times["old"])
            new = statistics.median(t[k] for t in times["new"])
            print(f"  {label:34s} old {old:7.2f} s   new {new:7.2f} s   new/old {new / old:5.2f}")
        old = statistics.median(sum(t) for t in times["old"])
        new = statistics.median(sum(t) for t in times["new"])
        print(f"  {'whole run':34s} old {old:7.2f} s   new {new:7.2f} s   new/old {new / old:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
