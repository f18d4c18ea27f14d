"""What a worker does for one series, and the 'already finished' check.

A series takes one of two paths (`series_path`):

- ``align``: it has markers. Read them and the tilt angles (a stack only memory-mapped, for its
  header), align, and write the files of ``tomoalign align`` into ``OUTPUT/NAME/``.
- ``run``: no markers, but a stack and a bead diameter. Track the beads, align robustly, warp and
  reconstruct, writing what ``tomoalign run`` writes (`batch.run_series`).

`process_series` never raises: a failure becomes a row with ``status = "failed"`` (``"no-markers"``
for a series with neither markers nor a bead diameter) and a one-line ``error``, so one broken series
never stops the others. It runs on one thread (compiled loops, BLAS and FFTs), so a worker with one
thread holds one series at a time.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from .series import SeriesSpec

# Tracking's figures (``beads_tracked`` ... ``tracking_weak``, ``track_s``, ``images_s``) are empty on the align path.
ROW_FIELDS = ("name", "status", "path", "rms_residual_px", "mean_residual_px", "pixel_size_nm", "n_markers",
              "n_views", "n_observations", "n_flagged", "beads_tracked", "points_tracked", "tracking_flagged",
              "tracking_weak", "converged", "time_s", "track_s", "solve_s", "write_s", "images_s", "kernel", "error",
              "notes", "output")

# Where each exported format goes in a series' folder (see `io.convert`); IMOD's .xf/.tlt are always there.
EXPORT_TARGETS = {"aretomo": "{name}.aln", "cdp": "{name}_portal.json", "relion": "relion"}
NO_MARKERS = ("no markers beside {stack} ({stem}.fid, .mod, .csv or {stem}_markers.csv) and no bead diameter to track "
              "them with: add a bead_diameter_nm (or bead_diameter_px) column, or pass --bead-diameter-nm")


def series_path(spec: SeriesSpec, defaults: dict[str, Any] | None = None) -> str:
    """``"align"`` (markers given), ``"run"`` (a stack and a bead diameter: tracked) or ``"none"`` (neither)."""
    from .run_series import has_bead_diameter

    if spec.markers is not None:
        return "align"
    return "run" if spec.stack is not None and has_bead_diameter(spec, defaults or {}) else "none"


def alignment_dir(spec: SeriesSpec, out_root: Path, defaults: dict[str, Any] | None = None) -> Path:
    """Where a series' alignment files go: its folder, or its ``alignment/`` sub-folder on the run path (as
    ``tomoalign run`` writes them)."""
    d = Path(out_root) / spec.name
    return d / "alignment" if series_path(spec, defaults) == "run" else d


def output_paths(spec: SeriesSpec, out_root: Path, export: tuple[str, ...] = (),
                 defaults: dict[str, Any] | None = None) -> list[Path]:
    """The files ``tomoalign align`` (or, on the run path, ``tomoalign run``) writes for this series, and those of
    the exported formats."""
    from ..io.alignment import output_names

    d = out_root / spec.name
    extra = [d / "relion" / "tomograms.star" if f == "relion" else d / EXPORT_TARGETS[f].format(name=spec.name)
             for f in export if f in EXPORT_TARGETS]
    if series_path(spec, defaults) == "run":
        from .run_series import run_outputs

        return run_outputs(spec, out_root, defaults or {}) + extra
    full = (spec.options.get("imod_com") or (defaults or {}).get("imod_com")) not in (None, "")
    return [d / n for n in output_names(spec.name, full_model=full)] + extra


def is_finished(spec: SeriesSpec, out_root: Path, export: tuple[str, ...] = (),
                defaults: dict[str, Any] | None = None) -> bool:
    """True when the series' run stamp (`batch.stamp`) vouches for its outputs: a finished run of the same inputs
    and options, the exports asked for, every output unchanged (never for a series with neither markers nor a
    bead diameter)."""
    from .stamp import why_not_finished

    path = series_path(spec, defaults)
    if path == "none":
        return False
    return why_not_finished(spec, Path(out_root) / spec.name, defaults or {}, export, path) is None


def row_from_json(spec: SeriesSpec, out_root: Path, status: str, defaults: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """A summary row from a finished series' ``alignment.json`` (and, on the run path, ``tracking.json``)."""
    d = out_root / spec.name
    path = series_path(spec, defaults)
    row = make_row(spec.name, status, path=path, output=str(d))
    try:
        if path == "run":
            info = json.loads((d / "tracking.json").read_text())
            row.update({k: info[k] for k in ("beads_tracked", "points_tracked", "tracking_flagged", "tracking_weak")})
        info = json.loads((alignment_dir(spec, out_root, defaults) / "alignment.json").read_text())
        row.update(rms_residual_px=info["rms_residual_px"], mean_residual_px=info["mean_residual_px"],
                   n_markers=sum(x is not None for x in info["markers"]["x_px"]),
                   n_views=sum(bool(b) for b in info["views"]["determined"]),
                   n_observations=info["n_observations_used"],
                   n_flagged=(info.get("robust") or {}).get("n_flagged", 0), converged=info["converged"])
        row["pixel_size_nm"] = info.get("pixel_size_nm")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        row["error"] = f"alignment.json or tracking.json unreadable: {exc}"
    from .stamp import read_stamp

    stamp = read_stamp(d) or {}
    row["notes"] = f"{stamp.get('status', 'done')} when run: {stamp['notes']}" if stamp.get("notes") else ""
    return row


