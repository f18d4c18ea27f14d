"""The dock's bead step under Xvfb on simulated bead series with known truth: Find beads puts its rings on the
true beads in the world (nm-scaled, translated layers), edited rings are what Track follows, Track fills a
markers layer that Align solves, Cancel changes nothing, and triage visits the points to check first."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look

from napari_tomoalign._napari.dock import bead_logic  # noqa: E402
from napari_tomoalign._napari.dock.bead_jobs import track_job  # noqa: E402
from napari_tomoalign._napari.dock.logic import CHECK_RGBA  # noqa: E402
from napari_tomoalign._napari.dock.results import PREDICTED  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.simulation.beads import make_bead_series  # noqa: E402

WAIT_MS = 600_000
TRANSLATE_NM = (0.0, 40.0, -25.0)  # a stack placed off the origin: world = pixels x scale + translate
SERIES = {}


def series(kind):
    """Cryo-like: 10 nm gold at 0.8 nm/px; plastic-like: 5 px beads at 1.6 nm/px (8 nm gold)."""
    if kind not in SERIES:
        SERIES[kind] = (make_bead_series("cryo", size=320, n_views=31, seed=3) if kind == "cryo"
                        else make_bead_series(kind, size=256, n_views=31, seed=1, pixel_size_nm=1.6))
    return SERIES[kind]


@pytest.fixture
def dock(make_napari_viewer):
    made = []

    def open_series(kind):
        s = series(kind)
        viewer = make_napari_viewer()
        p = s.pixel_size_nm
        image = viewer.add_image(s.images, name=f"{kind}.st", scale=(1.0, p, p), translate=TRANSLATE_NM,
                                 metadata={"pixel_size_nm": p, "tilt_angles_deg": s.tilt_angles_deg,
                                           "tilt_source": f"{kind}.rawtlt"})
        widget = AlignWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Align tilt series")
        first_look()
        widget.beads.diameter_nm.value = s.bead_diameter_px * p
        made.append(widget)
        return s, viewer, image, widget

    yield open_series
    for w in made:
        w.teardown()


def wait(qtbot, widget, started):
    assert started is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def world_xy(layer, data):
    """(x, y) in nm of points (view, y, x) of ``layer``, through its scale and translate."""
    w = np.asarray(data, float) * np.asarray(layer.scale) + np.asarray(layer.translate)
    return w[:, [2, 1]]


def truth_world(s, view):
    p = s.pixel_size_nm
    return s.true_xy[view] * p + np.array([TRANSLATE_NM[2], TRANSLATE_NM[1]])


@pytest.mark.parametrize("kind", ["cryo", "plastic"])
def test_find_beads_rings_sit_on_the_true_beads_in_the_world(qtbot, dock, kind):
    s, viewer, image, widget = dock(kind)
    assert widget.steps[1].title == "Find and track beads" and widget.steps[1].expanded  # no markers yet: open
    view = int(np.argmin(np.abs(s.tilt_angles_deg)))
    assert widget.beads.view.value == view + 1 and widget.beads.view_chosen() == view  # nearest 0 deg, from 1
    assert f"{s.bead_diameter_px:.1f} px" in widget.beads.info.value
    wait(qtbot, widget, widget.beads.find())
    layer = widget.beads.candidates
    assert layer is not None and layer in viewer.layers and viewer.dims.current_step[0] == view
    d_nm = s.bead_diameter_px * s.pixel_size_nm
    # The ring is 1.5 bead diameters across in the world (its size is in the layer's pixels), at the diameter
    # measured on the view (near the true one given here)
    measured_nm = widget.beads.candidates.metadata["bead_diameter_px"] * s.pixel_size_nm
    np.testing.assert_allclose(np.asarray(layer.size) * layer.scale[-1], 1.5 * measured_nm, rtol=1e-6)
    assert abs(measured_nm / d_nm - 1.0) < 0.1
    found, true = world_xy(layer, layer.data), truth_world(s, view)
    dist = np.hypot(*(found[:, None, :] - true[None, :, :]).transpose(2, 0, 1))
    margin = s.bead_diameter_px / 2 + 6  # the finder skips the borders, as IMOD's does
    ny, nx = s.images.shape[1:]
    xy = s.true_xy[view]
    inner = (xy[:, 0] > margin) & (xy[:, 0] < nx - 1 - margin) & (xy[:, 1] > margin) & (xy[:, 1] < ny - 1 - margin)
    wanted = s.visible[view] & s.isolated(view) & inner
    assert wanted.sum() >= 8
    assert np.all(dist[:, wanted].min(axis=0) < 0.2 * d_nm)  # every clear bead has its ring, centred
    assert np.all(dist.min(axis=1) < 0.3 * d_nm)  # and no ring sits off a bead
    assert np.all(np.asarray(layer.face_color)[:, 3] == 0)  # hollow
    assert layer.name == f"{kind}.st beads?"  # short enough for the layer list
    assert "strength" in widget.beads.legend.value and "threshold" in widget.beads.legend.value


def test_find_again_on_another_view_updates_the_rings_in_place(qtbot, dock):
    s, viewer, image, widget = dock("plastic")
    wait(qtbot, widget, widget.beads.find())
    layer, n_layers = widget.beads.candidates, len(viewer.layers)
    other = widget.beads.view_chosen() - 4
    widget.beads.view.value = other + 1  # views are numbered from 1, as in 3dmod
    assert f"view {other + 1} at {s.tilt_angles_deg[other]:.1f} deg" in widget.beads.info.value
    wait(qtbot, widget, widget.beads.find())
    assert widget.beads.candidates is layer and len(viewer.layers) == n_layers  # no layer added or removed
    assert np.all(np.round(layer.data[:, 0]) == other) and viewer.dims.current_step[0] == other
    assert layer.metadata["view"] == other and len(layer.features) == len(layer.data) == len(layer.symbol)
    found, true = world_xy(layer, layer.data), truth_world(s, other)
    dist = np.hypot(*(found[:, None, :] - true[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert np.all(dist < 0.3 * s.bead_diameter_px * s.pixel_size_nm)


@pytest.mark.parametrize(("kind", "max_error_px"), [("plastic", 0.15), ("cryo", 0.45)])
def test_edited_rings_are_what_is_tracked_and_align_solves_them(qtbot, dock, kind, max_error_px):
    s, viewer, image, widget = dock(kind)
    view = widget.beads.view_chosen()
    wait(qtbot, widget, widget.beads.find())
    layer = widget.beads.candidates
    true = s.true_xy[view]
    # Keep five rings, delete the rest, and click one bead that no kept ring covers.
    keep = np.arange(5)
    layer.selected_data = set(range(5, len(layer.data)))
    layer.remove_selected()
    kept_xy = layer.data[:, [2, 1]]
    near = np.hypot(*(kept_xy[:, None, :] - true[None]).transpose(2, 0, 1)).argmin(axis=1)
    free = [b for b in np.flatnonzero(s.visible[view] & s.isolated(view)) if b not in near]
    added = int(free[0])
    layer.add([[view, true[added, 1] + 0.4, true[added, 0] - 0.3]])
    assert tuple(np.asarray(layer.border_color)[-1]) == (1.0, 1.0, 1.0, 1.0)  # added by the user: white
    chosen = sorted([*near[keep].tolist(), added])
    wait(qtbot, widget, widget.beads.track())
    markers = widget.inputs.markers.value
    assert markers is not None and markers is not layer and "tracked" in markers.name
    assert tuple(markers.scale) == tuple(image.scale) and tuple(markers.translate) == tuple(image.translate)
    ids = markers.features["marker"].to_numpy()
    assert len(np.unique(ids)) == 6  # exactly the edited rings
    v = np.round(markers.data[:, 0]).astype(int)
    # Which true bead each marker follows, from its seed-view point: the kept and the added beads.
    followed = []
    for m in np.unique(ids):
        k = np.flatnonzero((ids == m) & (v == view))[0]
        followed.append(int(np.hypot(*(markers.data[k, [2, 1]] - true).T).argmin()))
    assert sorted(followed) == chosen
    err = [np.hypot(*(markers.data[ids == m][:, [2, 1]] - s.true_xy[v[ids == m], b]).T)
           for m, b in zip(np.unique(ids), followed)]
    assert np.median(np.concatenate(err)) < max_error_px and len(v) >= 0.9 * 6 * len(s.tilt_angles_deg)
    # Align reads the tracked layer as it reads any markers layer.
    wait(qtbot, widget, widget.start_alignment())
    assert widget.status.text().startswith("done"), widget.status.text()
    assert widget.runs.last.alignment.rms_residual_px < max_error_px
    assert widget.runs.markers is markers


def test_clumps_are_squares_and_seeds_only_when_asked(qtbot, dock):
    s, viewer, image, widget = dock("hard")
    wait(qtbot, widget, widget.beads.find())
    layer = widget.beads.candidates
    clump = layer.features["clump"].to_numpy()
    assert clump.any() and not clump.all()
    assert all(str(sym).lower().endswith("square") == c for sym, c in zip(layer.symbol, clump))
    # The squares sit on the simulated clumps.
    found = layer.data[clump][:, [2, 1]]
    in_clump = s.clump >= 0
    near = np.hypot(*(found[:, None, :] - s.true_xy[widget.beads.view_chosen()][in_clump][None]).transpose(2, 0, 1))
    assert np.median(near.min(axis=1)) < 1.5 * s.bead_diameter_px
    assert len(widget.beads.gather()["seeds_xy"]) == (~clump).sum()
    assert widget.beads.gather()["clumps"] == "skip"
    widget.beads.with_clumps.value = True
    job = widget.beads.gather()
    assert len(job["seeds_xy"]) == len(clump)
    assert job["clumps"] == "track"  # the tracking job tracks the clumps' beads too, as --clumps track


def test_track_job_passes_clumps_to_the_tracker(monkeypatch):
    from napari_tomoalign.tracking import pipeline

    seen = {}

    def fake_track(stack, tilts, d, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(pipeline, "track_beads", fake_track)
    for clumps in ("skip", "track"):
        value, error = track_job(stack=np.zeros((3, 8, 8)), tilts=np.zeros(3), diameter_px=4.0,
                                 tilt_axis_deg=None, seed_view=1, seeds_xy=None, threads=1,
                                 progress=lambda *a: None, should_stop=lambda: False, clumps=clumps)
        assert value is None and str(error) == "stop here"
        assert seen["clumps"] == clumps


def test_cancel_tracking_leaves_the_layers_alone(qtbot, dock):
    s, viewer, image, widget = dock("plastic")
    before = [ly.name for ly in viewer.layers]
    widget.beads.track()
    widget.beads.runner.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("cancelled"), widget.status.text()
    assert [ly.name for ly in viewer.layers] == before and widget.inputs.markers.value is None
    assert widget.beads.runner.align_button.enabled and widget.runner.align_button.enabled
    # Without rings, Track finds the beads itself; rings marked '?' show where its model puts untracked beads.
    wait(qtbot, widget, widget.beads.track())
    markers = widget.inputs.markers.value
    assert markers is not None and len(markers.data) > 100
    predicted = viewer.layers[PREDICTED]
    assert predicted.visible and tuple(predicted.scale) == tuple(image.scale)
    assert viewer.layers.index(predicted) < viewer.layers.index(markers)  # under the markers
    # The '?' labels sit off their rings, down and left; the markers' ids up and right: neither covers a ring.
    ring = float(np.median(predicted.size))
    shift = np.asarray(predicted.text.translation)[-2:]
    assert shift[0] > ring / 2 and shift[1] < -ring / 2
    assert np.asarray(markers.text.translation)[-1] > float(np.median(markers.size)) / 2
    if len(predicted.data):
        v = np.round(predicted.data[:, 0]).astype(int)
        ids, seed = predicted.features["marker"].to_numpy(), widget.beads.view_chosen()
        mids, mv = markers.features["marker"].to_numpy(), np.round(markers.data[:, 0]).astype(int)
        bead = {m: int(np.hypot(*(markers.data[(mids == m) & (mv == seed)][0, [2, 1]] - s.true_xy[seed]).T).argmin())
                for m in np.unique(ids)}
        err = [np.hypot(*(predicted.data[k, [2, 1]] - s.true_xy[v[k], bead[m]])) for k, m in enumerate(ids)]
        assert np.median(err) < 1.0


def test_input_errors_say_what_to_do_and_change_nothing(qtbot, dock):
    s, viewer, image, widget = dock("plastic")
    wait(qtbot, widget, widget.beads.find())
    layer = widget.beads.candidates
    layer.selected_data = set(range(2, len(layer.data)))
    layer.remove_selected()
    before = [ly.name for ly in viewer.layers]
    assert widget.beads.track() is None
    assert "keep at least 3 rings" in widget.status.text() and "there are 2" in widget.status.text()
    image.metadata["pixel_size_nm"] = None
    image.scale = (1.0, 1.0, 1.0)
    assert widget.beads.find() is None and "records no pixel size" in widget.status.text()
    assert "records no pixel size" in widget.beads.describe()
    assert [ly.name for ly in viewer.layers] == before and not widget.busy


def test_cancel_finding_shows_no_rings(qtbot, dock):
    s, viewer, image, widget = dock("cryo")
    widget.beads.find()
    widget.beads.runner.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("cancelled") and widget.beads.candidates is None
    assert len(viewer.layers) == 1 and widget.beads.find_button.enabled


def test_triage_visits_points_to_check_first(qtbot, dock):
    s, viewer, image, widget = dock("plastic")
    # A tracking result whose weak points we know: every point of view 3 and marker 2's point in view 20.
    from napari_tomoalign.tracking.pipeline import track_beads

    result = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, seed_view=widget.beads.view_chosen())
    t = result.markers
    weak = (t.view == 3) | ((t.view == 20) & (t.marker == 2))
    result = replace(result, weak=weak, flagged=np.zeros(len(t), bool), residual_px=np.full(len(t), 0.1))
    layer = widget.beads.add_markers_layer(result, image)
    assert widget.inputs.markers.value is layer and widget.runs.markers is layer
    check = layer.features["check"].to_numpy()
    assert check.sum() == weak.sum() > 0
    np.testing.assert_allclose(np.asarray(layer.border_color)[check], [CHECK_RGBA] * int(check.sum()))
    seen = []
    for _ in range(int(weak.sum())):
        k, _view = widget.triage.go_to_next_residual()
        assert layer.selected_data == {k} and check[k]
        seen.append(k)
    assert len(set(seen)) == weak.sum() and "weak" in widget.status.text()
    k, _view = widget.triage.go_to_next_residual()
    assert not check[k]  # then the others
    # Move to predicted uses tracking's own alignment until the first Align.
    view, marker = int(round(layer.data[k, 0])), int(layer.features["marker"].iloc[k])
    al = result.alignment
    assert widget.triage.move_selected_to_predicted() == 1
    np.testing.assert_allclose(layer.data[k, [2, 1]], al.predicted_xy_px[view, list(al.marker_ids).index(marker)])
    # After Align, points tracking marked still come right after the robust fit's flagged ones.
    widget.inputs.markers.value = layer
    wait(qtbot, widget, widget.start_alignment())
    notes = [visit.note for visit in widget.runs.visits]
    marked = [i for i, n in enumerate(notes) if n == "marked by tracking"]
    assert len(marked) == weak.sum() and marked == list(range(marked[0], marked[0] + len(marked)))
    assert all(n == "flagged" for n in notes[: marked[0]])


def test_bead_logic_colours_seeds_and_progress():
    import colorsys

    c = bead_logic.strength_colors(np.array([0.4, 0.7, 1.0, 2.0, 0.1]), 0.4)
    hue = [colorsys.rgb_to_hsv(*rgb)[0] for rgb in c[:, :3]]
    np.testing.assert_allclose(hue, [0.0, 0.26, 0.52, 0.52, 0.0], atol=1e-6)  # red at the threshold, cyan from 1
    assert np.all(c.min(axis=1) < 0.9)  # never white: white is a ring the user added
    data = np.array([[5, 10, 20], [5, 11, 21], [4, 1, 2], [5, 30, 40]], float)
    xy, elsewhere = bead_logic.seeds_from_points(data, 5, np.array([False, True, False, False]))
    np.testing.assert_array_equal(xy, [[20, 10], [40, 30]])
    assert elsewhere == 1 and len(bead_logic.seeds_from_points(data, 5, None)[0]) == 3
    steps = [("coarse", 5, 31), ("find", 1, 1), ("track", 2, 31), ("track", 31, 31), ("fill gaps", 31, 31),
             ("fit", 1, 1)]
    percents = [bead_logic.tracking_percent(*st) for st in steps]
    assert percents == sorted(percents) and percents[-1] == 100
    visits = bead_logic.visit_order(np.array([0, 1, 2, 3]), np.array([1, 1, 2, 2]), np.array([0.5, np.nan, 2.0, 0.1]),
                                    np.array([1, 1, 0, 1]), {0: "flagged"})
    assert [(v.view, v.note) for v in visits] == [(2, "flagged"), (1, ""), (0, ""), (3, "")]
    assert bead_logic.nearest_zero_view(np.array([-30.0, -1.0, 2.0])) == 1
    counts = np.random.default_rng(0).poisson(20.0, (5, 64, 64)).astype(np.float32)
    counts[2] = 20.0  # the 0-degree view blank: the dock offers the next, as the command line finds on
    assert bead_logic.nearest_zero_view(np.array([-12.0, -6.0, 0.0, 6.0, 12.0]), counts) == 1


def test_a_wrong_diameter_is_named_in_the_dock_as_on_the_command_line(qtbot, make_napari_viewer):
    """The dock's Track measures the diameter first, as ``tomoalign track`` does (new user's finding, session 9:
    7 nm for 10 nm gold tracked 11 of 32 beads in the dock): 30% off tracks as the true diameter does; half of it
    is refused with the measure to enter, in the dock's words."""
    s = make_bead_series("cryo", size=384, n_views=31, seed=3)
    viewer = make_napari_viewer()
    p = s.pixel_size_nm
    viewer.add_image(s.images, name="c.st", scale=(1.0, p, p), metadata={
        "pixel_size_nm": p, "tilt_angles_deg": s.tilt_angles_deg, "tilt_source": "c.rawtlt"})
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        true_nm = s.bead_diameter_px * p
        tracked = {}
        for factor in (1.0, 0.7):
            widget.beads.diameter_nm.value = round(factor * true_nm, 1)
            wait(qtbot, widget, widget.beads.track())
            markers = [ly for ly in viewer.layers if ly.name.endswith("tracked")]
            assert markers, widget.status.text()
            tracked[factor] = len(np.unique(markers[-1].features["marker"]))
            viewer.layers.remove(markers[-1])
        assert tracked[0.7] >= 0.95 * tracked[1.0], tracked
        widget.beads.diameter_nm.value = round(0.5 * true_nm, 1)
        wait(qtbot, widget, widget.beads.track())
        text = widget.status.text()
        assert "set 'bead diameter (nm)' to" in text and "--bead-diameter" not in text, text
        suggested = float(text.rsplit(" ", 1)[1])
        assert abs(suggested - true_nm) < 0.1 * true_nm
    finally:
        widget.teardown()


