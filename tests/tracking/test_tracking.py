"""Automatic tracking recovers simulated beads: recall, false points and localisation error on the three
kinds of series, and one test per failure mode handled (jumps, hot pixels, crossings, clumps, beads that
leave the field, a carbon edge, no histogram dip, an unknown tilt axis)."""

import numpy as np
import pytest

from napari_tomoalign import Cancelled, align_markers
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.tracking import BeadFindingError, track_beads, write_bead_quality_csv, write_tracked_markers

TARGETS = {"plastic": (0.95, 0.15), "cryo": (0.95, 0.4), "hard": (0.90, 0.15)}


def matched(series, result):
    """Per track: (true bead, row indices, distances to that bead)."""
    t = result.markers
    out = []
    for m in np.unique(t.marker):
        sel = np.flatnonzero(t.marker == m)
        d = np.hypot(*(t.xy[sel, None, :] - series.true_xy[t.view[sel]]).transpose(2, 0, 1))
        bead = int(np.argmin(np.median(d, axis=0)))
        out.append((bead, sel, d[:, bead]))
    return out


def recall(series, result):
    """Share of single beads (inside IMOD's border in the seed view) tracked through >= 90 % of the views
    where they are wholly in the image."""
    sv, (h, w) = result.seed_view, series.images.shape[1:]
    border = max(32 * max(w, h) / 1024, series.bead_diameter_px)
    xy = series.true_xy[sv]
    inner = (xy[:, 0] >= border) & (xy[:, 1] >= border) & (xy[:, 0] <= w - 1 - border) & (xy[:, 1] <= h - 1 - border)
    beads = np.flatnonzero(series.isolated(sv) & series.visible[sv] & inner)
    got = np.zeros(series.visible.shape, bool)
    for bead, sel, d in matched(series, result):
        got[result.markers.view[sel][d <= 2.0], bead] = True
    return np.mean([(got[:, b] & series.visible[:, b]).sum() >= 0.9 * series.visible[:, b].sum() for b in beads])


@pytest.fixture(scope="module")
def tracked():
    out = {}
    for kind in TARGETS:
        s = make_bead_series(kind, 256, 41, seed=3)
        out[kind] = (s, track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, tilt_axis_deg=s.tilt_axis_deg))
    return out


@pytest.mark.parametrize("kind", list(TARGETS))
def test_recall_false_points_and_error(tracked, kind):
    s, r = tracked[kind]
    min_recall, max_median = TARGETS[kind]
    d = np.concatenate([m[2] for m in matched(s, r)])
    assert recall(s, r) >= min_recall
    assert np.mean(d > 2.0) <= 0.01
    assert np.median(d[d <= 2.0]) <= max_median
    assert r.alignment is not None and r.alignment.rms_residual_px < 2 * max_median + 0.1


def test_result_tables_are_consistent(tracked, tmp_path):
    s, r = tracked["plastic"]
    t = r.markers
    assert len(t.view) == len(t.marker) == len(t.xy) == len(r.residual_px) == len(r.flagged) == len(r.weak)
    assert np.all(np.isfinite(t.xy)) and t.image_size == (256, 256)
    q = r.quality
    assert np.array_equal(q.marker, np.unique(t.marker))
    assert np.array_equal(q.n_views, np.bincount(t.marker)[1:])
    assert np.all((q.fraction > 0) & (q.fraction <= 1)) and np.all(q.elongation < 1.4)
    assert np.nanmedian(q.mean_residual_px) < 0.2 and np.all(q.contrast > 0)
    assert set(np.sign(q.z_px[np.isfinite(q.z_px)])) == {-1.0, 1.0}  # both surfaces
    # what `align` reads: the table aligns as it is
    al = align_markers(t.view, t.marker, t.xy, s.tilt_angles_deg, (256, 256), warn=False)
    assert al.rms_residual_px < 0.2
    for name in ("m.csv", "m.fid"):
        write_tracked_markers(tmp_path / name, r, n_views=41)
        back = read_markers(tmp_path / name)
        order = np.lexsort((back.view, back.marker))
        assert np.allclose(back.xy[order], t.xy, atol=1e-3) and np.array_equal(back.marker[order], t.marker)
    write_bead_quality_csv(tmp_path / "q.csv", r)
    assert (tmp_path / "q.csv").read_text().count("\n") == r.n_beads + 1
    assert "beads" in r.summary()


def test_large_jumps_are_followed(tracked):
    """Single views moved by a tenth of the field (stage backlash) are tracked like their neighbours."""
    s, r = tracked["hard"]
    assert len(s.scene.jump_views) == 2
    for j in s.scene.jump_views:
        rows = np.flatnonzero(r.markers.view == j)
        d = [np.min(np.hypot(*(s.true_xy[j] - xy).T)) for xy in r.markers.xy[rows]]
        assert len(rows) >= 0.8 * r.n_beads and max(d) < 1.0


def test_crossing_tracks_stay_on_their_beads(tracked):
    s, r = tracked["hard"]
    a, b = s.scene.crossing[0]
    tracks = {bead: (sel, d) for bead, sel, d in matched(s, r)}
    for bead in (a, b):
        assert bead in tracks
        sel, d = tracks[bead]
        assert np.all(d < 1.0)  # never swapped onto the other bead
        assert len(sel) >= 0.8 * s.visible[:, bead].sum()


