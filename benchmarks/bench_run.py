"""``tomoalign run`` with the job layer (`jobs.run.run_job`: the tracker's last robust fit kept, one pass over
the stack, one warp per view) against the chain it replaced, kept here as the baseline: track, solve again
with the same options from the tracked markers (`align_to_folder`), then `aligned_stack_to_file` and
`reconstruct_to_file`, each reading and warping the stack again (and the alignment back from disk).

    python benchmarks/bench_run.py                   # 512 x 512 x 61 plastic-like series, 3 rounds
    python benchmarks/bench_run.py --size 1024 --views 41 --rounds 3   # issue 24's figure
    python benchmarks/bench_run.py --size 1024 --views 41 --rounds 5 --against 26591e9,6c40658
        # the whole ``tomoalign run`` process of this tree against the package at those commits
    python benchmarks/bench_run.py --size 1024 --views 41 --rounds 5 --against 26591e9 --command track
        # the same for ``tomoalign track`` alone (the tracking's share)

With ``--beside`` the whole run of this tree (``jobs.run.run_job`` in a fresh process, no thread cap) with and
without what it does on the second core: while the one-thread tracking runs (the coarse alignment beside the
diameter check, the image step's kernels loaded and its views binned: `jobs.run._beside`,
`tracking.jobs._coarse_beside`), inside the tracking (half of each view's beads measured on a helper thread,
the next view read ahead: `tracking._spread`) and in the image step (the aligned stack written on its own thread
while the tomogram is made: `jobs.run_images`), alternating, one warm-up each; the files are the same either way
(tested).

    python benchmarks/bench_run.py --size 1024 --views 41 --rounds 5 --beside

With ``--against REV[,REV...]`` the in-process comparison is not made: instead the whole ``tomoalign run``
process (Python start, imports, tracking, alignment, ``.ali`` and binned tomogram) of this tree and of the
package at each git REV (``git archive REV src`` into a temporary folder) run one after the other in fresh
processes on the same stack, after one warm-up process each (numba's cache). Prints the medians of the wall
time and of the CPU time (user + system, every thread) and each ratio this/REV; the machine may be shared:
read the CPU ratio beside the wall one. Also the main thread's CPU time (``time.thread_time()`` at the end of
each process): the run's critical path on a quiet machine, which the other processes' load changes less than
the wall (work moved to the second core leaves it). Issue 24's baseline: 6c40658 (when the issue was written)
and 26591e9 (the start of session 8).

A third variant, "pre-24", is ``run_job`` with the images step as it was before issue 24 (kept below as
`images_before_24`: warp, then bin the aligned view, in-memory WBP, float32 ``.ali``); issue 24's target is
new / pre-24 <= 0.65 (the tomogram is now made by ``reconstruct``'s streamed function, bin then warp).

Both run in this process on the same stack, alternating, after one warm-up round; the tracking is the
same in both and timed apart. Prints the median time after the tracking (align + images) and the whole
run, each new/old, and checks that both wrote the same ``.xf`` (1e-3 px). The machine may be shared:
read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
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


def images_before_24(job, ajob, folder, diameter_px, overwrite):  # pragma: no cover - the baseline
    """`jobs.run._images` before issue 24, kept as the baseline."""
    from contextlib import ExitStack

    from napari_tomoalign.alignment.transforms import imod_transforms
    from napari_tomoalign.conventions import angstrom_from_nm
    from napari_tomoalign.io.atomic import atomic_path
    from napari_tomoalign.io.mrc import MrcStreamWriter, open_tilt_series
    from napari_tomoalign.jobs import facts
    from napari_tomoalign.reconstruction.warp import bin_image, warp_view
    from napari_tomoalign.reconstruction.wbp import weighted_back_projection

    al, shift, b = folder.alignment, folder.axis_z_shift_px, job.binning
    series = open_tilt_series(job.stack, find_tilts=False)
    n, rows, cols = series.data.shape
    thickness = job.thickness or facts.default_thickness_px((cols, rows), facts.marker_z_extent_px(al, shift))
    ny, nx = rows // b, cols // b
    pix_a = angstrom_from_nm(facts.pixel_size_nm(job.pixel_size_nm, series.pixel_size_angstrom))
    xf = imod_transforms(al, shift)
    out, stem = Path(job.output_dir), job.stem
    ali_path, rec_path = out / f"{stem}.ali", out / f"{stem}_bin{b}.rec"
    binned = np.empty((n, ny, nx), dtype=np.float32)
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(ali_path, overwrite))
        w = MrcStreamWriter(tmp, (n, rows, cols), np.float32, pix_a)
        for j in range(n):
            view = warp_view(series.data[j], xf[j])
            w.write(view)
            binned[j] = bin_image(view, b)
        w.close()
    vol = weighted_back_projection(binned, al.tilt_angles_deg, thickness=thickness // b, use_view=al.view_determined)
    write_mrc(rec_path, vol, pix_a * b if pix_a else None, overwrite=overwrite)
    return ali_path, rec_path, None


def pre24_run(stack: Path, out: Path, diameter_px: float, binning: int) -> tuple[float, float]:
    import napari_tomoalign.jobs.run as run_module

    new = run_module._images
    run_module._images = images_before_24
    try:
        return new_run(stack, out, diameter_px, binning)
    finally:
        run_module._images = new


RUN = ("import sys, time; from napari_tomoalign.cli import main; rc = main(sys.argv[1:]); "
       "print(f'main thread CPU {time.thread_time()}', file=sys.stderr); sys.exit(rc)")


def user_environment(src: str) -> dict[str, str]:
    """The environment of a ``tomoalign`` process as a user runs it: the package's bytecode cached, as an
    installation has it (pip compiles it; this sandbox sets PYTHONDONTWRITEBYTECODE, which made every process
    compile each module again: ~0.1 s of a run, measured with cProfile), with the package at ``src``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": src}


