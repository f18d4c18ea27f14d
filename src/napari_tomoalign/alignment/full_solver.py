"""Solve the model for any subset of a series' observations from a start: what a local patch needs.

`solve_full_model` takes observations (all of a series, or the subset of a local patch), a
`settings.ModelSettings` (global or local variable options), optionally a previous solution to start
from, and marker positions free or held fixed, runs `stages.settings_plan` on the one `StageRunner`, and
returns a `FullModelSolution`. A whole series is aligned by `solver.align_markers`, which gives an `Alignment`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import image_centre
from ._lm import Observations
from ._threads import blas_threads_for, compiled_threads
from .errors import AlignmentError
from .model import COMP, MAG, N_FULL, ROT, TILT, project_full
from .result import StageReport
from .settings import ModelSettings
from .stages import EVERYTHING, StageRunner, settings_plan

# Below this many observations a second thread of the compiled loops costs more than it saves.
SINGLE_THREAD_OBSERVATIONS = 200_000


@dataclass(frozen=True)
class FullModelSolution:
    """A solved full model.

    Attributes
    ----------
    params
        ``(n_views, 9)`` per-view parameters in the column order of ``model.FULL_VIEW_PARAMS``:
        tilt, rotation (radians), magnification, shift x, shift y (pixels, relative to the image
        centre), X-stretch (IMOD's dmag), skew, X-tilt (radians), compression. Views without
        observations keep their start (or interpolated) values and the start shifts.
    beam_tilt_rad
        The beam tilt.
    marker_ids
        ``(n_markers,)`` the marker ids of the observations, sorted; the order of ``xyz_px``.
    xyz_px
        ``(n_markers, 3)`` marker positions in the centred specimen frame (centroid at 0 unless held).
    view_included
        ``(n_views,)`` views that had observations in the solve.
    residuals_px
        ``(n_obs, 2)`` predicted minus observed, in the caller's order (NaN for observations of
        excluded views).
    rms_residual_px, mean_residual_px
        ``sqrt(mean |r|^2)`` (IMOD's ``Final F``) and ``mean |r|`` over the observations used.
    n_unknowns
        Geometric and shift unknowns plus free marker coordinates.
    reports
        What each stage did (`stages.settings_plan`: ``markers`` when they had no start, then ``full``).
    """

    params: NDArray[np.float64]
    beam_tilt_rad: float
    marker_ids: NDArray[np.int64]
    xyz_px: NDArray[np.float64]
    view_included: NDArray[np.bool_]
    residuals_px: NDArray[np.float64]
    rms_residual_px: float
    mean_residual_px: float
    n_unknowns: int
    reports: tuple[StageReport, ...]

    @property
    def converged(self) -> bool:
        return all(r.converged for r in self.reports)

    @property
    def iterations(self) -> int:
        return sum(r.iterations for r in self.reports)


def start_params(settings: ModelSettings, tilt_angles_deg: ArrayLike) -> NDArray[np.float64]:
    """``(n_views, 9)`` tiltalign's start values: tilt nominal + ``AngleOffset``, rotation
    ``RotationAngle``, magnification and compression 1, the rest 0."""
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    p = np.zeros((len(tilts), N_FULL))
    p[:, TILT] = np.radians(tilts + settings.angle_offset_deg)
    p[:, ROT] = np.radians(settings.rotation_angle_deg)
    p[:, MAG] = 1.0
    p[:, COMP] = 1.0
    return p


def solve_full_model(
    views: ArrayLike,
    markers: ArrayLike,
    xy: ArrayLike,
    image_size: tuple[int, int],
    settings: ModelSettings,
    *,
    tilt_angles_deg: ArrayLike | None = None,
    start: FullModelSolution | None = None,
    fix_xyz: bool = False,
    weights: ArrayLike | None = None,
    max_iterations: int = 1000,
    progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FullModelSolution:
    """Fit IMOD's full model to marker observations with tiltalign's variable options.

    Parameters
    ----------
    views, markers
        ``(n_obs,)`` 0-based view and marker id of each observation. Any subset of a series (a local
        patch) may be given; views without observations are left out of the fit.
    xy
        ``(n_obs, 2)`` observed (x, y) positions in pixels, the first pixel's centre at (0, 0).
    image_size
        ``(width, height)`` in pixels; positions are taken relative to the image centre.
    settings
        The variable mappings and start values (`imod_options.settings_from_com`, with ``local=True``
        for the local options). Every unknown is an increment from the start values.
    tilt_angles_deg
        ``(n_views,)`` nominal (raw) tilts; the start is ``start_params(settings, tilt_angles_deg)``.
        Needed unless ``start`` is given.
    start
        A previous solution (for a local patch: the global one). Its parameters, beam tilt and marker
        positions (by marker id) are the start values; ``settings``' unknowns are added to them.
    fix_xyz
        Hold the marker positions at ``start``'s (IMOD's ``FixXYZCoordinates 1``); then every shift
        is free and no translation gauge is needed.
    weights
        ``(n_obs,)`` least-squares weights (default 1).
    max_iterations
        Iteration limit of each stage.
    progress, should_stop
        ``progress(iteration, cost)`` after each accepted step; ``should_stop()`` polled every
        iteration (True raises ``_lm.Cancelled``).

    Returns
    -------
    FullModelSolution
        Per-view parameters ``(n_views, 9)``, beam tilt, xyz, residuals and RMS.
    """
    v = np.asarray(views, dtype=np.intp).ravel()
    ids = np.asarray(markers).ravel()
    xy_a = np.asarray(xy, dtype=float).reshape(-1, 2)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if not (len(ids) == len(v) == len(xy_a) == len(w)):
        raise AlignmentError("views, markers, xy and weights need one entry per observation")
    if start is None and tilt_angles_deg is None:
        raise AlignmentError("give the nominal tilt angles or a previous solution to start from")
    base = start.params.copy() if start is not None else start_params(settings, tilt_angles_deg)  # type: ignore[arg-type]
    beam0 = start.beam_tilt_rad if start is not None else float(np.radians(settings.beam_tilt_deg))
    n_views = len(base)
    if np.any((v < 0) | (v >= n_views)):
        raise AlignmentError(f"view numbers must be 0 to {n_views - 1}")
    use = ~np.isin(v, settings.excluded_views)
    marker_ids, mi = np.unique(ids[use], return_inverse=True)
    obs = Observations(v[use], mi.astype(np.intp), xy_a[use] - image_centre(image_size), n_views, len(marker_ids),
                       w[use])
    included = np.bincount(obs.view_index, minlength=n_views) > 0
    xyz, known = _start_xyz(start, marker_ids, fix_xyz)
    ref = int(np.argmin(np.where(included, np.abs(base[:, TILT]), np.inf)))
    report = (lambda stage, it, cost: progress(it, cost)) if progress is not None else None
    runner = StageRunner(obs, base, xyz, included, ref, max_iterations, report, should_stop, settings=settings,
                         beam=beam0, fix_xyz=fix_xyz)
    n_q = runner.layout(EVERYTHING).n_q
    if not fix_xyz and n_q + 3 * obs.n_markers > 2 * len(obs):
        raise AlignmentError(f"{len(obs)} observations give {2 * len(obs)} equations for"
                             f" {n_q + 3 * obs.n_markers} unknowns; fix or group more variables")
    with blas_threads_for(n_q, 0 if fix_xyz else obs.n_markers, len(obs)), \
            compiled_threads(1 if len(obs) < SINGLE_THREAD_OBSERVATIONS else 1 << 16):
        for stage in settings_plan(known):
            runner.run(stage)
    params, xyz = runner.params, runner.xyz
    residuals = np.full_like(xy_a, np.nan)
    residuals[use] = project_full(params, xyz, v[use], mi, runner.beam) - (xy_a[use] - image_centre(image_size))
    sq = np.sum(residuals[use] ** 2, axis=1)
    return FullModelSolution(params, runner.beam, marker_ids, xyz, included, residuals, float(np.sqrt(np.mean(sq))),
                             float(np.mean(np.sqrt(sq))), runner.reports[-1].n_unknowns, tuple(runner.reports))


def _start_xyz(start: FullModelSolution | None, marker_ids: NDArray, fix_xyz: bool) -> tuple[
        NDArray[np.float64], bool]:
    """Start positions from ``start`` by marker id, and whether every marker had one."""
    xyz = np.zeros((len(marker_ids), 3))
    if start is None:
        if fix_xyz:
            raise AlignmentError("fix_xyz needs a previous solution with the markers' positions")
        return xyz, False
    lookup = {int(m): k for k, m in enumerate(start.marker_ids)}
    missing = [int(m) for m in marker_ids if int(m) not in lookup]
    if missing and fix_xyz:
        raise AlignmentError(f"markers {missing[:10]} have no position in the previous solution; solve with"
                             " fix_xyz=False")
    for k, m in enumerate(marker_ids):
        if int(m) in lookup:
            xyz[k] = start.xyz_px[lookup[int(m)]]
    return xyz, not missing
