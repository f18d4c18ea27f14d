"""Step 5's tables in Qt: the per-view solution and the big residuals, sortable by any column (numbers sort
as numbers); a click on a big residual jumps to its point."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

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
ROWS_SHOWN = (4, 12)  # a table is as tall as its rows, within these


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
    h.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    h.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)  # "view" and its sort arrow, whole
    h.setMinimumSectionSize(20)
    v.setVisible(False)
    v.setDefaultSectionSize(t.fontMetrics().lineSpacing() + 4)
    t.setSortingEnabled(True)
    return t


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