def run_process(src: str, stack: Path, out: Path, diameter_px: float, binning: int, command: str = "run"
                ) -> tuple[float, float, float]:
    """One ``tomoalign run`` (or ``track``) process on the package in ``src``: ``(wall s, CPU s, main thread's
    CPU s)``. The main thread's CPU is the run's critical path on a quiet machine (what runs beside it on the
    second core is not in it): a figure that a shared machine's load changes less than the wall."""
    args = ["--bin", str(binning)] if command == "run" else []
    out = out if command == "run" else out.with_suffix(".fid")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", RUN, command, str(stack), "--bead-diameter-px", f"{diameter_px:g}",
                        "--output", str(out), *args, "--quiet"], env=user_environment(src),
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{src}: tomoalign {command} failed:\n{r.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    main = float(r.stderr.rsplit("main thread CPU ", 1)[-1].split()[0])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), main


_BESIDE = """
import sys
from contextlib import contextmanager
from pathlib import Path
from napari_tomoalign.jobs import run as runmod
from napari_tomoalign.jobs.run import RunJob, run_job
from napari_tomoalign.tracking import jobs as trackjobs
if sys.argv[4] == "off":
    from napari_tomoalign.jobs import run_images
    from napari_tomoalign.tracking import pipeline
    @contextmanager
    def nothing(job, threads, progress):
        yield progress, lambda: None
    @contextmanager
    def no_coarse(*args):
        yield lambda d_px: None
    @contextmanager
    def no_second_core(on=True):
        yield
    def one_after_the_other(stack, aligned, binned_views, tomogram, threads, rec_path):
        aligned()
        binned_views()
        tomogram()
    runmod._beside, trackjobs._coarse_beside = nothing, no_coarse
    pipeline.second_core = trackjobs.second_core = no_second_core
    run_images._beside_tomogram = one_after_the_other
run_job(RunJob(Path(sys.argv[1]), Path(sys.argv[2]), bead_diameter_px=float(sys.argv[3]), binning=int(sys.argv[5])))
"""


def beside(stack: Path, work: Path, diameter_px: float, binning: int, rounds: int) -> None:
    """The whole run with and without the work beside the tracking, in fresh processes, alternating."""
    times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    for r in range(rounds + 1):
        for mode in ("on", "off") if r % 2 else ("off", "on"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", _BESIDE, str(stack), str(work / f"beside-{mode}-{r}"),
                            f"{diameter_px:g}", mode, str(binning)], check=True, capture_output=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if r:
                times[mode].append((wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)))
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    print(f"whole run, {rounds} rounds (medians; machine may be shared)")
    for k, label in (("on", "with the work beside"), ("off", "nothing beside")):
        print(f"  {label:22s} wall {med[k][0]:6.2f} s   CPU {med[k][1]:6.2f} s   (wall "
              f"{', '.join(f'{t[0]:.2f}' for t in times[k])})")
    print(f"  beside / nothing beside: wall {med['on'][0] / med['off'][0]:5.2f}   CPU {med['on'][1] / med['off'][1]:5.2f}")