def make_row(name: str, status: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(name=name, status=status, error="")
    row.update(kw)
    return row


def yes_no(v: Any) -> bool:
    from ..jobs.solver_options import yes_no as parse

    return parse(v)


def series_settings(opts: dict[str, Any], *, tracked: bool = False) -> tuple[Any, Path | None]:
    """``(SolverSettings, align.com or None)`` of a series' option values (its table cells over the batch's):
    `jobs.solver_options.solver_settings`, the one converter of the command line, batch and the dock. A
    tracked series is fitted robustly unless its ``robust`` value says otherwise (as ``tomoalign run``)."""
    from ..jobs.solver_options import DEFAULTS, solver_settings
    from ..tracking.jobs import run_options

    com = opts.get("imod_com")
    base = run_options(None) if tracked else DEFAULTS  # the tracker's own options, as tomoalign run
    return solver_settings(opts, base=base), Path(com) if com not in (None, "") else None


def _inputs(spec: SeriesSpec, pixel_size_nm: float | None):
    """Markers, tilt angles, image size and pixel size of a series."""
    from ..conventions import nm_from_angstrom
    from ..io.errors import FileFormatError
    from ..io.markers import read_markers
    from ..io.tilts import read_tilt_angles

    markers = read_markers(spec.markers)  # type: ignore[arg-type]
    tilts = read_tilt_angles(spec.tilt_angles) if spec.tilt_angles else None
    size, pix = markers.image_size or spec.image_size, spec.pixel_size_nm or pixel_size_nm
    if spec.stack is not None and (tilts is None or size is None or pix is None):
        from ..io.mrc import open_tilt_series

        series = open_tilt_series(spec.stack, strict_tilts=False)  # memory-mapped: only the header is read
        rows, cols = series.data.shape[1:]
        size = size or (int(cols), int(rows))
        tilts = tilts if tilts is not None else series.tilt_angles_deg
        if pix is None:
            pix = nm_from_angstrom(series.pixel_size_angstrom)
    if tilts is None:
        raise FileFormatError(f"{spec.name}: no tilt angles (no .tlt/.rawtlt beside the markers, no stack to read them "
                              "from); add a tilt_angles column")
    if size is None:
        raise FileFormatError(f"{spec.name}: the image size is unknown (CSV markers, no stack); add image_width and "
                              "image_height columns")
    return markers, tilts, size, pix


def process_series(spec: SeriesSpec, out_root: str, defaults: dict[str, Any] | None = None,
                   export: tuple[str, ...] = (), force: bool = False) -> dict[str, Any]:
    """Align (or track, then align) one series into ``out_root/NAME/``, export it to the formats in ``export``
    (``aretomo``, ``cdp``, ``relion``: `EXPORT_TARGETS`); return its row. The folder holds one run's files
    (`batch.stamp`: an earlier stamped run's files are replaced; files no batch stamped only with ``force``)."""
    t0 = time.perf_counter()
    out = Path(out_root) / spec.name
    defaults = defaults or {}
    path = series_path(spec, defaults)
    started = False
    try:
        if path == "none":
            return make_row(spec.name, "no-markers", path=path, output=str(out), time_s=time.perf_counter() - t0,
                            error=NO_MARKERS.format(stack=getattr(spec.stack, "name", "the series"),
                                                    stem=getattr(spec.stack, "stem", spec.name)))
        from ..io.atomic import check_inside
        from .stamp import begin, finish

        check_inside(out_root, out)  # a series folder linked elsewhere is refused, never written through
        note = begin(spec, out, output_paths(spec, Path(out_root), export, defaults), defaults, export, path, force)
        started = True
        if path == "run":
            from .run_series import run_series

            row = run_series(spec, out, defaults, export, t0)
        else:
            row = _align(spec, out, defaults, t0, export)
        finish(spec, out, defaults, export, path, row["status"], row.get("notes") or "")
        row["notes"] = "; ".join(n for n in (note, row.get("notes")) if n)
        return row
    except Exception as exc:  # noqa: BLE001 - every failure is reported in the summary, none stops the batch
        kept = False
        if started:  # nothing of the failed run is left; the finished run it was to replace is put back
            from .stamp import discard_unfinished

            kept = discard_unfinished(out)
        return make_row(spec.name, "failed", path=path, output=str(out), time_s=time.perf_counter() - t0,
                        error=error_text(exc), notes="the earlier finished run's files are kept" if kept else "")


def error_text(exc: BaseException) -> str:
    """One line for the summary: the message of a bad-input error as it is, the class name before any other."""
    from ..errors import UsageError
    from ..io.atomic import OverwriteError
    from ..io.errors import FileFormatError

    if type(exc).__name__ == "KilledWorker":  # dask's own message is several sentences, cut at the summary's width
        return ("the worker running this series died (out of memory, most likely: each worker may use the machine's"
                " memory over the workers); run it with fewer workers (--workers 1), or give the workers more memory")
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = msg.replace("give --tilt-angles FILE", "add a tilt_angles column")  # no such option in a batch
    for unit in ("nm", "px"):  # the command line's option, in a batch's words: a table cell or the option
        msg = msg.replace(f"give --bead-diameter-{unit} ", f"set bead_diameter_{unit} (its table cell, or"
                          f" --bead-diameter-{unit}) to ").replace(f" (or --bead-diameter-{unit} auto)", " (or auto)")
    known = isinstance(exc, (FileFormatError, UsageError, OverwriteError, ValueError))  # AlignmentError is one
    return (msg if known else f"{type(exc).__name__}: {msg}")[:300]


@lru_cache(maxsize=1)
def _controller() -> Any:
    """One threadpoolctl controller per worker process (making one scans the loaded libraries: milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def export_formats(al: Any, out: Path, name: str, export: tuple[str, ...], z_shift: float,
                   stack: Path | None = None) -> str:
    """Write the alignment in the other formats; return the warnings (a format's lost magnification, RELION's
    missing dose) as notes. ``stack``: the raw stack (RELION's tilt series name it; its ``.mdoc`` gives the dose)."""
    from ..io.convert import convert, saved_from_alignment
    from ..io.errors import FileFormatError
    from ..io.mdoc_dose import relion_dose_note
    from ..io.relion import OPTICS_DEFAULTS, assumed_optics_note

    notes = [f"relion: {n.removeprefix('note: ')}" for n in [relion_dose_note(stack, "a stack column"),
                                                              assumed_optics_note({})] if n and "relion" in export]
    saved = saved_from_alignment(al, z_shift)
    for fmt in export:
        if fmt not in EXPORT_TARGETS:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                convert(saved, fmt, out / EXPORT_TARGETS[fmt].format(name=name), name=name, overwrite=True,
                        nominal_tilt_angles_deg=al.nominal_tilt_angles_deg, stack=stack,
                        optics=OPTICS_DEFAULTS if fmt == "relion" else None)  # said above, not as a warning
            except FileFormatError as exc:  # e.g. RELION without a pixel size: the alignment itself stands
                notes.append(f"{fmt} not written: {exc}")
        notes += [f"{fmt}: {w.message}" for w in caught]
    return "; ".join(notes)


@contextmanager
def one_thread() -> Iterator[None]:
    """Compiled loops, BLAS and the table formatting of the writes on one thread, solver warnings silenced (the
    alignment lists them). On 2 cores with 2 workers (and other load) waking numba's thread pool per table cost
    50 ms median, up to 1 s, against 7 ms on one."""
    from ..compute import compiled_threads
    from ..errors import AlignmentWarning

    with compiled_threads(1), _controller().limit(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        yield


def solve_and_write(job: Any, out: Path, export: tuple[str, ...] = (), export_dir: Path | None = None,
                    alignment: Any = None) -> tuple[Any, float, float, str]:
    """Solve the `jobs.align.AlignJob` (unless ``alignment`` is its solution), write the files of ``tomoalign
    align`` into ``out`` and the exported formats into ``export_dir`` (default ``out``); return ``(alignment,
    solve s, write s, notes)``. Call it inside `one_thread`."""
    from ..jobs.align import run_align_job, solve

    t1 = time.perf_counter()
    al = alignment if alignment is not None else solve(job)
    solve_s = time.perf_counter() - t1
    folder = run_align_job(job, out, overwrite=True, alignment=al)
    stack = job.inputs.get("stack") if isinstance(getattr(job, "inputs", None), dict) else None
    notes = export_formats(al, export_dir or out, job.stem, export, folder.axis_z_shift_px,
                           Path(stack) if stack else None) if export else ""
    return al, solve_s, time.perf_counter() - t1 - solve_s, notes


def alignment_figures(al: Any) -> dict[str, Any]:
    """The summary's alignment columns."""
    return dict(rms_residual_px=al.rms_residual_px, mean_residual_px=al.mean_residual_px,
                pixel_size_nm=al.pixel_size_nm,
                n_markers=int(al.marker_included.sum()), n_views=int(al.view_determined.sum()),
                n_observations=int(al.obs_used.sum()), n_flagged=int(al.flagged.sum()), converged=bool(al.converged))


def _align(spec: SeriesSpec, out: Path, defaults: dict[str, Any], t0: float, export: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    from ..jobs.align import AlignJob, read_prexg
    from ..local_jobs import wants_local

    settings, com = series_settings({**defaults, **spec.options})
    inputs = {k: str(v) for k, v in (("markers", spec.markers), ("tilt_angles", spec.tilt_angles),
                                      ("stack", spec.stack), ("imod_com", com), ("prexg", spec.prexg)) if v is not None}
    with one_thread():
        markers, tilts, size, pix = _inputs(spec, defaults.get("pixel_size_nm"))
        pre = read_prexg(spec.prexg, len(tilts)) if spec.prexg is not None else None  # the .xf: the raw stack's
        job = AlignJob(markers, tilts, (int(size[0]), int(size[1])), settings, pix, com, local=wants_local(com),
                       stem=spec.name, inputs=inputs, prexg=pre)
        job.check()
        al, solve, written, notes = solve_and_write(job, out, export)
    return make_row(spec.name, alignment_status(al), path="align", **alignment_figures(al),
                    time_s=time.perf_counter() - t0, solve_s=solve, write_s=written,
                    notes="; ".join([*_preali_note(spec), *_unused_run_note(spec, defaults), *al.warnings,
                                     *([notes] if notes else [])]), output=str(out))


def _unused_run_note(spec: SeriesSpec, defaults: dict[str, Any]) -> list[str]:
    """Markers found beside a stack are aligned, and the batch's bead diameter and run options are not used: said,
    as the series then gets no .ali nor tomogram (new user s14)."""
    from .series import RUN_COLUMNS

    given = [k for k in ("bead_diameter_nm", "bead_diameter_px", *RUN_COLUMNS)
             if defaults.get(k) not in (None, "", False) or spec.options.get(k) not in (None, "")]
    if spec.stack is None or spec.markers is None or not given:
        return []
    return [f"note: the markers {spec.markers.name} beside the stack were aligned (no tracking, no .ali nor tomogram):"
            f" {', '.join(given)} not used; to track, move them away or give the row its bead_diameter_nm"]


def _preali_note(spec: SeriesSpec) -> list[str]:
    """As ``align`` says it: an IMOD model without a ``prexg`` cell gives the ``.preali``'s ``.xf``; named when
    etomo's ``.prexg`` lies beside it (new user's finding J, session 12: batch said nothing)."""
    m = spec.markers
    if spec.prexg is not None or m is None or m.suffix.lower() not in (".fid", ".mod"):
        return []
    beside = m.with_suffix(".prexg")
    if not beside.is_file():
        return []
    return [f"note: the .xf is the .preali's (the model was made on it); add a prexg column with {beside.name} for"
            " the raw .st's, as align --prexg"]


# An alignment's warnings that need no second look: views the user excluded, views mapped to groups, markers seen
# in fewer than 2 views left out. Any other (views without a transform, tilt angles unlike the given ones, an axis
# far from the one given, ...) makes a converged series' status "check" rather than "done".
ROUTINE_WARNINGS = ("excluded (", "take the values of the groups", "seen in fewer than 2 usable views")


def checked_notes(row: dict[str, Any]) -> str:
    """The notes of a ``check`` row that made it one (not routine, `ROUTINE_WARNINGS`), for the terminal."""
    notes = [n for n in str(row.get("notes") or "").split("; ") if n and not any(r in n for r in ROUTINE_WARNINGS)]
    return "; ".join(n.removeprefix("warning: ") for n in notes if not n.startswith(("note:", "relion:"))) or \
        "see summary.csv's notes"


def alignment_status(al: Any) -> str:
    """A series' status from its alignment: ``not-converged``, ``check`` (converged, with a warning that is not
    routine, `ROUTINE_WARNINGS`: the summary flags it and the terminal names it) or ``done``."""
    if not al.converged:
        return "not-converged"
    return "check" if any(not any(r in w for r in ROUTINE_WARNINGS) for w in al.warnings) else "done"
