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
    g.add_argument("--bead-diameter-nm", type=float, metavar="D", help="gold diameter in nm (needs the pixel size)")
    g.add_argument("--bead-diameter-px", type=float, metavar="D", help="gold diameter in pixels")
    g.add_argument("--patches", action="store_true", help="no gold: track patches of the specimen's texture")
    p.add_argument("--patch-size", type=int, metavar="PX", help="with --patches: patch side (default: image / 5)")
    p.add_argument("--overlap", type=float, metavar="F", help="with --patches: patch overlap fraction (default 0.33)")
    p.add_argument("--length", metavar="N[,OV]", help="with --patches: views per contour and overlap (default 16,4)")
    p.add_argument("--tilt-axis", type=float, metavar="DEG", help="tilt-axis angle near which to estimate it")
    p.add_argument("--beads", type=int, metavar="N", help="how many beads to track (default: every bead found)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def add_track_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign track STACK (--bead-diameter-nm D | --bead-diameter-px D) --output MARKERS``."""
    _add_tracking_arguments(p)
    p.add_argument("--output", required=True, metavar="MARKERS", help="markers to write: .csv, .fid or .mod")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign run STACK (--bead-diameter-nm D | ...) --output DIR``: track, align, warp, reconstruct."""
    _add_tracking_arguments(p)
    p.add_argument("--output", required=True, metavar="DIR", help="folder for every intermediate and the tomogram")
    p.add_argument("--bin", type=int, default=2, metavar="N", help="binning of the tomogram (default 2)")
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
    from ._patch_jobs import track_patches_cli, wants_patches

    if wants_patches(args):
        try:
            return track_patches_cli(args, output, bar)
        finally:
            bar.done()
    try:
        return track_to_file(args.stack, output, tilt_angles_path=args.tilt_angles,
                             bead_diameter_nm=args.bead_diameter_nm, bead_diameter_px=args.bead_diameter_px,
                             tilt_axis_deg=args.tilt_axis, n_beads=args.beads, overwrite=args.force, progress=bar)
    finally:
        bar.done()


def cmd_track(args: argparse.Namespace) -> int:
    tracked = _track(args, Path(args.output))
    if not args.quiet:
        print(tracked.result.summary())
        print(f"wrote {tracked.markers_path} (angles from {tracked.tilt_source})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Track, align robustly, then the aligned stack and the tomogram, each written into ``--output``."""
    from ..io.markers import write_markers_csv
    from ..report import text_report
    from ..workflows import align_to_folder, aligned_stack_to_file, reconstruct_to_file
    from .jobs import erase_gold_to_file, run_options

    out = Path(args.output)
    stem = Path(args.stack).stem
    if args.erase_gold and args.patches:
        from ..errors import UsageError

        raise UsageError("--erase-gold needs gold: with --patches there are no beads to erase")
    tracked = _track(args, out / f"{stem}.fid")
    table = tracked.result.markers
    write_markers_csv(out / f"{stem}_markers.csv", table, overwrite=args.force)
    options = run_options(args.tilt_axis)  # patch tracks get the same robust fit
    res = align_to_folder(f"{stem}.fid", tracked.tilt_source, out / "alignment", options,
                          image_size=table.image_size, pixel_size_nm=tracked.pixel_size_nm, overwrite=args.force,
                          markers=table, tilt_angles_deg=tracked.result.alignment.nominal_tilt_angles_deg,
                          inputs={"stack": str(args.stack), "markers": "tracked", "tilt_angles": tracked.tilt_source})
    source = args.stack
    if args.erase_gold:
        source = erase_gold_to_file(args.stack, res.alignment, tracked.result.bead_diameter_px,
                                    out / f"{stem}_erased.mrc", overwrite=args.force)
    ali = aligned_stack_to_file(source, out / "alignment", out / f"{stem}.ali", overwrite=args.force)
    rec = reconstruct_to_file(source, out / "alignment", out / f"{stem}_bin{args.bin}.rec", binning=args.bin,
                              thickness=args.thickness, overwrite=args.force)
    if not args.quiet:
        print(tracked.result.summary())
        print("\n".join(text_report(res.alignment)))
        table = f"{stem}_patches.csv" if args.patches else f"{stem}_beads.csv"
        print(f"wrote {out}: {stem}.fid, {stem}_markers.csv, {table}, alignment/, {ali.path.name},"
              f" {rec.path.name}")
    return 0 if res.alignment.converged else 3
