"""Time the staged solve against scipy's least_squares on the same problems, in one process.

    python benchmarks/bench_solver.py            # all problems; scipy on the two smaller ones
    python benchmarks/bench_solver.py --full     # also scipy trf at 1.4 M observations and MINPACK lm
    python benchmarks/bench_solver.py --quick    # paper-like and IMOD BBa only
    python benchmarks/bench_solver.py --patch    # only the patch-tracking case (solve, then the whole command)
    python benchmarks/bench_solver.py --against 6c40658   # small solves: CPU of this tree against an older one

Prints median wall times, the ratio to scipy, the final RMS of both (same optimum) and the peak
memory of our solve (the rise of the peak RSS). The compiled kernels are loaded first, so problems
above a few thousand observations run on them (small ones on the plain-numpy loops, see
alignment/_backend.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse
from scipy.optimize import least_squares

from napari_tomoalign import AlignmentOptions, align_markers, read_markers, read_tilt_angles, simulate_markers
from napari_tomoalign.alignment.model import DX, DY, MAG, ROT, TILT, project

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"
IMOD_BBA_SOLVE_S = 0.03  # tiltalign's own solving time on BBa (the figure)


def jacobian_blocks(view_params, xyz, view_index, marker_index):
    """The default model's numpy Jacobian, for scipy's baseline (the solver uses the full model's kernels):
    the derivatives of each prediction with respect to its view and its marker.

    Returns
    -------
    jv
        ``(n_obs, 2, 5)`` array: d(x, y) / d(view parameters in ``VIEW_PARAMS`` order).
    jm
        ``(n_obs, 2, 3)`` array: d(x, y) / d(marker x, y, z).
    """
    p = view_params[view_index]
    m = xyz[marker_index]
    ct, st = np.cos(p[:, TILT]), np.sin(p[:, TILT])
    ca, sa = np.cos(p[:, ROT]), np.sin(p[:, ROT])
    s = p[:, MAG]
    u = m[:, 0] * ct + m[:, 2] * st
    v = m[:, 1]
    du = -m[:, 0] * st + m[:, 2] * ct  # d u / d theta
    n = len(view_index)
    jv = np.zeros((n, 2, 5))
    jv[:, 0, TILT] = s * ca * du
    jv[:, 1, TILT] = s * sa * du
    jv[:, 0, ROT] = s * (-sa * u - ca * v)
    jv[:, 1, ROT] = s * (ca * u - sa * v)
    jv[:, 0, MAG] = ca * u - sa * v
    jv[:, 1, MAG] = sa * u + ca * v
    jv[:, 0, DX] = 1.0
    jv[:, 1, DY] = 1.0
    jm = np.empty((n, 2, 3))
    jm[:, 0, 0] = s * ca * ct
    jm[:, 0, 1] = -s * sa
    jm[:, 0, 2] = s * ca * st
    jm[:, 1, 0] = s * sa * ct
    jm[:, 1, 1] = s * ca
    jm[:, 1, 2] = s * sa * st
    return jv, jm


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def peak_memory(fn) -> float:
    """Peak memory of one solve in GiB: the rise of the process's peak RSS (VmHWM) over its RSS before
    the solve, after resetting the peak (Linux ``clear_refs``). Unlike tracemalloc, this counts the
    compiled kernels' arrays too."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return float("nan")
    before = _status_kib("VmRSS")
    fn()
    return max(0, _status_kib("VmHWM") - before) / 2**20


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def scipy_problem(view, marker, xy, tilts, size, axis_deg):
    """The same model for scipy, from the point where our solver starts: nominal tilts, the estimated
    axis, magnification 1, zero shifts and markers at the origin."""
    ref = int(np.argmin(np.abs(tilts)))
    ids, mi = np.unique(marker, return_inverse=True)
    n_v, n_m = len(tilts), len(ids)
    vp0 = np.column_stack([np.radians(tilts), np.full(n_v, np.radians(axis_deg)), np.ones(n_v), np.zeros((n_v, 2))])
    free = np.ones((n_v, 5), dtype=bool)
    free[ref, TILT] = free[ref, MAG] = False
    nf = int(free.sum())
    centre = (np.asarray(size, float) - 1) / 2
    col_of = -np.ones((n_v, 5), dtype=int)
    col_of[free] = np.arange(nf)

    def unpack(p):
        vp = vp0.copy()
        vp[free] = p[:nf]
        return vp, p[nf:].reshape(n_m, 3)

    def fun(p):
        vp, xyz = unpack(p)
        return (project(vp, xyz, view, mi) + centre - xy).ravel()

    def jac(p):
        vp, xyz = unpack(p)
        jv, jm = jacobian_blocks(vp, xyz, view, mi)
        n = len(view)
        rows, cols_, vals = [], [], []
        for k in range(5):
            c = col_of[view, k]
            ok = c >= 0
            for r in range(2):
                rows.append(2 * np.arange(n)[ok] + r)
                cols_.append(c[ok])
                vals.append(jv[ok, r, k])
        for k in range(3):
            for r in range(2):
                rows.append(2 * np.arange(n) + r)
                cols_.append(nf + 3 * mi + k)
                vals.append(jm[:, r, k])
        return scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols_))),
                                       shape=(2 * n, nf + 3 * n_m))

    p0 = np.concatenate([vp0[free], np.zeros(3 * n_m)])
    sparsity = jac(p0) != 0
    return fun, jac, p0, sparsity