def against(revs: list[str], stack: Path, work: Path, diameter_px: float, binning: int, rounds: int,
            command: str = "run") -> None:
    """The whole ``tomoalign run`` (or ``track``) process of this tree against the package at each of ``revs``."""
    here = Path(__file__).resolve().parents[1]
    trees = {"this tree": str(here / "src")}
    for rev in revs:
        archive = subprocess.run(["git", "-C", str(here), "archive", rev, "src"], check=True, capture_output=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(work / f"tree-{rev}", filter="data")
        trees[rev] = str(work / f"tree-{rev}" / "src")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in trees}
    for r in range(rounds + 1):
        for label, src in (trees.items() if r % 2 else reversed(trees.items())):
            out = work / f"run-{label.replace(' ', '-')}-{r}"
            t = run_process(src, stack, out, diameter_px, binning, command)
            if r:  # round 0 fills numba's cache of each tree
                times[label].append(t)
    xf = {k: read_xf(work / f"run-{k.replace(' ', '-')}-{rounds}" / "alignment" / "beads.xf") if command == "run"
          else np.zeros(1) for k in trees}
    new_wall = statistics.median(t[0] for t in times["this tree"])
    new_cpu = statistics.median(t[1] for t in times["this tree"])
    new_main = statistics.median(t[2] for t in times["this tree"])
    print(f"whole tomoalign {command} process, {rounds} rounds (medians; machine may be shared; bytecode cached,"
          " as installed)")
    print(f"  {'this tree':10s} wall {new_wall:6.2f} s   CPU {new_cpu:6.2f} s   main thread {new_main:5.2f} s   "
          f"({len(times['this tree'])} runs: wall {', '.join(f'{t[0]:.2f}' for t in times['this tree'])})")
    for rev in revs:
        wall = statistics.median(t[0] for t in times[rev])
        cpu = statistics.median(t[1] for t in times[rev])
        main = statistics.median(t[2] for t in times[rev])
        print(f"  {rev:10s} wall {wall:6.2f} s   CPU {cpu:6.2f} s   main thread {main:5.2f} s   this/{rev}: wall "
              f"{new_wall / wall:5.2f}   CPU {new_cpu / cpu:5.2f}   main thread {new_main / main:5.2f}"
              + (f"   .xf max difference {np.abs(xf[rev] - xf['this tree']).max():.2e} px" if command == "run" else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--views", type=int, default=61)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", type=int, default=2)
    ap.add_argument("--int16", action="store_true", help="an int16 stack (counts), as a camera writes it")
    ap.add_argument("--against", metavar="REV[,REV]", help="whole tomoalign run processes against the package at REV")
    ap.add_argument("--command", choices=("run", "track"), default="run", help="with --against: the command timed")
    ap.add_argument("--beside", action="store_true", help="the run with and without its work beside the tracking")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_run_"))
    try:
        s = make_bead_series("plastic", size=args.size, n_views=args.views, seed=2)
        stack = work / "beads.st"
        img = s.images.astype(np.float32)
        if args.int16:
            img = np.rint(1000.0 + 300.0 * (img - img.mean()) / img.std()).astype(np.int16)
        write_mrc(stack, img, 10.0 * s.pixel_size_nm)
        (work / "beads.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
        if args.beside:
            beside(stack, work, s.bead_diameter_px, args.bin, args.rounds)
            return
        if args.against:
            against(args.against.split(","), stack, work, s.bead_diameter_px, args.bin, args.rounds, args.command)
            return
        times: dict[str, list[tuple[float, float]]] = {"old": [], "new": [], "pre24": []}
        order = (("old", old_run), ("pre24", pre24_run), ("new", new_run))
        for r in range(args.rounds + 1):
            for name, fn in order if r % 2 else order[::-1]:
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
        for label, k in (("after tracking (align + images)", 1),):
            pre = statistics.median(t[k] for t in times["pre24"])
            new = statistics.median(t[k] for t in times["new"])
            print(f"  pre-24 {label:27s} pre {pre:7.2f} s   new {new:7.2f} s   new/pre {new / pre:5.2f}")
        pre = statistics.median(sum(t) for t in times["pre24"])
        new = statistics.median(sum(t) for t in times["new"])
        print(f"  pre-24 {'whole run':27s} pre {pre:7.2f} s   new {new:7.2f} s   new/pre {new / pre:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
