"""The report of the last alignment (or of the two compared): `report.text_report`'s lines, which
include the tilt axis and the solver's warnings, IMOD's surface analysis of the markers as ``tomoalign align``
prints it (`reconstruction.positioning.SurfaceAnalysis.report`), and `report.report_plot`'s per-view plot."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont, QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ...reconstruction.positioning import SurfaceAnalysis
from ...report import NO_PLOTS, report_plot, text_report
from ...workflows import PipelineResult

PLOT_SIZE = (320, 260)


def report_lines(results: list[PipelineResult], surfaces: dict[str, SurfaceAnalysis | None] | None = None
                 ) -> list[str]:
    """The text of the report for one or more runs, each with its surface analysis (``surfaces``, by run name)
    where there is one."""
    lines: list[str] = []
    for r in results:
        lines += text_report(r.alignment, name=r.name, leave_out=r.leave_out, timings_s=r.timings_s)
        analysis = (surfaces or {}).get(r.name)
        if analysis is not None:
            lines += ["", *analysis.report().splitlines()]
    return lines


class ReportView:
    """The report, whole: a label that wraps each line at the dock's width (nothing scrolls sideways, nothing
    is cut; the dock's own scroll area scrolls), in a small fixed-pitch font, and the plot under it."""

    def __init__(self, surfaces: dict[str, SurfaceAnalysis | None] | None = None) -> None:
        self.surfaces = {} if surfaces is None else surfaces  # each run's surface analysis, by run name
        self.text = QLabel("no alignment yet")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(8)
        self.text.setFont(font)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.text.setMinimumWidth(0)
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
        return self.text.text()

    def show(self, results: list[PipelineResult], plot: Any = None) -> None:
        lines = report_lines(results, self.surfaces)
        self.text.setText("\n".join(lines))
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
