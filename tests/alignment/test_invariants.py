"""Symmetries of the problem: relabelling or shifting the input must not change the fit."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers


@pytest.fixture(scope="module")
def sim():
    return simulate_markers(n_views=41, n_markers=25, noise_px=0.4, high_tilt_loss=0.4, dropout=0.05,
                            always_visible=5, seed=21)


def _solve(view, marker, xy, tilts, size):
    return align_markers(view, marker, xy, tilts, size, AlignmentOptions(tilt_axis_deg=85.0))


@pytest.fixture(scope="module")
def base(sim):
    return _solve(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)


def _sorted_residuals(al):
    key = np.lexsort((al.obs_marker, al.obs_view))
    return al.residuals_px[key]


def test_renumbering_markers(sim, base):
    rng = np.random.default_rng(0)
    new_ids = rng.permutation(1000)[: sim.marker.max() + 1] + 5000
    order = rng.permutation(len(sim.view))
    al = _solve(sim.view[order], new_ids[sim.marker][order], sim.xy[order], sim.nominal_tilt_angles_deg, sim.image_size)
    assert al.rms_residual_px == pytest.approx(base.rms_residual_px, rel=1e-7)
    inverse = np.argsort(order)
    np.testing.assert_allclose(al.residuals_px[inverse], base.residuals_px, atol=1e-6)


def test_reversing_view_order(sim, base):
    n = len(sim.nominal_tilt_angles_deg)
    al = _solve(n - 1 - sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg[::-1], sim.image_size)
    assert al.rms_residual_px == pytest.approx(base.rms_residual_px, rel=1e-7)
    np.testing.assert_allclose(al.tilt_angles_deg[::-1], base.tilt_angles_deg, atol=1e-5)
    np.testing.assert_allclose(al.residuals_px, base.residuals_px, atol=1e-6)


def test_shifting_all_coordinates(sim, base):
    al = _solve(sim.view, sim.marker, sim.xy + np.array([37.25, -12.5]), sim.nominal_tilt_angles_deg, sim.image_size)
    assert al.rms_residual_px == pytest.approx(base.rms_residual_px, rel=1e-7)
    np.testing.assert_allclose(al.residuals_px, base.residuals_px, atol=1e-6)
    np.testing.assert_allclose(al.tilt_angles_deg, base.tilt_angles_deg, atol=1e-5)
