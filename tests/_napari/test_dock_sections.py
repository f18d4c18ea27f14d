"""The dock's sections one at a time, each with a plain Points layer and no Align."""

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Points  # noqa: E402

from napari_tomoalign._napari.dock.inputs import InputsSection, is_markers  # noqa: E402
from napari_tomoalign._napari.dock.markers import TRACKS, MarkersPanel  # noqa: E402
from napari_tomoalign._napari.dock.runner import GcHold  # noqa: E402
from napari_tomoalign._napari.dock.undo import UndoStack  # noqa: E402
from napari_tomoalign._napari.layers import markers_to_points  # noqa: E402
from napari_tomoalign._napari.writer import write_image_mrc, write_markers_fid, write_markers_table  # noqa: E402
from napari_tomoalign.io.markers import MarkerTable, read_markers  # noqa: E402
from napari_tomoalign.io.mrc import open_tilt_series  # noqa: E402

TILTS = np.linspace(-60, 60, 5)


def markers_layer(name="m"):
    table = MarkerTable(np.array([0, 1, 2, 0]), np.array([1, 1, 1, 2]),
                        np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0], [30.0, 5.0]]), (64, 48))
    data, kwargs = markers_to_points(table, name)
    return Points(data, **kwargs)


@pytest.fixture
def viewer(make_napari_viewer):
    v = make_napari_viewer()
    v.add_image(np.zeros((5, 48, 64), np.float32), name="stack", scale=(1.0, 0.27, 0.27),
                metadata={"tilt_angles_deg": TILTS, "tilt_source": "stack.rawtlt"})
    return v


def test_undo_stack_with_a_plain_layer():
    layer = markers_layer()
    seen = []
    undo = UndoStack(depth=2, on_change=seen.append)
    start = layer.data.copy()
    for shift in (1.0, 2.0, 3.0):
        undo.remember(layer, {shift})
        layer.data = layer.data + shift
    assert len(undo) == 2 and seen[-1] is True
    assert undo.undo()[1] == {3.0}
    np.testing.assert_allclose(layer.data, start + 3.0)
    undo.undo()
    np.testing.assert_allclose(layer.data, start + 1.0)
    assert undo.undo() is None and seen[-1] is False


def test_gc_hold_gives_back_exactly_once():
    import gc

    hold = GcHold()
    hold.hold()
    assert not gc.isenabled()
    hold.release()
    hold.release()
    assert gc.isenabled()


def test_markers_panel_duplicates_tracks_and_undo(viewer):
    layer = viewer.add_layer(markers_layer())
    panel = MarkersPanel(viewer, UndoStack(), lambda text: None)
    panel.watch(layer)
    assert panel.current_marker.value == 2 and panel.duplicates.value == "duplicates: none"
    assert panel.start_new_marker() == 3
    layer.add([1.0, 30.0, 30.0])
    layer.add([1.0, 31.0, 31.0])  # marker 3 twice in view 1
    assert list(layer.features["marker"][-2:]) == [3, 3]
    assert panel.duplicates.value == "duplicates: 1: marker 3 in view 2"  # index 1, numbered from 1
    np.testing.assert_allclose(layer.border_color[-1], [1, 0, 0, 1])
    panel.toggle_tracks()
    assert TRACKS in viewer.layers and viewer.layers.index(TRACKS) < viewer.layers.index(layer)
    panel.toggle_tracks()
    assert TRACKS not in viewer.layers
    assert len(panel.undo) == 2  # each napari add was snapshotted before it happened
    panel.undo.undo()
    assert panel.duplicates.value == "duplicates: none"
    binding = [b for b in layer.keymap if str(b) == "Ctrl+Z"]
    assert binding
    panel.unwatch()
    assert not [b for b in layer.keymap if str(b) == "Ctrl+Z"]


