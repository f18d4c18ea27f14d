"""IMOD's full model (tiltalign's options from an align.com) against the default model, in one process.

    python benchmarks/bench_full_model.py            # BBa/BBb parity, 800 x 61 and 12000 x 133
    python benchmarks/bench_full_model.py --quick    # BBa/BBb parity and 800 x 61 only

1. The tutorial data with the options of its own aligna.com / alignb.com: our RMS (IMOD's Final F)
   and mean residual against IMOD's log, and the solve time.
2. Simulated series (the problems of bench_solver.py, whose tilts err view by view): the whole
   `align_markers_imod` call with aligna.com's options but every tilt free (rotation, tilt and
   magnification per view, X-stretch in blocks of 7, skew in linear groups of 11) against the whole
   `align_markers` call with the default model (tilt, rotation and magnification per view). Medians of repeated solves, and
   their ratio (target: at most 2).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from napari_tomoalign import AlignmentOptions, align_markers, read_markers, read_tilt_angles, simulate_markers
from napari_tomoalign.alignment.solver import align_markers_imod

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"
IMOD = {"a": (0.360595, 0.315), "b": (0.383607, 0.336)}  # Final F, residual mean (aligna.log, alignb.log)
COM = """$tiltalign -StandardInput
RotationAngle\t{axis}
AngleOffset\t0.0
RotOption\t1
TiltOption\t2
MagOption\t1
XStretchOption\t3
SkewOption\t3
XStretchDefaultGrouping\t7
SkewDefaultGrouping\t11
MaximumCycles\t1000
"""


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def solve_tutorial(axis: str):
    m = read_markers(DATA / f"BB{axis}.fid")
    tilts = read_tilt_angles(DATA / f"BB{axis}.rawtlt")
    return align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, DATA / f"align{axis}.com")


def bench_tutorial() -> None:
    for axis in ("a", "b"):
        t, al = median_time(lambda ax=axis: solve_tutorial(ax), 5)
        f, mean = IMOD[axis]
        print(f"BB{axis} with align{axis}.com: RMS {al.rms_residual_px:.6f} px (IMOD Final F {f:.6f}),"
              f" mean {al.mean_residual_px:.4f} (IMOD {mean:.3f}), {al.settings.n_geometric} geometric"
              f" variables, {sum(s.iterations for s in al.stages)} iterations, median {t * 1e3:.0f} ms", flush=True)


def bench_problem(name: str, sim, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        com = Path(d) / "align.com"
        com.write_text(COM.format(axis=85.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            args = (sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
            t_default, al_d = median_time(lambda: align_markers(*args, AlignmentOptions(tilt_axis_deg=85.0)), repeats)
            t_full, al_f = median_time(lambda: align_markers_imod(*args, com), repeats)
    print(f"{name}: {len(sim.view)} observations; default model {t_default:.3f} s (RMS {al_d.rms_residual_px:.4f}),"
          f" full model {t_full:.3f} s (RMS {al_f.rms_residual_px:.4f}, {al_f.settings.n_geometric} geometric"
          f" variables, {sum(s.iterations for s in al_f.stages)} iterations); full/default = {t_full / t_default:.2f}"
          f" (medians of {repeats})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 12000-marker problem")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # The default model's compiled loops, loaded up front: `_backend` then never picks its numpy loops for
    # these sizes (it does below 60,000 observations in a process that has not loaded them), so the
    # baseline is the default model at its fastest, as bench_solver.py measures it.
    importlib.import_module("napari_tomoalign.alignment._kernels")
    warm = simulate_markers(n_views=21, n_markers=12, seed=1)  # compile both solvers' kernels first
    bench_problem("warm-up", warm, 1)
    bench_tutorial()
    sim = simulate_markers(n_views=61, n_markers=800, noise_px=0.5, high_tilt_loss=0.3, dropout=0.05,
                           image_size=(4096, 4096), thickness_px=300, seed=2)
    bench_problem("800 markers x 61 views", sim, args.repeats)
    if args.quick:
        return
    sim = simulate_markers(n_views=133, n_markers=12000, noise_px=0.5, high_tilt_loss=0.3, dropout=0.05,
                           image_size=(8192, 8192), thickness_px=400, seed=3)
    bench_problem("12000 markers x 133 views", sim, args.repeats)


if __name__ == "__main__":
    main()
