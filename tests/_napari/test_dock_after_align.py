"""What the dock shows after Align, in a real window of 1280 x 800: step 5's tables say when the markers changed
since the alignment they show; the tomogram opens at a section that holds beads (by the markers' solved z)
and says so; both tomograms of Compare fit the dock's height at once."""

import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QPoint  # noqa: E402
from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.dock.compare import bead_section  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.alignment.transforms import aligned_marker_positions  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel: minutes on a loaded machine


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


@pytest.fixture
def aligned(make_napari_viewer, monkeypatch, qtbot):
    viewer = make_napari_viewer(show=True)
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.window.resize(1280, 800)
    qtbot.wait(50)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    yield viewer, widget
    widget.teardown()


def test_tables_say_when_the_markers_changed_since_the_alignment(qtbot, aligned):
    viewer, widget = aligned
    stale = widget.tables.stale
    assert stale.isHidden()
    widget.triage.go_to_next_residual()
    widget.triage.move_selected_to_predicted()  # an edit after Align: the residuals shown are the old ones
    assert not stale.isHidden() and "Align again" in stale.text()
    widget.undo()  # the markers are those of the alignment again
    assert stale.isHidden()
    widget.triage.go_to_next_residual()
    widget.triage.move_selected_to_predicted()
    assert not stale.isHidden()
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert stale.isHidden()  # aligned again from the edited markers


def bead_contrast(volume, k, xy_binned):
    """The mean, over the beads given, of the strongest deviation from the section's median in a 5 x 5 window
    about the bead, in units of the section's standard deviation."""
    s = np.asarray(volume[k], dtype=float)
    med, sd = np.median(s), s.std()
    out = []
    for x, y in xy_binned:
        r, c = int(round(y)), int(round(x))
        if 2 <= r < s.shape[0] - 2 and 2 <= c < s.shape[1] - 2:
            out.append(np.abs(s[r - 2:r + 3, c - 2:c + 3] - med).max() / sd)
    return float(np.mean(out))


def test_the_tomogram_opens_at_a_section_with_beads_and_compare_fits_the_dock(qtbot, aligned):
    viewer, widget = aligned
    widget.show_tomogram()
    last = widget.runs.last
    tomo = last.tomogram
    k, n_beads = bead_section(last, tomo.shape[0])
    assert widget.tomograms.slider.value() == k and n_beads >= 1
    assert f"z {k + 1} of {tomo.shape[0]}" in widget.status.text() and "beads" in widget.status.text()
    # truth: the beads the section is said to hold stand out in it
    al = last.alignment
    xyz = aligned_marker_positions(al, last.axis_z_shift_px)[al.marker_included]
    z_index = xyz[:, 2] / last.tomogram_binning + (tomo.shape[0] - 1) / 2.0
    near = np.abs(np.rint(z_index) - k) <= 1
    assert near.sum() == n_beads
    held = bead_contrast(tomo, k, xyz[near, :2] / last.tomogram_binning)
    assert held > 3.0, held
    # Compare: both panels inside the dock's view at 1280 x 800, the same section of one grid
    widget.options.every_view_only.value = True
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.comparison.compare_a.value, widget.comparison.compare_b.value = "all markers", "markers in every view"
    worker = widget.comparison.compare()
    qtbot.waitUntil(lambda: len(widget.tomograms.shown) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    qtbot.wait(400)
    widget.scroll_to(widget.tomograms.widget)
    qtbot.wait(100)
    area = widget.steps_area.viewport()
    for panel in widget.tomograms.images:
        top = panel.mapTo(area, QPoint(0, 0)).y()
        assert 0 <= top and top + panel.height() <= area.height(), (top, panel.height(), area.height())
        assert panel.height() >= 120
    assert "the section with the most beads" in widget.status.text()
