"""Fiducial alignment from marker observations, for every settings: validate, prepare, plan, run, assemble.

`align_markers` solves the default model (`AlignmentOptions`, the preset `options.settings_from_options`)
or IMOD's full model with an align.com's settings (``settings=``, `imod_options.read_imod_settings`) by the
same path: one problem preparation, one `stages.StageRunner`, one robust loop, one `Alignment`;
`align_markers_imod` does so with the settings of a command file. The stages are described in `stages`; the
model in `model`; the unknowns and the gauge in `full_layout`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..compute import blas_threads_for
from ..conventions import image_centre, view_number
from ..errors import AlignmentError, AlignmentWarning, UsageError
from ._lm import Observations
from .arrays import unique_inverse
from .axis import estimate_tilt_axis, nearest_branch, wrap_degrees
from .excluded_views import fill_left_out_views, left_out_notes
from .full_layout import build_layout, shift_gauge
from .imod_options import read_imod_settings
from .model import DX, DY, MAG, ROT, TILT, predict_all, without_beam_tilt
from .options import AlignmentOptions, ModelSettings, settings_from_options, start_params
from .result import Alignment
from .stages import ProgressCallback, StageRunner, plan_stages, settings_plan
from .transforms import z_range_midpoint
from .validation import check_call_types, check_solution, determinable, validate_observations
from .warm_start import previous_robust_weights, start_from

AXIS_DISAGREEMENT_DEG = 5.0
SETTINGS_MAX_ITERATIONS = 1000  # each stage's iteration limit with an align.com's settings
TILT_FILE_NOTE_DEG = 5.0  # solved tilts this far from the given ones: another series' tilt file, or a wrong sign


def align_markers(
    views: ArrayLike,
    markers: ArrayLike,
    xy: ArrayLike,
    tilt_angles_deg: ArrayLike,
    image_size: ArrayLike,
    options: AlignmentOptions | None = None,
    *,
    settings: ModelSettings | None = None,
    pixel_size_nm: float | None = None,
    weights: ArrayLike | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    start: Alignment | None = None,
    warn: bool = True,
    excluded_views: Sequence[int] = (),
    n_views: int | None = None,
) -> Alignment:
    """Align a tilt series from fiducial marker observations.

    Parameters
    ----------
    views
        ``(n_obs,)`` 0-based view (stack) index of each observation.
    markers
        ``(n_obs,)`` marker id of each observation (any integers).
    xy
        ``(n_obs, 2)`` observed (x, y) = (column, row) positions in pixels, the centre of the
        first pixel at (0, 0).
    tilt_angles_deg
        ``(n_views,)`` nominal tilt angle of every view of the stack, in degrees.
    image_size
        ``(width, height)`` of the images in pixels.
    options
        What to solve for; the defaults are the paper's model with the tilt axis estimated.
    settings
        An align.com's settings (`imod_options.read_imod_settings`): solve IMOD's full model with them
        instead (tiltalign's start values, no axis estimate; ``options`` is then not used).
    pixel_size_nm
        Pixel size, used only to report residuals in nm.
    weights
        ``(n_obs,)`` optional least-squares weight of each observation (default 1).
    progress
        Called as ``progress(stage_name, iteration, cost)`` after every accepted step.
    should_stop
        Polled every iteration; returning True raises `Cancelled`.
    start
        A previous solution of the same series (for example before some markers were edited). The
        solve then warm-starts from it: no axis estimate and no initial stage, markers new since
        are placed from their observations, and one full stage runs to the new optimum.
    warn
        Also issue each note of ``Alignment.warnings`` as an `AlignmentWarning` (a GUI that shows
        ``Alignment.warnings`` itself passes False).
    excluded_views
        0-based views left out of the fit (``--exclude-views``, tiltalign's ``ExcludeList``): their
        observations are not used and the views take interpolated values, named in a note as excluded.
        An align.com's settings carry their own list (`align_markers_imod`).
    n_views
        The views of the stack the markers were placed on, when known (an IMOD model records it,
        ``read_markers(path).n_views``): tilt angles of another count (another series' file) are refused.

    Returns
    -------
    Alignment
        The solution with its residuals, statistics and per-stage report.

    Raises
    ------
    AlignmentError
        For input that cannot be aligned, with a message that names the problem.
    """
    check_call_types(options, settings, pixel_size_nm, start)
    options = options or AlignmentOptions()
    v, marker_ids_obs, xy_a, tilts_deg, size, w = validate_observations(
        views, markers, xy, tilt_angles_deg, image_size, weights)
    if n_views is not None and not (isinstance(n_views, (int, np.integer)) and not isinstance(n_views, bool)
                                    and n_views >= 1):
        raise AlignmentError(f"n_views must be the stack's number of views (a whole number from 1), not {n_views!r}")
    if n_views is not None and len(tilts_deg) != n_views:
        raise AlignmentError(f"{len(tilts_deg)} tilt angles for markers placed on a {n_views}-view stack; give the"
                             " tilt angles of the same series")
    if settings is not None and len(excluded_views):
        raise AlignmentError("an align.com's settings carry their own excluded views: pass them to"
                             " align_markers_imod(excluded_views=)")
    p = _prepare(v, marker_ids_obs, xy_a, tilts_deg, size, w, options, settings, excluded_views)
    if start is not None and start.n_views != p.n_views:
        raise AlignmentError(f"the previous solution has {start.n_views} views, not {p.n_views}; solve from scratch")
    if settings is None:
        axis0, source = _initial_axis(p, options, start)
        settings = replace(p.settings, rotation_angle_deg=axis0)
        tilt_stage = settings.mappings["tilt"].n_vars > 0 and start is None
        plan, limit = plan_stages(options, warm=start is not None, tilt_stage=tilt_stage), options.max_iterations
    else:
        source = f"start: align.com RotationAngle {settings.rotation_angle_deg:g} deg"
        plan, limit = settings_plan(start is not None, settings.robust), SETTINGS_MAX_ITERATIONS
    runner = StageRunner(p.obs, start_params(settings, tilts_deg), np.zeros((p.n_kept, 3)), p.view_ok, p.ref, limit,
                         progress, should_stop, settings=settings, beam=float(np.radians(settings.beam_tilt_deg)))
    if start is not None:
        kept_ids = p.marker_ids[p.kept_markers]
        runner.params, runner.xyz = start_from(start, p.obs, runner.params, kept_ids)
        if settings.robust and start.robust_weights is not None:
            w = previous_robust_weights(start, p.obs.view_index, kept_ids[p.obs.marker_index])
            p.obs.weights = runner.user_weights * w
    robust_w = None
    with blas_threads_for(p.n_q, p.n_kept, len(p.obs)):
        for stage in plan:
            robust_w = runner.run(stage, tilts_deg)
    check_solution(runner.params, runner.xyz, p.view_ok)
    p.notes += _tilt_file_note(runner.params, start_params(settings, tilts_deg), p.view_ok)
    for msg in p.notes if warn else ():
        warnings.warn(msg, AlignmentWarning, stacklevel=2)
    return _assemble(p, runner, robust_w, tilts_deg, options, settings, source, pixel_size_nm)


def align_markers_imod(
    views: ArrayLike,
    markers: ArrayLike,
    xy: ArrayLike,
    tilt_angles_deg: ArrayLike,
    image_size: ArrayLike,
    com_path: str | os.PathLike[str],
    *,
    pixel_size_nm: float | None = None,
    global_only: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    weights: ArrayLike | None = None,
    start: Alignment | None = None,
    excluded_views: Sequence[int] = (),
    n_views: int | None = None,
) -> Alignment:
    """Align marker observations with the tiltalign options of the IMOD command file ``com_path`` (an
    ``align.com``, or any file with a ``$tiltalign`` section): `align_markers` with its settings
    (`read_imod_settings`; the arguments as there). ``global_only`` accepts ``LocalAlignments 1`` and returns
    the global fit (the local fits are `local.local_alignments`'); without it such a file is refused with a
    `UsageError`, as are tiltalign options that are not carried out (named in the message). ``excluded_views``
    (0-based) are added to the file's ``ExcludeList``.
    """
    v, _, _, tilts, _, _ = validate_observations(views, markers, xy, tilt_angles_deg, image_size, None)
    settings = read_imod_settings(com_path, tilts, np.bincount(v, minlength=len(tilts)), excluded_views)
    if settings.local_alignments and not global_only:
        raise UsageError("LocalAlignments 1 in the command file: local alignments are not part of this solve;"
                         " set it to 0 to align globally")
    return align_markers(views, markers, xy, tilt_angles_deg, image_size, settings=settings,
                         pixel_size_nm=pixel_size_nm, weights=weights, progress=progress, should_stop=should_stop,
                         start=start, warn=False, n_views=n_views)


@dataclass
class _Prepared:
    """The validated problem in the solver's numbering, and what was left out of it."""

    v: NDArray[np.intp]
    mi: NDArray[np.intp]
    xy: NDArray[np.float64]
    weights: NDArray[np.float64]
    size: tuple[int, int]
    marker_ids: NDArray[np.int64]
    view_ok: NDArray[np.bool_]
    kept_markers: NDArray[np.intp]
    use: NDArray[np.bool_]
    obs: Observations
    ref: int
    settings: ModelSettings  # the default model's with the tilt axis still to be set (rotation 0)
    n_q: int
    notes: list[str]

    @property
    def n_views(self) -> int:
        return len(self.view_ok)

    @property
    def n_kept(self) -> int:
        return len(self.kept_markers)


def _listed(ids: NDArray, limit: int = 20) -> str:
    return ", ".join(str(int(i)) for i in ids[:limit]) + (" ..." if len(ids) > limit else "")


def _prepare(v, marker_ids_obs, xy_a, tilts_deg, size, w, options: AlignmentOptions,
             settings: ModelSettings | None, excluded_views: Sequence[int] = ()) -> _Prepared:
    """Leave out what cannot be determined (with a note each), renumber, choose the gauge, count unknowns."""
    n_views = len(tilts_deg)
    marker_ids, _, mi = unique_inverse(marker_ids_obs)
    mi = mi.astype(np.intp)
    seen = np.bincount(v, minlength=n_views) > 0
    if settings is None:
        view_ok, marker_ok, notes = _determinable(v, mi, marker_ids, w, options, n_views, excluded_views)
        notes += left_out_notes(seen, view_ok, excluded_views, "--exclude-views", mapped=False)
    else:  # as tiltalign: every view with a point that is not excluded, every marker seen in one of them
        view_ok = seen.copy()
        view_ok[list(settings.excluded_views)] = False
        marker_ok = np.bincount(mi[view_ok[v]], minlength=len(marker_ids)) > 0
        notes = list(settings.notes) + left_out_notes(seen, view_ok, settings.excluded_views, "ExcludeList", mapped=True)
    if view_ok.sum() < 2:
        raise AlignmentError(
            "fewer than 2 views have enough markers to align; every view needs markers seen in other views too")
    use = view_ok[v] & marker_ok[mi]
    kept = np.flatnonzero(marker_ok)
    new_index = np.full(len(marker_ids), -1, dtype=np.intp)
    new_index[kept] = np.arange(len(kept))
    obs = Observations(v[use], new_index[mi[use]], xy_a[use] - image_centre(size), n_views, len(kept), w[use])
    ref = _reference_view(options.reference_view if settings is None else None, view_ok, tilts_deg)
    settings = settings or settings_from_options(options, view_ok, ref, 0.0)
    start = start_params(settings, tilts_deg)
    n_q = build_layout(settings.mappings, start, 0.0, settings.beam_tilt_free, view_ok,
                       shift_gauge(start[:, TILT], start[:, ROT], view_ok, ref)).n_q
    n_unknowns = n_q + 3 * len(kept)
    if 2 * len(obs) < n_unknowns:
        raise AlignmentError(
            f"{len(obs)} observations give {2 * len(obs)} equations for {n_unknowns} unknowns;"
            " add markers, or fix or group more variables (rotation, tilt, magnification)")
    return _Prepared(v, mi, xy_a, w, size, marker_ids, view_ok, kept, use, obs, ref, settings, n_q, notes)


def _determinable(v, mi, marker_ids, w, options: AlignmentOptions, n_views: int, excluded_views: Sequence[int]
                  ) -> tuple[NDArray[np.bool_], NDArray[np.bool_], list[str]]:
    """The default model's views and markers in the fit (enough markers per view for its unknowns, markers
    in at least 2 views, none in an excluded view), and a note on the markers left out."""
    excluded = np.zeros(n_views, dtype=bool)
    for x in excluded_views:
        if not 0 <= int(x) < n_views:
            raise AlignmentError(f"excluded view {view_number(int(x))} is not a view of this {n_views}-view series;"
                                 f" give views from 1 to {n_views}")
        excluded[int(x)] = True
    # a view's own unknowns in the fullest stage: two shifts and each variable solved per view
    per_view = 2 + sum(o.mode == "view" for o in (options.rotation, options.magnification, options.tilt))
    view_ok, marker_ok = determinable(v, mi, n_views, len(marker_ids), (per_view + 1) // 2,
                                      weights=np.where(excluded[v], 0.0, w))
    notes: list[str] = []
    if (~marker_ok).any():
        ids = marker_ids[~marker_ok]
        notes.append(f"{len(ids)} marker(s) seen in fewer than 2 usable views were left out: {_listed(ids)}")
    return view_ok, marker_ok, notes


def _reference_view(asked: int | None, view_ok: NDArray[np.bool_], tilts_deg: NDArray[np.float64]) -> int:
    """The gauge view: the one asked for, else the included view of minimum |tilt|."""
    n_views = len(view_ok)
    if asked is None:
        return int(np.argmin(np.where(view_ok, np.abs(tilts_deg), np.inf)))
    if not 0 <= asked < n_views:
        raise AlignmentError(f"reference view {view_number(asked)} is not a view of this {n_views}-view series;"
                             f" give one from 1 to {n_views}")
    if not view_ok[asked]:
        raise AlignmentError(f"reference view {view_number(asked)} has too few markers to be in the fit;"
                             " choose another view")
    return asked


def _initial_axis(p: _Prepared, options: AlignmentOptions, start: Alignment | None) -> tuple[float, str]:
    """The starting tilt-axis angle and where it came from: warm start, estimate, or given."""
    if start is not None:
        if options.estimate_tilt_axis and options.tilt_axis_deg is not None:  # run's warm start said nothing (s14)
            _axis_note(p, nearest_branch(start.tilt_axis_deg, options.tilt_axis_deg), options.tilt_axis_deg)
        return start.tilt_axis_deg, f"warm start ({start.tilt_axis_source})"
    if not options.estimate_tilt_axis:
        return wrap_degrees(float(options.tilt_axis_deg)), "given"  # type: ignore[arg-type]
    est, ambiguity = estimate_tilt_axis(p.obs.view_index, p.obs.marker_index, p.obs.xy, p.n_views, p.n_kept)
    if ambiguity > 0.5:
        raise AlignmentError(
            "the tilt axis cannot be estimated: the markers do not move across it (tilt range too"
            " small or a single tilt); give the tilt-axis angle")
    if options.tilt_axis_deg is None:
        return est, "estimated"
    axis0 = nearest_branch(est, options.tilt_axis_deg)
    _axis_note(p, axis0, options.tilt_axis_deg)
    return axis0, "estimated (branch from the given angle)"


def _axis_note(p: _Prepared, axis0: float, given: float) -> None:  # the first estimate, not a second figure (s13)
    if abs(wrap_degrees(axis0 - given)) > AXIS_DISAGREEMENT_DEG:
        p.notes.append(f"the markers' tilt axis (about {axis0:.0f} deg, solved below) differs from the given"
                       f" {given:.2f} deg by more than {AXIS_DISAGREEMENT_DEG:g} deg; the estimate was used")


def _assemble(p: _Prepared, runner: StageRunner, robust_w: NDArray[np.float64] | None, tilts_deg: NDArray[np.float64],
              options: AlignmentOptions, settings: ModelSettings, source: str, pixel_size_nm: float | None
              ) -> Alignment:
    """The `Alignment` in the caller's numbering. Views out of the fit are NaN for the default model; with an
    align.com's settings they take the values their variables are mapped to (`fill_left_out_views`), as
    tiltalign gives them, and a solved beam tilt is folded into the angles. Markers out of the fit are NaN.
    ``source``: where the start tilt-axis angle came from."""
    full = runner.params.copy()
    if settings.from_com:
        full = without_beam_tilt(fill_left_out_views(full, start_params(settings, tilts_deg), settings.mappings,
                                                     p.view_ok), runner.beam)
        options = AlignmentOptions(tilt_axis_deg=settings.rotation_angle_deg, estimate_tilt_axis=False,
                                   reference_view=p.ref, initial_stage=False, max_iterations=SETTINGS_MAX_ITERATIONS)
    else:
        full[~p.view_ok] = np.nan
    xyz_all = np.full((len(p.marker_ids), 3), np.nan)
    xyz_all[p.kept_markers] = runner.xyz
    pred = predict_all(full, xyz_all) + image_centre(p.size)
    residuals = np.full_like(p.xy, np.nan)
    residuals[p.use] = pred[p.v[p.use], p.mi[p.use]] - p.xy[p.use]
    robust_weights = None
    if robust_w is not None:
        robust_weights = np.full(len(p.v), np.nan)
        robust_weights[np.flatnonzero(p.use)[p.obs.order]] = robust_w
    axis_final = wrap_degrees(float(np.degrees(full[p.ref, ROT])))
    z_shift = z_range_midpoint(xyz_all) if settings.centre_z_range else float(settings.axis_z_shift_px)  # 1000: the middle
    branch = "axis in (-90, 90]" if -90.0 < axis_final <= 90.0 else "axis + 180 (markers half-turned)"
    return Alignment(
        tilt_angles_deg=np.degrees(full[:, TILT]), nominal_tilt_angles_deg=tilts_deg.copy(),
        rotation_deg=np.degrees(full[:, ROT]), magnification=full[:, MAG].copy(), shifts_px=full[:, [DX, DY]].copy(),
        view_determined=p.view_ok, marker_ids=p.marker_ids, xyz_px=xyz_all, obs_view=p.v, obs_marker=p.mi,
        obs_xy_px=p.xy, residuals_px=residuals, obs_used=p.use, predicted_xy_px=pred, image_size=p.size,
        reference_view=p.ref, tilt_axis_deg=axis_final, tilt_axis_source=source,
        branch=f"{branch}; nominal tilt signs kept", stages=runner.reports,
        converged=all(s.converged for s in runner.reports), options=options, full_params=full, settings=settings,
        warnings=p.notes, pixel_size_nm=pixel_size_nm, weights=p.weights, robust_weights=robust_weights,
        beam_tilt_deg=float(np.degrees(runner.beam)), axis_z_shift_px=z_shift,
    )


def _tilt_file_note(params: NDArray[np.float64], start: NDArray[np.float64], view_ok: NDArray[np.bool_]) -> list[str]:
    """A note when the solved tilt angles leave the given ones by more than `TILT_FILE_NOTE_DEG`: the fit can absorb
    a tilt file of another series, and the user should hear of it."""
    off = np.where(view_ok, np.degrees(np.abs(params[:, TILT] - start[:, TILT])), 0.0)
    k = int(np.argmax(off))
    if off[k] <= TILT_FILE_NOTE_DEG:
        return []
    return [f"the solved tilt angles differ from the given ones by up to {off[k]:.1f} deg (view {k + 1}); check that"
            " the tilt angles are this series'"]
