"""No text of the dock is cut at napari's window sizes of 1280 x 800 and 1600 x 1000: after Align on the sample,
with a tomogram shown and every step and the options open, each label, button, box and line fits its widget (a
wrapping label is as tall as its wrapped text; "Solution per view, as in align.log" was once cut at 1280 x 800)."""

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QAbstractButton, QComboBox, QLabel, QLineEdit, QScrollArea, QStyle  # noqa: E402
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


def cut_sorted_header(table):
    """(header text, needed, given) when the sorted column's header is narrower than its text and sort arrow."""
    h = table.horizontalHeader()
    k = h.sortIndicatorSection()
    style = h.style()
    text = table.horizontalHeaderItem(k).text()
    need = (h.fontMetrics().horizontalAdvance(text) + style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize)
            + 2 * style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin))
    return [] if h.sectionSize(k) >= need else [(text, need, h.sectionSize(k))]


def cut_cells(table):
    """(column, text, needed, given) of cells whose number is wider than its column (Qt would show '1.0...')."""
    h, fm = table.horizontalHeader(), table.fontMetrics()
    out = []
    for k in range(table.columnCount()):
        for i in range(table.rowCount()):
            text = table.item(i, k).text()
            if fm.horizontalAdvance(text) + 6 > h.sectionSize(k):
                out.append((k, text, fm.horizontalAdvance(text) + 6, h.sectionSize(k)))
    return out


def sorted_by_each_column_fits(table):
    """Sorted by each column in turn (as a click on its header does), that header and every cell fit."""
    for k in range(table.columnCount()):
        table.sortItems(k)
        assert cut_sorted_header(table) == [] and cut_cells(table) == [], (k, cut_sorted_header(table))
    table.sortItems(0)
    assert table.horizontalHeader().length() <= table.viewport().width()  # nothing cut at the right


def report_tables_whole(report):
    """Each table line of the report (the stages) whole on one line of a block that scrolls sideways."""
    blocks = [b for b in report.blocks if isinstance(b, QScrollArea)]
    stage_lines = [line for line in report.value.splitlines() if line.startswith("  stage ")]
    assert stage_lines and blocks
    for line in stage_lines:
        assert any(line in b.widget().text().splitlines() and not b.widget().wordWrap() for b in blocks), line
    for b in blocks:  # the end of the longest line can be scrolled to
        label, bar = b.widget(), b.horizontalScrollBar()
        assert bar.maximum() >= label.width() - b.viewport().width()
        assert b.height() >= label.height()


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
    for table in (widget.tables.solution, widget.tables.big):  # as Align left them: filled while hidden
        assert table.horizontalHeader().length() <= table.viewport().width()
        assert cut_cells(table) == []
    assert cut_sorted_header(widget.tables.solution) == []  # "view" and its arrow, not "vie" under the arrow
    assert cut_sorted_header(widget.tables.big) == []
    sorted_by_each_column_fits(widget.tables.solution)
    sorted_by_each_column_fits(widget.tables.big)
    report_tables_whole(widget.report)
    widget.teardown()


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_the_viewers_view_slider_label_is_readable(qtbot, make_napari_viewer, size):
    """New user s13: the slider's "view 31" read "vie" under the play button (or "view ...") at 1280 x 800: napari
    sizes its labels on a resize, not when dims.axis_labels changes, so the dock's label kept the width of napari's
    "-3" (reproduced: 36 px for 47 px of text). The dock now has napari size them for their new text."""
    from napari_tomoalign._napari.layers import unlabel_axes

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(size[0] - 40, size[1] - 40)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    unlabel_axes(viewer.dims)  # napari's own labels, as before the dock names the axes
    viewer.window.resize(*size)  # napari sizes the labels for "-3"
    qtbot.wait(300)
    widget.inputs._changed()  # the dock names them, as when its stack is chosen
    qtbot.wait(100)
    labels = [c for c in widget.window().findChildren(QLineEdit, "axis_label") if c.isVisible()]
    assert [c.text() for c in labels] == ["view 31"]
    assert all(c.width() >= c.fontMetrics().horizontalAdvance(c.text()) + 8 for c in labels), \
        [(c.text(), c.width()) for c in labels]
    viewer.dims.set_current_step(0, 9)  # "view 10": one digit more, still whole
    qtbot.wait(50)
    assert all(c.width() >= c.fontMetrics().horizontalAdvance(c.text()) + 8 for c in labels)
    widget.teardown()
