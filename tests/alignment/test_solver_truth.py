"""Simulate, then recover: the solver finds the parameters that made the data."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.errors import AlignmentWarning


def _check_recovery(sim, al, tilt_tol_deg, pos_tol_px):
    # residuals at the noise level: E|r|^2 = 2 sigma^2 (1 - p/n)
    assert al.converged
    assert al.rms_residual_px == pytest.approx(np.sqrt(2) * sim.noise_px, rel=0.2)
    # A common tilt offset is determined only through the reference view's z-parallax, so it is
    # checked loosely; the tilt of each view relative to the others is checked tightly.
    dt = al.tilt_angles_deg - sim.true_tilt_angles_deg
    assert abs(dt.mean()) < 1.0
    np.testing.assert_allclose(dt - dt.mean(), 0.0, atol=tilt_tol_deg)
    rot_err = (al.rotation_deg - sim.true_rotation_deg + 180) % 360 - 180
    assert np.max(np.abs(rot_err)) < 0.5
    # predicted positions of every marker in every view, observed or not
    err = np.linalg.norm(al.predicted_xy_px - sim.true_xy[:, np.argsort(np.unique(sim.marker))], axis=2)
    assert np.sqrt(np.mean(err**2)) < pos_tol_px


@pytest.mark.parametrize("noise", [0.1, 0.5, 1.0])
def test_recovers_truth_over_noise(noise):
    sim = simulate_markers(n_views=41, n_markers=30, noise_px=noise, seed=11)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    _check_recovery(sim, al, tilt_tol_deg=0.15 * max(noise, 0.2) / 0.2, pos_tol_px=0.6 * noise + 0.05)


@pytest.mark.parametrize("loss,dropout", [(0.0, 0.0), (0.5, 0.05), (0.8, 0.2)])
def test_recovers_truth_with_missing_markers(loss, dropout):
    sim = simulate_markers(n_views=61, n_markers=40, noise_px=0.3, high_tilt_loss=loss, dropout=dropout,
                           always_visible=6, seed=5)
    assert len(sim.view) < 61 * 40 or loss == 0.0
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    _check_recovery(sim, al, tilt_tol_deg=0.25, pos_tol_px=0.35)


@pytest.mark.parametrize("n_views", [11, 31, 121])
def test_recovers_truth_over_view_count(n_views):
    sim = simulate_markers(n_views=n_views, n_markers=25, noise_px=0.3, seed=n_views)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    _check_recovery(sim, al, tilt_tol_deg=0.3, pos_tol_px=0.4)


@pytest.mark.parametrize("axis", [-170.0, -95.0, -45.0, 0.0, 12.5, 85.0, 135.0, 179.0])
def test_recovers_truth_over_axis_angle(axis):
    sim = simulate_markers(n_views=41, n_markers=25, noise_px=0.3, tilt_axis_deg=axis, seed=3)
    # the branch comes from the given angle; the estimate itself needs no start (and says it moved)
    with pytest.warns(AlignmentWarning, match="the markers. tilt axis .about"):
        al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size,
                           AlignmentOptions(tilt_axis_deg=axis + 20.0))
    _check_recovery(sim, al, tilt_tol_deg=0.3, pos_tol_px=0.4)
    assert al.tilt_axis_source.startswith("estimated")


@pytest.mark.parametrize("start", np.linspace(-180.0, 180.0, 13))
def test_axis_estimate_converges_from_any_start(start):
    sim = simulate_markers(n_views=41, n_markers=20, noise_px=0.3, tilt_axis_deg=-12.5, seed=8)
    with pytest.warns(AlignmentWarning, match="the markers. tilt axis .about"):  # every start is over 5 deg off
        al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size,
                           AlignmentOptions(tilt_axis_deg=float(start)))
    assert al.rms_residual_px == pytest.approx(np.sqrt(2) * 0.3, rel=0.2)
    diff = (al.tilt_axis_deg - (-12.5) + 90) % 180 - 90  # equal modulo the half-turn
    assert abs(diff) < 1.0
    on_true_branch = abs((al.tilt_axis_deg + 12.5 + 180) % 360 - 180) < 90
    assert on_true_branch == (abs((start + 12.5 + 180) % 360 - 180) < 90)
    assert ("axis + 180" in al.branch) == (not -90 < al.tilt_axis_deg <= 90)


def test_no_axis_given_reports_axis_in_half_open_range():
    sim = simulate_markers(n_views=31, n_markers=20, noise_px=0.2, tilt_axis_deg=100.0, seed=2)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    assert -90 < al.tilt_axis_deg <= 90
    assert abs(al.tilt_axis_deg - (100.0 - 180.0)) < 1.0
    assert al.tilt_axis_source == "estimated"
    # the half-turned solution fits the data exactly as well
    np.testing.assert_allclose(al.xyz_px[:, :2], -sim.true_xyz[:, :2], atol=1.0)


@pytest.mark.parametrize("mode", ["fixed", "one", "group:4"])
def test_variable_modes_solve(mode):
    sim = simulate_markers(n_views=41, n_markers=25, noise_px=0.3, tilt_error_deg=0.0, mag_error=0.0,
                           rotation_drift_deg=0.0, seed=4)
    opts = AlignmentOptions(rotation=mode if mode != "fixed" else "one", tilt=mode, magnification=mode)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, opts)
    assert al.converged
    assert al.rms_residual_px == pytest.approx(np.sqrt(2) * 0.3, rel=0.2)
    if mode == "group:4":
        g = np.arange(41) // 4
        for k in np.unique(g):
            assert np.ptp(al.magnification[g == k]) < 1e-12
    if mode in ("fixed", "one"):
        np.testing.assert_allclose(al.tilt_angles_deg, sim.nominal_tilt_angles_deg)
        np.testing.assert_allclose(al.magnification, 1.0)


def test_stages_are_reported():
    sim = simulate_markers(n_views=31, n_markers=20, seed=6)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    assert [s.name for s in al.stages] == ["initial", "main", "tilt"]
    costs = [s.cost for s in al.stages]
    assert costs[0] >= costs[1] >= costs[2]
    assert all(s.iterations >= 1 and s.wall_time_s > 0 for s in al.stages)
    assert al.predicted_xy_px.shape == (31, 20, 2)
    per_view_rms, per_view_mean = al.per_view_residual_px()
    assert per_view_rms.shape == (31,) and np.all(per_view_mean <= per_view_rms + 1e-12)
