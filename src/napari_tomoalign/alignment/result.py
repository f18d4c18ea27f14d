"""The result of an alignment: parameters, residuals, statistics and what each stage did."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from ..conventions import image_centre
from .options import AlignmentOptions, ModelSettings


@dataclass(frozen=True)
class StageReport:
    """What one stage of the solve did."""

    name: str
    iterations: int
    wall_time_s: float
    cost: float
    rms_residual_px: float
    converged: bool
    message: str
    n_unknowns: int


def _group_stats(index: NDArray[np.intp], sq: NDArray[np.float64], n: int) -> tuple[NDArray, NDArray]:
    """RMS and mean residual length per group; NaN for groups with no observation."""
    count = np.bincount(index, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.bincount(index, sq, minlength=n) / count)
        mean = np.bincount(index, np.sqrt(sq), minlength=n) / count
    return rms, mean


@dataclass(frozen=True)
class Alignment:
    """A solved alignment of a tilt series (immutable; its statistics are computed once, when first asked).

    Positions are in pixels with ``x`` = column and ``y`` = row and the centre of the first pixel
    at (0, 0). Parameters of views left out of the fit are NaN for the default model; IMOD's full
    model gives them the values their variables are mapped to (``excluded_views``), as tiltalign
    does, with ``view_determined`` still False. Positions of markers left out of the fit are NaN.

    Attributes
    ----------
    tilt_angles_deg, nominal_tilt_angles_deg, rotation_deg, magnification
        ``(n_views,)`` solved and nominal tilts, in-plane rotations (the tilt-axis angle of each
        view) and magnifications.
    shifts_px
        ``(n_views, 2)`` per-view (dx, dy) shift of the model, relative to the image centre.
    view_determined
        ``(n_views,)`` False for views left out of the fit (too few markers).
    marker_ids
        ``(n_markers,)`` the caller's marker ids, in the order of all marker arrays.
    xyz_px
        ``(n_markers, 3)`` marker positions (x, y, z) with their centroid at the origin.
    obs_view, obs_marker
        ``(n_obs,)`` view index and marker *index* (into ``marker_ids``) of each observation, in
        the caller's order.
    obs_xy_px, residuals_px
        ``(n_obs, 2)`` observed positions and residuals (predicted minus observed).
    obs_used
        ``(n_obs,)`` False for observations of excluded views or markers.
    predicted_xy_px
        ``(n_views, n_markers, 2)`` the model's position of every marker in every view.
    robust_weights
        ``(n_obs,)`` final Tukey weights of a robust fit (NaN for observations not in the fit), or
        None for a least-squares fit. Points weighing less than 0.5 are *flagged*.
    full_params
        ``(n_views, 9)`` the full model per view, for every settings (columns of
        ``model.FULL_VIEW_PARAMS``: angles in radians, shifts in pixels; the default model holds
        X-stretch, skew and X-tilt at 0 and compression at 1). The transforms are made from it. A
        solved beam tilt is already folded into the tilt, X-tilt and rotation
        (``model.without_beam_tilt``), as IMOD writes them.
    settings
        The `options.ModelSettings` the alignment was solved with (from `AlignmentOptions` or an
        align.com): mappings, start values, gauge, robust rounds.
    beam_tilt_deg
        The solved (or fixed) beam tilt, for the record.
    axis_z_shift_px
        Where the aligned frame puts the tilt axis in Z, in pixels from the marker centroid: the
        settings' ``AxisZShift`` (for ``AxisZShift 1000``, the middle of the markers' z range). The
        transforms and writers read it from here.
    """

    tilt_angles_deg: NDArray[np.float64]
    nominal_tilt_angles_deg: NDArray[np.float64]
    rotation_deg: NDArray[np.float64]
    magnification: NDArray[np.float64]
    shifts_px: NDArray[np.float64]
    view_determined: NDArray[np.bool_]
    marker_ids: NDArray[np.int64]
    xyz_px: NDArray[np.float64]
    obs_view: NDArray[np.intp]
    obs_marker: NDArray[np.intp]
    obs_xy_px: NDArray[np.float64]
    residuals_px: NDArray[np.float64]
    obs_used: NDArray[np.bool_]
    predicted_xy_px: NDArray[np.float64]
    image_size: tuple[int, int]
    reference_view: int
    tilt_axis_deg: float
    tilt_axis_source: str
    branch: str
    stages: list[StageReport]
    converged: bool
    options: AlignmentOptions
    full_params: NDArray[np.float64]
    settings: ModelSettings
    warnings: list[str] = field(default_factory=list)
    pixel_size_nm: float | None = None
    weights: NDArray[np.float64] | None = None
    robust_weights: NDArray[np.float64] | None = None
    beam_tilt_deg: float = 0.0
    axis_z_shift_px: float = 0.0

    # ------------------------------------------------------------------ shapes
    @property
    def n_views(self) -> int:
        return len(self.tilt_angles_deg)

    @property
    def n_markers(self) -> int:
        return len(self.marker_ids)

    @property
    def image_centre(self) -> NDArray[np.float64]:
        """The (x, y) centre of the image: ``((nx - 1) / 2, (ny - 1) / 2)``."""
        return image_centre(self.image_size)

    def output_tilt_angles_deg(self) -> NDArray[np.float64]:
        """``(n_views,)`` the tilts to write (``.tlt``): the solved or mapped tilt where there is one
        (for the full model, excluded views carry nominal + ``AngleOffset`` + their mapped tilt
        variable), else the nominal tilt."""
        t = np.asarray(self.tilt_angles_deg, dtype=float)
        return np.where(np.isfinite(t), t, np.asarray(self.nominal_tilt_angles_deg, dtype=float))

    @property
    def marker_included(self) -> NDArray[np.bool_]:
        return np.all(np.isfinite(self.xyz_px), axis=1)

    @property
    def excluded_views(self) -> list[int]:
        return [int(v) for v in np.flatnonzero(~self.view_determined)]

    @property
    def excluded_markers(self) -> list[int]:
        return [int(m) for m in self.marker_ids[~self.marker_included]]

    @property
    def flagged(self) -> NDArray[np.bool_]:
        """``(n_obs,)`` True for points a robust fit weighed below 0.5 (all False for least squares)."""
        if self.robust_weights is None:
            return np.zeros(len(self.obs_view), dtype=bool)
        with np.errstate(invalid="ignore"):
            return self.obs_used & (self.robust_weights < 0.5)

    # ------------------------------------------------------------------ statistics
    @cached_property
    def _sq(self) -> NDArray[np.float64]:
        r = self.residuals_px[self.obs_used]
        return np.einsum("ij,ij->i", r, r)

    @cached_property
    def rms_residual_px(self) -> float:
        """``sqrt(mean(|r|^2))`` over the observations in the fit (IMOD's ``Final F``)."""
        return float(np.sqrt(np.mean(self._sq)))

    @cached_property
    def mean_residual_px(self) -> float:
        """``mean(|r|)`` over the observations in the fit (IMOD's ``Residual error mean``)."""
        return float(np.mean(np.sqrt(self._sq)))

    def per_view_residual_px(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(n_views,)`` RMS and mean residual of each view (NaN where none is in the fit)."""
        return _group_stats(self.obs_view[self.obs_used], self._sq, self.n_views)

    def per_marker_residual_px(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(n_markers,)`` RMS and mean residual of each marker (NaN where none is in the fit)."""
        return _group_stats(self.obs_marker[self.obs_used], self._sq, self.n_markers)
