"""Reading a stack's views: `io.checked_stack.CheckedStack` (os.preadv into memory, a truncated file is an error)
against the memory map it replaced (the baseline, kept here: mrcfile's map, each view touched once by a copy, as
the warp loops read it). Prints medians, the ratio, and the CPU time; the file is in the page cache (warm), as
on a second pass, which is where a difference would show.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_checked_stack.py [--side 4096] [--views 41] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

from napari_tomoalign.io.mrc import open_tilt_series


def _baseline(path: Path) -> float:
    """The old path: mrcfile's memory map, each view copied once (what a warp reads)."""
    with mrcfile.mmap(path, mode="r", permissive=True) as m:
        total = 0.0
        for j in range(m.data.shape[0]):
            total += float(np.array(m.data[j])[0, 0])
    return total


def _checked(path: Path) -> float:
    data = open_tilt_series(path, find_tilts=False).data
    total = 0.0
    for j in range(data.shape[0]):
        total += float(data[j][0, 0])
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=4096)
    ap.add_argument("--views", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.mrc"
        with mrcfile.new_mmap(path, shape=(a.views, a.side, a.side), mrc_mode=1) as m:  # int16, as a camera's
            rng = np.random.default_rng(0)
            for j in range(a.views):
                m.data[j] = rng.integers(-1000, 1000, size=(a.side, a.side), dtype=np.int16)
        size_mb = path.stat().st_size / 2**20
        assert _baseline(path) == _checked(path)
        times: dict[str, list[float]] = {"memory map (baseline)": [], "checked reads": []}
        cpu: dict[str, list[float]] = {k: [] for k in times}
        for _ in range(a.repeats):
            for name, fn in (("memory map (baseline)", _baseline), ("checked reads", _checked)):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(path)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    print(f"{a.views} views of {a.side}^2 int16 ({size_mb:.0f} MiB), warm page cache, median of {a.repeats}; "
          f"load average {os.getloadavg()[0]:.1f} (shared machine)")
    for name in times:
        print(f"  {name:24s} {statistics.median(times[name]):7.3f} s wall  {statistics.median(cpu[name]):7.3f} s CPU")
    ratio = statistics.median(times["checked reads"]) / statistics.median(times["memory map (baseline)"])
    print(f"  checked / baseline: {ratio:.2f}x wall")


if __name__ == "__main__":
    main()
