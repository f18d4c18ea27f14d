"""Compare's two panels stay inside the dock's view when its height changes after they are drawn: the window made
smaller (a laptop's 1280 x 800) or the status below the steps grown by a line (session 14's new user: the lower
panel cut at the dock's foot at 1280 x 800)."""

import napari
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QPoint  # noqa: E402
from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def panels_in_view(widget):
    widget.scroll_to(widget.tomograms.widget)
    area = widget.steps_area.viewport()
    out = []
    for panel in widget.tomograms.images:
        top = panel.mapTo(area, QPoint(0, 0)).y()
        out.append(0 <= top and top + panel.height() <= area.height() and panel.height() >= 120)
    return out


def test_compare_panels_follow_the_docks_height(qtbot, make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer(show=True)
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.window.resize(1280, 1000)
    qtbot.wait(50)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        for every_view in (False, True):
            widget.options.every_view_only.value = every_view
            assert widget.start_alignment() is not None
            qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        widget.comparison.compare_a.value, widget.comparison.compare_b.value = "all markers", "markers in every view"
        worker = widget.comparison.compare()
        qtbot.waitUntil(lambda: len(widget.tomograms.shown) == 2, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
        qtbot.wait(400)
        assert panels_in_view(widget) == [True, True]
        tall = widget.tomograms.images[1].height()
        viewer.window.resize(1280, 800)  # the window made smaller after Compare
        qtbot.wait(400)
        qtbot.waitUntil(lambda: panels_in_view(widget) == [True, True], timeout=3000)
        assert widget.tomograms.images[1].height() < tall
        widget.say("a status of four lines\nbelow the steps\nleaves them\nless room")
        qtbot.wait(400)
        qtbot.waitUntil(lambda: panels_in_view(widget) == [True, True], timeout=3000)
    finally:
        widget.teardown()
