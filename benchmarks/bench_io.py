"""Reading and writing against solving, at 1.4 M observations (12,000 markers x 133 views), in one process.

    python benchmarks/bench_io.py              # read, solve, write (medians of 3), then the whole command
    python benchmarks/bench_io.py --small      # 800 markers x 61 views: quicker, same report

Prints the median time of reading the marker CSV and the tilt file, of the three-stage solve, and of
writing the alignment folder (``predicted.csv`` with every view x marker, ``residuals.csv``, ``.resid``,
``.xf``, ``.tlt``, ``fid.xyz`` and the stamped ``alignment.json``), the ratio of reading plus writing
to solving (the target is at most 1), and the wall time of the whole ``tomoalign align`` command on the
same files as a fresh process (target 10 s at 1.4 M observations).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_tomoalign import AlignmentOptions, align_markers, read_markers, read_tilt_angles, simulate_markers
from napari_tomoalign.io.alignment import write_alignment

TOMOALIGN = Path(sys.executable).with_name("tomoalign")


def median_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for k in range(repeats):
        t0 = time.perf_counter()
        out = fn(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n_views, n_markers, size = (61, 800, 4096) if args.small else (133, 12000, 8192)
    sim = simulate_markers(n_views=n_views, n_markers=n_markers, noise_px=0.5, high_tilt_loss=0.3, dropout=0.05,
                           image_size=(size, size), thickness_px=400, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        csv, tlt = d / "big.csv", d / "big.tlt"
        with open(csv, "w") as f:
            f.write("view,marker,x,y\n")
            np.savetxt(f, np.column_stack([sim.view, sim.marker, sim.xy]), fmt=["%d", "%d", "%.3f", "%.3f"],
                       delimiter=",")
        np.savetxt(tlt, sim.nominal_tilt_angles_deg, fmt="%.2f")
        print(f"{n_markers} markers x {n_views} views: {len(sim.view):,d} observations,"
              f" CSV {csv.stat().st_size / 2**20:.0f} MiB", flush=True)

        small = simulate_markers(n_views=41, n_markers=20, seed=1)  # load whatever the process loads once
        warm = align_markers(small.view, small.marker, small.xy, small.nominal_tilt_angles_deg, small.image_size)
        write_alignment(warm, d / "warm", "warm")
        t_read, (table, tilts) = median_of(lambda k: (read_markers(csv), read_tilt_angles(tlt)), args.repeats)
        opts = AlignmentOptions(tilt_axis_deg=85.0)
        t_solve, al = median_of(lambda k: align_markers(table.view, table.marker, table.xy, tilts,  # type: ignore
                                                        (size, size), opts), max(1, args.repeats - 2))
        t_write, paths = median_of(lambda k: write_alignment(al, d / f"out{k}", "big"), args.repeats)  # type: ignore
        written = sum(p.stat().st_size for p in paths) / 2**20  # type: ignore[union-attr]
        io = t_read + t_write
        print(f"read  {t_read:7.2f} s   (markers CSV and tilt file)")
        print(f"solve {t_solve:7.2f} s   (three stages)")
        print(f"write {t_write:7.2f} s   ({len(paths)} files, {written:.0f} MiB)")  # type: ignore[arg-type]
        print(f"read + write = {io:.2f} s = {io / t_solve:.2f} x the solve (target <= 1)", flush=True)

        cmd = [str(TOMOALIGN), "align", str(csv), "--tilt-angles", str(tlt), "--image-size", str(size), str(size),
               "--tilt-axis", "85", "--output", str(d / "cmd"), "--quiet"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"whole 'tomoalign align' command: {wall:.2f} s (exit {r.returncode}; target 10 s at 1.4 M"
              f" observations) {r.stderr.strip()[:200]}")


if __name__ == "__main__":
    main()
