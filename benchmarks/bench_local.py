"""Local alignments: solve time on IMOD's tutorial BBa and the cost of a local WBP, against baselines run here.

    python benchmarks/bench_local.py            # 7 repeats of each
    python benchmarks/bench_local.py --quick    # 5 repeats, a thinner volume

Solve: BBa (61 views, 25 markers) with aligna.com's local options and LocalAlignments 1 (5 x 5 patches,
50 local variables each, markers held), with and without the surface analysis. The baseline is the global
full-model solve of the same markers with aligna.com's global options (149 variables). It also prints
the mean local residual and its range, against IMOD's 0.289 / 0.284 (0.259-0.312).

WBP: 61 views of 512 x 512 float32, thickness 128, with BBa's local file (as solved above), at binning 1 and 2,
against the global WBP of the same stack in the same process, and against session 9's local path
(`baseline_local.py`: the same filter, the block kernel that interpolates each lane in column and row) and
session 11's (the same error check and filter, its one-row kernel with one slab for all views:
`baseline_local_rows.py`) and session 12's (the same error check, the views filtered whole, session 12's one-row
kernel on them: `baseline_local_rows12.py`) and session 14's (the same error check, bands and resampling, its
back-projection step in numba: `baseline_local_rows14.py`). It prints the block and slab errors and the slabs they choose per
group of views (`local_errors.choose_slabs`), the parts of the new path (error check; the filter in bands with
the one-row kernel, `local_rows.backproject_local_bands`) and session 12's way of feeding today's kernel (the views
filtered whole first, `local_blocks.filtered_sheared_views`, then `local_rows.backproject_local_rows` on them),
and the NCC of the local volumes against the exact voxel kernel (`local_warp.backproject_local`)
on the same filtered views, inside an 8-pixel border. Medians of the repeats, wall and CPU time. Issue 24's target:
local / global <= 2 at binning 1.

    python benchmarks/bench_local.py --no-solve   # the WBP figures only (the solve once, untimed)
    python benchmarks/bench_local.py --voxel      # also time the exact voxel kernel (about 10x the global)
    python benchmarks/bench_local.py --no-solve --alone   # each run's repeats in a row, not alternating
    NUMBA_NUM_THREADS=1 python benchmarks/bench_local.py --no-solve   # one thread
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numba
import numpy as np

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import local_alignments
from napari_tomoalign.alignment.local_options import local_options_from_com
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.io.imod_com import read_com_section
from napari_tomoalign.io.imod_model import read_imod_model
from napari_tomoalign.reconstruction.bp_fft import twiddles
from napari_tomoalign.reconstruction.bp_kernels import VIEW_GROUP, volume_empty
from napari_tomoalign.reconstruction.local_blocks import (
    BLOCK_TOLERANCE_PX,
    EXTRAPOLATION_LIMIT_PX,
    PAD,
    PAD_U,
    block_errors,
    filtered_sheared_views,
)
from napari_tomoalign.reconstruction.local_errors import SLAB_TOLERANCE_PX, SLABS, choose_geometry, slab_errors
from napari_tomoalign.reconstruction.local_rows import backproject_local_bands, backproject_local_rows
from napari_tomoalign.reconstruction.local_warp import backproject_local, kernel_arguments, local_projection
from napari_tomoalign.reconstruction.wbp import (
    angular_weights,
    binned_views,
    full_filter,
    radial_filter,
    weighted_back_projection,
)

sys.path.insert(0, str(Path(__file__).parent))
from baseline_local import local_wbp_s9, local_wbp_s11, local_wbp_s12, local_wbp_s14  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_solve(repeats: int):
    table = read_imod_model(DATA / "BBa.fid")
    raw = np.loadtxt(DATA / "BBa.rawtlt")
    entries = read_com_section(DATA / "aligna.com")
    settings = settings_from_com(entries, raw)

    def solve_global():
        return align_markers(table.view, table.marker, table.xy, raw, table.image_size, settings=settings, warn=False)

    solve_global()  # compile / load the kernels
    t_glob, sol = median_time(solve_global, repeats)
    marker = np.searchsorted(sol.marker_ids, table.marker)
    print(f"BBa: {len(table)} observations, {len(raw)} views, {len(sol.marker_ids)} markers")
    print(f"  global full-model solve (baseline, 149 variables)   {1000 * t_glob:8.1f} ms  RMS {sol.rms_residual_px:.6f} px")
    la = None
    for surfaces, imod in ((2, "0.289"), (0, "0.284")):
        opts = dataclasses.replace(local_options_from_com(entries), surfaces=surfaces)

        def solve_local(opts=opts):
            return local_alignments(table.view, marker, table.xy, raw, sol, opts, pixel_size=20.2)  # sol's AxisZShift 17.2

        solve_local()  # compile / load the kernels
        t_loc, res = median_time(solve_local, repeats)
        lo, hi = res.residual_range_px
        label = "with surface analysis" if surfaces == 2 else "without surface analysis"
        print(f"  local, 25 patches, {label:25s} {1000 * t_loc:8.1f} ms  ({t_loc / t_glob:4.2f}x the global solve)"
              f"  local mean {res.mean_residual_px:.4f} px, range {lo:.3f}-{hi:.3f} (IMOD {imod}, 0.259-0.312)")
        la = la or res
    return la, sol


def timed(fn):
    """``(wall, CPU, system, result)`` of one call (system: the CPU time spent in the kernel, such as zeroing
    fresh pages; it varied from 10 to 400 ms per local call on the shared machine of session 10)."""
    w, c, s = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, resource.getrusage(resource.RUSAGE_SELF).ru_stime - s, out


def exact_local(stack, filt, mats, grid, n_z):
    """The local WBP with the exact voxel kernel on the same filtered views (unsheared): the reference."""
    n_v, n_r, n_u = stack.shape
    q = filtered_sheared_views(stack, np.zeros(n_v), filt, *twiddles(filt.shape[1]))
    vol = np.empty((n_z, n_r, n_u), dtype=np.float32)
    backproject_local(q[:, PAD_U : PAD_U + n_u, PAD : PAD + n_r].transpose(0, 2, 1), mats, grid, 0, vol)
    return vol


def bench_wbp(la, sol, repeats: int, thickness: int, voxel: bool, alone: bool = False) -> None:
    n_views, size = sol.n_views, 512
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(n_views, size, size)).astype(np.float32)
    lp = local_projection(la.local_transforms, sol.tilt_angles_deg, (size, size))
    print(f"\nWBP: {n_views} views of {size} x {size} float32, thickness {thickness}, BBa's 5 x 5 local file, "
          f"{numba.get_num_threads()} threads (the runs alternate, so that all see the same machine load; wall and CPU"
          " medians)")
    for binning in (1, 2):
        bench_binning(stack, sol.tilt_angles_deg, lp, binning, repeats, thickness, voxel, alone)


def bench_binning(stack, tilts, lp, binning, repeats, thickness, voxel, alone):
    """The runs at one binning: the global and local WBP, session 9's local path, the parts of the new one."""
    n_z = thickness // binning
    views = binned_views(stack, np.arange(len(tilts)), binning)
    n_pad = int(2 ** np.ceil(np.log2(2 * views.shape[2])))
    ramp, weights = radial_filter(n_pad), angular_weights(tilts).astype(np.float32)
    filt = full_filter(ramp, weights)
    mats, grid = kernel_arguments(lp, binning)
    shear, slabs = choose_geometry(mats, grid, n_z, views.shape[:0:-1])
    q = filtered_sheared_views(views, shear, filt, *twiddles(n_pad))
    vol = volume_empty((n_z, *views.shape[1:]))  # as the WBP makes it: its rows on cache lines
    slab, groups = int(slabs.min()), "/".join(str(t) for t in slabs[::VIEW_GROUP])
    runs = {
        "global": lambda: weighted_back_projection(stack, tilts, thickness=thickness, binning=binning),
        "local": lambda: weighted_back_projection(stack, tilts, thickness=thickness, binning=binning, local=lp),
        "local s9": lambda: local_wbp_s9(binned_views(stack, np.arange(len(tilts)), binning), filt, mats, grid,
                                         n_z),  # binned inside, as the global and local WBP bin
        "local s11": lambda: local_wbp_s11(binned_views(stack, np.arange(len(tilts)), binning), filt, mats, grid, n_z),
        "local s12": lambda: local_wbp_s12(binned_views(stack, np.arange(len(tilts)), binning), filt, mats, grid, n_z),
        "local s14": lambda: local_wbp_s14(binned_views(stack, np.arange(len(tilts)), binning), filt, mats, grid, n_z),
        "  error check": lambda: choose_geometry(mats, grid, n_z, views.shape[:0:-1]),
        "  bands + kernel": lambda: backproject_local_bands(views, shear, filt, *twiddles(n_pad), mats, grid, 0, vol,
                                                            np.maximum(slabs, SLABS[-1]), numba.get_num_threads()),
        "  filter whole (s12)": lambda: filtered_sheared_views(views, shear, filt, *twiddles(n_pad)),
        "  kernel on it": lambda: backproject_local_rows(q, shear, views.shape[1], views.shape[2], mats, grid, 0, vol,
                                                        np.maximum(slabs, SLABS[-1])),
    }
    if voxel:
        runs["exact voxel kernel"] = lambda: exact_local(views, filt, mats, grid, n_z)
    rows: dict[str, list] = {name: [] for name in runs}
    out = {name: fn() for name, fn in runs.items()}  # compile / load the kernels
    if alone:  # each run's repeats in a row: the local call after the global one was slower (sessions 9, 10)
        for name, fn in runs.items():
            rows[name] = [timed(fn)[:3] for _ in range(repeats)]
    else:
        for _ in range(repeats):
            for name, fn in runs.items():
                rows[name].append(timed(fn)[:3])
    med = {k: np.median(np.array(v), axis=0) for k, v in rows.items()}
    pos, ext = block_errors(mats, grid, n_z, views.shape[:0:-1], shear)
    errors = ", ".join(f"{t}: {e:.3f}" for t, e in zip(SLABS, slab_errors(mats, grid, n_z, views.shape[:0:-1]),
                                                      strict=True))
    kernel = {0: "the exact voxel kernel", 1: "the block kernel"}.get(slab, f"the one-row kernel, slabs per group of"
                                                                          f" {VIEW_GROUP} views {groups}")
    print(f"  binning {binning}: block errors: position {pos:.3f} px (limit {BLOCK_TOLERANCE_PX}), extrapolation"
          f" {ext:.3f} px (limit {EXTRAPOLATION_LIMIT_PX}); slab errors (sections: px, limit {SLAB_TOLERANCE_PX}):"
          f" {errors}: {kernel}")
    g = med["global"]
    for name, (w, c, sy) in med.items():
        print(f"    {name:20s} {1000 * w:8.1f} ms wall  {1000 * c:8.1f} ms CPU (system {1000 * sy:5.1f})"
              f"   ({w / g[0]:5.2f}x, {c / g[1]:5.2f}x the global WBP)")
    exact = out["exact voxel kernel"] if voxel else exact_local(views, filt, mats, grid, n_z)
    i = (slice(None), slice(8, -8), slice(8, -8))
    ncc = [np.corrcoef(out[k][i].ravel(), exact[i].ravel())[0, 1]
           for k in ("local", "local s9", "local s11", "local s12", "local s14")]
    lo, s9, s11, s12, s14 = med["local"], med["local s9"], med["local s11"], med["local s12"], med["local s14"]
    print(f"    local / global: {lo[0] / g[0]:4.2f} wall, {lo[1] / g[1]:4.2f} CPU, {(lo[1] - lo[2]) / (g[1] - g[2]):4.2f}"
          " user CPU (target <= 2); session 9's:"
          f" {s9[0] / g[0]:4.2f} wall, {s9[1] / g[1]:4.2f} CPU; session 11's: {s11[0] / g[0]:4.2f} wall,"
          f" {s11[1] / g[1]:4.2f} CPU; session 12's: {s12[0] / g[0]:4.2f} wall, {s12[1] / g[1]:4.2f} CPU,"
          f" {(s12[1] - s12[2]) / (g[1] - g[2]):4.2f} user CPU; NCC against the exact voxel kernel inside an 8 px border:"
          f" {ncc[0]:.8f} (session 9's {ncc[1]:.6f}, session 11's {ncc[2]:.8f}, session 12's {ncc[3]:.8f}, session 14's"
          f" {ncc[4]:.8f}); this session's local against session 14's: {lo[0] / s14[0]:4.2f} wall, {lo[1] / s14[1]:4.2f}"
          f" CPU, {(lo[1] - lo[2]) / (s14[1] - s14[2]):4.2f} user CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats and a 64-section volume")
    parser.add_argument("--voxel", action="store_true", help="time the exact voxel kernel too (about 10x slower)")
    parser.add_argument("--no-solve", action="store_true", help="solve once, untimed (the WBP figures only)")
    parser.add_argument("--alone", action="store_true", help="time each run's repeats in a row, not alternating")
    args = parser.parse_args()
    repeats = 5 if args.quick else 7
    la, sol = bench_solve(1 if args.no_solve else repeats)
    bench_wbp(la, sol, repeats, 64 if args.quick else 128, args.voxel, args.alone)


if __name__ == "__main__":
    main()
