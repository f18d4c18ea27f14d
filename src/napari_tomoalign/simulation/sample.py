"""A synthetic tilt series of gold beads with a known misalignment: images, clicked markers and truth.

The specimen is a slab of weak, smooth spheres (the texture) with gold beads (strong spheres) at the
marker positions of `simulate_markers`. Each view is the exact line-integral projection of every
sphere through that view's true tilt, rotation, magnification and shift (a sphere projects to the
same disk in any in-plane rotation, so a sphere only needs its projected centre and scaled radius).
The image is a bright-field one: the beads are dark disks with a soft edge, over a textured, noisy
background. The clicked markers are the true positions plus click noise, with beads lost at high
tilt and one deliberate mis-click.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..alignment.model import MAG, predict_all
from .markers import SimulatedMarkers, simulate_markers
from .phantom import SpherePhantom


@dataclass
class SampleTiltSeries:
    """The sample: ``images`` ``(n_views, rows, cols)`` float32, nominal tilts, clicks and the truth.

    ``specimen`` holds every sphere (texture and beads) in the marker-centroid frame of ``truth``;
    the images are ``1 - projection + noise``. ``misclick`` is the index of the mis-clicked observation.
    """

    images: NDArray[np.float32]
    tilt_angles_deg: NDArray[np.float64]
    view: NDArray[np.intp]
    marker: NDArray[np.int64]
    xy: NDArray[np.float64]
    truth: SimulatedMarkers
    misclick: int
    pixel_size_nm: float
    specimen: SpherePhantom


def _add_spheres(img, centres_xy, radii, amplitude) -> None:
    """Add exact projections of smooth spheres (profile of `phantom.SpherePhantom`) to ``img`` in place."""
    ny, nx = img.shape
    for (cx, cy), r, a in zip(centres_xy, radii, amplitude):
        y0, y1 = max(0, int(cy - r)), min(ny, int(cy + r) + 2)
        x0, x1 = max(0, int(cx - r)), min(nx, int(cx + r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1)[:, None] - cy
        xx = np.arange(x0, x1)[None, :] - cx
        a2 = np.clip(r * r - yy * yy - xx * xx, 0.0, None)
        img[y0:y1, x0:x1] += a * (16.0 / 15.0) * a2**2.5 / r**4


def make_sample_tilt_series(
    n_views: int = 61,
    size: int = 512,
    n_beads: int = 24,
    tilt_range_deg: tuple[float, float] = (-60.0, 60.0),
    thickness_px: float = 120.0,
    bead_radius_px: float = 4.5,
    click_noise_px: float = 0.3,
    image_noise: float = 0.08,
    n_texture: int = 260,
    misclick: bool = True,
    seed: int = 0,
) -> SampleTiltSeries:
    """Generate the sample (about a second for the defaults); see the module docstring."""
    truth = simulate_markers(
        n_views=n_views, tilt_range_deg=tilt_range_deg, n_markers=n_beads, image_size=(size, size),
        thickness_px=thickness_px, noise_px=click_noise_px, tilt_axis_deg=86.0, tilt_error_deg=0.4,
        rotation_drift_deg=0.6, mag_error=0.006, shift_px=6.0, high_tilt_loss=1.0, always_visible=6,
        seed=seed,
    )
    rng = np.random.default_rng(seed + 1000)
    n_tex = int(n_texture)
    tex_xyz = np.column_stack([
        rng.uniform(-0.5 * size, 0.5 * size, n_tex), rng.uniform(-0.5 * size, 0.5 * size, n_tex),
        rng.uniform(-thickness_px / 2, thickness_px / 2, n_tex),
    ])
    tex_r = rng.uniform(5.0, 18.0, n_tex)
    tex_a = rng.uniform(0.004, 0.012, n_tex)
    vp = truth.true_view_params
    centre = (np.array([size, size], dtype=float) - 1.0) / 2.0
    tex_xy = predict_all(vp, tex_xyz) + centre
    specimen = SpherePhantom(
        np.concatenate([tex_xyz, truth.true_xyz]),
        np.concatenate([tex_r, np.full(n_beads, bead_radius_px)]),
        np.concatenate([tex_a, np.full(n_beads, 0.12)]),
    )
    images = np.empty((n_views, size, size), dtype=np.float32)
    for j in range(n_views):
        s = vp[j, MAG]
        img = np.zeros((size, size))
        _add_spheres(img, tex_xy[j], tex_r * s, tex_a * s)
        _add_spheres(img, truth.true_xy[j], np.full(n_beads, bead_radius_px * s), np.full(n_beads, 0.12 * s))
        img = 1.0 - img
        if image_noise > 0:
            img += rng.normal(0.0, image_noise, img.shape)
        images[j] = img
    view, marker, xy = truth.view.copy(), truth.marker.copy(), truth.xy.copy()
    mis = -1
    if misclick:  # a click of a bead in a mid-series view put 9 px away
        candidates = np.flatnonzero((view == min(n_views - 1, n_views // 2 + 7)) & (marker > 6))
        mis = int(candidates[0]) if candidates.size else int(len(view) // 2)
        xy[mis] += np.array([6.0, -7.0])
    return SampleTiltSeries(images, truth.nominal_tilt_angles_deg, view, marker, xy, truth, mis, 1.0, specimen)
