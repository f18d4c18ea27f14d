"""The jobs behind ``tomoalign track`` and ``tomoalign run``: from a raw stack to markers, and on to an
alignment, an aligned stack and a tomogram, every intermediate written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from ..alignment.options import AlignmentOptions
from ..alignment.result import Alignment
from ..conventions import view_index, view_number
from ..errors import UsageError
from ..io.atomic import check_writable
from ..io.errors import FileFormatError
from ..io.mrc import open_tilt_series
from ..io.tilt_sources import read_tilt_file
from ..jobs import facts
from ..jobs.threads import thread_limit
from ..reconstruction.input_checks import REPLACE, check_finite_views
from ._spread import second_core, threadsafe_loops
from .beads import BeadFindingError
from .binned import check_tracking_memory
from .blank_views import blank_note, checked_exclusions, choose_seed_view, excluded_note, find_blank_views, said_blank
from .diameter import measured_note, resolve_diameter
from .outputs import check_output_folder
from .pipeline import TRACKING_THREADS, track_beads
from .result import TrackingResult, write_bead_quality_csv, write_tracked_markers

Progress = Callable[[str, int, int, str], None]
MARKER_SUFFIXES = (".csv", ".fid", ".mod")
T = TypeVar("T")


@dataclass(frozen=True)
class TrackedStack:
    """A tracking run and where its markers went."""

    result: TrackingResult
    markers_path: Path
    pixel_size_nm: float | None
    tilt_source: str


@dataclass(frozen=True)
class TrackJob:
    """Find and track the gold beads of ``stack`` and write the markers to ``output`` (``.csv``, ``.fid`` or
    ``.mod``). Tilt angles from ``tilt_angles_path``, else from beside the stack (IMOD's order); the bead
    diameter is one of ``bead_diameter_nm`` (through ``pixel_size_nm``, else the header's: `jobs.facts`) and
    ``bead_diameter_px`` (``"auto"``: measured; a given one is checked against the beads and adapted,
    `diameter.resolve_diameter`); ``tilt_axis_deg`` guides the coarse alignment; ``n_beads``: how many to
    track; ``clumps`` ``"track"`` tracks the beads of clumps too; ``dark`` False for bright beads; ``seed_view``
    the 0-based view to find the beads on (None: the minimum tilt unless blank, `seed_view.choose_seed_view`)."""

    stack: Path
    output: Path
    tilt_angles_path: Path | None = None
    bead_diameter_nm: float | str | None = None  # "auto": measured from the data
    bead_diameter_px: float | str | None = None
    tilt_axis_deg: float | None = None
    n_beads: int | None = None
    pixel_size_nm: float | None = None
    clumps: str = "skip"  # "track": the beads of clumps of touching beads too
    dark: bool = True  # False for bright beads
    seed_view: int | None = None  # 0-based; the CLI's --seed-view is numbered from 1
    exclude_views: tuple[int, ...] = ()  # 0-based views not tracked (--exclude-views, as beadtrack's SkipViews)


def track_to_file(
    stack_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    tilt_angles_path: str | os.PathLike[str] | None = None,
    bead_diameter_nm: float | str | None = None,
    bead_diameter_px: float | str | None = None,
    tilt_axis_deg: float | None = None,
    n_beads: int | None = None,
    pixel_size_nm: float | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    threads: int | None = None,
    clumps: str = "skip",
    dark: bool = True,
    seed_view: int | None = None,
    exclude_views: tuple[int, ...] = (),
) -> TrackedStack:
    """`run_track_job` of the `TrackJob` of these arguments (``seed_view`` and ``exclude_views`` 0-based)."""
    job = TrackJob(Path(stack_path), Path(output), Path(tilt_angles_path) if tilt_angles_path is not None else None,
                   bead_diameter_nm, bead_diameter_px, tilt_axis_deg, n_beads, pixel_size_nm, clumps, dark, seed_view,
                   tuple(exclude_views))
    return run_track_job(job, overwrite=overwrite, progress=progress, threads=threads)


def open_stack_with_tilts(stack_path: str | os.PathLike[str], tilt_angles_path: str | os.PathLike[str] | None):
    """A raw stack (memory-mapped) and its tilt angles: from ``tilt_angles_path``, else from beside the stack
    (IMOD's order). Returns ``(series, tilts, source)``; `UsageError` when none is found or the count differs."""
    series = open_tilt_series(stack_path, find_tilts=tilt_angles_path is None)
    if tilt_angles_path is not None:  # a .tlt/.rawtlt, or a SerialEM .mdoc typed as the tilt file
        tilts, source = read_tilt_file(tilt_angles_path), str(tilt_angles_path)
    elif series.tilt_angles_deg is not None:
        tilts, source = series.tilt_angles_deg, str(series.tilt_source)
    else:
        raise UsageError(f"{stack_path}: no tilt angles beside it; give --tilt-angles FILE (.rawtlt or .tlt)")
    if len(tilts) != series.n_views:
        raise UsageError(f"{tilt_angles_path or source} has {len(tilts)} tilt angles but {stack_path} has"
                         f" {series.n_views} views")
    return series, tilts, source


def run_track_job(job: TrackJob, *, overwrite: bool = False, progress: Progress | None = None,
                  threads: int | None = None) -> TrackedStack:
    """Track the job's beads and write its markers and ``_beads.csv`` (`TrackJob`).

    Raises `UsageError` or `FileFormatError` for bad input, `BeadFindingError` when no beads can be told
    apart. ``threads`` caps the threads of the tracking (a batch worker asks for one).
    """
    stack_path, output, tilt_angles_path, n_beads = job.stack, job.output, job.tilt_angles_path, job.n_beads
    out = Path(output)
    if out.suffix.lower() not in MARKER_SUFFIXES:
        raise UsageError(f"--output must end in .csv, .fid or .mod, not {out.name!r}")
    if n_beads is not None and not 3 <= n_beads <= 100_000:
        raise UsageError(f"--beads must be from 3 to 100000, not {n_beads}")
    quality = out.with_name(out.stem + "_beads.csv")
    for path in (out, quality):  # both, before any work: a refusal after the tracking would leave one written
        check_writable(path, overwrite)
    check_output_folder(out)  # a folder that refuses files (root: /sys, an ACL), before the tracking too
    series, tilts, source = open_stack_with_tilts(stack_path, tilt_angles_path)
    try:  # before any work (the diameter's measure, the coarse alignment beside): one line, no numpy warnings
        check_finite_views(series.data, what="tilt series", remedy=REPLACE)
    except ValueError as exc:
        raise FileFormatError(f"{stack_path}: {exc}") from None
    pixel_nm = facts.pixel_size_nm(job.pixel_size_nm, series.pixel_size_angstrom)
    rows, cols = series.data.shape[1:]
    auto = "auto" in (job.bead_diameter_nm, job.bead_diameter_px)
    given_nm, given_px = (None if v is None or v == "auto" else float(v) for v in (job.bead_diameter_nm,
                                                                                  job.bead_diameter_px))
    d_px = None if auto else facts.bead_diameter_px(
        given_nm, given_px, pixel_nm, image_size=(cols, rows), where=str(stack_path),
        pixel_source="the header's" if job.pixel_size_nm is None else "the given")
    check_tracking_memory((rows, cols), d_px, str(stack_path))  # before any work: a stack too big is said at once
    searches: dict = {}  # the diameter check's bead searches: the tracker's search of the seed view can be one
    axis, axis_note = _tilt_axis(job.tilt_axis_deg, stack_path, series.n_views)
    given_seed = checked_seed_view(job.seed_view, series.n_views)
    excluded = checked_exclusions(job.exclude_views, series.n_views, given_seed)
    blank = [v for v in find_blank_views(series.data, tilts) if v != given_seed and v not in excluded]
    skip = sorted({*blank, *excluded})  # neither tracked: the tracking carries on across them
    seed = choose_seed_view(tilts, skip, given_seed)
    unit = "nm" if job.bead_diameter_nm is not None else "px"
    with _coarse_beside(series.data, tilts, d_px, axis, threads, skip) as coarse:
        with thread_limit(TRACKING_THREADS if threads is None else threads), second_core(threads is None):
            given, d_px = d_px, _in_seed_view(seed, tilts, lambda: resolve_diameter(
                series.data, tilts, d_px, pixel_nm, unit, job.dark, searches, seed_view=seed))
        early = coarse(d_px)
    result = _in_seed_view(seed, tilts, lambda: track_beads(
        series.data, tilts, d_px, tilt_axis_deg=axis, n_beads=n_beads, progress=progress, threads=threads,
        clumps=job.clumps, dark=job.dark, searches=searches, coarse=early, seed_view=seed, skip_views=skip))
    result.warnings[:0] = [n for n in [blank_note(blank, tilts, seed), excluded_note(excluded, tilts), measured_note(
        given, d_px, pixel_nm, unit), _mdoc_note(stack_path, source, axis_note, series)] if n]
    said_blank(result, skip)
    searches.clear()  # the searches of whole views: freed before the writing
    hint = _diameter_hint(series.data[result.seed_view], result, d_px, pixel_nm)
    if result.n_beads == 0 or result.alignment is None:
        raise UsageError(f"no beads could be tracked in {stack_path}" + (f"; {hint}" if hint else
                         "; check the bead diameter and the tilt angles"))
    if hint:
        result.warnings.append(f"warning: {hint}")
    result.warnings += [w for w in [tilt_file_warning(result, tilts, source, stack_path)] if w]
    misfit = misfit_message(result, tilts, source, stack_path)
    if misfit:
        result.warnings.append(f"warning: {misfit}")
    result.warnings += [w for w in [tie_warning(job.tilt_axis_deg, axis, result.alignment.tilt_axis_deg)] if w]
    guessed = branch_warning(result.alignment.tilt_axis_deg) if axis is None else None
    if axis_note is not None or guessed is not None:
        result.warnings.append(axis_note or guessed)  # type: ignore[arg-type]
    write_tracked_markers(out, result, n_views=series.n_views, overwrite=overwrite, stack=stack_path,
                          pixel_size_nm=pixel_nm)
    write_bead_quality_csv(quality, result, overwrite=overwrite)
    return TrackedStack(result, out, pixel_nm, source)


def tilt_file_warning(result: TrackingResult, tilts: NDArray, source: str, stack: str | os.PathLike[str]) -> str | None:
    """The warning that the tracked markers' solved tilts leave the given ones by more than the tilt file can
    explain (`validation.tilt_file_mismatch`): `run` refuses to go on there; `track` and the dock say it."""
    from ..alignment.validation import tilt_file_mismatch

    al = result.alignment
    off = None if al is None else tilt_file_mismatch(al.tilt_angles_deg, tilts, al.view_determined)
    if off is None:
        return None
    return (f"warning: the solved tilt angles differ from the given ones by up to {off[0]:.1f} deg (view"
            f" {view_number(off[1])}): {source} does not match the views of {stack} (another series', or another"
            " order?)")


def misfit_message(result: TrackingResult, tilts: NDArray, source: str, stack: str | os.PathLike[str]) -> str | None:
    """What is wrong, in one line, when the tracked beads do not fit one rigid specimen: their median residual over
    `POOR_RMS_PX` working pixels (a good tracking's is 0.1-0.2; the median, so that a few mistracked points, which
    the robust fit weighs down, do not count). Tilt angles that are not the views' (another order: SerialEM's order
    of acquisition beside a stack sorted by tilt, or the other way round) give 1.6-2.1 working pixels (3.3-4.2 px
    tracked at binning 2), with solved tilts that follow the file (short tracks fit anything), so
    `tilt_file_mismatch` cannot see it (new user's finding,
    session 13: 296 px off end to end, exit 0). None otherwise. `run` refuses to go on there; `track` and the dock
    say it."""
    from .binned import working_binning

    al = result.alignment
    res = np.asarray(result.residual_px, dtype=float)
    res = res[np.isfinite(res)]
    if al is None or not result.n_beads or not res.size:
        return None
    image = result.markers.image_size or (0, 0)
    median = float(np.median(res))
    if median <= POOR_RMS_PX * working_binning(result.bead_diameter_px, (image[1], image[0])):
        return None
    step = np.diff(np.asarray(tilts, float))
    order = (f"; {source} is not in order of tilt (SerialEM's order of acquisition, beside a stack sorted by tilt?)"
             if np.any(step > 0) and np.any(step < 0) else "")
    return (f"the tracked beads do not fit one specimen (median residual {median:.2f} px, RMS {al.rms_residual_px:.2f}"
            f" px, median track {float(np.median(result.quality.n_views)):.0f} of {len(tilts)} views){order}: check"
            f" that {source} holds the tilt angles of {stack} in its order, and the bead diameter")


def branch_warning(axis_deg: float, give: str = "give --tilt-axis as the microscope (SerialEM) gives it") -> str | None:
    """The warning for an axis nobody gave (no option, no ``.mdoc``) estimated within `AXIS_BRANCH_WARN_DEG` of
    +-90 deg, where microscopes give either branch (84 or -96): the markers cannot tell the tomogram from its
    mirror. ``give``: how the user gives the axis (the dock's words differ). None away from +-90."""
    if abs(abs(axis_deg) - 90.0) >= AXIS_BRANCH_WARN_DEG:
        return None
    other = axis_deg - 180 if axis_deg > 0 else axis_deg + 180
    return (f"warning: the tilt axis ({axis_deg:.1f} deg) {BRANCH_GUESSED}; the markers cannot tell it from"
            f" {other:.1f} deg, which gives the mirror tomogram: {give}")


def tie_warning(given: float | None, used: float | None, estimated: float) -> str | None:
    """A warning when the axis given is so far from the estimate (x and y swapped?) that it could not pick the
    branch, the tomogram or its mirror, and no ``.mdoc`` did (``used`` is the given one)."""
    if given is None or used != given:
        return None
    off = abs((estimated - given + 180.0) % 360.0 - 180.0)
    if not BRANCH_TIE_DEG < off < 180.0 - BRANCH_TIE_DEG:
        return None
    other = estimated - 180.0 if estimated > 0 else estimated + 180.0
    return (f"warning: the estimated tilt axis {estimated:.1f} deg is {off:.0f} deg from the given {given:g} (x and y"
            f" swapped?): so far off, the given angle cannot tell the tomogram from its mirror ({other:.1f} deg);"
            " give --tilt-axis as the microscope (SerialEM) gives it")


def _mdoc_note(stack_path: str | os.PathLike[str], tilt_source: str, axis_note: str | None, series) -> str | None:
    """When the tilt angles or the axis came from the ``.mdoc`` beside the stack: a note if it describes other
    images (`mdoc_dose.mdoc_mismatch_note`: binned since, or another series' file)."""
    from ..io.tilt_sources import other_series_mdoc_note

    other = other_series_mdoc_note(stack_path, series.n_views)
    if other is not None or not (str(tilt_source).lower().endswith(".mdoc") or (axis_note or "").endswith(
            "'Tilt axis angle')")):
        return other
    from ..io.mdoc_dose import mdoc_mismatch_note

    rows, cols = series.data.shape[1:]
    return mdoc_mismatch_note(stack_path, (cols, rows), series.pixel_size_angstrom)


def checked_seed_view(index: int | None, n_views: int) -> int | None:
    """A 0-based seed view given by a front end, checked against the series (a `UsageError` numbered from 1)."""
    if index is None:
        return None
    return view_index(int(index) + 1, n_views, what="--seed-view")


def _in_seed_view(seed: int, tilts: NDArray, work: Callable[[], T]) -> T:
    """``work()``, a bead-finding failure naming the view the beads were looked for in (numbered from 1)."""
    try:
        return work()
    except BeadFindingError as exc:
        raise BeadFindingError(f"in view {view_number(seed)} ({float(tilts[seed]):.1f} deg), where the beads are"
                               f" found: {exc}; if that view is ruined, give --seed-view with another") from None


BRANCH_GUESSED = "was estimated, with no axis given nor .mdoc to tell its branch"  # the warning for an axis nobody gave
BRANCH_TIE_DEG = 45.0  # a given axis further than this from the estimate (or the .mdoc's) cannot pick the branch
AXIS_BRANCH_WARN_DEG = 30.0  # an estimated axis this near +-90 deg, given by nobody, is warned about (see `_tilt_axis`)


def _tilt_axis(given: float | None, stack_path: str | os.PathLike[str], n_views: int) -> tuple[float | None, str | None]:
    """The tilt axis that picks the branch (axis or axis + 180: the tomogram or its mirror, which the markers
    cannot tell apart): the one given, else SerialEM's in the ``.mdoc`` beside the stack (said in a note), else
    None (the branch in (-90, 90]; warned about near +-90, where scopes give either, e.g. 84 or -96). One given on
    the other branch than the ``.mdoc``'s is taken, with a warning."""
    from ..io.tilt_sources import mdoc_tilt_axis

    found = mdoc_tilt_axis(stack_path, n_views)  # None for another series' .mdoc (`_mdoc_note` says it)
    if given is not None:
        off = abs((given - found[0] + 180.0) % 360.0 - 180.0) if found is not None else 0.0
        if off <= BRANCH_TIE_DEG:
            return given, None
        if off < 180.0 - BRANCH_TIE_DEG:  # about 90 deg off (x and y swapped?): a tie between the two branches
            return found[0], (f"warning: --tilt-axis {given:g} is {off:.0f} deg from the {found[0]:g} deg in {found[1]}"  # type: ignore[index]
                              " (SerialEM's 'Tilt axis angle'; x and y swapped?): so far off, it cannot tell the"
                              " tomogram from its mirror, so the .mdoc's angle picks the branch")
        return given, (f"warning: --tilt-axis {given:g} is the other branch of the {found[0]:g} deg in {found[1]}"  # type: ignore[index]
                       " (SerialEM's 'Tilt axis angle'): this tomogram is the mirror of the one the .mdoc's axis"
                       " gives; leave --tilt-axis out to take the .mdoc's")
    if found is None:
        return None, None
    return found[0], f"note: tilt axis near {found[0]:g} deg, from {found[1]} (SerialEM's 'Tilt axis angle')"


@contextmanager
def _coarse_beside(stack, tilts, given_px: float | None, tilt_axis_deg: float | None, threads: int | None,
                   skip_views: list[int]):
    """The coarse alignment `track_beads` makes first, made on a second core while the diameter is checked (it
    needs neither the diameter nor the seed view): yields ``coarse(d_px)``, that alignment for tracking with the
    checked diameter, None when the tracking will make its own (the diameter asks for a binned copy, or the
    alignment failed: the tracking then says why). Only when the caller set no cap on the threads and there is
    a second core; the same call as `track_beads`'s, on one thread, so the same alignment."""
    from concurrent.futures import ThreadPoolExecutor

    from .binned import working_binning
    from .coarse import coarse_align

    shape = tuple(stack.shape[1:])
    if threads is not None or given_px is None or (os.cpu_count() or 1) < 2 or working_binning(given_px, shape) > 1 \
            or not threadsafe_loops():
        yield lambda d_px: None
        return

    def align():
        with thread_limit(TRACKING_THREADS):
            return coarse_align(stack, np.asarray(tilts, dtype=float).ravel(), tilt_axis_deg=tilt_axis_deg,
                                skip_views=skip_views)

    with ThreadPoolExecutor(1, thread_name_prefix="coarse") as pool:
        future = pool.submit(align)
        yield lambda d_px: (future.result() if working_binning(d_px, shape) == 1 and future.exception() is None
                            else None)


POOR_RMS_PX = 1.0  # a tracking whose alignment fits worse than this (working pixels) is checked against the size


def _diameter_hint(view: np.ndarray, result: TrackingResult, d_px: float, pixel_nm: float | None) -> str | None:
    """When the tracking came out poor, whether the beads measure another size than the one given (in
    one line that says what to give instead); None when it came out well or the size is not the cause."""
    from .binned import working_binning
    from .diameter import DiameterError, measure_bead_diameter

    al = result.alignment
    if result.n_beads and al is not None and al.rms_residual_px <= POOR_RMS_PX * working_binning(d_px, view.shape):
        return None
    try:  # on a copy binned for the size given, again and again from there
        measured = measure_bead_diameter(view, d_px)
    except DiameterError:
        return None
    if 0.75 <= measured / d_px <= 1.33:
        return None
    if pixel_nm:
        return (f"the beads measure about {measured:.1f} px ({measured * pixel_nm:.1f} nm) across, not the "
                f"{d_px:.1f} px given; try --bead-diameter-nm {measured * pixel_nm:.1f}")
    return f"the beads measure about {measured:.1f} px across, not {d_px:.1f}; try --bead-diameter-px {measured:.1f}"


def run_options(tilt_axis_deg: float | None) -> AlignmentOptions:
    """The alignment `tomoalign run` makes from tracked markers: robust, so that a mistracked point does
    not pull the solution, with the axis estimated (near the given angle, if any)."""
    return AlignmentOptions(tilt_axis_deg=tilt_axis_deg, robust=True)


def erase_gold_to_file(stack_path: str | os.PathLike[str], alignment: Alignment, bead_diameter_px: float,
                       output: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``stack_path`` with every fitted bead replaced by local background (as IMOD's ``ccderaser
    -fid``), view by view: the beads' positions come from the alignment's model (`GoldEraser`), so beads are
    erased in views where they were not tracked too."""
    from ..io.atomic import atomic_path
    from ..io.mrc import MrcStreamWriter
    from ..reconstruction.erase import GoldEraser

    series = open_tilt_series(stack_path, find_tilts=False)
    out = check_writable(output, overwrite)
    erase = GoldEraser.from_alignment(alignment, bead_diameter_px)
    with atomic_path(out, overwrite) as tmp:
        writer = MrcStreamWriter(tmp, series.data.shape, np.float32, series.pixel_size_angstrom)
        try:
            for j in range(series.n_views):
                writer.write(erase(j, series.data[j]))
            writer.close()
        except BaseException:
            writer.abort()
            raise
    return out


diameter_hint = _diameter_hint  # the dock says the same thing after its Track (one hint, one place)
