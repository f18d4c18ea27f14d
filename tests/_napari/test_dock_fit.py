"""The dock fits real screens: at 1280 x 800 and 1600 x 1000, with napari's default layout, every
control is inside the dock horizontally, and vertically inside the dock or its scroll area."""

import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QPoint, QRect  # noqa: E402
from qtpy.QtWidgets import (  # noqa: E402
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
)
from support.gui import first_look

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

CONTROLS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit, QProgressBar)


def rect_in(widget, ancestor) -> QRect:
    return QRect(widget.mapTo(ancestor, QPoint(0, 0)), widget.size())


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_every_control_is_reachable(make_napari_viewer, qtbot, size):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        for step in widget.steps:
            step.set_expanded(True)
        qtbot.wait(200)
        window = dock.window()
        print("window", window.width(), window.height(), "dock", dock.width(), dock.height())
        assert (window.width(), window.height()) == size
        area = widget.findChild(QScrollArea)
        viewport, content = area.viewport(), area.widget()
        assert content.width() <= viewport.width()  # nothing needs a sideways scroll
        assert rect_in(area, widget).bottom() <= widget.height()
        checked = 0
        for control in widget.findChildren(CONTROLS):
            if not control.isVisibleTo(widget) or control.width() == 0:
                continue
            checked += 1
            r = rect_in(control, widget)
            assert r.left() >= 0 and r.right() < widget.width(), (control, control.text() if hasattr(control, "text")
                                                                  else "", r, widget.width())
            if content.isAncestorOf(control):
                rc = rect_in(control, content)
                assert rc.left() >= 0 and rc.right() < viewport.width(), (control, rc, viewport.width())
                assert rc.top() >= 0 and rc.bottom() < content.height(), (control, rc, content.height())
            else:
                assert r.top() >= 0 and r.bottom() < widget.height(), (control, r)
        assert checked > 40
        # Every button shows its whole label (a label wider than its button is cut short).
        for b in widget.findChildren(QPushButton):
            if b.isVisibleTo(widget) and b.text():
                needed = b.fontMetrics().horizontalAdvance(b.text()) + 8
                assert b.width() >= needed, (b.text(), b.width(), needed)
        assert widget.runner.align_button.text == "Align"
        # The last control can be scrolled into view.
        area.ensureWidgetVisible(widget.saving.save_button.native)
        qtbot.wait(50)
        r = rect_in(widget.saving.save_button.native, viewport)
        assert r.top() >= 0 and r.bottom() <= viewport.height()
    finally:
        widget.teardown()