def test_inputs_pair_markers_in_the_stacks_frame_and_convert_plain_points(viewer, monkeypatch):
    told = []
    monkeypatch.setattr("napari_tomoalign._napari.dock.inputs.show_info", told.append)
    layer = viewer.add_layer(markers_layer())
    inputs = InputsSection(viewer, lambda text: None)
    inputs.refresh()
    stack = viewer.layers["stack"]
    assert inputs.markers.value is layer and tuple(layer.scale) == tuple(stack.scale)
    np.testing.assert_allclose(layer.data[:, 1:], [[20, 10], [21, 11], [22, 12], [5, 30]])  # still pixels
    assert len(told) == 1 and "0.27" in told[0]
    inputs.refresh()
    assert len(told) == 1  # said once
    tilts, source = inputs.tilt_angles()
    np.testing.assert_allclose(tilts, TILTS) and source == "stack.rawtlt"
    assert "from stack.rawtlt" in inputs.tilt_source.value
    # A plain Points layer placed in world coordinates (nm) becomes markers in the stack's pixels.
    plain = viewer.add_points(np.array([[1.0, 2.7, 5.4]]), name="plain")
    inputs.refresh()  # the dock does this when a layer is added
    inputs.markers.value = plain
    assert inputs.use_as_markers.enabled and not is_markers(plain)
    inputs.convert_points_layer()
    assert is_markers(plain) and tuple(plain.scale) == tuple(stack.scale)
    np.testing.assert_allclose(plain.data, [[1.0, 10.0, 20.0]])
    assert list(plain.features["marker"]) == [1]


def test_new_markers_layer_and_tilt_file_errors(viewer, tmp_path):
    inputs = InputsSection(viewer, lambda text: None)
    inputs.refresh()
    layer = inputs.new_markers_layer()
    assert is_markers(layer) and len(layer.data) == 0 and layer.metadata["image_size"] == (64, 48)
    assert inputs.markers.value is layer and layer.mode == "add"
    inputs.tilt_file.value = tmp_path / "typo.tlt"
    with pytest.raises(ValueError, match="no such tilt-angle file"):
        inputs.tilt_angles()
    (tmp_path / "four.tlt").write_text("1\n2\n3\n4\n")
    inputs.tilt_file.value = tmp_path / "four.tlt"
    with pytest.raises(ValueError, match="4 tilt angles but the stack has 5 views"):
        inputs.tilt_angles()


def test_marker_writers_follow_the_file_name(tmp_path):
    layer = markers_layer()
    meta = {"features": layer.features, "metadata": layer.metadata}
    # napari passes the name the user typed to the writer of the filter that was selected.
    [fid] = write_markers_table(str(tmp_path / "a.fid"), layer.data, meta)
    [csv] = write_markers_fid(str(tmp_path / "b.csv"), layer.data, meta)
    [plain] = write_markers_fid(str(tmp_path / "c"), layer.data, meta)
    assert (fid, csv, plain) == (str(tmp_path / "a.fid"), str(tmp_path / "b.csv"), str(tmp_path / "c.fid"))
    for path in (fid, csv, plain):
        t = read_markers(path)
        np.testing.assert_allclose(t.xy, [[10, 20], [11, 21], [12, 22], [30, 5]], atol=1e-4)
    with pytest.raises(ValueError, match="no 'marker' feature"):
        write_markers_fid(str(tmp_path / "d.fid"), layer.data, {"features": {}})


def test_image_writer_keeps_voxel_size_and_angles(tmp_path):
    data = np.zeros((5, 8, 8), np.float32)
    ali = write_image_mrc(str(tmp_path / "x.ali"), data, {"scale": (1.0, 2.02, 2.02), "metadata": {
        "tilt_angles_deg": TILTS, "tilt_kind": "solved", "pixel_size_nm": 2.02}})
    assert [p.rsplit("/", 1)[1] for p in ali] == ["x.ali", "x.tlt"]
    ts = open_tilt_series(ali[0])
    assert ts.pixel_size_angstrom == pytest.approx(20.2, abs=0.01)
    np.testing.assert_allclose(ts.tilt_angles_deg, TILTS, atol=0.01)
    raw = write_image_mrc(str(tmp_path / "y.st"), data, {"scale": (1.0, 1.0, 1.0), "metadata": {
        "tilt_angles_deg": TILTS, "pixel_size_nm": 1.0}})
    assert raw[1].endswith("y.rawtlt") and open_tilt_series(raw[0]).pixel_size_angstrom == pytest.approx(10.0)
    vol = write_image_mrc(str(tmp_path / "t.rec"), data, {"scale": (4.0,) * 3, "metadata": {"volume": True}})
    assert vol == [str(tmp_path / "t.rec")] and open_tilt_series(vol[0]).pixel_size_angstrom == pytest.approx(40.0)


