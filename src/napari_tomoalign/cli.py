"""The ``tomoalign`` command line. It only parses and prints: the jobs are in `workflows`, GUI-free.

Contract (README): bad input exits with status 2 and one line on stderr, a solve that did not converge
with 3, SIGINT with 130 and SIGTERM with 143 (temporary files removed, earlier outputs untouched).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import AlignmentError, UsageError
from .io.atomic import OverwriteError, StopRequested
from .io.errors import FileFormatError
from .io.limits import pixel_size_arg
from .messages import os_error_message
from .stops import ReaderMayLeave, quiet_stdout, stop_behind, stop_message, stop_on_signals


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block), with status 2."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(f"{message} (see '{self.prog} --help')")


WHERE_TO_START = """where to start:
  a raw tilt series, no markers:  tomoalign run STACK --bead-diameter-nm D --output DIR
  markers (etomo .fid or a CSV):  tomoalign align MARKERS --tilt-angles FILE --output DIR
                                  (--imod-com align.com for IMOD's options), then aligned-stack, reconstruct
  many tilt series:               tomoalign batch ...
  try it on simulated data:       tomoalign demo --output DIR   (--size 4096: a camera-sized series, run)"""


class _ArgumentError(Exception):
    pass


def add_solver_options(p: argparse.ArgumentParser) -> None:
    from .jobs.solver_options import add_solver_arguments

    g = p.add_argument_group("model")
    add_solver_arguments(g)  # the options' one table, shared with batch and the dock
    g.add_argument("--pixel-size-nm", type=pixel_size_arg, metavar="NM", help="pixel size, to report residuals in nm")
    g.add_argument("--leave-out", action="store_true",
                   help="also compute each marker's leave-out error (fit without it, predict it)")


def solver_settings_of(args: argparse.Namespace):
    from .jobs.solver_options import settings_from_args

    return settings_from_args(args)


def print_alignment(res, out: Path) -> None:
    from .report import text_report

    print("\n".join(text_report(res.alignment, leave_out=res.leave_out, warnings=False)))
    if getattr(res, "surfaces", None) is not None:  # IMOD's surface analysis (tomogram positioning)
        print(res.surfaces.report())
    warn_quietly(res.alignment.warnings)  # the report's warnings: on standard error, as every warning (`warn`)
    print(f"wrote {len(res.paths)} files to {out}: {', '.join(p.name for p in res.paths)}")


def cmd_align(args: argparse.Namespace) -> int:
    from .file_jobs import align_to_folder
    from .jobs.align import prealigned_note

    res = align_to_folder(args.markers, args.tilt_angles, args.output, solver_settings_of(args),
                          image_size=tuple(args.image_size) if args.image_size else None,
                          pixel_size_nm=args.pixel_size_nm,
                          leave_out=args.leave_out, overwrite=args.force, imod_com=args.imod_com, local=args.local,
                          prexg=args.prexg)
    if not args.quiet:
        if res.local is not None:
            from .report import local_report

            print("\n".join(local_report(res.local)))
        print_alignment(res, Path(args.output))
        note = None if args.prexg else prealigned_note(args.markers)
        if note:
            print(note)
    else:
        warn_quietly(res.alignment.warnings)
    return 0 if res.alignment.converged else 3


def warn(text: str) -> None:
    """The one place the command line prints a warning: one line on standard error, ``tomoalign: warning: ...``
    (a pipeline sees it, --quiet or not), whichever prefix the text came with (s15 new user: "tomoalign: warning:"
    and "warning:" in one run)."""
    body = " ".join(str(text).split("\n"))
    for prefix in ("tomoalign: ", "warning: "):
        body = body.removeprefix(prefix)
    print(f"tomoalign: warning: {body}", file=sys.stderr)


def warn_quietly(lines) -> None:
    """The warnings among ``lines`` (all but the notes), each by `warn`: --quiet hides a report and its notes, not
    its warnings."""
    for line in lines:
        if not str(line).startswith("note:"):
            warn(str(line))


def say(lines, quiet: bool) -> None:
    """Notes on standard output unless --quiet; warnings on standard error always (`warn`)."""
    for line in lines:
        if str(line).startswith("note:") and not quiet:
            print(line)
    warn_quietly(lines)


def print_image(r, tomogram: bool) -> None:
    n, rows, cols = r.shape
    if tomogram:
        if getattr(r, "levelled", None) is not None:  # --level: the surface analysis, as align prints it, and its use
            print(r.surfaces.report())
            print(r.levelled.report(r.surfaces.n_surfaces))
        print(f"wrote {r.path}: {cols} x {rows} x {n} (x, y, z) from {r.n_views_used} views"
              + (f", {r.voxel_size_angstrom:.3f} A/voxel" if r.voxel_size_angstrom else "")
              + "".join(f"; {note}" for note in r.notes))
        if r.kernel is not None and r.kernel.line():  # the plain kernel: nothing was chosen (`kernel_choice`)
            print(r.kernel.line())
    else:
        warped = f"{n} aligned views" if r.n_views_used >= n else f"{n} views ({r.n_views_used} aligned)"
        print(f"wrote {r.path}: {warped} of {cols} x {rows}"
              + (f", {r.voxel_size_angstrom:.3f} A/pixel" if r.voxel_size_angstrom else "")
              + "".join(f"; {note}" for note in r.notes))


def cmd_aligned_stack(args: argparse.Namespace) -> int:
    from .file_jobs import aligned_stack_to_file, alignment_notes, erase_gold_diameter_px

    say(alignment_notes(args.stack, args.alignment), args.quiet)  # an IMOD set's sources; a .preali's .xf on a .st
    r = aligned_stack_to_file(args.stack, args.alignment, args.output, binning=args.bin,
                              interpolation="cubic" if args.cubic else "linear", overwrite=args.force, mode=args.mode,
                              size=args.size, pixel_size_nm=args.pixel_size_nm,
                              erase_gold_diameter_px=erase_gold_diameter_px(args.stack, args.erase_gold,
                                                                            args.bead_diameter_nm, args.bead_diameter_px))
    if not args.quiet:
        print_image(r, tomogram=False)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .file_jobs import alignment_notes, reconstruct_to_file
    from .reconstruction.reconstruct_job import options_from_args

    say(alignment_notes(args.stack, args.alignment), args.quiet)  # an IMOD set's sources; a .preali's .xf on a .st
    r = reconstruct_to_file(args.stack, args.alignment, args.output, binning=args.bin, thickness=args.thickness,
                            lowpass=args.lowpass, overwrite=args.force, local=args.local, options=options_from_args(args),
                            size=args.size, pixel_size_nm=args.pixel_size_nm)
    warn_quietly(r.warnings)
    if not args.quiet:
        print_image(r, tomogram=True)
    return 0


def common_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--force", action="store_true", help=f"overwrite {what}")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


_ALIGNMENT_HELP = ("output directory of 'tomoalign align', or IMOD's alignment: NAME.xf (NAME.tlt beside it; also"
                   " NAME.xtilt, .zfac, local.xf, fid.xyz when there) or a folder holding one")


def _image_options(p: argparse.ArgumentParser, wanted: bool) -> None:
    """``--bin``, ``--pixel-size-nm`` and ``--size`` (the aligned frame, `reconstruction.frame`, loaded for the
    command that is run) of ``aligned-stack`` and ``reconstruct``."""
    p.add_argument("--bin", type=int, default=1, metavar="N", help="bin by N (default 1)")
    p.add_argument("--pixel-size-nm", type=pixel_size_arg, metavar="NM",
                   help="the stack's pixel size in nm, for a header that records a wrong one (as run takes it;"
                        " default: the header's); the output's header gets it")
    if wanted:
        from .reconstruction.frame_option import add_size_option

        add_size_option(p)


def build_parser(argv: Sequence[str] | None = ()) -> argparse.ArgumentParser:
    """The ``tomoalign`` parser. Given the command line ``argv`` (None: ``sys.argv``), only the command it
    names gets its arguments from modules elsewhere, so that running one command does not import the others'
    jobs; the default builds every command."""
    wanted = None if argv == () else _command_in(argv)
    parser = _Parser(prog="tomoalign", description="Fiducial alignment of electron tomography tilt series.",
                     epilog=WHERE_TO_START, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("align", help="align a tilt series from marker observations")
    p.add_argument("markers", help="markers: CSV with view,marker,x,y (or napari's points CSV) or an IMOD .fid/.mod")
    p.add_argument("--tilt-angles", required=True, metavar="FILE", help=".tlt or .rawtlt file, one angle per view")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), help="image width and height in pixels")
    p.add_argument("--output", required=True, metavar="DIR", help="directory for the outputs, named as IMOD names"
                   " them after the data set: NAME.xf, NAME.tlt, NAMEfid.xyz for NAME.fid or NAME_markers.csv")
    p.add_argument("--imod-com", metavar="FILE",
                   help="solve IMOD's full model with the tiltalign options of this align.com (stretch, skew,"
                        " X-tilt, groupings) instead of the model options below; adds .xtilt, .tltxf, .zfac")
    p.add_argument("--prexg", metavar="FILE",
                   help="etomo's .prexg, for markers placed on the .preali: the .xf is then for the raw .st (etomo's"
                        " product), the .tltxf for the .preali")
    p.add_argument("--local", action="store_true",
                   help="also solve IMOD's local alignments over patches of the field (options from --imod-com,"
                        " else etomo's defaults) and write IMOD's local file; on by LocalAlignments 1")
    common_options(p, "existing output files")
    add_solver_options(p)
    p.set_defaults(func=cmd_align)

    for name, helptext, out_help in (
        ("aligned-stack", "apply a solved alignment to a raw tilt series (as newstack -xform)",
         "aligned stack to write (.ali or .mrc)"),
        ("reconstruct", "weighted back-projection of a tilt series with a solved alignment",
         "tomogram to write (.rec or .mrc), (z, y, x)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("stack", help="the tilt series the markers were placed on (.st .mrc .mrcs; for markers made"
                                     " in etomo, the .preali)")
        p.add_argument("--alignment", required=True, metavar="ALIGNMENT", help=_ALIGNMENT_HELP)
        p.add_argument("--output", required=True, metavar="FILE", help=out_help)
        _image_options(p, wanted in (None, name))
        common_options(p, "an existing output file")
        if name == "aligned-stack":
            p.add_argument("--cubic", action="store_true", help="cubic instead of linear interpolation")
            from .reconstruction.reconstruct_job import BYTES_HELP, MODES

            p.add_argument("--mode", choices=MODES,
                           help="output mode (default: the input's integer mode, as newstack; else float32)" + BYTES_HELP)
            p.add_argument("--erase-gold", action="store_true",
                           help="replace every bead by local background first (where the alignment puts it)")
            size = p.add_mutually_exclusive_group()
            size.add_argument("--bead-diameter-nm", type=float, metavar="D", help="bead diameter for --erase-gold")
            size.add_argument("--bead-diameter-px", type=float, metavar="D", help="the same in pixels")
            p.set_defaults(func=cmd_aligned_stack)
        else:
            p.add_argument("--thickness", type=int, metavar="T",
                           help="thickness in unbinned pixels (default: every marker inside, with a margin,"
                                " and at least a quarter of the image size)")
            p.add_argument("--local", nargs="?", const=True, default=False, metavar="FILE",
                           help="apply local alignments (IMOD's local file; without FILE, the one the"
                                " alignment folder holds from 'align --local'), streamed in slabs of rows with every"
                                " option as without")
            p.add_argument("--lowpass", type=float, metavar="F",
                           help="low-pass cutoff in cycles per binned pixel (0.5 is Nyquist; default none)")
            if wanted in (None, name):  # IMOD's options (issue 24); not loaded for the other commands
                from .reconstruction.reconstruct_job import add_reconstruct_options

                add_reconstruct_options(p)
            p.set_defaults(func=cmd_reconstruct)
    for name, helptext, where, register, command, extra in _ELSEWHERE:
        p = sub.add_parser(name, help=helptext)
        if wanted in (None, name):  # the arguments of a command that is not run are not needed
            module = import_module(where, __package__)
            getattr(module, register)(p)
            func = getattr(module, command)
            p.set_defaults(func=_needs_extra(func, extra) if extra else func)
    return parser


# Commands whose arguments live with their jobs: (name, help, module, adds arguments, runs, extra).
_ELSEWHERE = (
    ("track", "find and track the gold beads of a raw tilt series: markers with no clicks", ".tracking.cli",
     "add_track_arguments", "cmd_track", None),
    ("run", "raw tilt series to tomogram: track, align (robust), aligned stack, tomogram", ".tracking.cli",
     "add_run_arguments", "cmd_run", None),
    ("convert", "write an alignment in another tool's format (AreTomo .aln, CryoET Data Portal JSON, RELION 5"
     " STAR, IMOD .xf/.tlt)", ".io.convert_cli", "add_convert_arguments", "cmd_convert", "interchange"),
    ("demo", "make a sample tilt series with known misalignment, align and reconstruct it (--size 4096: a"
     " camera-sized one, through 'run')", ".demo_cli", "add_demo_arguments", "cmd_demo", None),
    ("batch", "align many tilt series at once, markers given or tracked from raw stacks, on a dask cluster",
     ".batch.cli",
     "add_batch_arguments", "cmd_batch", "batch"),
)


def _command_in(argv: Sequence[str] | None) -> str | None:
    """The subcommand named on the command line (its first word that is not an option), if any."""
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), None)


def _needs_extra(command, extra: str):
    """``command``, with a one-line way out when a package of an optional extra is not installed."""
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except ModuleNotFoundError as exc:
            raise UsageError(f"this command needs the package {exc.name!r}: pip install "
                             f"'napari-tomoalign[{extra}]'") from None

    return run


def _error(message: str, code: int) -> int:
    print(f"tomoalign: {message}".replace("\n", " "), file=sys.stderr)
    return code


def _loaded_errors() -> tuple[type[Exception], ...]:
    """Bad-input errors of modules loaded by the command that ran (one that was not loaded raised nothing)."""
    mrc = sys.modules.get(f"{__package__}.io.mrc")
    return (mrc.NonFiniteDataError,) if mrc is not None else ()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning that reaches the command line: one line on stderr (`warn`), never a source path."""
    warn(str(message))


def main(argv: Sequence[str] | None = None) -> int:
    import warnings


    shown, stdout = warnings.showwarning, sys.stdout
    warnings.showwarning = _show_warning
    sys.stdout = ReaderMayLeave(stdout)
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown
        if sys.stdout.__class__ is ReaderMayLeave:
            sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
    from ._numba_cache import cold_start_note, compiled_in_this_run, compiled_note
    from .io.atomic import BusyError, input_scope

    try:
        with stop_on_signals(), input_scope():  # no output may replace one of the command's inputs
            try:
                args = build_parser(argv).parse_args(argv)
            except _ArgumentError as exc:
                return _error(f"error: {exc}", 2)
            cold_start_note(getattr(args, "command", ""))
            before = compiled_in_this_run()
            try:
                rc = int(args.func(args))
                compiled_note(bool(getattr(args, "quiet", False)), before)
                return rc
            except (FileFormatError, AlignmentError, OverwriteError, UsageError, ValueError) as exc:  # ValueError: an
                return _error(f"error: {exc}", 2)  # option value out of range (AlignmentOptions, VariableOption)
            except _loaded_errors() as exc:
                return _error(f"error: {exc}", 2)
            except BusyError as exc:
                return _error(f"error: {exc.args[0] if exc.args else exc}", 2)
            except BrokenPipeError:  # the reader went away while text was printed by other means: the files are written
                quiet_stdout()
                return 0
            except MemoryError as exc:  # ours say what did not fit; numpy's and the system's say nothing useful
                said = str(exc) if str(exc).startswith(("/", ".")) or ": " in str(exc)[:200] else ""
                return _error(f"error: {said or 'not enough memory for this input; bin more or use fewer markers'}", 2)
            except OSError as exc:
                return _error(os_error_message(exc), 2)
    except (KeyboardInterrupt, StopRequested) as exc:
        landed = getattr(exc, "landed", None)  # what did land (a batch's series)
        more = f"; {landed}" if landed else ""
        if isinstance(exc, StopRequested) and exc.signum == signal.SIGTERM:
            return _error(f"terminated; no output was changed by the unfinished step{more}", 143)
        return _error(f"interrupted; no output was changed by the unfinished step{more}", 130)
    except Exception as exc:  # a bug: one line, and the traceback on request
        stop = stop_behind(exc)
        if stop is not None:  # a Ctrl-C that compiled code (numba) wrapped in a SystemError
            return _error(stop_message(stop), 128 + stop)
        if os.environ.get("TOMOALIGN_TRACEBACK"):
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc} (set TOMOALIGN_TRACEBACK=1 to see where)", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
