"""A batch of paper-scale series (109 views x 30 markers, markers given) against one `tomoalign align` process each;
and a few raw stacks without markers (the run path: tracked, aligned, warped, reconstructed) against one
`tomoalign run` process each.

    python benchmarks/bench_batch.py                 # 100 align-path series, every serial process timed,
                                                     # then 4 run-path series (cryo-like, 512 x 512 x 41)
    python benchmarks/bench_batch.py -n 20           # a smaller batch
    python benchmarks/bench_batch.py --serial-sample 20   # time 20 processes, scale their median to N
    python benchmarks/bench_batch.py -n 0 --run-series 6 --run-size 1024   # the run path alone

Prints the median wall time of one ``tomoalign align`` process, the batch's wall time (LocalCluster
started and closed inside, default size: one worker per core), the throughput ratio (serial time for
N series / batch time; target >= 1.8 on 2 cores for 100 series) and the batch's overhead per series
over the solve itself (target <= 50 ms), measured two ways:

- in-task: median of (task time - solve time) per series: reading the markers and tilts, the
  thread limits and writing the seven output files (whose time is also printed: each file is
  fsynced, which stalls when other processes load the disk);
- whole batch: (batch wall time x workers - sum of solve times) / N: everything the workers' time
  went to besides solving, cluster start-up and scheduling included.

For the run path it prints the median ``tomoalign run`` process, the batch's median wall time and
throughput ratio, the median per-series time split into tracking, solving, writing the alignment and
the images (aligned stack and tomogram), and the whole-batch overhead per series over the tasks'
own time: (wall x workers - sum of task times) / N.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from napari_tomoalign.batch import machine_workers, run_batch
from napari_tomoalign.io.markers import MarkerTable, write_markers_csv
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.simulation.markers import simulate_markers

SIZE = (1024, 1024)
BEAD_NM = 10.0  # the cryo preset's gold


def make_series(folder: Path, n: int) -> Path:
    """``n`` paper-scale simulated series and their CSV table."""
    lines = ["name,markers,tilt_angles,image_width,image_height,tilt_axis"]
    for i in range(n):
        s = simulate_markers(n_views=109, tilt_range_deg=(-55, 53), n_markers=30, noise_px=0.5, high_tilt_loss=0.6,
                             dropout=0.05, always_visible=6, image_size=SIZE, seed=100 + i)
        name = f"ts{i:03d}"
        write_markers_csv(folder / f"{name}.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size))
        write_tilt_angles(folder / f"{name}.tlt", s.nominal_tilt_angles_deg)
        lines.append(f"{name},{name}.csv,{name}.tlt,{SIZE[0]},{SIZE[1]},85")
    table = folder / "series.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def serial(folder: Path, out: Path, names: list[str]) -> list[float]:
    """Wall time of one ``tomoalign align`` process per series."""
    cmd0 = _command()
    times = []
    for name in names:
        cmd = [*cmd0, "align", str(folder / f"{name}.csv"), "--tilt-angles", str(folder / f"{name}.tlt"),
               "--image-size", str(SIZE[0]), str(SIZE[1]), "--tilt-axis", "85", "--output", str(out / name),
               "--quiet", "--force"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, timeout=120)
        times.append(time.perf_counter() - t0)
    return times


def align_part(args: argparse.Namespace, tmp: Path, workers: int) -> None:
    """The align path: ``-n`` paper-scale series with markers, one ``tomoalign align`` each, against the batch."""
    (tmp / "in").mkdir()
    table = make_series(tmp / "in", args.n)
    names = [f"ts{i:03d}" for i in range(args.n)]
    k = args.serial_sample or args.n
    serial(tmp / "in", tmp / "warm", names[:1])  # numba's cache and the OS file cache warm, as in real use
    st = serial(tmp / "in", tmp / "serial", names[:k])
    per = statistics.median(st)
    serial_total = sum(st) if k == args.n else per * args.n
    print(f"tomoalign align, one process per series: median {per * 1e3:.0f} ms (min {min(st) * 1e3:.0f}, "
          f"max {max(st) * 1e3:.0f}) over {k} series; {args.n} series: {serial_total:.1f} s"
          + ("" if k == args.n else " (median x N)"), flush=True)
    walls, in_task, whole = [], [], []
    for r in range(args.repeats):
        res = run_batch(table, tmp / f"batch{r}", n_workers=workers, progress=False, force=True)
        done = [x for x in res.rows if x["status"] == "done"]
        assert len(done) == args.n, [x["error"] for x in res.rows if x["status"] != "done"][:3]
        walls.append(res.wall_time_s)
        in_task.append(statistics.median(x["time_s"] - x["solve_s"] for x in done))
        whole.append((res.wall_time_s * workers - sum(x["solve_s"] for x in done)) / args.n)
        solve = statistics.median(x["solve_s"] for x in done)
        write = sorted(x["write_s"] for x in done)
        print(f"batch run {r + 1}: {res.wall_time_s:.2f} s for {args.n} series on {workers} workers "
              f"(median solve {solve * 1e3:.1f} ms, in-task overhead {in_task[-1] * 1e3:.1f} ms of which writing "
              f"the outputs {statistics.median(write) * 1e3:.1f} ms (slowest {write[-1] * 1e3:.0f} ms), whole-batch "
              f"overhead {whole[-1] * 1e3:.1f} ms per series)", flush=True)
    wall = statistics.median(walls)
    print(f"batch median {wall:.2f} s; throughput {serial_total / wall:.2f} x the serial processes "
          f"(target >= 1.8); overhead per series over the solve: in-task {statistics.median(in_task) * 1e3:.1f} ms, "
          f"whole batch {statistics.median(whole) * 1e3:.1f} ms (target <= 50 ms)")


def _command() -> list[str]:
    exe = Path(sys.executable).with_name("tomoalign")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_tomoalign.cli"]


def make_run_series(folder: Path, k: int, size: int, n_views: int) -> Path:
    """``k`` raw cryo-like stacks (10 nm gold at 0.8 nm/px, no markers) and their CSV table."""
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["name,stack,bead_diameter_nm"]
    for i in range(k):
        s = make_bead_series("cryo", size, n_views, seed=200 + i)
        name = f"raw{i:02d}"
        write_mrc(folder / f"{name}.st", s.images, 10.0 * s.pixel_size_nm)
        write_tilt_angles(folder / f"{name}.rawtlt", s.tilt_angles_deg)
        lines.append(f"{name},{name}.st,{BEAD_NM}")
    table = folder / "raw.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def serial_run(folder: Path, out: Path, names: list[str]) -> list[float]:
    """Wall time of one ``tomoalign run`` process per raw stack."""
    times = []
    for name in names:
        cmd = [*_command(), "run", str(folder / f"{name}.st"), "--bead-diameter-nm", str(BEAD_NM), "--output",
               str(out / name), "--quiet", "--force"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, timeout=600)
        times.append(time.perf_counter() - t0)
        if done.returncode not in (0, 3):  # 3: aligned, not converged
            raise SystemExit(f"tomoalign run failed on {name} (exit {done.returncode})")
    return times


def run_part(args: argparse.Namespace, tmp: Path, workers: int) -> None:
    """The run path: ``--run-series`` raw stacks, one ``tomoalign run`` each, against the batch."""
    k = args.run_series
    table = make_run_series(tmp / "raw", k, args.run_size, args.run_views)
    names = [f"raw{i:02d}" for i in range(k)]
    serial_run(tmp / "raw", tmp / "raw_warm", names[:1])
    st = serial_run(tmp / "raw", tmp / "raw_serial", names)
    print(f"tomoalign run, one process per raw stack ({args.run_size}^2 x {args.run_views}, cryo-like): median "
          f"{statistics.median(st):.2f} s (min {min(st):.2f}, max {max(st):.2f}); {k} stacks: {sum(st):.1f} s",
          flush=True)
    walls, whole = [], []
    for r in range(args.repeats):
        res = run_batch(table, tmp / f"raw_batch{r}", n_workers=workers, progress=False, force=True)
        done = [x for x in res.rows if x["status"] in ("done", "not-converged")]
        assert len(done) == k, [x["error"] for x in res.rows if x not in done][:3]
        walls.append(res.wall_time_s)
        whole.append((res.wall_time_s * workers - sum(x["time_s"] for x in done)) / k)
        med = {f: statistics.median(x[f] for x in done) for f in ("time_s", "track_s", "solve_s", "write_s",
                                                                   "images_s")}
        beads = statistics.median(x["beads_tracked"] for x in done)
        rms = statistics.median(x["rms_residual_px"] for x in done)
        print(f"run-path batch {r + 1}: {res.wall_time_s:.2f} s for {k} stacks on {workers} workers; per stack median "
              f"{med['time_s']:.2f} s (tracking {med['track_s']:.2f}, solve {med['solve_s'] * 1e3:.0f} ms, writing "
              f"the alignment {med['write_s'] * 1e3:.0f} ms, aligned stack + tomogram {med['images_s']:.2f} s); "
              f"{beads:.0f} beads, RMS {rms:.3f} px; whole-batch overhead {whole[-1] * 1e3:.0f} ms per stack",
              flush=True)
    wall = statistics.median(walls)
    print(f"run-path batch median {wall:.2f} s; throughput {sum(st) / wall:.2f} x the serial 'tomoalign run' "
          f"processes; whole-batch overhead per stack over its task {statistics.median(whole) * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100, help="align-path series in the batch (default 100; 0: none)")
    ap.add_argument("--serial-sample", type=int, default=0, metavar="K",
                    help="time only K serial processes and scale their median to N (default: all N)")
    ap.add_argument("--repeats", type=int, default=3, help="batch runs (default 3; the median is reported)")
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")
    ap.add_argument("--run-series", type=int, default=4, metavar="K",
                    help="raw stacks for the run path (default 4; 0: none)")
    ap.add_argument("--run-size", type=int, default=512, metavar="PX", help="their image size (default 512)")
    ap.add_argument("--run-views", type=int, default=41, metavar="N", help="their views (default 41)")
    args = ap.parse_args()
    workers = args.workers or machine_workers()
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        if args.n > 0:
            align_part(args, tmp, workers)
        if args.run_series > 0:
            run_part(args, tmp, workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
