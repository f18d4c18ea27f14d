"""Step 5's tables in Qt: the per-view solution and the big residuals, sortable by any column (numbers sort
as numbers); a click on a big residual jumps to its point."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...alignment.result import Alignment
from ...conventions import view_index, view_number
from .tables import (
    BIG_COLUMNS,
    BIG_DECIMALS,
    BIG_TIPS,
    REPORT_SD,
    SOLUTION_COLUMNS,
    SOLUTION_DECIMALS,
    SOLUTION_TIPS,
    big_residuals,
    solution_rows,
)

STALE = ("The markers changed since this alignment: these tables, the report and the yellow residual vectors are "
         "still the old ones. Align again to update.")
ROWS_SHOWN = (4, 12)
CELL_PADDING = 8  # px around a cell's text (the style's margins)  # a table is as tall as its rows, within these


class NumberItem(QTableWidgetItem):
    """A cell that sorts by its number (NaN last), shown with a fixed number of decimals."""

    def __init__(self, value: float, decimals: int) -> None:
        super().__init__("-" if not np.isfinite(value) else f"{value:.{decimals}f}")
        self.number = float(value) if np.isfinite(value) else np.inf
        self.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))

    def __lt__(self, other: Any) -> bool:
        return self.number < getattr(other, "number", np.inf)


def headers(t: QTableWidget) -> tuple[QHeaderView, QHeaderView]:
    h, v = t.horizontalHeader(), t.verticalHeader()
    assert h is not None and v is not None  # a QTableWidget always has both
    return h, v


def table(columns: Sequence[str], tips: Sequence[str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    for k, tip in enumerate(tips):
        item = t.horizontalHeaderItem(k)
        if item is not None:
            item.setToolTip(tip)
    font = QFont()
    font.setPointSize(8)
    t.setFont(font)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    h, v = headers(t)
    h.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # `fit_columns` gives each column its width
    h.setMinimumSectionSize(20)
    v.setVisible(False)
    v.setDefaultSectionSize(t.fontMetrics().lineSpacing() + 4)
    t.setSortingEnabled(True)
    h.sortIndicatorChanged.connect(lambda *_: fit_columns(t))
    viewport = t.viewport()
    assert viewport is not None  # a QTableWidget always has one
    viewport.installEventFilter(_REFIT)  # the viewport, not the table: it has its new width when told
    return t


def column_needs(t: QTableWidget) -> list[int]:
    """Each column's width for its header whole (with the sort arrow on the sorted one) and its widest cell."""
    h, _ = headers(t)
    style = h.style()
    assert style is not None  # a shown widget always has a style
    margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin)
    mark = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize)
    head, cell = h.fontMetrics(), t.fontMetrics()
    needs = []
    for k in range(t.columnCount()):
        title = t.horizontalHeaderItem(k)
        need = head.horizontalAdvance(title.text() if title is not None else "") + 2 * margin + 2
        if h.isSortIndicatorShown() and h.sortIndicatorSection() == k:
            need += mark + margin
        texts = (t.item(i, k) for i in range(t.rowCount()))
        widest = max((cell.horizontalAdvance(item.text()) for item in texts if item is not None), default=0)
        needs.append(max(need, widest + CELL_PADDING))
    return needs


def fit_columns(t: QTableWidget) -> None:
    """Give each column what it needs (`column_needs`) and share the rest of the table's width evenly; when the
    needs do not fit, each column gets its share of the width in proportion to its need."""
    viewport = t.viewport()
    if viewport is None or viewport.width() <= 0:
        return
    needs = column_needs(t)
    room, total = viewport.width(), sum(needs)
    widths = ([n + (room - total) // len(needs) for n in needs] if total <= room
              else [max(1, n * room // total) for n in needs])
    widths[-1] += room - sum(widths)  # the last column takes the rounding
    h, _ = headers(t)
    for k, w in enumerate(widths):
        h.resizeSection(k, w)


class _Refit(QObject):
    """Fits a table's columns again when its viewport is resized (a table filled while hidden has a default
    width until it is laid out)."""

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:  # noqa: N802 (Qt's name)
        if obj is not None and event is not None and event.type() == QEvent.Type.Resize:
            table = obj.parent()
            if isinstance(table, QTableWidget):
                fit_columns(table)
        return False


_REFIT = _Refit()


def fill(t: QTableWidget, rows: Sequence[Sequence[float]], decimals: Sequence[int], sort_by: int = 0,
         order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
    t.setSortingEnabled(False)
    t.setRowCount(len(rows))
    for i, values in enumerate(rows):
        for k, (value, d) in enumerate(zip(values, decimals)):
            t.setItem(i, k, NumberItem(value, d))
    t.setSortingEnabled(True)
    t.sortItems(sort_by, order)
    shown = int(np.clip(len(rows), *ROWS_SHOWN))
    h, v = headers(t)
    t.setFixedHeight(h.sizeHint().height() + shown * v.defaultSectionSize() + 4)
    fit_columns(t)


class ResultTables:
    """The solution per view and the residuals above 3 SD of the last alignment."""

    def __init__(self, go_to: Callable[[int, int], Any]) -> None:
        self._go_to = go_to  # (view index, marker id): select that point in the viewer
        self.solution = table(SOLUTION_COLUMNS, SOLUTION_TIPS)
        self.big = table(BIG_COLUMNS, BIG_TIPS)
        self.big_title = QLabel("")
        self.big_title.setWordWrap(True)
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("Solution per view, as in align.log")
        title.setToolTip("click a column's header to sort by it")
        title.setWordWrap(True)
        self.stale = QLabel(STALE)
        self.stale.setWordWrap(True)
        self.stale.setStyleSheet("QLabel { color: #ffb000; font-weight: bold; }")
        self.stale.setVisible(False)
        layout.addWidget(self.stale)
        layout.addWidget(title)
        layout.addWidget(self.solution)
        layout.addWidget(self.big_title)
        layout.addWidget(self.big)
        self.big.cellClicked.connect(self._clicked)
        self.widget.setVisible(False)
        self.n_views = 0

    def show(self, al: Alignment) -> None:
        self.n_views = al.n_views
        fill(self.solution, solution_rows(al), SOLUTION_DECIMALS)
        big = big_residuals(al)
        rows = [(float(view_number(v)), float(m), r, s, dx, dy) for v, m, r, s, dx, dy in big]
        fill(self.big, rows, BIG_DECIMALS, sort_by=2, order=Qt.SortOrder.DescendingOrder)
        self.big_title.setText(f"{len(big)} residual(s) above {REPORT_SD:g} SD of the mean; click one to go to it,"
                               " a header to sort")
        self.big.setVisible(bool(big))
        self.stale.setVisible(False)
        self.widget.setVisible(True)

    def mark_stale(self, stale: bool) -> None:
        """Say above the tables that the markers changed since the alignment they show (or no longer say it)."""
        if self.n_views and self.stale.isHidden() == stale:  # an alignment is shown and the mark changes
            self.stale.setVisible(stale)

    def _clicked(self, row: int, _column: int) -> None:
        view, marker = self.big.item(row, 0), self.big.item(row, 1)
        if isinstance(view, NumberItem) and isinstance(marker, NumberItem):
            self._go_to(view_index(int(view.number), self.n_views), int(marker.number))  # shown from 1