def test_find_beads_measures_the_diameter_as_track_does(qtbot, dock):
    """Find beads then Track is the dock's usual path (new user's finding, session 10: 7 nm for 10 nm gold found
    13 of 32 beads, 20 nm drew every bead as a clump): the view is measured first, a diameter 30% off finds what
    the true one finds and the spin box takes the measure; twice the size is refused with the measure to enter."""
    s, viewer, image, widget = dock("cryo")
    true_nm = s.bead_diameter_px * s.pixel_size_nm
    found = {}
    for factor in (1.0, 0.7, 1.3):
        widget.beads.diameter_nm.value = round(factor * true_nm, 1)
        wait(qtbot, widget, widget.beads.find())
        layer = widget.beads.candidates
        found[factor] = int((~layer.features["clump"].to_numpy(dtype=bool)).sum())
        if factor != 1.0:
            assert abs(widget.beads.diameter_nm.value / true_nm - 1.0) < 0.1, widget.status.text()
            assert "'bead diameter (nm)' is set to the measure" in widget.status.text()
    assert found[0.7] >= 0.95 * found[1.0] and found[1.3] >= 0.95 * found[1.0], found
    widget.beads.diameter_nm.value = round(2.0 * true_nm, 1)
    before = widget.beads.candidates.data.copy()
    wait(qtbot, widget, widget.beads.find())
    text = widget.status.text()
    assert "set 'bead diameter (nm)' to" in text and "--bead-diameter" not in text, text
    assert abs(float(text.rsplit(" ", 1)[1]) / true_nm - 1.0) < 0.1
    np.testing.assert_array_equal(widget.beads.candidates.data, before)  # the rings are as they were


