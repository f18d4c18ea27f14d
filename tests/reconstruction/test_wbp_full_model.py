"""The global WBP with IMOD's full model (X-axis tilt, Z factors, SHIFT) against a slow exact reference."""

import numpy as np
import pytest
from scipy import ndimage
from support.full_model_reference import bba_like_model, reference_wbp

from napari_tomoalign.reconstruction import wbp
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation as ncc
from napari_tomoalign.reconstruction.full_as_local import one_row_kernel_applies
from napari_tomoalign.reconstruction.kernel_choice import KernelChoice
from napari_tomoalign.reconstruction.wbp import projection_coefficients, weighted_back_projection

TILTS = np.arange(-60.0, 60.1, 3.0)  # BBa's range at 3 deg steps
SHAPE = (41, 56, 72)  # views, rows, cols
N_Z = 28


def smooth_views(seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=SHAPE).astype(np.float32)
    return ndimage.gaussian_filter(raw, (0, 1.5, 1.5)).astype(np.float32)


@pytest.fixture(scope="module")
def case():
    views = smooth_views()
    x_tilt, zf = bba_like_model(TILTS.size)
    return views, x_tilt, zf, reference_wbp(views, TILTS, N_Z, x_tilt, zf)


def test_full_model_matches_the_exact_reference_and_ignoring_it_does_not(case):
    views, x_tilt, zf, ref = case
    ours = weighted_back_projection(views, TILTS, thickness=N_Z, x_tilt_deg=x_tilt, z_factors=zf)
    plain = weighted_back_projection(views, TILTS, thickness=N_Z)
    inner = (slice(4, -4), slice(6, -6), slice(6, -6))  # away from where a voxel leaves the views
    full_score, plain_score = ncc(ours[inner], ref[inner]), ncc(plain[inner], ref[inner])
    assert full_score >= 0.999
    assert plain_score < 0.97 and plain_score < full_score - 0.02
    np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())


def test_x_tilt_only_and_z_factors_only_are_each_honoured(case):
    views, x_tilt, zf, _ = case
    zero = np.zeros_like(zf)
    for xt, z in ((x_tilt, zero), (np.zeros_like(x_tilt), zf)):
        ref = reference_wbp(views, TILTS, N_Z, xt, z)
        ours = weighted_back_projection(views, TILTS, thickness=N_Z, x_tilt_deg=xt, z_factors=z)
        np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())


def test_shift_and_row_ranges_with_the_full_model(case):
    views, x_tilt, zf, _ = case
    ref = reference_wbp(views, TILTS, N_Z, x_tilt, zf, shift=(3.0, -2.5))
    ours = weighted_back_projection(views, TILTS, thickness=N_Z, x_tilt_deg=x_tilt, z_factors=zf, shift_px=(3.0, -2.5))
    np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())
    part = weighted_back_projection(views, TILTS, thickness=N_Z, x_tilt_deg=x_tilt, z_factors=zf, shift_px=(3.0, -2.5),
                                    rows=(17, 50))
    np.testing.assert_allclose(part, ours[:, 17:50], atol=1e-6 * np.abs(ref).max())
    plain_shift = weighted_back_projection(views, TILTS, thickness=N_Z, shift_px=(4.0, 2.0))
    ref0 = reference_wbp(views, TILTS, N_Z, np.zeros(TILTS.size), np.zeros((TILTS.size, 2)), shift=(4.0, 2.0))
    np.testing.assert_allclose(plain_shift, ref0, atol=2e-4 * np.abs(ref0).max())


def test_bad_model_arguments_are_named(case):
    views, x_tilt, zf, _ = case
    with pytest.raises(ValueError, match="two per view"):
        weighted_back_projection(views, TILTS, thickness=N_Z, z_factors=zf[:5])
    with pytest.raises(ValueError, match="X-axis tilt"):
        weighted_back_projection(views, TILTS, thickness=N_Z, x_tilt_deg=np.full(TILTS.size, np.nan))


def test_a_small_x_tilt_takes_the_one_row_kernel_within_its_limit(case, monkeypatch):
    """An X-axis tilt of 0.1-0.2 deg with a tenth of BBa's Z factors: the local one-row kernel (`full_as_local`),
    as close to the exact reference as `bp_full`'s kernel nearly; BBa's own 2 deg stays with `bp_full`."""
    views, x_tilt, zf, _ = case
    small_tilt, small_zf = 0.15 + 0.05 * np.linspace(-1.0, 1.0, TILTS.size), 0.1 * zf
    n_y, n_x = SHAPE[1:]
    assert one_row_kernel_applies(projection_coefficients(TILTS, (n_y, n_x), N_Z, x_tilt_deg=small_tilt,
                                                          z_factors=small_zf), n_y, n_x, N_Z)
    assert not one_row_kernel_applies(projection_coefficients(TILTS, (n_y, n_x), N_Z, x_tilt_deg=x_tilt, z_factors=zf),
                                      n_y, n_x, N_Z)
    ref = reference_wbp(views, TILTS, N_Z, small_tilt, small_zf, shift=(2.0, -1.5))
    kw = {"thickness": N_Z, "x_tilt_deg": small_tilt, "z_factors": small_zf, "shift_px": (2.0, -1.5)}
    ours = weighted_back_projection(views, TILTS, **kw)
    monkeypatch.setattr(wbp, "full_model_kernel", lambda *a, **k: KernelChoice("exact", "full model"))  # bp_full's
    exact = weighted_back_projection(views, TILTS, **kw)
    inner = (slice(4, -4), slice(6, -6), slice(6, -6))
    assert ncc(ours[inner], ref[inner]) >= 0.9995 and ncc(exact[inner], ref[inner]) >= 0.9999
    assert np.abs(ours - exact)[inner].max() < 0.05 * np.abs(ref).max()