def test_clumps_are_not_tracked(tracked):
    s, r = tracked["hard"]
    assert {bead for bead, _, _ in matched(s, r)}.isdisjoint(np.flatnonzero(s.clump >= 0))
    c = r.candidates
    in_clump = np.hypot(*(c.xy[:, None] - s.true_xy[r.seed_view][s.clump >= 0]).transpose(2, 0, 1)).min(1) < 2
    assert np.all(c.clustered[in_clump & c.above] | c.elongated[in_clump & c.above])


def test_beads_leaving_the_field_get_no_points_outside(tracked):
    s, r = tracked["hard"]
    for bead, sel, _ in matched(s, r):
        views = r.markers.view[sel]
        assert np.all(s.visible[views, bead] | (r.residual_px[sel] < 1.0))
        xy = r.markers.xy[sel]
        assert np.all((xy >= 0) & (xy <= 255))


def test_hot_pixels_and_carbon_edge_do_not_make_false_points(tracked):
    s, r = tracked["hard"]
    assert s.scene.params["hot_pixels"] > 0 and s.scene.params["carbon"] > 0
    d = np.concatenate([m[2] for m in matched(s, r)])
    assert np.mean(d > 2.0) == 0.0
    assert np.percentile(d, 95) < 0.3


def test_unknown_axis_and_target_number(tracked):
    s, _ = tracked["plastic"]
    r = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, n_beads=10)
    assert abs(r.alignment.tilt_axis_deg - s.tilt_axis_deg) < 0.5
    assert r.n_beads == 10
    z = r.quality.z_px
    assert (z > 0).sum() >= 4 and (z < 0).sum() >= 4  # both surfaces
    assert recall(s, r) < 1.0  # only the chosen ten
    assert all(np.all(m[2] < 1.0) for m in matched(s, r))


def test_given_seeds_progress_and_cancel(tracked):
    s, _ = tracked["cryo"]
    sv = int(np.argmin(np.abs(s.tilt_angles_deg)))
    seeds = s.true_xy[sv, s.isolated(sv) & s.visible[sv]][:4] + 0.4
    stages = []
    r = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, seeds_xy=seeds,
                    progress=lambda stage, done, total, text: stages.append(stage))
    assert r.candidates is None and r.n_beads == 4
    assert {"coarse", "track", "fill gaps", "fit"} <= set(stages)
    calls = []
    with pytest.raises(Cancelled):
        track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, should_stop=lambda: len(calls) > 5,
                    progress=lambda *a: calls.append(a))


def test_texture_without_gold_is_a_clear_error():
    """A dip in the stain's own strengths is not taken for beads: gold of one size is uniformly dark."""
    s = make_bead_series("plastic", 256, 5, seed=1, beads_per_mpx=0.0)
    with pytest.raises(BeadFindingError, match="no dip in the bead-strength histogram|too much for gold"):
        track_beads(s.images, s.tilt_angles_deg, 5.0)


def test_no_dip_is_a_clear_error():
    noise = np.random.default_rng(0).normal(1000.0, 30.0, (5, 128, 128)).astype(np.float32)
    with pytest.raises(BeadFindingError, match="no dip in the bead-strength histogram|too much for gold"):
        track_beads(noise, np.linspace(-20, 20, 5), 5.0)


def test_bad_input_messages():
    s = make_bead_series("plastic", 64, 5, seed=1)
    with pytest.raises(ValueError, match="tilt angles for a stack of 5 views"):
        track_beads(s.images, s.tilt_angles_deg[:3], 5.0)
    with pytest.raises(ValueError, match="bead diameter"):
        track_beads(s.images, s.tilt_angles_deg, 40.0)
    with pytest.raises(ValueError, match="3-D"):
        track_beads(s.images[0], s.tilt_angles_deg, 5.0)


def test_memory_mapped_stack_gives_the_same_markers(tracked, tmp_path):
    import mrcfile

    from napari_tomoalign.io.checked_stack import CheckedStack
    from napari_tomoalign.io.mrc import open_tilt_series

    s, r = tracked["cryo"]
    path = tmp_path / "s.mrc"
    with mrcfile.new(path) as m:
        m.set_data(s.images)
    ts = open_tilt_series(path, strict_tilts=False)
    assert isinstance(ts.data, CheckedStack) and not ts.data.flags.owndata  # the file's map, read view by view
    r2 = track_beads(ts.data, s.tilt_angles_deg, s.bead_diameter_px, tilt_axis_deg=s.tilt_axis_deg)
    assert np.array_equal(r2.markers.view, r.markers.view)
    assert np.allclose(r2.markers.xy, r.markers.xy)


def test_stack_order_and_polarity_do_not_matter(tracked):
    """Views in dose-symmetric acquisition order, and bright beads (dark=False), track as well."""
    s, r = tracked["plastic"]
    order = np.argsort(np.abs(s.tilt_angles_deg) + 0.1 * (s.tilt_angles_deg < 0), kind="stable")
    r2 = track_beads(s.images[order], s.tilt_angles_deg[order], s.bead_diameter_px, tilt_axis_deg=s.tilt_axis_deg)
    assert r2.n_beads == r.n_beads and len(r2.markers) >= 0.98 * len(r.markers)
    back = order[r2.markers.view]
    d = [np.min(np.hypot(*(s.true_xy[v] - xy).T)) for v, xy in zip(back, r2.markers.xy)]
    assert np.max(d) < 1.0 and np.median(d) < 0.1
    bright = (s.images.max() - s.images).astype(np.float32)
    r3 = track_beads(bright, s.tilt_angles_deg, s.bead_diameter_px, tilt_axis_deg=s.tilt_axis_deg, dark=False)
    assert recall(s, r3) >= 0.95 and np.median(np.concatenate([m[2] for m in matched(s, r3)])) < 0.15
