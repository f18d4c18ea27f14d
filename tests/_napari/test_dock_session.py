"""The whole session in one real viewer on the sample, as a user goes: Find beads, Track, Align, Show tomogram,
Align again, Compare, each Bead-Fixer action with its undo, Save; then 50 rounds of those in a shuffled order
with the dock closed and re-opened among them, and the viewer closed at the end: one canvas throughout (a
second napari viewer is refused), and no GL error or abort in the log."""

import logging

import napari
import numpy as np
import pytest
from support.gui import first_look

from napari_tomoalign._napari.dock.results import PREDICTED
from napari_tomoalign._napari.widget import AlignWidget
from napari_tomoalign.conventions import view_number

WAIT_MS = 180_000
ROUNDS = 50


def no_second_viewer(*_, **__):
    raise AssertionError("a second napari viewer aborts napari on software OpenGL")


def open_dock(viewer) -> AlignWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    assert isinstance(widget, AlignWidget)
    return widget


def idle(qtbot, widget, started=True):
    assert started is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def fixed(qtbot, widget, worker):
    """Wait for a Bead-Fixer action's worker to finish (the fixer forgets it then) and its edit to land."""
    assert worker is not None
    qtbot.waitUntil(lambda: widget.fixer.worker is not worker, timeout=WAIT_MS)
    qtbot.wait(20)


def replay(qtbot, widget, shown):
    """Show a finished run again, as the dock shows an Align's result (the layers updated, the tables, the report)."""
    result, plot, image, markers, snapshot, surfaces = shown
    widget.runner.busy = True
    widget._checked = set()
    widget._tilt_source = "replay"
    widget.runner.started = 0.0
    widget._on_result(result, plot, image, markers, snapshot, surfaces)
    idle(qtbot, widget)


@pytest.fixture
def session(make_napari_viewer, monkeypatch, caplog):
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    caplog.set_level(logging.WARNING)
    viewer.open_sample("napari-tomoalign", "beads")
    return viewer


def test_the_whole_session_in_loops_on_one_canvas(qtbot, session, tmp_path, caplog, capfd):
    viewer = session
    widget = open_dock(viewer)
    # Find beads and Track: a markers layer of the tracked beads, chosen for Align.
    widget.beads.diameter_nm.value = 9.0  # the sample's gold: 4.5 px radius at 1 nm/px
    idle(qtbot, widget, widget.beads.find())
    assert len(widget.beads.candidates.data) >= 10, widget.status.text()
    idle(qtbot, widget, widget.beads.track())
    tracked = widget.inputs.markers.value
    assert tracked.name == "sample tilt series tracked" and len(tracked.data) > 200, widget.status.text()
    # Align, Show tomogram, Align again (the order that aborted napari with a second viewer), Compare.
    shown = []
    widget._on_result = record(widget._on_result, shown)
    idle(qtbot, widget, widget.start_alignment())
    assert widget.status.text().startswith("done"), widget.status.text()
    assert widget.show_tomogram() and widget.steps[5].expanded
    widget.options.every_view_only.value = True
    idle(qtbot, widget, widget.start_alignment())
    assert widget.tomograms.shown[0].startswith("tomogram: markers in every view")  # the open view follows
    worker = widget.comparison.compare()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pass
    qtbot.waitUntil(lambda: len(widget.tomograms.shown) == 2)
    widget.options.every_view_only.value = False
    bead_fixer_round(qtbot, viewer, widget)
    saved(widget, tmp_path)
    # 50 rounds in a shuffled order: Align's display, Show tomogram, Compare, triage, closing and re-opening.
    rng = np.random.default_rng(21)
    for k in range(ROUNDS):
        for action in rng.permutation(["align", "tomogram", "compare", "triage", "reopen"]):
            if action == "align":
                replay(qtbot, widget, shown[k % 2])
            elif action == "tomogram" and widget.runs.last is not None:
                assert widget.show_tomogram()
            elif action == "compare" and len(widget.runs.results) == 2:
                a, b = (widget.runs.results[n] for n in widget.runs.results)
                widget.comparison.show(a, b, (a.tomogram[: min(len(a.tomogram), len(b.tomogram))],
                                              b.tomogram[: min(len(a.tomogram), len(b.tomogram))]))
                assert len(widget.tomograms.shown) == 2
            elif action == "triage" and widget.runs.visits:
                widget.triage.go_to_next_residual()
            elif action == "reopen":
                viewer.window.remove_dock_widget(widget)
                qtbot.wait(5)
                assert widget._closed
                widget = open_dock(viewer)
                qtbot.wait(5)
    assert len([ly for ly in viewer.layers if ly.name == PREDICTED]) == 1  # updated in place, never doubled
    viewer.window.remove_dock_widget(widget)
    viewer.close()
    text = capfd.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert "GLError" not in text and "Error drawing visual" not in text and "Aborted" not in text


def record(on_result, shown):
    def wrapped(result, plot, image, markers, snapshot, surfaces=None):
        shown.append((result, plot, image, markers, snapshot, surfaces))
        return on_result(result, plot, image, markers, snapshot, surfaces)

    return wrapped


def bead_fixer_round(qtbot, viewer, widget):
    """Each Bead-Fixer action on a point, then undone: the layer is as it was."""
    layer = widget.panel.layer
    before = layer.data.copy()
    k, view = widget.triage.go_to_next_residual()
    assert viewer.dims.axis_labels[0] == f"view {view_number(view)}"
    moved_from = layer.data[k].copy()
    fixed(qtbot, widget, widget.fixer.centre())
    assert "centred 1 point" in widget.status.text(), widget.status.text()
    assert np.hypot(*(layer.data[k, 1:] - moved_from[1:])) < 3.0  # on its bead, a tracked point moves little
    widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    # A point deleted with napari's own tool leaves a gap; Next gap goes to it, and Move to predicted with
    # nothing selected adds the missing point where the model puts it.
    layer.selected_data = {k}
    layer.remove_selected()
    before = layer.data.copy()
    gap = widget.fixer.next_gap()
    assert gap is not None and f"view {view_number(gap[0])}" in widget.status.text()
    layer.selected_data = set()
    assert widget.triage.move_selected_to_predicted() == 1 and len(layer.data) == len(before) + 1
    widget.undo()
    assert len(layer.data) == len(before)
    # Accept the '?' ring, centre the new point, re-track its bead from it: three undoable edits.
    added = widget.fixer.accept_gap()
    assert added == len(before) and layer.features["marker"].iloc[added] == gap[1]
    fixed(qtbot, widget, widget.fixer.centre())
    fixed(qtbot, widget, widget.fixer.retrack())
    assert "re-tracked marker" in widget.status.text(), widget.status.text()
    for _ in range(3):
        widget.undo()
    np.testing.assert_array_equal(layer.data, before)
    widget.undo()  # napari's own delete
    assert len(layer.data) == len(before) + 1
    keys = {str(key) for key in layer.keymap}
    assert {"C", "G", "Y", "R", "N", "M"} <= {key.split("+")[-1].upper() for key in keys}, keys


def saved(widget, tmp_path):
    """Save markers and the alignment under the stack's stem, as IMOD names them."""
    paths = widget.saving.save_markers(tmp_path / "sample.fid")
    assert paths and widget.status.text().startswith("saved")
    widget.saving.save_dir.value = tmp_path
    names = {p.name for p in widget.saving.save_alignment()}
    assert {"sample_tilt_series.xf", "sample_tilt_series.tlt", "sample_tilt_seriesfid.xyz"} <= names, names
    assert widget.saving.save_alignment() == [] and widget.status.text().startswith("not saved")
