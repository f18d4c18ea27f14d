"""``tomoalign track`` and ``tomoalign run``: their arguments and commands, registered by ``cli.py``.

They only parse and print; the work is `jobs.track_to_file` and the shared `workflows` jobs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..io.limits import pixel_size_arg


def _add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack", help="the raw tilt series (.st .mrc .mrcs), read view by view")
    p.add_argument("--tilt-angles", metavar="FILE", help=".rawtlt or .tlt (default: the one beside the stack)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--bead-diameter-nm", type=_diameter, metavar="D",
                   help="gold diameter in nm (needs the pixel size), or auto to measure it; checked against the beads")
    g.add_argument("--bead-diameter-px", type=_diameter, metavar="D", help="gold diameter in pixels, or auto")
    g.add_argument("--patches", action="store_true", help="no gold: track patches of the specimen's texture")
    p.add_argument("--patch-size", type=int, metavar="PX", help="with --patches: patch side (default: 3/32 of the image)")
    p.add_argument("--overlap", type=float, metavar="F", help="with --patches: patch overlap fraction (default 0.5)")
    p.add_argument("--length", metavar="N[,OV]", help="with --patches: views per contour and overlap (default 16,4)")
    p.add_argument("--tilt-axis", type=float, metavar="DEG", help="tilt-axis angle near which to estimate it")
    p.add_argument("--pixel-size-nm", type=pixel_size_arg, metavar="NM",
                   help="pixel size in nm, for a stack whose header records none or a wrong one (default: the header's)")
    p.add_argument("--beads", type=int, metavar="N", help="how many beads to track (default: every bead found)")
    p.add_argument("--clumps", choices=("skip", "track"), default="skip",
                   help="beads in clumps of touching beads: leave them out (default) or track each on its own")
    p.add_argument("--seed-view", type=int, metavar="N",
                   help="view to find the beads on, numbered from 1 (default: the minimum tilt, or the next one if it"
                        " is blank)")
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


def _seed_index(args: argparse.Namespace) -> int | None:
    """``--seed-view`` (numbered from 1) as the jobs' 0-based index, checked against the series by the job."""
    if args.seed_view is None:
        return None
    if args.patches:
        from ..errors import UsageError

        raise UsageError("--seed-view chooses the view the beads are found on: leave it out with --patches")
    return int(args.seed_view) - 1


def _excluded(args: argparse.Namespace) -> tuple[int, ...]:
    """``--exclude-views`` as the jobs' 0-based views, read by the solver options' one reader of view lists (as
    ``align --exclude-views``)."""
    if args.exclude_views is None:
        return ()
    if args.patches:
        from ..errors import UsageError

        raise UsageError("--exclude-views leaves views out of the bead tracking: with --patches, track all views and"
                         " give --exclude-views to 'tomoalign align' (or reconstruct)")
    from ..jobs.solver_options import solver_settings

    return solver_settings({"exclude_views": args.exclude_views}).excluded_views


def _memory(text: str) -> int:
    """``--memory``: reconstruct's own reading of a size."""
    from ..reconstruction.reconstruct_job import memory_arg

    return memory_arg(text)


def add_track_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign track STACK (--bead-diameter-nm D | --bead-diameter-px D) --output MARKERS``."""
    _add_tracking_arguments(p)
    p.add_argument("--exclude-views", metavar="LIST", help="views to leave out of the tracking, numbered from 1 as"
                   " IMOD numbers them (1-3,60), as beadtrack's SkipViews")
    p.add_argument("--output", required=True, metavar="MARKERS", help="markers to write: .csv, .fid or .mod")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``tomoalign run STACK (--bead-diameter-nm D | ...) --output DIR``: track, align, warp, reconstruct."""
    from ..reconstruction.frame_option import add_size_option

    _add_tracking_arguments(p)
    p.add_argument("--exclude-views", metavar="LIST", help="views to leave out, numbered from 1 as IMOD numbers them"
                   " (1-3,60): not tracked (beadtrack's SkipViews), fitted (align --exclude-views) nor back-projected")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for every intermediate and the tomogram")
    p.add_argument("--bin", type=int, metavar="N",
                   help="binning of the tomogram (default: 2, or so that it is at most about 1024 wide; said)")
    p.add_argument("--thickness", type=int, metavar="T", help="tomogram thickness in unbinned pixels (default: every"
                   " marker inside, with a margin, and at least a quarter of the image size; with --level, its choice)")
    p.add_argument("--erase-gold", action="store_true",
                   help="replace the beads with background before the aligned stack and the tomogram (no streaks)")
    from ..reconstruction.reconstruct_job import BYTES_HELP, MODES

    p.add_argument("--mode", choices=MODES, help="mode of the aligned stack (default: the input's integer mode, as"
                                                 " newstack; else float32)" + BYTES_HELP)
    p.add_argument("--memory", type=_memory, metavar="SIZE",
                   help="memory the tomogram's slabs may use, such as 4G (default: 2G, or half what is free); the tracking"
                        " before it and the aligned stack written beside it come on top (the whole process is bounded"
                        " by reconstruct --memory, not here)")
    add_size_option(p)  # the aligned frame of the .ali and the tomogram (reconstruction.frame)
    from ..reconstruction.reconstruct_job import add_positioning_options

    add_positioning_options(p, run=True)  # reconstruct's --shift and --level, the same job function
    p.add_argument("--imod-com", metavar="FILE",
                   help="align the tracked markers with IMOD's full model and the tiltalign options of this align.com"
                        " (and its local alignments with LocalAlignments 1), as etomo's alignment step")


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

    seed_view, excluded = _seed_index(args), _excluded(args)  # refused with --patches before any work
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
                             tilt_axis_deg=args.tilt_axis, n_beads=args.beads, pixel_size_nm=args.pixel_size_nm,
                             overwrite=args.force, progress=bar, clumps=args.clumps, dark=args.polarity == "dark",
                             seed_view=seed_view, exclude_views=excluded)
    finally:
        bar.done()


