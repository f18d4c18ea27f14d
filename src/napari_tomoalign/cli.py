"""The ``tomoalign`` command line. It uses only the GUI-free core."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._version import __version__
from .io import FileFormatError, read_markers, read_tilt_angles, write_markers_csv
from .io.alignment import output_names, write_alignment
from .io.atomic import OverwriteError, check_writable
from .io.markers import MarkerTable
from .io.tilts import write_tilt_angles
from .options import AlignmentOptions
from .solver import AlignmentError, AlignmentWarning, align_markers
from .variables import VariableOption


class UsageError(Exception):
    """Bad command-line input; reported in one line."""


def _variable(text: str) -> VariableOption:
    try:
        return VariableOption.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_solver_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--tilt-axis", type=float, metavar="DEG",
                   help="tilt-axis angle from the image y axis, counter-clockwise; picks the branch of the estimate")
    g.add_argument("--no-axis-estimate", action="store_true",
                   help="start every view's rotation at --tilt-axis instead of estimating the axis")
    for name in ("rotation", "tilt", "magnification"):
        g.add_argument(f"--{name}", type=_variable, default=VariableOption("view"), metavar="MODE",
                       help=f"{name}: fixed, one, view (default) or group:N")
    g.add_argument("--reference-view", type=int, metavar="N",
                   help="0-based view whose tilt and magnification are held (default: minimum tilt)")
    g.add_argument("--no-initial-stage", action="store_true", help="skip the initial stage")
    g.add_argument("--max-iterations", type=int, default=200, help="iteration limit per stage (default 200)")
    g.add_argument("--pixel-size-nm", type=float, help="pixel size, to report residuals in nm")
    g.add_argument("--axis-z-shift", type=float, default=0.0, metavar="PX",
                   help="move the tilt axis in Z from the marker centroid, in pixels (IMOD's AxisZShift)")


def _options(args: argparse.Namespace) -> AlignmentOptions:
    try:
        return AlignmentOptions(
            rotation=args.rotation, tilt=args.tilt, magnification=args.magnification,
            tilt_axis_deg=args.tilt_axis, estimate_tilt_axis=not args.no_axis_estimate,
            reference_view=args.reference_view, initial_stage=not args.no_initial_stage,
            max_iterations=args.max_iterations,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _solve_and_write(
    markers: MarkerTable, tilts: np.ndarray, size: tuple[int, int], args: argparse.Namespace, stem: str,
    inputs: dict,
) -> int:
    out = Path(args.output)
    if not args.force:
        for name in output_names(stem):
            check_writable(out / name, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # the summary lists them
        al = align_markers(markers.view, markers.marker, markers.xy, tilts, size, _options(args),
                           pixel_size_nm=args.pixel_size_nm)
    paths = write_alignment(al, out, stem, overwrite=args.force, axis_z_shift_px=args.axis_z_shift, extra=inputs)
    if not args.quiet:
        print(al.summary())
        print(f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}")
    return 0 if al.converged else 3


def cmd_align(args: argparse.Namespace) -> int:
    markers = read_markers(args.markers)
    tilts = read_tilt_angles(args.tilt_angles)
    if args.image_size is not None:
        size = (int(args.image_size[0]), int(args.image_size[1]))
    elif markers.image_size is not None:
        size = markers.image_size
    else:
        raise UsageError("--image-size W H is required for CSV markers (the file does not record it)")
    stem = Path(args.markers).stem
    return _solve_and_write(markers, tilts, size, args, stem,
                            {"markers": str(args.markers), "tilt_angles": str(args.tilt_angles)})


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate a misaligned series' markers, write them as inputs, and align them."""
    from .simulate import simulate_markers

    sim = simulate_markers(n_views=61, n_markers=40, noise_px=0.3, high_tilt_loss=0.3, dropout=0.03,
                           always_visible=6, seed=args.seed)
    out = Path(args.output)
    markers_path, tilt_path = out / "demo_markers.csv", out / "demo.rawtlt"
    for p in (markers_path, tilt_path):
        check_writable(p, args.force)
    table = MarkerTable(sim.view, sim.marker, sim.xy, sim.image_size, "simulated")
    write_markers_csv(markers_path, table, overwrite=args.force)
    write_tilt_angles(tilt_path, sim.nominal_tilt_angles_deg, overwrite=args.force)
    if not args.quiet:
        print(f"simulated {len(sim.view)} observations of {len(np.unique(sim.marker))} markers in"
              f" {len(sim.nominal_tilt_angles_deg)} views (noise {sim.noise_px} px); inputs in {out}")
    return _solve_and_write(table, sim.nominal_tilt_angles_deg, sim.image_size, args, "demo",
                            {"markers": str(markers_path), "tilt_angles": str(tilt_path), "simulated_seed": args.seed})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tomoalign", description="Fiducial alignment of electron tomography tilt series.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("align", help="align a tilt series from marker observations")
    p.add_argument("markers", help="markers: CSV with view,marker,x,y or an IMOD .fid/.mod model")
    p.add_argument("--tilt-angles", required=True, metavar="FILE", help=".tlt or .rawtlt file, one angle per view")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), help="image width and height in pixels")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the outputs")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    _add_solver_options(p)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("demo", help="simulate markers with known misalignment, then align them")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the inputs and outputs")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    _add_solver_options(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (FileFormatError, AlignmentError, OverwriteError, UsageError) as exc:
        print(f"tomoalign: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tomoalign: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