def test_track_job_warns_of_beads_that_fit_no_specimen(monkeypatch):
    """New user's finding (session 13): with a tilt file in SerialEM's order of acquisition beside a sorted stack,
    the dock's Track said "median track 16 views" in the normal colour; `run` refuses there, and the dock warns."""
    from types import SimpleNamespace

    from napari_tomoalign.tracking import pipeline

    n = 41
    zero = 20
    acquisition = np.arange(-60.0, 61.0, 3.0)[[zero] + [v for k in range(1, 21) for v in (zero + k, zero - k)]]
    fit = SimpleNamespace(rms_residual_px=7.9, tilt_angles_deg=acquisition + 2.0, view_determined=np.ones(n, bool))
    tracked = SimpleNamespace(alignment=fit, n_beads=93, quality=SimpleNamespace(n_views=np.full(93, 16)),
                              residual_px=np.full(1496, 4.5),
                              bead_diameter_px=20.0, markers=SimpleNamespace(image_size=(1024, 1024)), seed_view=20,
                              warnings=[])
    monkeypatch.setattr(pipeline, "track_beads", lambda *a, **kw: tracked)
    value, error = track_job(stack=np.zeros((n, 64, 64), np.float32), tilts=acquisition, diameter_px=20.0,
                             tilt_axis_deg=None, seed_view=20, seeds_xy=None, threads=1, progress=lambda *a: None,
                             should_stop=lambda: False)
    assert error is None and value[0] is tracked
    assert tracked.warnings == ["warning: the tracked beads do not fit one specimen (median residual 4.50 px, RMS 7.90"
                                " px, median track 16 of 41 views); the tilt file is not in order of tilt (SerialEM's"
                                " order of acquisition, beside a stack sorted by tilt?): check that the tilt file holds"
                                " the tilt angles of this tilt series in its order, and the bead diameter"]


