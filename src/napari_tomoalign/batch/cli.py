"""``tomoalign batch``: the arguments and the command, for the lead's ``cli.py`` to register.

    from .batch.cli import add_batch_arguments, cmd_batch
    p = sub.add_parser("batch", help="align many tilt series on a dask cluster")
    add_batch_arguments(p)
    p.set_defaults(func=cmd_batch)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io.limits import pixel_size_arg
from ..jobs.solver_options import add_solver_arguments

DESCRIPTION = """\
Align many tilt series at once, one dask task per series, on this machine (a local cluster, one
single-threaded worker per core) or on a running cluster (--scheduler). Each series gets a folder
OUTPUT/NAME/; OUTPUT/summary.csv has one row per series and OUTPUT/summary.png plots RMS per series.

Two paths:
  align  a series with markers (NAME.fid, .mod, .csv or NAME_markers.csv beside the stack, or a
         markers column): the files of 'tomoalign align' (alignment.json, NAME.xf, NAME.tlt, ...);
         a table row with a bead diameter or run column and no markers column is tracked instead.
  run    a stack without markers, with a bead diameter (a bead_diameter_nm or bead_diameter_px
         column, or --bead-diameter-nm/--bead-diameter-px for all): the files of 'tomoalign run':
         tracked beads (NAME.fid, NAME_markers.csv, NAME_beads.csv), a robust alignment in
         alignment/, the aligned stack NAME.ali and the tomogram NAME_binB.rec.
A series with neither is reported (status no-markers); a failure never stops the others.
Each series folder holds one run's files: NAME/batch_run.json, written last, names the inputs (size
and time), the options and every output. A finished, current series is skipped unless --force;
one whose inputs, options or outputs changed, or whose run was interrupted, is redone (the notes say
why); a finished run's files wait in NAME/.previous_run/ until the new run finishes, and go back if it
fails or is stopped. Files no batch run stamped are replaced only with --force.
SIGTERM or Ctrl-C stops the workers, removes the unfinished series' files and puts back the finished
runs they were replacing (exit 143 or 130)."""

EPILOG = """\
SOURCE: a folder, a quoted glob ('session/*.st') or a CSV table with a header row. Tilt angles and
markers are looked for beside each stack by its stem (NAME.rawtlt before NAME.tlt, as IMOD; else the
.mdoc or header); etomo's .prexg only from a prexg column (as align's --prexg; one beside is noted).
Table columns (paths relative to the table; empty cells take the options above):
  stack, markers          at least one; tilt_angles; prexg; name (default: the stem)
  pixel_size_nm           (else the header's); image_width, image_height: for CSV markers alone
  bead_diameter_nm, bead_diameter_px   the run path (one of them)
  beads, bin, thickness, shift, erase_gold, polarity
                          the run path's tracking and tomogram options (shift: IMOD's SHIFT
                          'X Z' in unbinned pixels, as run --shift)
  tilt_axis, rotation, tilt, magnification, reference_view, robust, robust_scale, robust_tracks,
  max_iterations, no_axis_estimate, no_initial_stage, axis_z_shift, exclude_views (as 1-3,40)
                          the solver's options
  imod_com                IMOD's full model from this align.com instead (both paths; local alignments too)
