"""Local alignments: solve time on IMOD's tutorial BBa and the cost of a local WBP, against baselines run here.

    python benchmarks/bench_local.py            # 7 repeats of each
    python benchmarks/bench_local.py --quick    # 5 repeats, a thinner volume

Solve: BBa (61 views, 25 markers) with aligna.com's local options and LocalAlignments 1 (5 x 5 patches,
50 local variables each, markers held), with and without the surface analysis. The baseline is the global
full-model solve of the same markers with aligna.com's global options (149 variables). It also prints
the mean local residual and its range, against IMOD's 0.289 / 0.284 (0.259-0.312).

WBP: 61 views of 512 x 512 float32, thickness 128, with BBa's local file (as solved above) against the
global WBP of the same stack in the same process, and against the local WBP with the per-voxel kernel it
had before issue 24 (`local_warp.backproject_local`, the exact voxel kernel, swapped in here). Medians of the repeats
(wall and CPU time); the NCC of the two local volumes inside an 8-pixel border. Issue 24's target: local /
global <= 2 at binning 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import global_solution_from_alignment, local_alignments
from napari_tomoalign.alignment.local_options import local_options_from_com
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.io.imod_com import read_com_section
from napari_tomoalign.io.imod_model import read_imod_model
from napari_tomoalign.reconstruction import wbp as wbp_module
from napari_tomoalign.reconstruction.local_warp import backproject_local, local_projection
from napari_tomoalign.reconstruction.wbp import weighted_back_projection

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
    glob = global_solution_from_alignment(sol)  # aligna.com's AxisZShift 17.2 travels with the alignment
    marker = np.searchsorted(sol.marker_ids, table.marker)
    print(f"BBa: {len(table)} observations, {len(raw)} views, {len(sol.marker_ids)} markers")
    print(f"  global full-model solve (baseline, 149 variables)   {1000 * t_glob:8.1f} ms  RMS {sol.rms_residual_px:.6f} px")
    la = None
    for surfaces, imod in ((2, "0.289"), (0, "0.284")):
        opts = dataclasses.replace(local_options_from_com(entries), surfaces=surfaces)

        def solve_local(opts=opts):
            return local_alignments(table.view, marker, table.xy, raw, glob, opts, pixel_size=20.2)

        solve_local()  # compile / load the kernels
        t_loc, res = median_time(solve_local, repeats)
        lo, hi = res.residual_range_px
        label = "with surface analysis" if surfaces == 2 else "without surface analysis"
        print(f"  local, 25 patches, {label:25s} {1000 * t_loc:8.1f} ms  ({t_loc / t_glob:4.2f}x the global solve)"
              f"  local mean {res.mean_residual_px:.4f} px, range {lo:.3f}-{hi:.3f} (IMOD {imod}, 0.259-0.312)")
        la = la or res
    return la, sol


class voxel_kernel:  # noqa: N801 - a context manager named for what it swaps in
    """Within it, the local WBP runs the per-voxel kernel from before issue 24 (the baseline)."""

    def __enter__(self):
        self.saved = wbp_module.sheared_views, wbp_module.backproject_local_blocks
        wbp_module.sheared_views = lambda rows_f, shear, pad: rows_f
        wbp_module.backproject_local_blocks = (
            lambda views, shear, n_rows, n_cols, mats, grid, row0, vol: backproject_local(
                views, mats, grid, row0, vol))

    def __exit__(self, *exc):
        wbp_module.sheared_views, wbp_module.backproject_local_blocks = self.saved


def bench_wbp(la, sol, repeats: int, thickness: int) -> None:
    n_views, size = sol.n_views, 512
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(n_views, size, size)).astype(np.float32)
    tilts = sol.tilt_angles_deg
    lp = local_projection(la.local_transforms, tilts, (size, size))
    small = local_projection(la.local_transforms, tilts, (size, 64))
    weighted_back_projection(stack[:, :64], tilts, thickness=16)  # compile / load the kernels
    weighted_back_projection(stack[:, :64], tilts, thickness=16, local=small)
    with voxel_kernel():
        weighted_back_projection(stack[:, :64], tilts, thickness=16, local=small)
    print(f"\nWBP: {n_views} views of {size} x {size} float32, thickness {thickness}, BBa's 5 x 5 local file"
          " (the runs alternate, so that all see the same machine load; wall and CPU medians)")
    for binning in (1, 2):
        out = {}

        def timed(name, fn, out=out):
            w, c = time.perf_counter(), time.process_time()
            out[name] = fn()
            return time.perf_counter() - w, time.process_time() - c

        def run_global(binning=binning):
            return timed("global", lambda: weighted_back_projection(stack, tilts, thickness=thickness,
                                                                     binning=binning))

        def run_local(binning=binning):
            return timed("local", lambda: weighted_back_projection(stack, tilts, thickness=thickness,
                                                                    binning=binning, local=lp))

        def run_old(binning=binning):
            with voxel_kernel():
                return timed("old", lambda: weighted_back_projection(stack, tilts, thickness=thickness,
                                                                      binning=binning, local=lp))

        rows = {name: [] for name in ("global", "local", "old")}
        for _ in range(repeats):
            for name, fn in (("global", run_global), ("local", run_local), ("old", run_old)):
                rows[name].append(fn())
        med = {k: np.median(np.array(v), axis=0) for k, v in rows.items()}
        i = (slice(None), slice(8, -8), slice(8, -8))
        ncc = np.corrcoef(out["local"][i].ravel(), out["old"][i].ravel())[0, 1]
        g, lo, old = med["global"], med["local"], med["old"]
        print(f"  binning {binning}: global {1000 * g[0]:7.1f} ms (CPU {1000 * g[1]:7.1f}), local {1000 * lo[0]:7.1f} ms"
              f" (CPU {1000 * lo[1]:7.1f}), local before issue 24 {1000 * old[0]:7.1f} ms (CPU {1000 * old[1]:7.1f})")
        print(f"      local / global: {lo[0] / g[0]:4.2f} wall, {lo[1] / g[1]:4.2f} CPU (target <= 2);"
              f" before: {old[0] / g[0]:4.1f} wall, {old[1] / g[1]:4.1f} CPU; NCC new vs old local {ncc:.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats and a 64-section volume")
    args = parser.parse_args()
    repeats = 5 if args.quick else 7
    la, sol = bench_solve(repeats)
    bench_wbp(la, sol, repeats, 64 if args.quick else 128)


if __name__ == "__main__":
    main()
