"""Align with the options of an IMOD ``align.com``: tiltalign's full model, returned as an `Alignment`.

`align_markers_imod` reads the command file's ``tiltalign`` section, builds the variable mappings as
tiltalign does (`imod_options`), solves the full model (`full_solver`) and returns the same `Alignment`
the default solver returns, with the full model's parameters attached, so every writer and report
works on it and the ``.xf`` carries stretch, skew and X-tilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import image_centre
from ..errors import UsageError
from .arrays import unique_inverse
from .axis import wrap_degrees
from .excluded_views import fill_left_out_views, format_views
from .full_model import project_full, without_beam_tilt
from .full_solver import FullModelSolution, solve_full_model, start_params
from .imod_options import settings_from_com
from .model import DX, DY, MAG, ROT, TILT
from .options import AlignmentOptions
from .result import Alignment
from .robust import reweighted
from .settings import ModelSettings
from .validation import validate_observations


def read_imod_settings(com_path: str | os.PathLike[str], tilt_angles_deg: ArrayLike,
                       points_per_view: NDArray[np.intp] | None = None) -> ModelSettings:
    """The `ModelSettings` of the ``tiltalign`` section of ``com_path`` for a series with these tilts."""
    from ..io.imod_com import read_com_section  # io imports alignment: imported here, not at the top

    return settings_from_com(read_com_section(com_path), np.asarray(tilt_angles_deg, dtype=float), points_per_view)


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
    progress: Callable[[str, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Alignment:
    """Align marker observations with the tiltalign options of an IMOD command file.

    Parameters
    ----------
    views, markers, xy, tilt_angles_deg, image_size
        As for `solver.align_markers`: ``(n_obs,)`` 0-based views and marker ids, ``(n_obs, 2)``
        positions (first pixel's centre at 0), ``(n_views,)`` nominal (raw) tilts in degrees and
        ``(width, height)``.
    com_path
        An ``align.com`` (or any command file with a ``$tiltalign`` section).
    pixel_size_nm
        Only for reporting residuals in nm.
    global_only
        Accept ``LocalAlignments 1`` and return the global fit (the local fits are solved elsewhere);
        without it such a file is refused.
    progress
        ``progress("full model", iteration, cost)`` after each accepted step.
    should_stop
        Polled every iteration.

    Raises
    ------
    UsageError
        For tiltalign options that are not carried out (named in the message).
    AlignmentError
        For input that cannot be aligned.
    """
    v, ids, xy_a, tilts, size, w = validate_observations(views, markers, xy, tilt_angles_deg, image_size, None)
    counts = np.bincount(v, minlength=len(tilts))
    settings = read_imod_settings(com_path, tilts, counts)
    if settings.local_alignments and not global_only:
        raise UsageError("LocalAlignments 1 in the command file: local alignments are not part of this solve;"
                         " set it to 0 to align globally")
    report = (lambda it, cost: progress("full model", it, cost)) if progress is not None else None
    sol = solve_full_model(v, ids, xy_a, size, settings, tilt_angles_deg=tilts, weights=w, progress=report,
                           should_stop=should_stop)
    robust = None
    if settings.robust:  # RobustFitting 1: iteratively reweighted refits from the least-squares fit
        def refit(start: FullModelSolution, rw: NDArray[np.float64], last: bool) -> FullModelSolution:
            return solve_full_model(v, ids, xy_a, size, settings, tilt_angles_deg=tilts, start=start, weights=w * rw,
                                    progress=report, should_stop=should_stop)

        sol, robust, _ = reweighted(refit, sol, lambda s: s.residuals_px, v, unique_inverse(ids)[1], tilts, settings)
    return alignment_from_full(sol, settings, v, ids, xy_a, tilts, size, pixel_size_nm,
                               weights=w if robust is None else w * robust, robust_weights=robust)


def alignment_from_full(sol: FullModelSolution, settings: ModelSettings, v: NDArray[np.intp], ids: NDArray,
                        xy: NDArray[np.float64], tilts: NDArray[np.float64], size: tuple[int, int],
                        pixel_size_nm: float | None = None, weights: NDArray[np.float64] | None = None,
                        robust_weights: NDArray[np.float64] | None = None) -> Alignment:
    """The `Alignment` of a full-model solution.

    Views left out of the fit (``ExcludeList``, or no markers) keep ``view_determined`` False but get
    the values their variables are mapped to (`excluded_views.fill_left_out_views`), so every per-view
    output has finite numbers for them; the warnings name them.
    """
    filled = fill_left_out_views(sol.params, start_params(settings, tilts), settings.mappings, sol.view_included)
    p = without_beam_tilt(filled, sol.beam_tilt_rad)  # the same projections with the beam tilt at 0
    marker_ids = np.unique(ids)
    mi = np.searchsorted(marker_ids, ids).astype(np.intp)
    xyz = np.full((len(marker_ids), 3), np.nan)  # markers seen only in excluded views stay NaN
    xyz[np.searchsorted(marker_ids, sol.marker_ids)] = sol.xyz_px
    used = np.all(np.isfinite(sol.residuals_px), axis=1)
    n_v, n_m = len(p), len(marker_ids)
    vv, mm = np.meshgrid(np.arange(n_v), np.arange(n_m), indexing="ij")
    pred = project_full(p, xyz, vv.ravel(), mm.ravel()).reshape(n_v, n_m, 2)
    pred += image_centre(size)
    ref = int(np.argmin(np.where(sol.view_included, np.abs(tilts), np.inf)))
    stages = list(sol.reports)  # "markers": geometry held while the markers are placed; then "full"
    notes = list(settings.notes) + _left_out_notes(settings, sol.view_included)
    options = AlignmentOptions(tilt_axis_deg=settings.rotation_angle_deg, estimate_tilt_axis=False,
                               reference_view=ref, initial_stage=False, max_iterations=1000)
    return Alignment(
        tilt_angles_deg=np.degrees(p[:, TILT]), nominal_tilt_angles_deg=tilts.copy(),
        rotation_deg=np.degrees(p[:, ROT]), magnification=p[:, MAG].copy(), shifts_px=p[:, [DX, DY]].copy(),
        view_determined=sol.view_included.copy(), marker_ids=marker_ids, xyz_px=xyz, obs_view=v,
        obs_marker=mi, obs_xy_px=xy, residuals_px=sol.residuals_px, obs_used=used, predicted_xy_px=pred,
        image_size=size, reference_view=ref, tilt_axis_deg=wrap_degrees(float(np.degrees(p[ref, ROT]))),
        tilt_axis_source=f"start: align.com RotationAngle {settings.rotation_angle_deg:g} deg",
        branch="nominal tilt signs kept", stages=stages,
        converged=sol.converged, options=options, full_params=p, settings=settings, warnings=notes,
        pixel_size_nm=pixel_size_nm, beam_tilt_deg=float(np.degrees(sol.beam_tilt_rad)),
        robust_weights=robust_weights, axis_z_shift_px=axis_z_shift(settings, xyz),
    )


def axis_z_shift(settings: ModelSettings, xyz_px: NDArray[np.float64]) -> float:
    """The settings' axis Z shift; for IMOD's ``AxisZShift 1000`` the middle of the markers' z range
    (relative to their centroid)."""
    if not settings.centre_z_range:
        return float(settings.axis_z_shift_px)
    z = xyz_px[np.all(np.isfinite(xyz_px), axis=1), 2]
    return float((z.min() + z.max()) / 2.0) if z.size else 0.0


def _left_out_notes(settings: ModelSettings, fitted: NDArray[np.bool_]) -> list[str]:
    """Warnings naming the views left out of the fit (1-based, as IMOD numbers them)."""
    left_out = np.flatnonzero(~fitted)
    if not left_out.size:
        return []
    listed = sorted(set(left_out.tolist()) & set(settings.excluded_views))
    empty = sorted(set(left_out.tolist()) - set(listed))
    out = []
    if listed:
        out.append(f"views {format_views(listed)} excluded (ExcludeList): not in the fit")
    if empty:
        out.append(f"views {format_views(empty)} have no markers: not in the fit")
    out.append(f"views {format_views(left_out)} take the values of the groups they are mapped to; where no fitted"
               " view shares a variable (and for the shifts) the values are interpolated from the nearest fitted"
               " views: check these views before using them")
    return out