def test_a_failed_find_leaves_an_empty_rings_layer_to_click_seeds_into(qtbot, dock, monkeypatch):
    """New user s14: when Find beads cannot tell the beads from the stain, the user is left with no layer to click
    seeds into; now an empty rings layer on the view, in add mode, and Track follows the beads clicked there."""
    from napari_tomoalign._napari.dock import bead_find as dock_beads
    from napari_tomoalign.tracking.beads import BeadFindingError

    def no_dip(**job):  # as find_job gives an expected failure: as a value
        return None, BeadFindingError("no dip in the bead-strength histogram separates beads from other peaks")

    monkeypatch.setattr(dock_beads, "find_job", no_dip)
    s, viewer, image, widget = dock("cryo")
    view = widget.beads.view_chosen()
    wait(qtbot, widget, widget.beads.find())
    layer = widget.beads.candidates
    assert layer is not None and len(layer.data) == 0 and layer.visible and layer.mode == "add"
    assert viewer.layers.selection.active is layer and "click at least 3 beads" in widget.status.text()
    beads = np.flatnonzero(s.visible.all(axis=0) & (s.scene.clump < 0))[:4]
    for b in beads:  # the clicks, in the layer's data frame (view, y, x)
        layer.add([view, *s.true_xy[view, b][::-1]])
    wait(qtbot, widget, widget.beads.track())
    markers = widget.inputs.markers.value
    assert markers is not None and len(np.unique(markers.features["marker"])) == len(beads)


