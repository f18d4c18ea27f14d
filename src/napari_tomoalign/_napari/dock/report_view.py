"""The report of the last alignment (or of the two compared): `report.text_report`'s lines, which
include the tilt axis and the solver's warnings, and `report.report_plot`'s per-view plot."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont, QImage, QPixmap
from qtpy.QtWidgets import QApplication, QLabel, QPlainTextEdit, QSizePolicy, QVBoxLayout, QWidget

from ...report import NO_PLOTS, report_plot, text_report
from ...workflows import PipelineResult

PLOT_SIZE = (320, 260)
REPORT_LINES = (8, 30)  # the text box shows this many lines at least and at most (its report's, the screen's)
OTHER_HEIGHT = 560  # px of a screen the window's title, menus, the other rows of step 5 and the status take


def report_lines(results: list[PipelineResult]) -> list[str]:
    """The text of the report for one or more runs."""
    lines: list[str] = []
    for r in results:
        lines += text_report(r.alignment, name=r.name, leave_out=r.leave_out, timings_s=r.timings_s)
    return lines


class ReportView:
    """A read-only text box, one report line per line (it scrolls sideways rather than wrapping a table's
    rows), as tall as its report (or as the screen allows), and the plot under it."""

    def __init__(self) -> None:
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(8)
        self.text.setFont(font)
        self.text.setPlainText("no alignment yet")
        self.text.setFixedHeight(report_height(self.text.fontMetrics().lineSpacing()))
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.plot = QLabel()
        self.plot.setFixedSize(*PLOT_SIZE)
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addWidget(self.plot)
        self.image: np.ndarray | None = None

    @property
    def value(self) -> str:
        return self.text.toPlainText()

    def show(self, results: list[PipelineResult], plot: Any = None) -> None:
        lines = report_lines(results)
        self.text.setPlainText("\n".join(lines))
        self.text.setFixedHeight(report_height(self.text.fontMetrics().lineSpacing(), n_lines=len(lines)))
        if plot is None:
            plot = report_plot({r.name: r.alignment for r in results}, size_px=PLOT_SIZE)
        if plot is None:  # no matplotlib: the text report alone, and how to get the plots
            self.plot.clear()
            self.plot.setText(NO_PLOTS)
            self.plot.setWordWrap(True)
            self.image = None
            return
        rgba = np.ascontiguousarray(plot)
        h, w = rgba.shape[:2]
        # PyQt6's stub asks for bytes; any buffer will do, and rgba outlives the image until .copy()
        image = QImage(cast(bytes, rgba.data), w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.plot.setPixmap(QPixmap.fromImage(image))
        self.image = rgba


def report_height(line_px: int, screen_px: int | None = None, n_lines: int | None = None) -> int:
    """The text box's height in px: ``n_lines`` (a report's), or the lines a screen of ``screen_px`` (the primary
    screen's available height) leaves for it if fewer, within `REPORT_LINES`, and room for the sideways scroll
    bar."""
    if screen_px is None:
        app = QApplication.instance()
        screen = app.primaryScreen() if isinstance(app, QApplication) else None
        screen_px = screen.availableGeometry().height() if screen is not None else 800
    lines = (int(screen_px) - OTHER_HEIGHT) // max(int(line_px), 1)
    lines = int(np.clip(min(lines, n_lines + 1 if n_lines is not None else lines), *REPORT_LINES))
    return lines * int(line_px) + 24
