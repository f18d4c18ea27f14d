"""Every input problem gets an error or a warning that names it."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentError, align_markers, simulate_markers
from napari_tomoalign.errors import AlignmentWarning


@pytest.fixture(scope="module")
def sim():
    return simulate_markers(n_views=21, n_markers=12, noise_px=0.3, seed=1)


def _call(sim, **over):
    args = dict(views=sim.view, markers=sim.marker, xy=sim.xy, tilt_angles_deg=sim.nominal_tilt_angles_deg,
                image_size=sim.image_size)
    args.update(over)
    return align_markers(**args)


def test_nan_coordinates(sim):
    xy = sim.xy.copy()
    xy[7, 1] = np.nan
    with pytest.raises(AlignmentError, match=r"NaN or infinite \(first: row 7"):
        _call(sim, xy=xy)


def test_infinite_coordinates(sim):
    xy = sim.xy.copy()
    xy[3, 0] = np.inf
    with pytest.raises(AlignmentError, match="NaN or infinite"):
        _call(sim, xy=xy)


def test_tilt_count_does_not_match_views(sim):
    with pytest.raises(AlignmentError, match=r"placed on view 21 but only 15 tilt angles"):
        _call(sim, tilt_angles_deg=sim.nominal_tilt_angles_deg[:15])


def test_duplicate_view_marker_rows(sim):
    with pytest.raises(AlignmentError, match=r"given more than once: \(view 1, marker 1\)"):
        _call(sim, views=np.r_[sim.view, 0], markers=np.r_[sim.marker, 1], xy=np.r_[sim.xy, [[1.0, 2.0]]])


def test_fewer_observations_than_unknowns():
    sim = simulate_markers(n_views=3, n_markers=3, tilt_range_deg=(-30, 30), noise_px=0.3, seed=1)
    with pytest.raises(AlignmentError, match=r"18 equations for 19 unknowns"):
        align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)


def test_no_observations():
    with pytest.raises(AlignmentError, match="no marker observations"):
        align_markers([], [], np.zeros((0, 2)), [0.0, 1.0], (10, 10))


def test_tilts_out_of_range(sim):
    with pytest.raises(AlignmentError, match=r"within \(-90, 90\)"):
        _call(sim, tilt_angles_deg=np.full(21, 120.0))


def test_marker_in_one_view_is_left_out_and_listed(sim):
    views = np.r_[sim.view, 4]
    markers = np.r_[sim.marker, 99]
    xy = np.r_[sim.xy, [[100.0, 100.0]]]
    with pytest.warns(AlignmentWarning, match="fewer than 2 usable views were left out: 99"):
        al = _call(sim, views=views, markers=markers, xy=xy)
    assert al.excluded_markers == [99]
    k = list(al.marker_ids).index(99)
    assert np.all(np.isnan(al.xyz_px[k])) and np.all(np.isnan(al.predicted_xy_px[:, k]))
    assert not al.obs_used[-1]


def test_view_with_too_few_markers_is_undetermined(sim):
    keep = (sim.view != 5) | (sim.marker <= 2)  # view 5 keeps two markers: not enough for 5 unknowns
    with pytest.warns(AlignmentWarning, match=r"too few markers .* left out \(transform undetermined\): views 6"):
        al = _call(sim, views=sim.view[keep], markers=sim.marker[keep], xy=sim.xy[keep])
    assert al.excluded_views == [5]
    assert not al.view_determined[5]
    assert np.isnan(al.tilt_angles_deg[5]) and np.isnan(al.rotation_deg[5])
    assert np.all(np.isnan(al.predicted_xy_px[5]))
    assert al.converged


def test_view_without_markers_is_undetermined(sim):
    keep = sim.view != 0
    with pytest.warns(AlignmentWarning, match="no markers at all"):
        al = _call(sim, views=sim.view[keep], markers=sim.marker[keep], xy=sim.xy[keep])
    assert al.excluded_views == [0]


def test_bad_variable_mode():
    from napari_tomoalign import AlignmentOptions

    with pytest.raises(ValueError, match="unknown variable mode 'sometimes'"):
        AlignmentOptions(tilt="sometimes")
    with pytest.raises(ValueError, match="not a whole number"):
        AlignmentOptions(tilt="group:x")


def test_a_tilt_file_of_another_series_is_refused_when_the_markers_know_their_views():
    """New user's finding (session 9): the README's recipe wrote 122-line .xf/.tlt for a 61-view model."""
    from pathlib import Path

    from napari_tomoalign import align_markers_imod, read_markers, read_tilt_angles

    d = Path(__file__).parents[1] / "data" / "imod-tutorial-BB"
    m = read_markers(d / "BBa.fid")
    tilts = read_tilt_angles(d / "BBa.rawtlt")
    assert m.n_views == 61
    twice = np.concatenate([tilts, tilts])
    with pytest.raises(AlignmentError, match="122 tilt angles for markers placed on a 61-view stack"):
        align_markers(m.view, m.marker, m.xy, twice, m.image_size, n_views=m.n_views)
    with pytest.raises(AlignmentError, match="122 tilt angles"):
        align_markers_imod(m.view, m.marker, m.xy, twice, m.image_size, d / "aligna.com", n_views=m.n_views)
    al = align_markers(m.view, m.marker, m.xy, tilts, m.image_size, n_views=m.n_views, warn=False)
    assert al.n_views == 61
    for odd in (0, -61, 61.5, 61.0, True, "61"):  # not a count of views: refused as such (session 10's new user)
        with pytest.raises(AlignmentError, match="n_views must be the stack's number of views"):
            align_markers(m.view, m.marker, m.xy, tilts, m.image_size, n_views=odd)


def test_tilt_angles_the_fit_had_to_move_far_are_named(sim):
    """New user's finding (session 9): a tilt file 40% off was corrected by up to 24 deg without a word."""
    with pytest.warns(AlignmentWarning, match=r"solved tilt angles differ from the given ones by up to \d+\.\d deg"):
        al = _call(sim, tilt_angles_deg=0.6 * sim.nominal_tilt_angles_deg)
    assert np.abs(al.tilt_angles_deg - sim.nominal_tilt_angles_deg).max() < 2  # the fit found the true ones
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, warn=False)
    assert not [w for w in al.warnings if "solved tilt" in w]


def test_a_given_axis_far_from_the_markers_is_said_on_a_warm_start_too(sim):
    """New user s14: `run` (a warm start from the tracker's fit) said nothing of a --tilt-axis 40 deg off the markers',
    though the hand of the tomogram rides on the branch; align (a cold start) said it."""
    from napari_tomoalign.alignment.options import AlignmentOptions

    far = AlignmentOptions(tilt_axis_deg=85.0 - 40.0)  # simulate_markers' axis is 85 deg
    cold = _call(sim, options=far, warn=False)
    warm = _call(sim, options=far, start=cold, warn=False)
    for al in (cold, warm):
        assert any("differs from the given 45.00 deg" in w for w in al.warnings), al.warnings
    near = AlignmentOptions(tilt_axis_deg=84.0)
    assert not any("differs from the given" in w for w in _call(sim, options=near, start=cold, warn=False).warnings)