summary.csv columns: name, status (done, check, skipped, not-converged, failed, no-markers), path (align or
run), rms_residual_px, mean_residual_px, pixel_size_nm, n_markers, n_views, n_observations, n_flagged (robust fit),
beads_tracked, points_tracked, tracking_flagged, tracking_weak (run path), converged, time_s,
track_s, solve_s, write_s, images_s, kernel (the tomogram's back-projection kernel, as reconstruct says it: plain,
one-row (local alignments), exact (full model)...), error, notes, output, outlier.
Exit status: 0 when every series landed, 3 when some did not (each named; see summary.csv), 2 for bad input.
On SLURM: start a dask-jobqueue SLURMCluster and pass its scheduler_address to --scheduler."""

SERIES_FAILED = 3  # some series failed (each named above the summary): as a solve that did not converge


def _workers(text: str) -> int:
    """``--workers``: a whole number from 1 to 256 (more local workers than that only thrash one machine)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"{n} is out of range (1 to 256)")
    return n


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``tomoalign batch SOURCE --output DIR [...]``, and its help text."""
    p.description, p.epilog, p.formatter_class = DESCRIPTION, EPILOG, argparse.RawDescriptionHelpFormatter
    p.add_argument("source", help="a folder, a quoted glob ('data/*.mrc') or a CSV table of series")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for one sub-folder per series and the summary")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler (tcp://host:8786); default: a "
                   "local cluster on this machine")
    p.add_argument("--workers", type=_workers, metavar="N", help="local cluster workers, 1 to 256 (default: one per core)")
    p.add_argument("--force", action="store_true", help="redo series whose outputs are up to date, and replace files no"
                   " batch run stamped")
    p.add_argument("--export", default="", metavar="FORMATS",
                   help="also write each series as aretomo, cdp and/or relion (comma-separated); relion adds a "
                        "session tomograms.star")
    p.add_argument("--no-plot", action="store_true", help="do not write summary.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    r = p.add_argument_group("series without markers: tracked, as 'tomoalign run' (a table's cells win)")
    d = r.add_mutually_exclusive_group()
    d.add_argument("--bead-diameter-nm", dest="opt_bead_diameter_nm", type=float, metavar="D",
                   help="gold diameter in nm (converted with the pixel size)")
    d.add_argument("--bead-diameter-px", dest="opt_bead_diameter_px", type=float, metavar="D",
                   help="gold diameter in pixels")
    r.add_argument("--beads", dest="opt_beads", type=int, metavar="N", help="beads to track (default: every one)")
    r.add_argument("--bin", dest="opt_bin", type=int, metavar="N",
                   help="tomogram binning (as run: 2, or so that it is at most about 1024 wide)")
    r.add_argument("--thickness", dest="opt_thickness", type=int, metavar="T",
                   help="tomogram thickness in unbinned pixels (default: every marker inside with a margin, at least"
                        " a quarter of the image size, as 'tomoalign reconstruct')")
    r.add_argument("--shift", dest="opt_shift", type=float, nargs=2, metavar=("X", "Z"),
                   help="IMOD's SHIFT of every tomogram in X and Z, unbinned pixels (as 'tomoalign run --shift'; gold on"
                        " one face: the Z that holds the section)")
    r.add_argument("--erase-gold", dest="opt_erase_gold", action="store_true",
                   help="replace the beads by background before the aligned stack and the tomogram")
    r.add_argument("--polarity", dest="opt_polarity", choices=("dark", "bright"),
                   help="beads darker than the background (bright field, default) or brighter (HAADF STEM)")
    g = p.add_argument_group("solver options for every series, as in 'tomoalign align' (a table's cells win); a"
                             " tracked series is fitted robustly unless a table's robust cell says no")
    add_solver_arguments(g, dest_prefix="opt_", show_defaults=False)  # the one table of the solver's options
    g.add_argument("--imod-com", dest="opt_imod_com", metavar="FILE",
                   help="IMOD's full model with the tiltalign options of this align.com for every series (and local"
                        " alignments with LocalAlignments 1), after tracking too, as etomo's alignment step")
    g.add_argument("--pixel-size-nm", dest="opt_pixel_size_nm", type=pixel_size_arg, default=None, metavar="NM",
                   help="pixel size of every series (default: each stack's header)")


def cmd_batch(args: argparse.Namespace) -> int:
    """Run the batch; 0 when every series landed (aligned now or before), 1 when some failed (see summary.csv)."""
    from .runner import run_batch
    from .task import checked_notes

    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v not in (None, False)}
    if "imod_com" in options:  # the workers may run elsewhere: the file by its full path
        options["imod_com"] = str(Path(options["imod_com"]).resolve())
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    res = run_batch(args.source, args.output, options=options, scheduler=args.scheduler, n_workers=args.workers,
                    force=args.force, progress=False if args.quiet else None, plot=not args.no_plot, log=log,
                    export=tuple(f for f in args.export.split(",") if f.strip()))
    if not args.quiet:
        counts = {s: res.count(s) for s in ("done", "check", "skipped", "not-converged", "failed", "no-markers")
                  if res.count(s)}
        print(f"{len(res.rows)} series in {res.wall_time_s:.1f} s: "
              + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; summary in {res.summary_csv}")
        for r in res.failed:
            print(f"  {r['name']}: {r['status']}: {r['error']}")
        for r in res.rows:  # aligned, but the alignment says something is wrong: named here, not only in the csv
            if r["status"] == "check":
                print(f"  {r['name']}: check: {checked_notes(r)}")
            elif r["status"] == "skipped" and str(r.get("notes") or "").startswith("check when run: "):
                print(f"  {r['name']}: check (skipped, as when it ran): {checked_notes(r).removeprefix('check when run: ')}")
        for r in res.rows:  # an export asked for that the alignment cannot give: said here, not only in the csv
            left = [n.split(" not written")[0] for n in str(r.get("notes") or "").split("; ") if " not written: " in n]
            if left:
                print(f"  {r['name']}: {', '.join(left)} not written (the reason is in summary.csv's notes)")
    return SERIES_FAILED if res.failed else 0