def run_problem(name, view, marker, xy, tilts, size, axis_deg, repeats, scipy_repeats, minpack=False):
    opts = AlignmentOptions(tilt_axis_deg=axis_deg)
    solve = lambda: align_markers(view, marker, xy, tilts, size, opts)  # noqa: E731
    solve()  # warm-up
    t_ours, al = median_time(solve, repeats)
    mem = peak_memory(solve)
    line = (f"{name:<34} {len(view):>9,d} obs  ours {t_ours * 1e3:9.1f} ms  RMS {al.rms_residual_px:.6f} px"
            f"  peak {mem:.2f} GiB  stages " + "/".join(f"{s.iterations}" for s in al.stages))
    print(line, flush=True)
    if scipy_repeats:
        fun, jac, p0, sparsity = scipy_problem(view, marker, xy, tilts, size, al.tilt_axis_deg)
        run_trf = lambda: least_squares(fun, p0, jac=jac, method="trf", x_scale="jac", tr_solver="lsmr",  # noqa: E731
                                        ftol=1e-10, xtol=1e-10, max_nfev=500)
        t_trf, sol = median_time(run_trf, scipy_repeats)
        rms = np.sqrt(np.mean(np.sum(sol.fun.reshape(-1, 2) ** 2, axis=1)))
        print(f"{'':<34} scipy trf (sparse jac) {t_trf * 1e3:9.1f} ms  RMS {rms:.6f} px   "
              f"ours/trf = {t_ours / t_trf:.3f}", flush=True)
        if minpack:
            t0 = time.perf_counter()
            sol = least_squares(fun, p0, method="lm", ftol=1e-10, xtol=1e-10)
            t_lm = time.perf_counter() - t0
            rms = np.sqrt(np.mean(np.sum(sol.fun.reshape(-1, 2) ** 2, axis=1)))
            print(f"{'':<34} MINPACK lm (dense, numerical jac) {t_lm:8.2f} s  RMS {rms:.6f} px   "
                  f"ours/lm = {t_ours / t_lm:.5f}", flush=True)
    return t_ours, al


