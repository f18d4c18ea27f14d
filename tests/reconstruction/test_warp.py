"""Aligned stacks: the warp against scipy, binning, fills, and beads landing where the model says."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign import AlignmentOptions, align_markers, imod_transforms
from napari_tomoalign.errors import Cancelled
from napari_tomoalign.io.imod import apply_transform
from napari_tomoalign.reconstruction.warp import aligned_stack, bin_image, pull_matrix, warp_view
from napari_tomoalign.simulation.sample import make_sample_tilt_series


def rotation_xf(deg, mag=1.0, dx=0.0, dy=0.0):
    a = np.radians(deg)
    return np.array([[np.cos(a) / mag, np.sin(a) / mag, dx], [-np.sin(a) / mag, np.cos(a) / mag, dy]])


@pytest.fixture(scope="module")
def texture():
    rng = np.random.default_rng(1)
    return ndimage.gaussian_filter(rng.normal(size=(120, 150)), 2.0).astype(np.float32)


def scipy_warp(img, xf, order):
    m = pull_matrix(xf, img.shape, img.shape)
    # scipy works in (row, col): swap the axes of the pull matrix.
    mat = np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]])
    return ndimage.affine_transform(img, mat, offset=(m[1, 2], m[0, 2]), order=order, mode="nearest")


def test_linear_warp_matches_scipy(texture):
    xf = rotation_xf(7.0, 1.03, 4.2, -3.1)
    ours = warp_view(texture, xf)
    ref = scipy_warp(texture, xf, 1)
    inner = (slice(15, -15), slice(15, -15))
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-5)


def test_cubic_warp_is_close_to_a_spline_and_exact_on_shifts(texture):
    xf = rotation_xf(-11.0, 0.98, 1.5, 2.5)
    ours = warp_view(texture, xf, interpolation="cubic")
    ref = scipy_warp(texture, xf, 3)
    inner = (slice(15, -15), slice(15, -15))
    assert np.abs(ours[inner] - ref[inner]).max() < 0.02 * np.ptp(texture)
    shifted = warp_view(texture, rotation_xf(0.0, 1.0, 3.0, -2.0), interpolation="cubic")
    np.testing.assert_allclose(shifted[:-2, 3:], texture[2:, :-3], atol=1e-6)  # X' = X + (3, -2)


def test_identity_binning_and_fill(texture):
    ident = rotation_xf(0.0)
    np.testing.assert_allclose(warp_view(texture, ident), texture, atol=1e-6)
    binned = bin_image(texture, 3)
    np.testing.assert_allclose(binned, texture[:120, :150].reshape(40, 3, 50, 3).mean(axis=(1, 3)), rtol=1e-5)
    np.testing.assert_allclose(warp_view(texture, ident, binning=3), binned, rtol=1e-6)
    # A shift of 6 unbinned pixels is 2 binned pixels; outside the image gets the fill.
    moved = warp_view(texture, rotation_xf(0.0, 1.0, 6.0, 0.0), binning=3, fill=-5.0)
    np.testing.assert_allclose(moved[:, 2:], binned[:, :-2], rtol=1e-5)
    assert np.all(moved[:, :2] == -5.0)
    default_fill = warp_view(texture, rotation_xf(0.0, 1.0, 500.0, 0.0))
    np.testing.assert_allclose(default_fill, texture.mean(), rtol=1e-5)


def test_stack_views_progress_cancel_and_undetermined(texture):
    stack = np.stack([texture, texture * 2, texture + 1])
    xfs = np.stack([rotation_xf(5.0), rotation_xf(-5.0), rotation_xf(0.0)])
    xfs[2] = np.nan
    seen = []
    out = aligned_stack(stack, xfs, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(out[1], warp_view(stack[1], xfs[1]))
    np.testing.assert_allclose(out[2], stack[2].mean(), rtol=1e-6)
    with pytest.raises(Cancelled):
        aligned_stack(stack, xfs, should_stop=lambda: True)
    with pytest.raises(ValueError, match="2 transforms for a stack of 3 views"):
        aligned_stack(stack, xfs[:2])
    with pytest.raises(ValueError, match="binning must be a positive integer"):
        aligned_stack(stack, xfs, binning=0)


def bead_centroid(img, xy, radius=7):
    """Centroid of the dark bead density (1 - image) in a window around ``xy``."""
    x0, y0 = int(round(xy[0])), int(round(xy[1]))
    win = 1.0 - img[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(float)
    win = np.clip(win, 0.0, None)
    yy, xx = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()])


def test_beads_land_where_the_model_says():
    s = make_sample_tilt_series(n_views=21, size=256, n_beads=10, n_texture=0, image_noise=0.0,
                                click_noise_px=0.02, misclick=False, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al = align_markers(s.view, s.marker, s.xy, s.tilt_angles_deg, (256, 256), AlignmentOptions(tilt_axis_deg=86.0))
    xf = imod_transforms(al)
    ali = aligned_stack(s.images, xf, interpolation="cubic")
    centre = al.image_centre
    errors = []
    for v, m in zip(al.obs_view, al.obs_marker):
        want = apply_transform(xf[v], al.predicted_xy_px[v, m][None], centre)[0]
        if np.all((want > 10) & (want < 245)):
            # Beads that overlap another bead bias a centroid; keep the isolated ones.
            others = apply_transform(xf[v], np.delete(al.predicted_xy_px[v], m, axis=0), centre)
            if np.min(np.hypot(*(others - want).T)) > 16:
                errors.append(np.hypot(*(bead_centroid(ali[v], want) - want)))
    errors = np.asarray(errors)
    assert errors.size > 100
    assert errors.max() < 0.1, errors.max()
