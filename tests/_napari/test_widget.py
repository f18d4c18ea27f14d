"""The Align dock in a real viewer under Xvfb, end to end: align the sample, the layers of each
frame, triage, cancel, errors, compare on one grid, save, and closing the dock mid-run."""

import gc
import json

import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look

from napari_tomoalign._napari.dock.compare import bead_section  # noqa: E402
from napari_tomoalign._napari.dock.results import ALIGNED, ALIGNED_MARKERS, PREDICTED  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.alignment.options import AlignmentOptions  # noqa: E402
from napari_tomoalign.conventions import view_number  # noqa: E402
from napari_tomoalign.jobs.align import run_align_job, surface_analysis  # noqa: E402
from napari_tomoalign.reconstruction.compare import slice_correlations  # noqa: E402

WAIT_MS = 600_000


def no_second_viewer(*_, **__):
    raise AssertionError("a second napari viewer aborts napari on software OpenGL: the dock must never open one")


@pytest.fixture
def sample_viewer(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.open_sample("napari-tomoalign", "beads")
    # As Plugins > TomoAlign > Align tilt series does it: napari builds the widget and passes its viewer.
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    assert isinstance(widget, AlignWidget)
    yield viewer, widget
    widget.teardown()


def run(qtbot, widget):
    worker = widget.start_alignment()
    assert worker is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    return worker


def test_align_the_sample_adds_result_layers_in_their_frames(qtbot, sample_viewer, tmp_path):
    viewer, widget = sample_viewer
    image, markers = viewer.layers["sample tilt series"], viewer.layers["sample markers"]
    sample = image.metadata["sample"]
    assert widget.inputs.image.value is image and widget.inputs.markers.value is markers
    assert "61 angles" in widget.inputs.tilt_source.value and "simulated" in widget.inputs.tilt_source.value
    assert widget.options.robust_scale.value == AlignmentOptions().robust_scale
    assert not widget.steps[1].expanded  # the markers are there: the bead step starts folded
    run(qtbot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()
    assert gc.isenabled()  # held off only while the run was being shown
    # Raw frame: the stack, its overlays, and the markers on top and active; the aligned frame hidden.
    names = [ly.name for ly in viewer.layers]
    # The residual arrows on top (never hidden under the rings), the markers just under them and active.
    assert names[-2:] == ["sample markers", "residuals x10"] and viewer.layers.selection.active is markers
    shown = {ly.name: ly.visible for ly in viewer.layers}
    assert shown == {"sample tilt series": True, "sample markers": True, "residuals x10": True, PREDICTED: True,
                     ALIGNED: False, ALIGNED_MARKERS: False}
    for name in ("residuals x10", PREDICTED, ALIGNED, ALIGNED_MARKERS):
        assert tuple(viewer.layers[name].scale) == tuple(image.scale), name
    al = widget.runs.last.alignment
    assert 0.3 < al.rms_residual_px < 0.55  # click noise 0.3 px per coordinate, plus the one mis-click
    vectors = viewer.layers["residuals x10"].data
    np.testing.assert_allclose(vectors[:, 1, 1:], 10 * al.residuals_px[al.obs_used][:, ::-1])
    # Each arrow starts on its ring (half the ring's size out from the point, along the residual).
    start = vectors[:, 0, 1:] - al.obs_xy_px[al.obs_used][:, ::-1]
    np.testing.assert_allclose(np.hypot(*start.T), float(np.median(markers.size)) / 2, rtol=1e-6)
    assert widget.tables.solution.rowCount() == al.n_views and not widget.options_fold.expanded
    assert widget.steps[4].expanded
    predicted = viewer.layers[PREDICTED]
    v, m = predicted.data[:, 0].astype(int), predicted.features["marker"].to_numpy() - 1
    truth = sample.truth.true_xy
    err = np.hypot(predicted.data[:, 2] - truth[v, m, 0], predicted.data[:, 1] - truth[v, m, 1])
    assert len(err) > 50 and np.median(err) < 0.5  # gaps are filled where the beads really are
    # The report is the core's text report: RMS, the tilt axis, stages.
    assert "RMS residual" in widget.report.value and "tilt axis" in widget.report.value
    # And IMOD's surface analysis, as `tomoalign align` prints it for the same job and solution.
    folder = run_align_job(widget.runs.last.job.align, tmp_path / "align", alignment=al)
    assert folder.surfaces is not None and folder.surfaces.thickness_px is not None
    assert "Thickness at Z intercepts" in widget.report.value and folder.surfaces.report() in widget.report.value
    # Aligned frame: the aligned stack with the markers taken into it; the raw layers hidden.
    widget.results.frame.value = "aligned stack"
    assert viewer.layers[ALIGNED].visible and viewer.layers[ALIGNED_MARKERS].visible
    assert not markers.visible and not viewer.layers["residuals x10"].visible
    assert viewer.layers[ALIGNED].metadata["tilt_kind"] == "solved"
    ali = viewer.layers[ALIGNED].data
    pts = viewer.layers[ALIGNED_MARKERS].data
    k = np.flatnonzero(np.round(pts[:, 0]) == 30)
    # A bead is dark in the aligned view where its aligned marker is.
    y, x = np.round(pts[k, 1]).astype(int), np.round(pts[k, 2]).astype(int)
    ok = (y > 3) & (y < 508) & (x > 3) & (x < 508)
    assert np.median(ali[30][y[ok], x[ok]]) < np.median(ali[30]) - 0.05
    widget.results.frame.value = "raw stack"
    assert markers.visible and image.visible
    # Triage: the first "next big residual" is the mis-click, selected in its view.
    k, view = widget.triage.go_to_next_residual()
    assert k == sample.misclick and markers.selected_data == {k}
    assert viewer.dims.current_step[0] == view


def test_cancel_leaves_the_layers_alone(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    before = [ly.name for ly in viewer.layers]
    widget.start_alignment()
    widget.runner.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("cancelled")
    assert gc.isenabled()
    assert [ly.name for ly in viewer.layers] == before
    assert widget.runner.align_button.enabled and not widget.runner.cancel_button.enabled


def test_closing_the_dock_mid_run_restores_the_garbage_collector(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # napari's objects are out of the collector's sight while the dock is open
    widget.start_alignment()
    assert not gc.isenabled()  # held off while a run is under way
    viewer.window.remove_dock_widget(widget)
    assert gc.isenabled() and not widget.busy and gc.get_freeze_count() == 0
    # a worker's progress signal after the close reaches no deleted widget (new user's finding M, session 12)
    for runner in (widget.runner, widget.beads.runner):
        runner.progress.native.deleteLater()
    qtbot.wait(20)
    for runner in (widget.runner, widget.beads.runner):
        runner._on_progress("coarse", 2, 41, "coarse alignment: view 2 of 41")
        runner._closed = False  # napari's window closed without the dock's teardown: the deleted bar is caught too
        runner._last_progress = 0.0
        runner._on_progress("coarse", 3, 41, "coarse alignment: view 3 of 41")
        assert runner._closed


def test_input_errors_are_reported_and_nothing_changes(qtbot, sample_viewer, tmp_path):
    viewer, widget = sample_viewer
    markers = viewer.layers["sample markers"]
    before = markers.data.copy()
    bad = tmp_path / "short.tlt"
    bad.write_text("0\n1\n2\n")
    widget.inputs.tilt_file.value = bad
    assert widget.start_alignment() is None
    assert "3 tilt angles" in widget.status.text() and "61 views" in widget.status.text()
    widget.inputs.tilt_file.value = tmp_path / "missing.rawtlt"  # a mistyped name is an error, not ignored
    assert "no such tilt-angle file" in widget.inputs.tilt_source.value
    assert widget.start_alignment() is None and "no such tilt-angle file" in widget.status.text()
    assert gc.isenabled() and ALIGNED not in viewer.layers
    np.testing.assert_array_equal(markers.data, before)
    widget.inputs.tilt_file.value = ""
    viewer.layers.remove(markers)
    assert widget.start_alignment() is None and "choose a markers layer" in widget.status.text()


def test_compare_puts_both_tomograms_on_one_grid(qtbot, sample_viewer, tmp_path):
    viewer, widget = sample_viewer
    run(qtbot, widget)
    widget.options.every_view_only.value = True
    run(qtbot, widget)
    results = widget.runs.results
    assert set(results) == {"all markers", "markers in every view"}
    assert len(results["markers in every view"].markers_used) == 6
    assert results["all markers"].tomogram.shape[0] != results["markers in every view"].tomogram.shape[0]
    widget.comparison.compare_a.value, widget.comparison.compare_b.value = "markers in every view", "all markers"
    n_layers = len(viewer.layers)
    worker = widget.comparison.compare()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pass
    qtbot.waitUntil(lambda: len(widget.tomograms.shown) == 2)
    assert len(viewer.layers) == n_layers  # one canvas, nothing added
    (a, va, la, _), (b, vb, lb, _) = widget.tomograms.volumes
    assert a.shape == b.shape and va == vb == 2.0  # bin 2 of a 1 nm stack
    assert la.startswith("RMS ") and "markers in every view" in la
    assert lb.startswith("RMS ") and "all markers" in lb
    beads = bead_section(results["markers in every view"], a.shape[0])  # opened where a's beads are
    assert beads is not None and widget.tomograms.slider.value() == beads[0]
    assert not widget.tomograms.pixels(0).isNull() and not widget.tomograms.pixels(1).isNull()
    assert widget.steps[5].expanded and "on one grid" in widget.status.text()
    # Matching sections show the same plane of the specimen (120 px thick: 30 binned sections each side).
    mid = a.shape[0] // 2
    corr = slice_correlations(a[mid - 25 : mid + 25], b[mid - 25 : mid + 25])
    assert corr.min() >= 0.8, corr
    assert "[markers in every view]" in widget.report.value and "[all markers]" in widget.report.value
    # Saving writes what the command line writes, and refuses to overwrite, naming the checkbox.
    widget.saving.save_dir.value = tmp_path
    paths = widget.saving.save_alignment()
    assert {p.name for p in paths} >= {"alignment.json", "sample_tilt_series.xf", "sample_tilt_series.tlt"}
    assert widget.status.text().startswith("saved ")
    # alignment.json holds IMOD's surface analysis of the saved run, as `tomoalign align` writes it.
    last = widget.runs.last
    want = surface_analysis(last.job.align, last.alignment, last.axis_z_shift_px).as_dict()
    record = json.loads((tmp_path / "alignment.json").read_text())
    assert record["surface_analysis"] == json.loads(json.dumps(want))
    assert widget.saving.save_alignment() == []
    assert widget.status.text().startswith("not saved: ") and "already exists" in widget.status.text()
    widget.saving.overwrite.value = True
    assert widget.saving.save_alignment()
    # The buttons write in a worker: the same files, the same refusal, told on the GUI thread.
    widget.saving.overwrite.value = False
    widget.saving.save_button.changed.emit(True)
    qtbot.waitUntil(lambda: widget.saving.worker is None, timeout=WAIT_MS)
    assert widget.status.text().startswith("not saved: ") and "already exists" in widget.status.text()
    widget.saving.save_dir.value = tmp_path / "by_button"
    (tmp_path / "by_button").mkdir()
    widget.saving.save_button.changed.emit(True)
    qtbot.waitUntil(lambda: widget.saving.worker is None, timeout=WAIT_MS)
    assert widget.status.text().startswith("saved "), widget.status.text()
    assert {p.name for p in (tmp_path / "by_button").iterdir()} >= {"alignment.json", "sample_tilt_series.xf"}
    worker = widget.saving.start(widget.saving.markers_job(tmp_path / "by_button" / "m.fid"))
    qtbot.waitUntil(lambda: widget.saving.worker is None, timeout=WAIT_MS)
    assert worker is not None and (tmp_path / "by_button" / "m.fid").is_file()
    assert widget.status.text().startswith("saved ") and "m.fid" in widget.status.text()


def test_triage_flagged_points_edits_undo_and_warm_start(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    layer = viewer.layers["sample markers"]
    sample = viewer.layers["sample tilt series"].metadata["sample"]
    widget.options.robust.value = True
    widget.options.leave_out.value = True
    run(qtbot, widget)
    al = widget.runs.last.alignment
    assert al.flagged[sample.misclick]
    assert "leave-out error" in widget.report.value
    np.testing.assert_allclose(layer.border_color[sample.misclick], [1.0, 0.55, 0.0, 1.0])  # flagged colour
    k, _ = widget.triage.go_to_next_residual()
    assert k == sample.misclick and "(flagged)" in widget.status.text()
    # One numbering: the dock's status, the report (the lines `tomoalign align` prints) and the slider's label
    # name the same point's view by the same number, from 1 as in IMOD and 3dmod.
    mk, number = int(layer.features["marker"].iloc[k]), view_number(int(round(layer.data[k, 0])))
    assert f"marker {mk} in view {number}," in widget.status.text()
    assert f"marker {mk} view {number} (" in widget.report.value
    assert viewer.dims.axis_labels[0] == f"view {number}"
    before = layer.data.copy()
    assert widget.triage.move_selected_to_predicted() == 1
    v, m = int(before[k, 0]), int(layer.features["marker"].iloc[k])
    np.testing.assert_allclose(layer.data[k, 1:], al.predicted_xy_px[v, list(al.marker_ids).index(m)][::-1])
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.selected_data = {k}
    assert widget.triage.delete_selected() == 1 and len(layer.data) == len(before) - 1
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.selected_data = {k}
    assert widget.triage.exclude_selected_markers() == [m]
    assert layer.face_color[k][3] == pytest.approx(0.25)
    run(qtbot, widget)
    assert m not in widget.runs.last.markers_used
    assert widget.runs.last.alignment.stages[0].name == "warm"
    # New user s14: an axis angle changed after an Align was ignored by the warm start (the hand rides on it)
    widget.options.axis_mode.value, widget.options.axis_angle.value = "estimate near the angle", 45.0
    run(qtbot, widget)
    assert widget.runs.last.alignment.stages[0].name != "warm"
    widget.undo()
    assert widget.panel.excluded == set()
