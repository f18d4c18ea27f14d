"""Whole-process time of ``tomoalign align`` on small problems, against IMOD's tiltalign and bare numpy.

    python benchmarks/bench_startup.py            # 9 runs of each command
    python benchmarks/bench_startup.py --runs 15
    python benchmarks/bench_startup.py --kernels  # where the plain-numpy solver stops paying (alignment/_backend)

Each command runs as a fresh process (the installed ``tomoalign`` script, as a user types it); the
figure is the median wall time. The same run times ``python -c "import numpy"`` as its baseline, so a
loaded machine shows as a slower baseline. IMOD's figures are the issue's whole-process times of
``tiltalign`` on this kind of machine: 0.03 s on BBa, 0.09 s on the paper-scale problem (109 views x
30 markers) and 0.11 s on 81 views x 47 markers. The targets are 0.15 s on BBa and 1.5 x IMOD on the
other two.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_tomoalign import simulate_markers

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"
TOMOALIGN = Path(sys.executable).with_name("tomoalign")
IMOD_S = {"BBa": 0.03, "paper": 0.09, "81x47": 0.11}
TARGET_S = {"BBa": 0.15, "paper": 1.5 * 0.09, "81x47": 1.5 * 0.11}


def write_problem(folder: Path, name: str, **sim_args) -> list[str]:
    """Simulate a problem, write it as ``name.csv`` and ``name.tlt``, and return the ``align`` arguments."""
    sim = simulate_markers(**sim_args)
    csv, tlt = folder / f"{name}.csv", folder / f"{name}.tlt"
    with open(csv, "w") as f:
        f.write("view,marker,x,y\n")
        np.savetxt(f, np.column_stack([sim.view, sim.marker, sim.xy]), fmt=["%d", "%d", "%.3f", "%.3f"],
                   delimiter=",")
    np.savetxt(tlt, sim.nominal_tilt_angles_deg, fmt="%.2f")
    w, h = sim.image_size
    print(f"{name}: {sim_args['n_views']} views x {sim_args['n_markers']} markers, {len(sim.view):,d} observations")
    return [str(csv), "--tilt-angles", str(tlt), "--image-size", str(w), str(h), "--tilt-axis", "85"]


def median_wall(cmd: list[str], runs: int) -> float:
    """Median wall time of ``runs`` runs of ``cmd``; ``{run}`` in an argument becomes the run's number (a
    fresh output folder each time, as a user's first run: replacing existing files costs the file system
    a flush on rename). The median CPU time of the same runs goes to ``CPU_S[" ".join(cmd)]``: on a busy
    machine it is the steadier figure."""
    times, cpu = [], []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: cached bytecode
    for k in range(-1, runs):  # run -1 writes the bytecode of modules edited since their last import
        argv = [a.replace("{run}", str(k + 1)) for a in cmd]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        if k < 0:
            continue
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    CPU_S[" ".join(cmd)] = statistics.median(cpu)
    return statistics.median(times)


CPU_S: dict[str, float] = {}
_LOAD_COMPILED = """
import numpy as np
from napari_tomoalign import simulate_markers
from napari_tomoalign import compute as _backend
_backend.NUMPY_MAX_OBSERVATIONS = {limit}
s = simulate_markers(n_views=9, n_markers=5, seed=0)
from napari_tomoalign import align_markers
align_markers(s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size)
"""


_SOLVE_TIMES = """
import statistics, time
from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign import compute as _backend
_backend.NUMPY_MAX_OBSERVATIONS = _backend.NUMPY_MAX_OBSERVATIONS_WARM = {limit}
s = simulate_markers(n_views=61, n_markers={n_markers}, noise_px=0.5, dropout=0.05, image_size=(4096, 4096),
                     seed={n_markers})
args = (s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size, AlignmentOptions(tilt_axis_deg=85.0))
align_markers(*args)
ts = []
for _ in range({repeats}):
    t0 = time.thread_time()  # the solving thread's CPU: idle pool threads that spin do not count
    align_markers(*args)
    ts.append(time.thread_time() - t0)
