"""``tomoalign track`` and ``tomoalign run``: their arguments and commands, registered by ``cli.py``.

They only parse and print; the work is `jobs.track_to_file` and the shared `workflows` jobs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack", help="the raw tilt series (.st .mrc .mrcs), read view by view")
    p.add_argument("--tilt-angles", metavar="FILE", help=".rawtlt or .tlt (default: the one beside the stack)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--bead-diameter-nm", type=_diameter, metavar="D",
                   help="gold diameter in nm (needs the pixel size), or auto to measure it; checked against the beads")
    g.add_argument("--bead-diameter-px", type=_diameter, metavar="D", help="gold diameter in pixels, or auto")
    p.add_argument("--tilt-axis", type=float, metavar="DEG", help="tilt-axis angle near which to estimate it")
    p.add_argument("--beads", type=int, metavar="N", help="how many beads to track (default: every bead found)")
    p.add_argument("--clumps", choices=("skip", "track"), default="skip",
                   help="beads in clumps of touching beads: leave them out (default) or track each on its own")
    p.add_argument("--polarity", choices=("dark", "bright"), default="dark",
                   help="beads darker than the background (bright field, default) or brighter")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _diameter(text: str) -> float | str:
    """A bead diameter: a positive number, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a diameter is a number or auto, not {text!r}") from None


def add_track_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign track STACK (--bead-diameter-nm D | --bead-diameter-px D) --output MARKERS``."""
    _add_tracking_arguments(p)
    p.add_argument("--output", required=True, metavar="MARKERS", help="markers to write: .csv, .fid or .mod")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign run STACK (--bead-diameter-nm D | ...) --output DIR``: track, align, warp, reconstruct."""
    _add_tracking_arguments(p)
    p.add_argument("--output", required=True, metavar="DIR", help="folder for every intermediate and the tomogram")
    p.add_argument("--bin", type=int, metavar="N",
                   help="binning of the tomogram (default: 2, or so that it is at most about 1024 wide; said)")
    p.add_argument("--thickness", type=int, metavar="T", help="tomogram thickness in unbinned pixels")
    p.add_argument("--erase-gold", action="store_true",
                   help="replace the beads with background before the aligned stack and the tomogram (no streaks)")


class _Bar:
    """A one-line progress display on a terminal (nothing when the output is not one, or when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.on = not quiet and sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int, text: str) -> None:
        now = time.monotonic()
        if not self.on or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{stage:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.on:
            sys.stderr.write("\r" + " " * 60 + "\r")


def _track(args: argparse.Namespace, output: Path):
    from .jobs import track_to_file

    bar = _Bar(args.quiet)
    try:
        return track_to_file(args.stack, output, tilt_angles_path=args.tilt_angles,
                             bead_diameter_nm=args.bead_diameter_nm, bead_diameter_px=args.bead_diameter_px,
                             tilt_axis_deg=args.tilt_axis, n_beads=args.beads, overwrite=args.force, progress=bar,
                             clumps=args.clumps, dark=args.polarity == "dark")
    finally:
        bar.done()


def cmd_track(args: argparse.Namespace) -> int:
    tracked = _track(args, Path(args.output))
    if not args.quiet:
        print(tracked.result.summary())
        print(f"wrote {tracked.markers_path} (angles from {tracked.tilt_source})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Track, align robustly, then the aligned stack and the tomogram, each written into ``--output``;
    nothing is left there when a step fails."""
    from .outputs import removed_on_failure

    with removed_on_failure(Path(args.output)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..io.markers import write_markers_csv
    from ..report import text_report
    from ..workflows import align_to_folder, aligned_stack_to_file, reconstruct_to_file
    from .jobs import erase_gold_to_file, run_options

    out = Path(args.output)
    stem = Path(args.stack).stem
    tracked = _track(args, out / f"{stem}.fid")
    table = tracked.result.markers
    write_markers_csv(out / f"{stem}_markers.csv", table, overwrite=args.force)
    res = align_to_folder(f"{stem}.fid", tracked.tilt_source, out / "alignment", run_options(args.tilt_axis),
                          image_size=table.image_size, pixel_size_nm=tracked.pixel_size_nm, overwrite=args.force,
                          markers=table, tilt_angles_deg=tracked.result.alignment.nominal_tilt_angles_deg,
                          inputs={"stack": str(args.stack), "markers": "tracked", "tilt_angles": tracked.tilt_source})
    source = args.stack
    if args.erase_gold:
        source = erase_gold_to_file(args.stack, res.alignment, tracked.result.bead_diameter_px,
                                    out / f"{stem}_erased.mrc", overwrite=args.force)
    ali = aligned_stack_to_file(source, out / "alignment", out / f"{stem}.ali", overwrite=args.force)
    if args.bin is None:
        from .binned import tomogram_binning

        args.bin = tomogram_binning(table.image_size)
        if not args.quiet:
            print(f"tomogram binned by {args.bin} (the default for {table.image_size[0]} x {table.image_size[1]};"
                  " --bin N to change)")
    rec = reconstruct_to_file(source, out / "alignment", out / f"{stem}_bin{args.bin}.rec", binning=args.bin,
                              thickness=args.thickness, overwrite=args.force)
    if not args.quiet:
        print(tracked.result.summary())
        print("\n".join(text_report(res.alignment)))
        print(f"wrote {out}: {stem}.fid, {stem}_markers.csv, {stem}_beads.csv, alignment/, {ali.path.name},"
              f" {rec.path.name}")
    return 0 if res.alignment.converged else 3
