"""The Bead Fixer's and step 5's pure parts against known truth: a simulated cryo series whose beads' true
positions are known, and the sample's mis-click."""

import warnings

import numpy as np
import pytest

from napari_tomoalign._napari.dock.fixer_logic import (
    centre_on_bead,
    gaps,
    measured_diameter,
    next_gap,
    retrack_bead,
    with_point,
)
from napari_tomoalign._napari.dock.tables import big_residuals, solution_rows
from napari_tomoalign.alignment.options import AlignmentOptions
from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.simulation.sample import make_sample_tilt_series
from napari_tomoalign.workflows import run_alignment


@pytest.fixture(scope="module")
def cryo():
    return make_bead_series("cryo", size=320, n_views=31, seed=3)  # 10 nm gold at 0.8 nm/px


def test_centre_on_bead_finds_the_true_centre_from_a_quarter_bead_off(cryo):
    v = 15
    visible = np.flatnonzero(cryo.visible[v] & cryo.isolated(v))[:4]
    assert len(visible) >= 3
    for b in visible:
        true = cryo.true_xy[v, b]
        xy, ok = centre_on_bead(cryo.images[v], true + [2.5, -2.0], cryo.bead_diameter_px)
        assert ok and np.hypot(*(xy - true)) < 0.5, (b, xy - true)
    # Nowhere near a bead: refused, the point stays where it was.
    empty = np.array([5.0, 5.0])
    xy, ok = centre_on_bead(cryo.images[v], empty, cryo.bead_diameter_px)
    assert not ok and np.array_equal(xy, empty)


def test_retrack_follows_one_bead_through_the_views_from_a_corrected_point(cryo):
    v = 15
    b = int(np.flatnonzero(cryo.visible.all(axis=0))[0])
    model = cryo.true_xy[:, b] + [3.0, -2.0]  # a model 3.6 px off, as a first fit is
    track = retrack_bead(cryo.images, v, cryo.true_xy[v, b] + [0.3, 0.2], cryo.bead_diameter_px, predicted=model)
    err = np.array([np.hypot(*(xy - cryo.true_xy[j, b])) for j, xy in track.items()])
    assert len(track) >= 28 and np.median(err) < 0.4 and err.max() < 1.5


def test_the_fixer_works_on_unbinned_data_as_the_tracker_does():
    """New user's finding Q (session 12): on a 4096^2 stack at 0.2 nm/px, Centre on bead found "no bead" 11 px off
    a 50 px bead and Re-track followed 1-4 views: at full resolution, 1-2 counts a pixel hide the bead. Both work
    on the tracker's working binning now (here 1024^2 x 21, 10 nm gold of 50 px at 0.2 nm/px)."""
    from napari_tomoalign.simulation.beads import render_view, true_positions
    from napari_tomoalign.simulation.unbinned import unbinned_scene

    scene = unbinned_scene("cryo", 256, 4, 21, seed=4, beads_per_mpx=300.0, texture=0.02)
    images = np.stack([render_view(scene, j) for j in range(21)])
    xy, visible = true_positions(scene)
    v = 10
    inner = np.flatnonzero(visible.all(axis=0) & (scene.clump < 0) & (np.abs(xy[v] - 511.5) < 400).all(axis=1))
    b = int(inner[0])
    got, ok = centre_on_bead(images[v], xy[v, b] + [11.0, -6.0], 50.0)
    assert ok and np.hypot(*(got - xy[v, b])) < 3.0, got - xy[v, b]  # full-resolution pixels (0.2 nm)
    track = retrack_bead(images, v, got, 50.0, predicted=xy[:, b] + [12.0, -8.0])  # a first fit's model, 14 px off
    err = np.array([np.hypot(*(p - xy[j, b])) for j, p in track.items()])
    assert len(track) >= 18 and np.median(err) < 3.0, (len(track), np.median(err))


def test_gaps_tables_and_the_mis_click():
    s = make_sample_tilt_series(n_views=31, size=256, n_beads=12, image_noise=0.02, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_alignment(None, s.view, s.marker, s.xy, s.tilt_angles_deg, (256, 256), AlignmentOptions(),
                          make_aligned_stack=False, make_tomogram=False)
    al = r.alignment
    rows = solution_rows(al)
    assert [row[0] for row in rows] == list(range(1, 32))  # views numbered from 1
    np.testing.assert_allclose([row[2] for row in rows], al.tilt_angles_deg)
    np.testing.assert_allclose([row[3] for row in rows], al.tilt_angles_deg - al.nominal_tilt_angles_deg)
    big = big_residuals(al)
    assert big and (big[0][0], big[0][1]) == (int(s.view[s.misclick]), int(s.marker[s.misclick]))
    assert big[0][3] > 3.0
    # Deleting a point makes a gap where the model puts that marker; Next gap goes to it, and the point
    # added there is that marker's, at the model's position.
    data = np.column_stack([s.view, s.xy[:, 1], s.xy[:, 0]]).astype(float)
    keep = np.ones(len(data), bool)
    keep[5] = False
    found = gaps(al, data[keep], s.marker[keep])
    k = [i for i, (v, m, _) in enumerate(found) if (v, m) == (int(s.view[5]), int(s.marker[5]))]
    assert k and next_gap(found, None) == 0
    v, m, xy = found[k[0]]
    new, ids, at = with_point(data[keep], s.marker[keep], v, m, xy)
    assert at == len(new) - 1 and ids[at] == m and np.hypot(*(new[at, [2, 1]] - s.xy[5])) < 2.0



def test_centre_on_bead_from_the_bead_edge(cryo):
    """New user s14: a point on the edge of 10 px gold (4 px off) was "no bead found"; it is centred now."""
    v = 15
    visible = np.flatnonzero(cryo.visible[v] & cryo.isolated(v))[:4]
    d = cryo.bead_diameter_px
    for b in visible:
        true = cryo.true_xy[v, b]
        for off in ([0.45 * d, 0.0], [0.0, -0.45 * d], [-0.3 * d, 0.3 * d]):
            xy, ok = centre_on_bead(cryo.images[v], true + off, d)
            assert ok and np.hypot(*(xy - true)) < 0.6, (b, off, xy - true)


@pytest.mark.parametrize("off", [1 / 1.5, 1.3])
def test_the_fixer_fits_with_the_beads_measured_diameter_when_the_docks_is_a_third_off(off):
    """New user s14: with the dock's 'bead diameter' at its default after reopening (10 nm for 15 nm gold), Centre on
    bead left points dropped 1-3 px off 10 px beads on a stained section 1.2-1.5 px short of the centre."""
    s = make_bead_series("plastic", 512, 3, seed=2, beads_per_mpx=40.0, bead_diameter_px=10.0, pixel_size_nm=1.5,
                         thickness_px=200.0)
    v, d = 1, s.bead_diameter_px
    measured = measured_diameter(s.images[v], d * off)
    assert measured == pytest.approx(d, rel=0.08)
    visible = np.flatnonzero(s.visible[v] & s.isolated(v))[:5]
    assert len(visible) >= 3
    for b in visible:
        true = s.true_xy[v, b]
        xy, ok = centre_on_bead(s.images[v], true + [2.0, -1.0], measured)
        assert ok and np.hypot(*(xy - true)) < 0.3, (b, xy - true)