print(len(s.view), statistics.median(ts))
"""


def kernel_threshold(runs: int) -> None:
    """In one process: the solve through numpy's loops and through the compiled ones (loaded, warm) at
    growing sizes; and, as whole processes, what loading numba and the cached kernels adds to a tiny solve.
    The cold threshold is where numpy's extra solve time reaches that load cost; the warm one where numpy
    stops being faster in-process."""
    from napari_tomoalign import compute as _backend

    cmds = [[sys.executable, "-c", _LOAD_COMPILED.format(limit=limit)] for limit in (10**9, 0)]
    numpy_proc, numba_proc = (median_wall(c, runs) for c in cmds)
    load = CPU_S[" ".join(cmds[1])] - CPU_S[" ".join(cmds[0])]
    print(f"tiny solve as a process: numpy {numpy_proc * 1e3:.0f} ms, compiled {numba_proc * 1e3:.0f} ms wall;"
          f" loading numba and the kernels costs {load * 1e3:.0f} ms of CPU (times below: CPU of the solving thread)")
    for n_markers in (25, 60, 150, 400, 1000, 2000):
        times = {}
        for name, limit in (("numpy", 10**9), ("compiled", 0)):  # each in its own process: no idle threads
            r = subprocess.run([sys.executable, "-c", _SOLVE_TIMES.format(limit=limit, n_markers=n_markers,
                                                                            repeats=max(3, runs // 2))],
                               capture_output=True, text=True, check=True)
            n_obs, times[name] = r.stdout.split()
        extra = float(times["numpy"]) - float(times["compiled"])
        print(f"{int(n_obs):>8,d} obs: numpy {float(times['numpy']) * 1e3:8.1f} ms, compiled"
              f" {float(times['compiled']) * 1e3:8.1f} ms, numpy/compiled"
              f" {float(times['numpy']) / float(times['compiled']):.2f}; numpy's extra {extra * 1e3:7.1f} ms"
              f" {'<' if extra < load else '>='} load {load * 1e3:.0f} ms")
    print(f"alignment/_backend: NUMPY_MAX_OBSERVATIONS = {_backend.NUMPY_MAX_OBSERVATIONS:,d},"
          f" NUMPY_MAX_OBSERVATIONS_WARM = {_backend.NUMPY_MAX_OBSERVATIONS_WARM:,d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--kernels", action="store_true")
    args = ap.parse_args()
    if args.kernels:
        return kernel_threshold(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        problems = {
            "BBa": [str(DATA / "BBa.fid"), "--tilt-angles", str(DATA / "BBa.rawtlt")],
            "paper": write_problem(d, "paper", n_views=109, tilt_range_deg=(-55, 53), n_markers=30, noise_px=0.5,
                                   high_tilt_loss=0.6, dropout=0.05, always_visible=6, image_size=(1024, 1024),
                                   seed=1),
            "81x47": write_problem(d, "p81x47", n_views=81, tilt_range_deg=(-60, 60), n_markers=47, noise_px=0.5,
                                   image_size=(2048, 2048), seed=2),
        }
        base = [sys.executable, "-c", "import numpy"]
        baseline = median_wall(base, args.runs)
        label = 'python -c "import numpy"'
        print(f"{label:<34} {baseline * 1e3:7.1f} ms  (baseline, same run)")
        for name, margs in problems.items():
            cmd = [str(TOMOALIGN), "align", *margs, "--output", str(d / f"out-{name}-{{run}}"), "--quiet"]
            t = median_wall(cmd, args.runs)
            cpu = CPU_S[" ".join(cmd)]
            print(f"{'tomoalign align ' + name:<34} {t * 1e3:7.1f} ms (CPU {cpu * 1e3:5.1f} ms, numpy's"
                  f" {CPU_S[' '.join(base)] * 1e3:4.1f})  = {t / baseline:4.2f} x numpy's start,"
                  f" {t / IMOD_S[name]:4.2f} x IMOD tiltalign ({IMOD_S[name] * 1e3:.0f} ms);"
                  f" target {TARGET_S[name] * 1e3:.0f} ms {'met' if t <= TARGET_S[name] else 'NOT met'}")


if __name__ == "__main__":
    main()
