"""A batch of paper-scale series (109 views x 30 markers, markers given) against one `tomoalign align` process each.

    python benchmarks/bench_batch.py                 # 100 series, every serial process timed
    python benchmarks/bench_batch.py -n 20           # a smaller batch
    python benchmarks/bench_batch.py --serial-sample 20   # time 20 processes, scale their median to N

Prints the median wall time of one ``tomoalign align`` process, the batch's wall time (LocalCluster
started and closed inside, default size: one worker per core), the throughput ratio (serial time for
N series / batch time; target >= 1.8 on 2 cores for 100 series) and the batch's overhead per series
over the solve itself (target <= 50 ms), measured two ways:

- in-task: median of (task time - solve time) per series: reading the markers and tilts, the
  thread limits and writing the seven output files (whose time is also printed: each file is
  fsynced, which stalls when other processes load the disk);
- whole batch: (batch wall time x workers - sum of solve times) / N: everything the workers' time
  went to besides solving, cluster start-up and scheduling included.
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
    exe = Path(sys.executable).with_name("tomoalign")
    cmd0 = [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_tomoalign.cli"]
    times = []
    for name in names:
        cmd = [*cmd0, "align", str(folder / f"{name}.csv"), "--tilt-angles", str(folder / f"{name}.tlt"),
               "--image-size", str(SIZE[0]), str(SIZE[1]), "--tilt-axis", "85", "--output", str(out / name),
               "--quiet", "--force"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, timeout=120)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100, help="series in the batch (default 100)")
    ap.add_argument("--serial-sample", type=int, default=0, metavar="K",
                    help="time only K serial processes and scale their median to N (default: all N)")
    ap.add_argument("--repeats", type=int, default=3, help="batch runs (default 3; the median is reported)")
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")
    args = ap.parse_args()
    workers = args.workers or machine_workers()
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
