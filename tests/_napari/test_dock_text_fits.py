"""No text of the dock is cut at napari's window sizes of 1280 x 800 and 1600 x 1000: after Align on the sample,
with a tomogram shown and every step and the options open, each label, button, box and line fits its widget (a
wrapping label is as tall as its wrapped text; "Solution per view, as in align.log" was once cut at 1280 x 800)."""

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QAbstractButton, QComboBox, QLabel, QLineEdit  # noqa: E402
from support.gui import first_look

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 180_000


def cut_texts(root):
    """(kind, text, needed, given) of every visible text widget under ``root`` whose text does not fit it."""
    out = []
    for c in root.findChildren((QLabel, QAbstractButton, QComboBox, QLineEdit)):
        if not c.isVisibleTo(root) or c.width() <= 0:
            continue
        text = c.currentText() if isinstance(c, QComboBox) else c.text()
        if not text or (isinstance(c, QLabel) and c.pixmap() is not None and not c.pixmap().isNull()):
            continue
        if isinstance(c, QLabel) and c.wordWrap():
            need, have = c.heightForWidth(c.width()), c.height()
        elif isinstance(c, QLabel):
            need = c.sizeHint().width() if "<" in text else c.fontMetrics().horizontalAdvance(text.split("\n")[0])
            have = c.contentsRect().width()
        else:
            need, have = c.sizeHint().width(), c.width()
        if need > have:
            out.append((type(c).__name__, text[:70], need, have))
    return out


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_no_text_of_the_dock_is_cut(qtbot, make_napari_viewer, size):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.show_tomogram()
    for step in [*widget.steps, widget.options_fold]:
        step.set_expanded(True)
    qtbot.wait(300)
    texts = [c.text() for c in widget.findChildren(QLabel)]
    assert "Solution per view, as in align.log" in texts and widget.tomograms.shown
    assert "SURFACE ANALYSIS" in widget.report.value and "Thickness at Z intercepts" in widget.report.value
    assert cut_texts(widget) == []
    widget.teardown()