def patch_tracking(n_markers: int = 250_000, n_views: int = 61, lengths: tuple[int, int] = (2, 6),
                   image_size: tuple[int, int] = (4096, 4096), thickness_px: float = 300.0, noise_px: float = 0.5,
                   seed: int = 4):
    """Patch-tracking-style observations: many markers, each seen in 2-6 consecutive views (~1 M in all)."""
    rng = np.random.default_rng(seed)
    nominal = np.linspace(-60.0, 60.0, n_views)
    ref = int(np.argmin(np.abs(nominal)))
    vp = np.zeros((n_views, 5))
    tilt = nominal + rng.normal(0, 0.3, n_views)
    tilt[ref] = nominal[ref]
    vp[:, TILT] = np.radians(tilt)
    vp[:, ROT] = np.radians(85.0 + rng.normal(0, 0.3, n_views))
    vp[:, MAG] = 1.0 + rng.normal(0, 0.005, n_views)
    vp[ref, MAG] = 1.0
    vp[:, [DX, DY]] = rng.normal(0, 10.0, (n_views, 2))
    w, h = image_size
    xyz = np.column_stack([rng.uniform(-0.3 * w, 0.3 * w, n_markers), rng.uniform(-0.4 * h, 0.4 * h, n_markers),
                           rng.uniform(-thickness_px / 2, thickness_px / 2, n_markers)])
    length = rng.integers(lengths[0], lengths[1] + 1, n_markers)
    first = rng.integers(0, n_views - length + 1)
    mi = np.repeat(np.arange(n_markers), length)
    vi = np.repeat(first, length) + np.arange(len(mi)) - np.repeat(np.cumsum(length) - length, length)
    xy = project(vp, xyz, vi, mi) + (np.asarray(image_size, float) - 1) / 2 + rng.normal(0, noise_px, (len(vi), 2))
    return vi, mi + 1, xy, nominal, image_size


