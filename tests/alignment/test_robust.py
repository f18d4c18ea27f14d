"""Robust fitting and leave-out error against simulated truth."""

import warnings

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.alignment.leaveout import leave_out_error
from napari_tomoalign.alignment.stages import normalise, tilt_groups, tukey_bisquare
from napari_tomoalign.io.alignment import alignment_to_dict
from napari_tomoalign.io.alignment_record import flagged_points


def solve(sim, keep=None, **options):
    keep = np.ones(len(sim.view), bool) if keep is None else keep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align_markers(sim.view[keep], sim.marker[keep], sim.xy[keep], sim.nominal_tilt_angles_deg,
                             sim.image_size, AlignmentOptions(**options))


def prediction_error(al, sim):
    return float(np.sqrt(np.mean(np.sum((al.predicted_xy_px - sim.true_xy) ** 2, axis=2))))


@pytest.fixture(scope="module", params=[0, 1, 2])
def dirty(request):
    return simulate_markers(n_views=41, n_markers=40, noise_px=0.3, high_tilt_loss=0.5, always_visible=6,
                            outlier_fraction=0.02, seed=request.param)


def test_robust_fit_ignores_outliers_and_flags_them(dirty):
    clean = ~dirty.is_outlier
    reference = prediction_error(solve(dirty, clean), dirty)
    plain = solve(dirty)
    robust = solve(dirty, robust=True)
    assert prediction_error(plain, dirty) > 2.5 * reference  # what least squares suffers
    assert prediction_error(robust, dirty) <= 1.1 * reference
    flagged = robust.flagged
    assert flagged[dirty.is_outlier].mean() >= 0.95
    assert flagged[clean].mean() <= 0.01
    points = flagged_points(robust)
    assert len(points) == flagged.sum() and points[0]["residual_px"] >= points[-1]["residual_px"]
    assert all(p["weight"] < 0.5 for p in points)
    assert [s.name for s in robust.stages][-1] == "robust"
    assert alignment_to_dict(robust)["robust"]["n_flagged"] == int(flagged.sum())


def test_robust_fit_of_clean_data_matches_least_squares(dirty):
    clean = ~dirty.is_outlier
    plain, robust = solve(dirty, clean), solve(dirty, clean, robust=True)
    assert robust.rms_residual_px == pytest.approx(plain.rms_residual_px, rel=0.01)


def test_track_weighting_drops_a_mistracked_bead():
    sim = simulate_markers(n_views=41, n_markers=30, noise_px=0.3, seed=5)
    xy = sim.xy.copy()
    bad = sim.marker == 7
    xy[bad] += np.column_stack([np.linspace(0, 12, bad.sum()), np.zeros(bad.sum())])  # drifts off its bead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al = align_markers(sim.view, sim.marker, xy, sim.nominal_tilt_angles_deg, sim.image_size,
                           AlignmentOptions(robust=True, robust_tracks=True))
    w = al.robust_weights
    assert np.all(w[bad] < 0.5) and np.all(w[~bad] > 0.5)
    assert np.ptp(w[bad]) == 0  # one weight for the whole track


def test_weight_function_and_groups():
    np.testing.assert_allclose(tukey_bisquare(np.array([-1.0, 0.0, 4.685 / 2, 4.685, 9.0]), 4.685),
                               [1.0, 1.0, 0.5625, 0.0, 0.0])
    u = normalise(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), np.zeros(5, np.intp))
    assert u[2] == 0.0 and u[-1] > 50
    groups = tilt_groups(np.repeat(np.arange(10), 10), np.linspace(-50, 50, 10), group_views=1, min_group_obs=30)
    assert groups.max() == 2 and np.all(np.diff(groups) >= 0)  # 3 runs of neighbouring views


def test_leave_out_error_matches_a_converged_refit():
    sim = simulate_markers(n_views=41, n_markers=20, noise_px=0.3, high_tilt_loss=0.5, always_visible=6, seed=8)
    al = solve(sim)
    fast = leave_out_error(al)
    converged = leave_out_error(al, max_iterations=50)
    np.testing.assert_allclose(fast.per_marker_px, converged.per_marker_px, atol=1e-3)
    assert fast.overall_px > al.rms_residual_px  # a marker left out is predicted worse than fitted
    assert fast.overall_px < 1.5 * al.rms_residual_px
    assert fast.per_marker_robust_px is None
    # A marker clicked 1.5 px off in every view stands out in its leave-out error.
    xy = sim.xy.copy()
    four = sim.marker == 4
    xy[four, 0] += 1.5 * np.sin(np.arange(four.sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = align_markers(sim.view, sim.marker, xy, sim.nominal_tilt_angles_deg, sim.image_size,
                            AlignmentOptions(robust=True))
    lo = leave_out_error(bad)
    assert int(bad.marker_ids[np.nanargmax(lo.per_marker_px)]) == 4
    assert lo.overall_robust_px is not None and lo.overall_robust_px < lo.overall_px
