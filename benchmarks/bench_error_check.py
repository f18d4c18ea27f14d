"""The local WBP's error check (`local_errors.choose_geometry`) on BBa's local file, against session 16's
(`baseline_error_check.py`), interleaved in one process, one thread, CPU-time medians.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_error_check.py            # 31 rounds
    NUMBA_NUM_THREADS=1 python benchmarks/bench_error_check.py --rounds 11

BBa (IMOD's tutorial, 61 views) solved as `bench_local.py` solves it (aligna.com's global and local options,
5 x 5 patches), on a 512 x 512 stack: 128 sections at bin 1, 64 at bin 2. Each round times session 16's
`choose_geometry` and today's, one after the other (which goes first alternates). It prints both checks' block
position and extrapolation errors, the largest slab error per view (at 16 sections) and its sum of squares, the
largest differences, and whether the slabs (per group of views) and the shear agree. Also the parts of today's
check (`local_check`): each view's table of positions, the lanes' positions, the fit, the block errors and the slab
errors, timed by leaving the later parts out.
"""

from __future__ import annotations

import argparse
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
from napari_tomoalign.reconstruction.bp_kernels import VIEW_GROUP
from napari_tomoalign.reconstruction.local_blocks import ERROR_X_STEP, ROWS
from napari_tomoalign.reconstruction.local_check import (
    MAX_LANES,
    block_lanes,
    fit_lines,
    lane_positions,
    line_errors,
    slab_error_of,
    view_table,
)
from napari_tomoalign.reconstruction.local_errors import MEASURED_SLAB, choose_geometry, measured_errors
from napari_tomoalign.reconstruction.local_warp import kernel_arguments, local_projection

sys.path.insert(0, str(Path(__file__).parent))
from baseline_error_check import choose_geometry_s16, measured_errors_s16  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"


def bba_local():
    """BBa's local projection on a 512 x 512 stack (as `bench_local.py` solves it)."""
    table = read_imod_model(DATA / "BBa.fid")
    raw = np.loadtxt(DATA / "BBa.rawtlt")
    entries = read_com_section(DATA / "aligna.com")
    sol = align_markers(table.view, table.marker, table.xy, raw, table.image_size,
                        settings=settings_from_com(entries, raw), warn=False)
    la = local_alignments(table.view, np.searchsorted(sol.marker_ids, table.marker), table.xy, raw, sol,
                          local_options_from_com(entries), pixel_size=20.2)
    return local_projection(la.local_transforms, sol.tilt_angles_deg, (512, 512))


@numba.njit(fastmath=True, nogil=True)
def check_parts(mats, grid, shear, n_z, nx, ny, upto):  # pragma: no cover - compiled
    """`local_check.check_blocks` with only its first ``upto`` parts (1: the tables, 2: the lanes' positions,
    3: the fit, 4: the block errors, 5: the slab errors), for the parts' times."""
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    zt = max(n_z - 1, 1)
    n_v = mats.shape[1]
    n_xs = (nx - 1) // ERROR_X_STEP + 1
    n, lanes, roles, span = block_lanes(grid, -centre[1], ny)
    tab, pos = np.zeros((int(grid[1]), 4, 2, n_xs)), np.zeros((MAX_LANES, 4, n_xs))
    g = np.zeros((8, n_xs))
    peak, worst, work = np.zeros((2, n_xs)), np.zeros((2, n_v)), np.empty((16, n_xs))
    for v in range(n_v):
        if upto >= 1:
            view_table(mats, grid, v, shear[v], centre, zt, ERROR_X_STEP, tab)
        for blk in range(n.size):
            last = min(ROWS, ny - blk * ROWS) - 1
            if upto >= 2:
                lane_positions(tab, grid, blk * ROWS - centre[1], lanes[blk], n[blk], pos)
            if upto >= 3:
                fit_lines(pos, lanes[blk], roles[blk], n[blk], span[blk], zt, g)
            if upto >= 4:
                line_errors(pos, lanes[blk], roles[blk], n[blk], g, zt, last, peak)
            if upto >= 5:
                slab_error_of(g, n_z, last, MEASURED_SLAB, worst, v, work)
    return peak[0].max() + worst[0].max()


def cpu(fn):
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def compare_errors(mats, grid, n_z, size) -> None:
    """Both checks' errors (unsheared: BBa's `row_shears` is zero) and their largest differences."""
    none = np.zeros(mats.shape[1])
    old, new = measured_errors_s16(mats, grid, n_z, size, none), measured_errors(mats, grid, n_z, size, none)
    for name, (pos, ext, err) in (("session 16", old), ("today     ", new)):
        print(f"    {name}: position {pos:.9f} px, extrapolation {ext:.9f} px, slab errors at {MEASURED_SLAB}: largest"
              f" {err[0].max():.9f} px, sum of squares {err[1].sum():.6f}; per view (every 10th):"
              f" {' '.join(f'{e:.4f}' for e in err[0][::10])}")
    print(f"    largest differences: position {abs(old[0] - new[0]):.1e} px, extrapolation {abs(old[1] - new[1]):.1e} px,"
          f" slab errors {np.abs(old[2][0] - new[2][0]).max():.1e} px, sums of squares"
          f" {np.abs(old[2][1] / new[2][1] - 1).max():.1e} (relative)")


def bench(lp, binning: int, rounds: int) -> None:
    mats, grid = kernel_arguments(lp, binning)
    n_z, size = 128 // binning, (512 // binning, 512 // binning)
    runs = {"session 16": lambda: choose_geometry_s16(mats, grid, n_z, size),
            "today": lambda: choose_geometry(mats, grid, n_z, size)}
    out = {name: fn() for name, fn in runs.items()}  # compile / load
    times: dict[str, list[float]] = {name: [] for name in runs}
    for k in range(rounds):
        for name in (list(runs) if k % 2 == 0 else list(runs)[::-1]):
            times[name].append(cpu(runs[name])[0])
    med = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    same = all(np.array_equal(out["today"][i], out["session 16"][i]) for i in range(2))
    groups = "/".join(str(t) for t in out["today"][1][::VIEW_GROUP])
    print(f"  bin {binning} ({size[0]} x {size[1]} x {n_z}): choose_geometry session 16 {med['session 16']:6.2f} ms CPU,"
          f" today {med['today']:6.2f} ms CPU ({med['today'] / med['session 16']:.2f}x); slabs per group of"
          f" {VIEW_GROUP} views {groups}, shear {'on' if out['today'][0].any() else 'off'}; the same as session 16's:"
          f" {'yes' if same else 'NO'}")
    compare_errors(mats, grid, n_z, size)
    none = np.zeros(mats.shape[1])
    part = []
    for upto in range(6):
        check_parts(mats, grid, none, n_z, *size, upto)
        part.append(1000 * float(np.median([cpu(lambda u=upto: check_parts(mats, grid, none, n_z, *size, u))[0]
                                            for _ in range(rounds)])))
    names = ("loop", "tables", "lanes' positions", "fit", "block errors", "slab errors")
    print("    today's parts (ms CPU): " + ", ".join(f"{names[k]} {part[k] - (part[k - 1] if k else 0):.2f}"
                                                      for k in range(6)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (default 31)")
    args = parser.parse_args()
    lp = bba_local()
    print(f"BBa's local file, 61 views of 512 x 512, {numba.get_num_threads()} thread(s); CPU-time medians of"
          f" {args.rounds} interleaved rounds")
    for binning in (1, 2):
        bench(lp, binning, args.rounds)


if __name__ == "__main__":
    main()
