"""The report of the last alignment (or of the two compared): `report.text_report`'s lines, which
include the tilt axis and the solver's warnings, IMOD's surface analysis of the markers as ``tomoalign align``
prints it (`reconstruction.positioning.SurfaceAnalysis.report`), and `report.report_plot`'s per-view plot."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QFont, QImage, QPixmap
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ...reconstruction.positioning import SurfaceAnalysis
from ...report import NO_PLOTS, report_plot, text_report
from ...workflows import PipelineResult

PLOT_SIZE = (320, 260)
TABLE_INDENT = "  "  # the report's table lines (the stages, the timings) are indented; its prose is not


def report_blocks(lines: list[str]) -> list[tuple[bool, list[str]]]:
    """The lines in runs of prose and of table lines: ``(is_table, lines)``, in order."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in lines:
        is_table = line.startswith(TABLE_INDENT)
        if blocks and blocks[-1][0] == is_table:
            blocks[-1][1].append(line)
        else:
            blocks.append((is_table, [line]))
    return blocks


def monospace_label(text: str, wrap: bool) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSize(8)
    label.setFont(font)
    if wrap:
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        label.setMinimumWidth(0)
    return label


class TableBlock(QScrollArea):
    """Table lines kept whole, each on one line: wider than the dock, they scroll sideways on their own (the
    dock's scroll area never does), so that the columns stay columns. As tall as its lines and a scroll bar,
    in the font napari's style sheet gives them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)  # never narrower than its longest line (a label that does not wrap)
        self.setWidget(monospace_label(text, wrap=False))
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(0)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        label, bar = self.widget(), self.horizontalScrollBar()
        assert label is not None and bar is not None
        return QSize(0, label.sizeHint().height() + bar.sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.sizeHint()


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
    """The report, whole, in a small fixed-pitch font: its prose wraps at the dock's width; its table lines (the
    stages and timings) stay whole and scroll sideways in a block of their own (`TableBlock`); the plot under
    it. Nothing is cut, and the dock's own scroll area scrolls only up and down."""

    def __init__(self, surfaces: dict[str, SurfaceAnalysis | None] | None = None) -> None:
        self.surfaces = {} if surfaces is None else surfaces  # each run's surface analysis, by run name
        self._text = "no alignment yet"
        self.text = QWidget()
        self._blocks = QVBoxLayout(self.text)
        self._blocks.setContentsMargins(0, 0, 0, 0)
        self._blocks.setSpacing(0)
        self.blocks: list[QWidget] = []
        self._set_text([self._text])
        self.plot = QLabel()
        self.plot.setFixedSize(*PLOT_SIZE)
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addWidget(self.plot)
        self.image: np.ndarray | None = None

    def _set_text(self, lines: list[str]) -> None:
        """Show ``lines``: in the blocks there are when the runs of prose and tables are alike (each Align
        again), else in new ones (making them costs ~10 ms more)."""
        blocks = report_blocks(lines)
        kinds = [isinstance(b, TableBlock) for b in self.blocks]
        if kinds == [is_table for is_table, _ in blocks]:
            for block, (_, part) in zip(self.blocks, blocks):
                label = block.widget() if isinstance(block, TableBlock) else block
                if isinstance(label, QLabel):
                    label.setText("\n".join(part))
                block.updateGeometry()
        else:
            for old in self.blocks:
                self._blocks.removeWidget(old)
                old.hide()  # out of sight now: deleted when control is back in the event loop (a script's may be later)
                old.deleteLater()
            self.blocks = [TableBlock("\n".join(part)) if is_table else monospace_label("\n".join(part), wrap=True)
                           for is_table, part in blocks]
            for block in self.blocks:
                self._blocks.addWidget(block)
        self._text = "\n".join(lines)

    @property
    def value(self) -> str:
        return self._text

    def show_lines(self, lines: list[str]) -> None:
        """Text alone, no plot: what a loaded alignment (`dock.loader`) tells."""
        self._set_text(lines)
        self.plot.clear()
        self.image = None

    def show(self, results: list[PipelineResult], plot: Any = None, more: list[str] | None = None) -> None:
        """The runs' report and plot (``plot``: drawn in a worker; drawn here when None), ``more`` lines after it (a
        loaded alignment's, compared with a run)."""
        lines = report_lines(results, self.surfaces) + list(more or [])
        self._set_text(lines)
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