def cmd_track(args: argparse.Namespace) -> int:
    from ..cli import say

    tracked = _track(args, Path(args.output))
    if not args.quiet:
        print(tracked.result.summary(warnings=False))
    say(tracked.result.warnings, args.quiet)  # notes on standard output, warnings on standard error (`cli.warn`)
    if not args.quiet:
        print(f"wrote {tracked.markers_path} (angles from {tracked.tilt_source})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Track, align robustly (or with --imod-com), then the aligned stack and the tomogram in one pass over the
    stack, each written into ``--output`` (`jobs.run.run_job`); nothing is left there when a step fails."""
    from .outputs import removed_on_failure, run_lock

    with run_lock(Path(args.output)), removed_on_failure(Path(args.output)):  # the lock first: see `run_lock`
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..jobs.run import RunJob, run_job
    from ..jobs.solver_options import SolverSettings
    from ..report import local_report, text_report
    from ._patch_jobs import wants_patches
    from .jobs import run_options

    settings = SolverSettings(run_options(args.tilt_axis))  # with --imod-com the tilt axis guides the tracking only
    excluded = _excluded(args)
    if excluded:  # left out of the tracking, the fit (as align --exclude-views) and so the tomogram
        settings = SolverSettings(settings.options, given=("exclude_views",), excluded_views=excluded)
    binning, bin_note = args.bin, None
    if binning is None:
        from .binned import stack_tomogram_binning

        binning, bin_note = stack_tomogram_binning(args.stack)
    job = RunJob(Path(args.stack), Path(args.output), bead_diameter_nm=args.bead_diameter_nm,
                 bead_diameter_px=args.bead_diameter_px,
                 tilt_angles_path=Path(args.tilt_angles) if args.tilt_angles else None, settings=settings,
                 imod_com=Path(args.imod_com) if args.imod_com else None, n_beads=args.beads, binning=binning,
                 thickness=args.thickness, erase_gold=args.erase_gold, pixel_size_nm=args.pixel_size_nm,
                 patches=wants_patches(args),
                 patch_size=args.patch_size, patch_overlap=args.overlap, patch_length=args.length,
                 clumps=args.clumps, dark=args.polarity == "dark", ali_mode=args.mode, memory_bytes=args.memory,
                 seed_view=_seed_index(args), size=args.size, shift_px=tuple(args.shift) if args.shift else None,
                 level=args.level)
    bar = _Bar(args.quiet)
    try:
        res = run_job(job, overwrite=args.force, progress=bar)
    finally:
        bar.done()
    from ..cli import say, warn_quietly

    warn_quietly(res.tomogram_warnings)  # on stderr, --quiet too (as reconstruct's)
    if not args.quiet:
        print(res.tracked.result.summary(warnings=False))
        if res.folder.local is not None:
            print("\n".join(local_report(res.folder.local)))
        print("\n".join(text_report(res.alignment, warnings=False)))
        if res.levelled is not None:  # --level: the surface analysis and what was applied, as reconstruct says them
            print(res.surfaces.report())
            print(res.levelled.report(res.surfaces.n_surfaces))
    say([*res.tracked.result.warnings, *res.alignment.warnings], args.quiet)  # warnings on stderr (`cli.warn`)
    if not args.quiet:
        print(f"wrote {job.output_dir}: {', '.join(job.output_names()[:3])}, alignment/, {res.aligned_stack.name},"
              f" {res.tomogram.name}" + (" (with the local alignments)" if res.folder.local is not None else "")
              + (f", {res.erased.name}" if res.erased is not None else "")
              + f" (angles from {res.tracked.tilt_source})" + (f"; {bin_note}" if bin_note else "")
              + (f"; {res.frame_note()}" if res.frame_note() else ""))
        if res.kernel is not None and res.kernel.line():  # the tomogram's kernel, as reconstruct says it
            print(res.kernel.line())
    return 0 if res.alignment.converged else 3
