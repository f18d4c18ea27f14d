"""The ``tomoalign`` command line. It uses only the GUI-free core."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._version import __version__
from .alignment.errors import AlignmentError, AlignmentWarning
from .alignment.options import AlignmentOptions, VariableOption
from .alignment.solver import align_markers
from .io import FileFormatError, read_markers, read_tilt_angles, write_markers_csv
from .io.alignment import output_names, write_alignment
from .io.atomic import OverwriteError, check_writable
from .io.markers import MarkerTable
from .io.tilts import write_tilt_angles


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
    g.add_argument("--robust", action="store_true",
                   help="refit with Tukey-bisquare weights so that mis-clicks stop pulling the solution")
    g.add_argument("--robust-scale", type=float, default=1.8, metavar="K",
                   help="scale of Tukey's constant 4.685 (default 1.8; larger flags fewer points)")
    g.add_argument("--robust-tracks", action="store_true", help="weight whole marker tracks, not single points")
    g.add_argument("--leave-out", action="store_true",
                   help="also compute each marker's leave-out error (fit without it, predict it)")
    g.add_argument("--axis-z-shift", type=float, default=0.0, metavar="PX",
                   help="move the tilt axis in Z from the marker centroid, in pixels (IMOD's AxisZShift)")


def _options(args: argparse.Namespace) -> AlignmentOptions:
    try:
        return AlignmentOptions(
            rotation=args.rotation, tilt=args.tilt, magnification=args.magnification,
            tilt_axis_deg=args.tilt_axis, estimate_tilt_axis=not args.no_axis_estimate,
            reference_view=args.reference_view, initial_stage=not args.no_initial_stage,
            max_iterations=args.max_iterations, robust=args.robust or args.robust_tracks,
            robust_scale=args.robust_scale, robust_tracks=args.robust_tracks,
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
    sections, lo = {}, None
    if args.leave_out:
        from .alignment.leaveout import leave_out_error

        lo = leave_out_error(al)
        sections["leave_out"] = lo.to_dict()
    paths = write_alignment(al, out, stem, overwrite=args.force, axis_z_shift_px=args.axis_z_shift, extra=inputs,
                            sections=sections)
    if not args.quiet:
        from .report import text_report

        print("\n".join(text_report(al, leave_out=lo)))
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
    """Make the sample tilt series (images and clicked markers), align it, and write every product."""
    from .io.mrc import write_mrc
    from .simulation.sample import make_sample_tilt_series

    out = Path(args.output)
    stack_path, markers_path, tilt_path = out / "sample.mrc", out / "sample_markers.csv", out / "sample.rawtlt"
    products = [out / "sample.ali", out / "sample_bin2.rec"]
    for p in (stack_path, markers_path, tilt_path, *products):
        check_writable(p, args.force)
    sample = make_sample_tilt_series(seed=args.seed)
    n_views, rows, cols = sample.images.shape
    write_mrc(stack_path, sample.images, 10.0 * sample.pixel_size_nm, overwrite=args.force)
    table = MarkerTable(sample.view, sample.marker, sample.xy, (cols, rows), "simulated")
    write_markers_csv(markers_path, table, overwrite=args.force)
    write_tilt_angles(tilt_path, sample.tilt_angles_deg, overwrite=args.force)
    if not args.quiet:
        print(f"simulated a {n_views}-view {cols} x {rows} tilt series with {len(np.unique(sample.marker))} beads "
              f"({len(sample.view)} clicks, one of them a mis-click); inputs in {out}")
    if args.pixel_size_nm is None:
        args.pixel_size_nm = sample.pixel_size_nm
    code = _solve_and_write(table, sample.tilt_angles_deg, (cols, rows), args, "sample",
                            {"stack": str(stack_path), "markers": str(markers_path), "tilt_angles": str(tilt_path),
                             "simulated_seed": args.seed})
    for output, func, extra in ((products[0], cmd_aligned_stack, {"bin": 1, "cubic": False}),
                                (products[1], cmd_reconstruct, {"bin": 2, "thickness": 160, "lowpass": 0.35})):
        sub = argparse.Namespace(stack=str(stack_path), alignment=str(out), output=str(output), force=args.force,
                                 quiet=args.quiet, **extra)
        func(sub)
    return code


def _stack_and_alignment(args: argparse.Namespace):
    from .io.alignment import read_alignment_dir
    from .io.mrc import open_tilt_series

    saved = read_alignment_dir(args.alignment)
    series = open_tilt_series(args.stack)
    rows, cols = series.data.shape[1:]
    if (cols, rows) != tuple(saved.image_size):
        raise UsageError(f"{args.stack} is {cols} x {rows} but the alignment was solved for "
                         f"{saved.image_size[0]} x {saved.image_size[1]} images")
    if series.n_views != len(saved.transforms):
        raise UsageError(f"{args.stack} has {series.n_views} views but the alignment has {len(saved.transforms)}")
    if args.bin < 1:
        raise UsageError(f"--bin must be a positive integer, not {args.bin}")
    pix = series.pixel_size_angstrom or (10.0 * saved.pixel_size_nm if saved.pixel_size_nm else None)
    return series, saved, pix


def cmd_aligned_stack(args: argparse.Namespace) -> int:
    import mrcfile

    from .io.atomic import atomic_path
    from .reconstruction.warp import aligned_stack

    series, saved, pix = _stack_and_alignment(args)
    out = Path(args.output)
    check_writable(out, args.force)
    rows, cols = series.data.shape[1] // args.bin, series.data.shape[2] // args.bin
    with atomic_path(out, args.force) as tmp:
        with mrcfile.new_mmap(tmp, shape=(series.n_views, rows, cols), mrc_mode=2, overwrite=True) as m:
            aligned_stack(series.data, saved.transforms, binning=args.bin,
                          interpolation="cubic" if args.cubic else "linear", out=m.data)
            if pix:
                m.voxel_size = pix * args.bin
            m.update_header_stats()
    if not args.quiet:
        print(f"wrote {out}: {series.n_views} aligned views of {cols} x {rows}"
              + (f", {pix * args.bin:.3f} A/pixel" if pix else ""))
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .io.mrc import write_mrc
    from .reconstruction.warp import aligned_stack
    from .reconstruction.wbp import weighted_back_projection

    series, saved, pix = _stack_and_alignment(args)
    out = Path(args.output)
    check_writable(out, args.force)
    thickness = args.thickness if args.thickness is not None else max(series.data.shape[1:]) // 4
    if thickness < args.bin:
        raise UsageError(f"--thickness {thickness} is less than one binned pixel")
    ali = aligned_stack(series.data, saved.transforms, binning=args.bin)
    vol = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=thickness // args.bin,
                                   use_view=saved.view_determined, lowpass_cutoff=args.lowpass)
    write_mrc(out, vol, pix * args.bin if pix else None, overwrite=args.force)
    if not args.quiet:
        print(f"wrote {out}: {vol.shape[2]} x {vol.shape[1]} x {vol.shape[0]} (x, y, z) from "
              f"{int(saved.view_determined.sum())} views" + (f", {pix * args.bin:.3f} A/voxel" if pix else ""))
    return 0


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

    p = sub.add_parser("demo", help="make a sample tilt series with known misalignment, align and reconstruct it")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the inputs and outputs")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    _add_solver_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("aligned-stack", help="apply a solved alignment to a raw tilt series (as newstack -xform)")
    p.add_argument("stack", help="raw tilt series (.mrc .st .mrcs)")
    p.add_argument("--alignment", required=True, metavar="DIR", help="output directory of 'tomoalign align'")
    p.add_argument("--output", required=True, metavar="FILE", help="aligned stack to write (.ali or .mrc)")
    p.add_argument("--bin", type=int, default=1, metavar="N", help="bin by N while warping (default 1)")
    p.add_argument("--cubic", action="store_true", help="cubic instead of linear interpolation")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_aligned_stack)

    p = sub.add_parser("reconstruct", help="weighted back-projection of a tilt series with a solved alignment")
    p.add_argument("stack", help="raw tilt series (.mrc .st .mrcs)")
    p.add_argument("--alignment", required=True, metavar="DIR", help="output directory of 'tomoalign align'")
    p.add_argument("--output", required=True, metavar="FILE", help="tomogram to write (.rec or .mrc), (z, y, x)")
    p.add_argument("--bin", type=int, default=1, metavar="N", help="bin by N (default 1)")
    p.add_argument("--thickness", type=int, metavar="T",
                   help="thickness in unbinned pixels (default a quarter of the image size)")
    p.add_argument("--lowpass", type=float, metavar="F",
                   help="low-pass cutoff in cycles per binned pixel (0.5 is Nyquist; default none)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_reconstruct)
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