def test_bright_beads_are_found_and_tracked_with_the_polarity_choice(qtbot, make_napari_viewer):
    """New user s14: HAADF-STEM series (bright gold) could not be tracked in the dock, which had no polarity choice."""
    s = series("cryo")
    viewer = make_napari_viewer()
    p = s.pixel_size_nm
    bright = (s.images.max() + 10.0 - s.images).astype(np.float32)
    viewer.add_image(bright, name="stem.st", scale=(1.0, p, p),
                     metadata={"pixel_size_nm": p, "tilt_angles_deg": s.tilt_angles_deg, "tilt_source": "stem.rawtlt"})
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        widget.beads.diameter_nm.value = s.bead_diameter_px * p
        widget.beads.polarity.value = "bright"
        view = widget.beads.view_chosen()
        wait(qtbot, widget, widget.beads.find())
        rings = widget.beads.candidates
        assert rings is not None and len(rings.data) >= 5, widget.status.text()
        truth = s.true_xy[view][s.visible[view]]
        d = np.hypot(*(rings.data[:, [2, 1]][:, None, :] - truth[None]).transpose(2, 0, 1)).min(axis=1)
        assert np.median(d) < 0.5
        wait(qtbot, widget, widget.beads.track())
        assert widget.inputs.markers.value is not None and "tracked" in widget.status.text(), widget.status.text()
    finally:
        widget.teardown()
