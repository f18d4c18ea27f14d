"""Every control of the dock can be reached at 1280 x 800: scrolled to its bottom, step 7's Save buttons are whole
in the dock's view, and stay so when the status under the steps grows by lines (a Save's list of files) or the
window gets shorter (session 15's new user: the Save buttons cut in half at the dock's foot)."""

import napari
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QPoint  # noqa: E402
from qtpy.QtWidgets import QAbstractButton  # noqa: E402
from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def in_view(widget, child) -> bool:
    """``child`` whole inside the steps area's view, as scrolled now."""
    viewport = widget.steps_area.viewport()
    top = child.mapTo(viewport, QPoint(0, 0)).y()
    return 0 <= top and top + child.height() <= viewport.height()


def to_bottom(widget) -> None:
    bar = widget.steps_area.verticalScrollBar()
    bar.setValue(bar.maximum())


def save_buttons(widget):
    return [widget.saving.save_markers_button.native, widget.saving.save_button.native]


def test_every_control_is_reachable_at_1280x800(qtbot, make_napari_viewer, monkeypatch, tmp_path):
    viewer = make_napari_viewer(show=True)
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.window.resize(1280, 800)
    qtbot.wait(50)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        for every_view in (False, True):  # two alignments compared: the panels fill the dock's height
            widget.options.every_view_only.value = every_view
            assert widget.start_alignment() is not None
            qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        widget.comparison.compare_a.value, widget.comparison.compare_b.value = "all markers", "markers in every view"
        worker = widget.comparison.compare()
        qtbot.waitUntil(lambda: len(widget.tomograms.shown) == 2, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
        for step in widget.steps:
            step.set_expanded(True)
        qtbot.wait(400)
        area = widget.steps_area
        content, bar = area.widget(), area.verticalScrollBar()
        assert area.viewport().height() < content.height()  # the dock scrolls at this size
        for button in content.findChildren(QAbstractButton):  # every button within the scrolled range
            if button.isVisibleTo(content):
                bottom = button.mapTo(content, QPoint(0, button.height())).y()
                assert bottom <= bar.maximum() + area.viewport().height(), button.text()
        widget.saving.save_dir.value = tmp_path
        widget.saving.which.value, widget.saving.with_aligned.value = "all markers", True
        widget.saving.save_markers(tmp_path / "m.fid")
        widget.saving.save_alignment()
        widget.scroll_to(widget.saving.widget.native)
        qtbot.wait(600)
        assert all(in_view(widget, b) for b in save_buttons(widget))  # the script's scrolling, then the Save's lines
        to_bottom(widget)
        qtbot.wait(300)
        assert all(in_view(widget, b) for b in save_buttons(widget))
        widget.say("saved 'all markers' to /tmp/a/long/folder/name/saved: alignment.json,\npredicted.csv, "
                   "residuals.csv and 5 more\nand a third line\nand a fourth")
        tall = area.viewport().height()
        qtbot.waitUntil(lambda: area.viewport().height() < tall, timeout=3000)  # laid out anew
        qtbot.wait(200)
        assert all(in_view(widget, b) for b in save_buttons(widget))
        tall = area.viewport().height()
        viewer.window.resize(1280, 700)  # the window made shorter, scrolled to the bottom
        qtbot.waitUntil(lambda: area.viewport().height() < tall, timeout=3000)
        qtbot.wait(200)
        assert all(in_view(widget, b) for b in save_buttons(widget))
        widget.steps[4].set_expanded(False)  # at the bottom, a step folded and unfolded: its header stays put
        qtbot.wait(400)
        to_bottom(widget)
        qtbot.wait(100)
        header = widget.steps[4].header
        top = header.mapTo(area.viewport(), QPoint(0, 0)).y()
        header.click()
        qtbot.wait(600)
        assert widget.steps[4].expanded and header.mapTo(area.viewport(), QPoint(0, 0)).y() == top
        bar.setValue(0)  # elsewhere, a taller status moves nothing
        widget.say("one line")
        qtbot.wait(200)
        assert bar.value() == 0
    finally:
        widget.teardown()