def run_patch_command(vi, mi, xy, tilts, size) -> None:
    """The whole ``tomoalign align`` on the patch-tracking case, in a child process: wall time and peak RSS."""
    import resource
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / "patches.csv"
        with open(csv, "w") as f:
            f.write("view,marker,x,y\n")
            np.savetxt(f, np.column_stack([vi, mi, xy]), fmt=["%d", "%d", "%.3f", "%.3f"], delimiter=",")
        np.savetxt(Path(d) / "patches.tlt", tilts, fmt="%.2f")
        cmd = [sys.executable, "-m", "napari_tomoalign.cli", "align", str(csv), "--tilt-angles",
               str(Path(d) / "patches.tlt"), "--image-size", str(size[0]), str(size[1]), "--output",
               str(Path(d) / "out"), "--quiet"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        out_mb = sum(p.stat().st_size for p in (Path(d) / "out").iterdir()) / 2**20 if r.returncode == 0 else 0
    print(f"{'  whole tomoalign align command':<34} exit {r.returncode}  {wall:6.1f} s  peak RSS {peak:.2f} GiB"
          f"  (targets 20 s, 1.5 GB); {out_mb:.0f} MiB written {r.stderr.strip()[:200]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--patch", action="store_true")
    ap.add_argument("--against", metavar="REV", help="compare small solves' CPU time with the package at git REV "
                    "(6c40658: before the default model became a preset of the full model)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.against:
        return against(args.against, args.rounds)
    # In-process speed with the compiled kernels loaded, as in the GUI or a batch worker: problems above
    # alignment/_backend.NUMPY_MAX_OBSERVATIONS_WARM use them. (A fresh command keeps small problems in
    # numpy to skip loading numba; benchmarks/bench_startup.py measures that trade.)
    import napari_tomoalign.alignment._kernels  # noqa: F401

    if args.patch:
        return bench_patch()

    sim = simulate_markers(n_views=109, tilt_range_deg=(-55, 53), n_markers=30, noise_px=0.5, high_tilt_loss=0.6,
                           dropout=0.05, always_visible=6, image_size=(1024, 1024), seed=1)
    run_problem("paper-like 109 views x 30 markers", sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg,
                sim.image_size, 85.0, repeats=21, scipy_repeats=3, minpack=args.full)

    if DATA.is_dir():
        m = read_markers(DATA / "BBa.fid")
        t = read_tilt_angles(DATA / "BBa.rawtlt")
        t_bba, al = run_problem("IMOD BBa 61 views x 25 markers", m.view, m.marker, m.xy, t, m.image_size, -12.5,
                                repeats=21, scipy_repeats=3)
        print(f"{'':<34} IMOD tiltalign ~{IMOD_BBA_SOLVE_S * 1e3:.0f} ms (published), RMS 0.371964 px;"
              f" ours/IMOD = {t_bba / IMOD_BBA_SOLVE_S:.2f}", flush=True)
    if args.quick:
        return

    sim = simulate_markers(n_views=61, n_markers=800, noise_px=0.5, high_tilt_loss=0.3, dropout=0.05,
                           image_size=(4096, 4096), thickness_px=300, seed=2)
    run_problem("800 markers x 61 views", sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg,
                sim.image_size, 85.0, repeats=5, scipy_repeats=1)

    sim = simulate_markers(n_views=133, n_markers=12000, noise_px=0.5, high_tilt_loss=0.3, dropout=0.05,
                           image_size=(8192, 8192), thickness_px=400, seed=3)
    run_problem("12000 markers x 133 views", sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg,
                sim.image_size, 85.0, repeats=3, scipy_repeats=1 if args.full else 0)
    bench_patch()


SMALL_SOLVES = """
import sys, time, numpy as np
from pathlib import Path
from napari_tomoalign import align_markers, read_markers, read_tilt_angles, simulate_markers
m = read_markers(Path(sys.argv[1]) / "BBa.fid"); t = read_tilt_angles(Path(sys.argv[1]) / "BBa.rawtlt")
sim = simulate_markers(n_views=109, tilt_range_deg=(-55, 53), n_markers=30, noise_px=0.5, high_tilt_loss=0.6,
                       dropout=0.05, always_visible=6, image_size=(1024, 1024), seed=1)
for name, args in (("BBa", (m.view, m.marker, m.xy, t, m.image_size)),
                   ("paper", (sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size))):
    c0 = time.process_time(); al = align_markers(*args); first = time.process_time() - c0
    cpu = []
    for _ in range(20):
        c0 = time.process_time(); align_markers(*args); cpu.append(time.process_time() - c0)
    print(name, first, float(np.median(cpu)), al.rms_residual_px)
"""


def against(rev: str, rounds: int) -> None:
    """CPU time of small default-model solves (plain-numpy loops, one BLAS thread) in this tree and in the
    package at git ``rev``, in alternating fresh processes; medians over ``rounds`` processes of 20 solves."""
    here = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(here), "archive", rev, "src"], check=True, capture_output=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        trees = {"this tree": str(here / "src"), rev: str(Path(tmp) / "src")}
        runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {k: {} for k in trees}
        for _ in range(rounds):
            for label, src in trees.items():
                out = subprocess.run([sys.executable, "-c", SMALL_SOLVES, str(DATA)], env={**env, "PYTHONPATH": src},
                                     check=True, capture_output=True, text=True).stdout
                for line in out.splitlines():
                    name, *vals = line.split()
                    runs[label].setdefault(name, []).append(tuple(float(v) for v in vals))  # type: ignore[arg-type]
    print(f"small default-model solves, CPU per solve (median of {rounds} processes x 20 solves; 1 BLAS thread)")
    for name in runs["this tree"]:
        new, old = (np.median(np.array(runs[k][name]), axis=0) for k in ("this tree", rev))
        print(f"  {name:<6} first solve {new[0] * 1e3:6.1f} ms vs {old[0] * 1e3:6.1f} ms ({rev}),"
              f" then {new[1] * 1e3:6.2f} ms vs {old[1] * 1e3:6.2f} ms: ratio {new[1] / old[1]:.2f};"
              f" RMS {new[2]:.6f} vs {old[2]:.6f} px")


def bench_patch() -> None:
    vi, mi, xy, tilts, size = patch_tracking()
    run_problem("patch tracking 250000 x 2-6 views", vi, mi, xy, tilts, size, 85.0, repeats=1, scipy_repeats=0)
    run_patch_command(vi, mi, xy, tilts, size)


if __name__ == "__main__":
    main()
