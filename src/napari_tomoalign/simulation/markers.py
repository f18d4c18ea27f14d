"""Synthetic marker observations with known truth, for tests, benchmarks and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..alignment.model import DX, DY, MAG, ROT, TILT, predict_all
from ..conventions import image_centre


@dataclass
class SimulatedMarkers:
    """Observations and the parameters that made them.

    Attributes
    ----------
    view, marker, xy
        ``(n_obs,)``, ``(n_obs,)`` and ``(n_obs, 2)``: the observations (x = column, y = row).
    nominal_tilt_angles_deg
        ``(n_views,)`` the tilt angles a user would know.
    true_view_params
        ``(n_views, 5)`` true (tilt rad, rotation rad, magnification, dx, dy), gauge applied.
    true_xyz
        ``(n_markers, 3)`` true marker positions, centroid at the origin.
    true_xy
        ``(n_views, n_markers, 2)`` noise-free image position of every marker in every view.
    is_outlier
        ``(n_obs,)`` True where a gross error was added.
    """

    view: NDArray[np.intp]
    marker: NDArray[np.int64]
    xy: NDArray[np.float64]
    nominal_tilt_angles_deg: NDArray[np.float64]
    image_size: tuple[int, int]
    true_view_params: NDArray[np.float64]
    true_xyz: NDArray[np.float64]
    true_xy: NDArray[np.float64]
    is_outlier: NDArray[np.bool_]
    reference_view: int
    noise_px: float
    tilt_axis_deg: float
    extra: dict = field(default_factory=dict)

    @property
    def true_tilt_angles_deg(self) -> NDArray[np.float64]:
        return np.degrees(self.true_view_params[:, TILT])

    @property
    def true_rotation_deg(self) -> NDArray[np.float64]:
        return np.degrees(self.true_view_params[:, ROT])


def simulate_markers(
    n_views: int = 61,
    tilt_range_deg: tuple[float, float] = (-60.0, 60.0),
    n_markers: int = 30,
    image_size: tuple[int, int] = (1024, 1024),
    thickness_px: float = 150.0,
    noise_px: float = 0.3,
    tilt_axis_deg: float = 85.0,
    tilt_error_deg: float = 0.3,
    rotation_drift_deg: float = 0.5,
    mag_error: float = 0.005,
    shift_px: float = 10.0,
    high_tilt_loss: float = 0.0,
    dropout: float = 0.0,
    always_visible: int = 0,
    outlier_fraction: float = 0.0,
    outlier_px: tuple[float, float] = (8.0, 25.0),
    seed: int = 0,
) -> SimulatedMarkers:
    """Simulate a tilt series' marker observations.

    Parameters
    ----------
    n_views, tilt_range_deg
        Views evenly spaced over the range, in stack order from the first to the second angle.
    n_markers, thickness_px
        Markers spread over the central 80 % of the field and through the thickness.
    noise_px
        Standard deviation of the Gaussian noise on each coordinate.
    tilt_axis_deg, tilt_error_deg, rotation_drift_deg, mag_error, shift_px
        The misalignment: axis angle, per-view tilt error, a slow rotation drift, magnification
        spread and shift spread.
    high_tilt_loss
        Fraction of markers that vanish beyond a random |tilt| between 35 degrees and the maximum.
    dropout
        Fraction of the remaining observations removed at random (gaps inside tracks).
    always_visible
        The first this-many markers are exempt from both kinds of loss.
    outlier_fraction, outlier_px
        Fraction of observations moved by a random distance in this range, in a random direction.
    seed
        Seed of the random generator; the same seed gives the same data.
    """
    rng = np.random.default_rng(seed)
    nominal = np.linspace(tilt_range_deg[0], tilt_range_deg[1], n_views)
    ref = int(np.argmin(np.abs(nominal)))
    vp = np.zeros((n_views, 5))
    tilt = nominal + rng.normal(0.0, tilt_error_deg, n_views)
    tilt[ref] = nominal[ref]
    vp[:, TILT] = np.radians(tilt)
    drift = np.linspace(-rotation_drift_deg, rotation_drift_deg, n_views) + rng.normal(0, 0.05, n_views)
    vp[:, ROT] = np.radians(tilt_axis_deg + drift)
    vp[:, MAG] = 1.0 + rng.normal(0.0, mag_error, n_views)
    vp[ref, MAG] = 1.0
    vp[:, DX] = rng.normal(0.0, shift_px, n_views)
    vp[:, DY] = rng.normal(0.0, shift_px, n_views)
    w, h = image_size
    xyz = np.column_stack(
        [rng.uniform(-0.32 * w, 0.32 * w, n_markers), rng.uniform(-0.4 * h, 0.4 * h, n_markers),
         rng.uniform(-thickness_px / 2, thickness_px / 2, n_markers)]
    )
    xyz -= xyz.mean(axis=0)
    centre = image_centre(image_size)
    true_xy = predict_all(vp, xyz) + centre

    visible = np.ones((n_views, n_markers), dtype=bool)
    max_tilt = np.max(np.abs(nominal))
    losers = rng.random(n_markers) < high_tilt_loss
    losers[:always_visible] = False
    cutoff = rng.uniform(min(35.0, max_tilt), max_tilt, n_markers)
    visible &= ~(losers[None, :] & (np.abs(nominal)[:, None] > cutoff[None, :]))
    drop = rng.random((n_views, n_markers)) < dropout
    drop[:, :always_visible] = False
    visible &= ~drop
    inside = np.all((true_xy >= 0) & (true_xy <= centre * 2), axis=2)
    visible &= inside | (np.arange(n_markers) < always_visible)[None, :]
    vi, mi = np.nonzero(visible)
    xy = true_xy[vi, mi] + rng.normal(0.0, noise_px, (len(vi), 2))
    is_out = rng.random(len(vi)) < outlier_fraction
    k = int(is_out.sum())
    if k:
        ang = rng.uniform(0, 2 * np.pi, k)
        dist = rng.uniform(outlier_px[0], outlier_px[1], k)
        xy[is_out] += np.column_stack([np.cos(ang), np.sin(ang)]) * dist[:, None]
    return SimulatedMarkers(
        view=vi.astype(np.intp), marker=(mi + 1).astype(np.int64), xy=xy,
        nominal_tilt_angles_deg=nominal, image_size=(int(w), int(h)), true_view_params=vp, true_xyz=xyz,
        true_xy=true_xy, is_outlier=is_out, reference_view=ref, noise_px=noise_px, tilt_axis_deg=tilt_axis_deg,
    )
