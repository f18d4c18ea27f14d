"""The Align dock widget in a real viewer under Xvfb: align the sample, triage, cancel, errors, compare."""

import gc

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_tomoalign._napari.widget import ALIGNED, PREDICTED, TRACKS, AlignWidget  # noqa: E402

WAIT_MS = 120_000


@pytest.fixture
def sample_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align")
    return viewer, widget


def run(qtbot, widget):
    worker = widget.start_alignment()
    assert worker is not None, widget.status.value
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    return worker


def test_align_the_sample_adds_result_layers(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    image = viewer.layers["sample tilt series"]
    sample = image.metadata["sample"]
    assert widget.image.value is image and widget.markers.value is viewer.layers["sample markers"]
    assert "61 angles" in widget.tilt_source.value
    assert gc.isenabled()
    run(qtbot, widget)
    assert widget.status.value.startswith("done"), widget.status.value
    assert gc.isenabled()  # held off only while the run was being shown
    for name in (ALIGNED, "residuals x10", PREDICTED, "tomogram: all markers"):
        assert name in viewer.layers, name
    # New layers come in hidden and are shown one by one: the aligned stack replaces the raw one,
    # the tomogram waits for a comparison, and the markers layer stays the active one for editing.
    shown = {ly.name: ly.visible for ly in viewer.layers}
    assert shown == {"sample tilt series": False, "sample markers": True, ALIGNED: True,
                     "tomogram: all markers": False, "residuals x10": True, PREDICTED: True}
    assert viewer.layers.selection.active is viewer.layers["sample markers"]
    assert list(viewer.layers[PREDICTED].text.values[:2]) == [f"{m}?" for m in
                                                             viewer.layers[PREDICTED].features["marker"][:2]]
    al = widget._last.alignment
    # Click noise is 0.3 px per coordinate: RMS of 2-D residuals ~0.42 px, plus the one mis-click.
    assert 0.3 < al.rms_residual_px < 0.55
    assert viewer.layers[ALIGNED].data.shape == image.data.shape
    tomo = viewer.layers["tomogram: all markers"]
    assert tomo.data.ndim == 3 and np.isfinite(tomo.data).all()
    vectors = viewer.layers["residuals x10"].data
    assert vectors.shape == (int(al.obs_used.sum()), 2, 3)
    np.testing.assert_allclose(vectors[:, 1, 1:], 10 * al.residuals_px[al.obs_used][:, ::-1])
    predicted = viewer.layers[PREDICTED]
    truth = sample.truth.true_xy
    v = predicted.data[:, 0].astype(int)
    m = predicted.features["marker"].to_numpy() - 1
    err = np.hypot(predicted.data[:, 2] - truth[v, m, 0], predicted.data[:, 1] - truth[v, m, 1])
    assert len(err) > 50 and np.median(err) < 0.5  # gaps are filled where the beads really are
    assert "RMS" in widget.report.value and "worst markers" in widget.report.value
    # The first "next big residual" is the mis-click, and it gets selected in its view.
    k, view = widget.go_to_next_residual()
    assert k == sample.misclick
    assert viewer.layers["sample markers"].selected_data == {k}
    assert viewer.dims.current_step[0] == view


def test_cancel_leaves_the_layers_alone(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    before = [ly.name for ly in viewer.layers]
    widget.start_alignment()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.value.startswith("cancelled")
    assert gc.isenabled()
    assert [ly.name for ly in viewer.layers] == before
    assert widget.align_button.enabled and not widget.cancel_button.enabled


def test_input_errors_are_reported_and_nothing_changes(qtbot, sample_viewer, tmp_path):
    viewer, widget = sample_viewer
    markers = viewer.layers["sample markers"]
    before = markers.data.copy()
    bad = tmp_path / "short.tlt"
    bad.write_text("0\n1\n2\n")
    widget.tilt_file.value = bad
    run(qtbot, widget)
    assert widget.status.value.startswith("failed") and "3 tilt angles" in widget.status.value
    assert gc.isenabled()
    assert ALIGNED not in viewer.layers
    np.testing.assert_array_equal(markers.data, before)
    widget.tilt_file.value = ""
    viewer.layers.remove(markers)
    assert widget.start_alignment() is None
    assert "choose a Points layer" in widget.status.value


def test_marker_editing_defaults_duplicates_and_tracks(sample_viewer):
    viewer, widget = sample_viewer
    layer = viewer.layers["sample markers"]
    widget.start_new_marker()
    new_id = int(layer.features["marker"].max()) + 1
    assert widget.current_marker.value == new_id
    layer.add(np.array([[5.0, 100.0, 120.0]]))
    assert int(layer.features["marker"].iloc[-1]) == new_id
    assert widget.duplicates.value == "none"
    layer.add(np.array([[5.0, 104.0, 125.0]]))  # the same marker again in view 5
    assert widget.duplicates.value.startswith("1:") and f"marker {new_id} in view 5" in widget.duplicates.value
    np.testing.assert_allclose(layer.border_color[-1], [1, 0, 0, 1])
    widget.update_tracks()
    tracks = viewer.layers[TRACKS]
    assert set(np.unique(tracks.data[:, 0]).astype(int)) == set(layer.features["marker"].unique())
    layer.data = layer.data[:-1]
    assert widget.duplicates.value == "none"


def test_compare_two_alignments_side_by_side(qtbot, sample_viewer, tmp_path):
    viewer, widget = sample_viewer
    run(qtbot, widget)
    widget.every_view_only.value = True
    run(qtbot, widget)
    assert set(widget._results) == {"all markers", "markers in every view"}
    assert len(widget._results["markers in every view"].markers_used) == 6
    widget.compare_a.value, widget.compare_b.value = "markers in every view", "all markers"
    widget.toggle_comparison()
    assert viewer.canvas.grid.enabled
    shown = [ly.name for ly in viewer.layers if ly.visible]
    assert shown == ["tomogram: markers in every view", "tomogram: all markers"]
    assert "[markers in every view]" in widget.report.value and "[all markers]" in widget.report.value
    widget.toggle_comparison()
    assert not viewer.canvas.grid.enabled
    # Saving writes what the command line writes, and refuses to overwrite.
    widget.save_dir.value = tmp_path
    paths = widget.save_alignment()
    assert {p.name for p in paths} >= {"alignment.json", "sample_markers.xf", "sample_markers.tlt"}
    assert widget.save_alignment() == []


def test_undo_covers_napari_edits_of_the_markers(sample_viewer):
    viewer, widget = sample_viewer
    layer = viewer.layers["sample markers"]
    start = layer.data.copy()
    widget.current_marker.value = 7
    layer.add([3.0, 100.0, 120.0])  # a click with the add tool
    assert len(layer.data) == len(start) + 1 and layer.features["marker"].iloc[-1] == 7
    moved = layer.data.copy()
    moved[0, 1:] += 5.0
    layer.data = moved  # a drag
    layer.selected_data = {1, 2}
    layer.remove_selected()  # the delete key
    assert len(layer.data) == len(start) - 1
    assert widget.undo_button.enabled
    widget.undo()
    np.testing.assert_array_equal(layer.data, moved)
    # Ctrl+Z in the viewer does the same while the markers layer is the one being edited.
    binding = [b for b in layer.keymap if str(b) == "Ctrl+Z"]
    assert binding
    layer.keymap[binding[0]](layer)
    assert len(layer.data) == len(start) + 1 and layer.features["marker"].iloc[-1] == 7
    widget.undo()
    np.testing.assert_array_equal(layer.data, start)
    assert not widget.undo_button.enabled
    # Undoing is not itself an edit to undo, and our own edits are remembered once.
    layer.selected_data = {0}
    widget.delete_selected()
    assert len(widget._undo) == 1


def test_triage_flagged_points_edits_undo_and_warm_start(qtbot, sample_viewer):
    viewer, widget = sample_viewer
    layer = viewer.layers["sample markers"]
    sample = viewer.layers["sample tilt series"].metadata["sample"]
    widget.robust.value = True
    widget.leave_out.value = True
    run(qtbot, widget)
    al = widget._last.alignment
    assert al.flagged[sample.misclick]
    assert widget._last.leave_out is not None and "leave-out error" in widget.report.value
    np.testing.assert_allclose(layer.border_color[sample.misclick], [1.0, 0.55, 0.0, 1.0])  # flagged colour
    k, _ = widget.go_to_next_residual()
    assert k == sample.misclick and "(flagged)" in widget.status.value
    before = layer.data.copy()
    # Move to predicted puts the point on the model's position; Undo puts it back.
    assert widget.move_to_predicted.native.isEnabled() and widget.move_selected_to_predicted() == 1
    v, m = int(before[k, 0]), int(layer.features["marker"].iloc[k])
    want = al.predicted_xy_px[v, list(al.marker_ids).index(m)]
    np.testing.assert_allclose(layer.data[k, 1:], want[::-1])
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    # Delete and undo.
    layer.selected_data = {k}
    assert widget.delete_selected() == 1 and len(layer.data) == len(before) - 1
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    # Exclude a marker: the next fit leaves it out, warm-started from the last one.
    layer.selected_data = {k}
    assert widget.exclude_selected_markers() == [m]
    assert layer.face_color[k][3] == pytest.approx(0.25)
    run(qtbot, widget)
    result = widget._last
    assert m not in result.markers_used
    assert result.alignment.stages[0].name == "warm"
    widget.undo()
    assert widget._excluded == set()