def test_report_view_shows_the_text_and_says_how_to_get_plots_without_matplotlib(qtbot, monkeypatch):
    from napari_tomoalign import report as report_module
    from napari_tomoalign._napari.dock.report_view import ReportView
    from napari_tomoalign.alignment.options import AlignmentOptions
    from napari_tomoalign.simulation.markers import simulate_markers
    from napari_tomoalign.workflows import run_alignment

    s = simulate_markers(n_views=15, n_markers=8, seed=5)
    result = run_alignment(None, s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size, AlignmentOptions(),
                           make_aligned_stack=False, make_tomogram=False)
    view = ReportView()
    view.show([result])
    assert view.image is not None and "RMS residual" in view.value
    monkeypatch.setattr(report_module, "plots_available", lambda: False)
    view.show([result])
    assert view.image is None and "pip install matplotlib" in view.plot.text() and "tilt axis" in view.value


def test_comparison_is_refused_on_the_main_thread_without_tomograms():
    from types import SimpleNamespace

    from napari_tomoalign._napari.dock.compare import comparison_problem

    with_tomo = SimpleNamespace(tomogram=np.zeros((4, 4, 4)), tomogram_binning=2)
    assert comparison_problem(with_tomo, with_tomo) is None
    assert "need a tomogram" in comparison_problem(with_tomo, SimpleNamespace(tomogram=None, tomogram_binning=2))
    assert "binned differently" in comparison_problem(
        with_tomo, SimpleNamespace(tomogram=np.zeros((4, 4, 4)), tomogram_binning=1))


def test_the_report_wraps_at_the_docks_width_and_is_shown_whole(qtbot):
    from napari_tomoalign._napari.dock.report_view import ReportView, TableBlock
    from napari_tomoalign.alignment.options import AlignmentOptions
    from napari_tomoalign.simulation.markers import simulate_markers
    from napari_tomoalign.workflows import run_alignment

    s = simulate_markers(n_views=15, n_markers=8, seed=5)
    result = run_alignment(None, s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size, AlignmentOptions(),
                           make_aligned_stack=False, make_tomogram=False)
    view = ReportView()
    qtbot.addWidget(view.widget)
    view.widget.resize(340, 600)
    view.show([result])
    assert view.value.count("\n") >= 8
    # All of it: the prose wraps at the dock's width (as many rows as its lines or more); the table lines (the
    # stages) stay whole, each on one line, in a block of their own that scrolls sideways.
    texts = []
    for block in view.blocks:
        label = block.widget() if isinstance(block, TableBlock) else block
        n = len(label.text().splitlines())
        texts.append(label.text())
        if isinstance(block, TableBlock):
            assert not label.wordWrap() and all(line.startswith("  ") for line in label.text().splitlines())
            assert block.sizeHint().height() >= n * label.fontMetrics().lineSpacing()
        else:
            assert label.wordWrap() and label.heightForWidth(340) >= n * label.fontMetrics().lineSpacing()
    assert "\n".join(texts) == view.value and any(isinstance(b, TableBlock) for b in view.blocks)


def test_a_long_tilt_file_path_is_elided_in_the_middle_never_wrapped(viewer, tmp_path):
    from napari_tomoalign._napari.dock.ui import DOCK_CONTENT_WIDTH

    folder = tmp_path / ("a-rather-long-folder-name-of-a-session-" * 3)
    folder.mkdir()
    path = folder / "plastic-beads-from-the-microscope.rawtlt"
    path.write_text("\n".join(f"{t:.1f}" for t in TILTS))
    inputs = InputsSection(viewer, lambda text: None)
    inputs.refresh()
    inputs.tilt_file.value = path
    label = inputs.tilt_source.native
    shown = inputs.tilt_source.value
    head, path_line = shown.split("\n")
    assert head.startswith("tilt angles: 5 angles") and head.endswith(" from")
    assert "\u2026" in path_line and path_line.endswith("microscope.rawtlt")  # the file name stays whole
    assert label.fontMetrics().horizontalAdvance(path_line) <= DOCK_CONTENT_WIDTH
    assert str(path) in label.toolTip()
    short = "tilt angles: 5 angles, -60..60 deg, from /data/s.tlt"
    assert inputs.show_tilts(short) == short  # what fits stays on one line, whole
