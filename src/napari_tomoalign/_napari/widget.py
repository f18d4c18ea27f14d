"""The Align dock: seven numbered steps in one scroll area, each a small section of `dock`:

1. inputs (`dock.inputs`), 2. find and track beads (`dock.beads`), 3. markers (`dock.markers`,
`dock.undo`), 4. align (`dock.options`, `dock.runner`), 5. results and triage (`dock.results`,
`dock.report_view`, `dock.triage`), 6. compare (`dock.compare`, `dock.tomograms`), 7. save (`dock.save`).

This module only assembles them and leaves nothing behind when the dock closes; the Align run (the job gathered
from the layers, its result shown) is `dock.aligning`. All numerical work happens in the core
(`jobs.preview.run_preview` of a typed `PreviewJob`) in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import napari
import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .dock.aligning import Aligning
from .dock.beads import BeadSection
from .dock.compare import Comparison, bead_section, voxel_nm
from .dock.earlier import EarlierLayers
from .dock.fixer import BeadFixer
from .dock.inputs import InputsSection, is_markers
from .dock.loader import AlignmentLoader
from .dock.markers import TRACKS, MarkersPanel
from .dock.opening import OpensInTurns
from .dock.options import OptionsSection
from .dock.refit import CanvasRefit
from .dock.report_view import ReportView
from .dock.restore import Restorer
from .dock.results import ALIGNED, PREDICTED, ResultLayers
from .dock.runner import Runner
from .dock.save import SaveSection
from .dock.state import Runs
from .dock.status import StatusLine, refuse
from .dock.table_view import ResultTables
from .dock.tomograms import SliceView
from .dock.triage import Triage
from .dock.ui import Step
from .dock.undo import UndoStack

__all__ = ["ALIGNED", "PREDICTED", "TRACKS", "AlignWidget"]
SCROLL_DELAYS_MS = (40, 300)


class AlignWidget(Aligning, OpensInTurns):
    """Dock widget: align a tilt series from the markers in a Points layer and show the result. It opens in
    short turns (`dock.opening`): the sections below are built in the turn after napari adds the dock, or
    when a script first reaches one."""

    SECTIONS = frozenset(("inputs", "panel", "options", "runner", "results", "beads", "report", "triage", "fixer",
                          "tables", "tomograms", "comparison", "restorer", "saving", "undo_stack", "steps",
                          "options_fold", "earlier", "loader"))
    inputs: InputsSection
    panel: MarkersPanel
    options: OptionsSection
    runner: Runner
    results: ResultLayers
    beads: BeadSection
    report: ReportView
    triage: Triage
    fixer: BeadFixer
    tables: ResultTables
    tomograms: SliceView
    comparison: Comparison
    restorer: Restorer
    saving: SaveSection
    undo_stack: UndoStack
    options_fold: Step
    earlier: EarlierLayers
    loader: AlignmentLoader

    def __init__(self, viewer: napari.viewer.Viewer) -> None:  # the annotation lets napari pass its viewer
        super().__init__()
        self._viewer = viewer
        self.runs = Runs()
        self._journal_later = False
        self._shown_from: tuple[Any, np.ndarray, np.ndarray, set[int]] | None = None  # the markers of step 5's run
        self._excluded_then: set[int] = set()  # the exclusions of the run started last
        self.status = StatusLine("ready")
        self.refit = CanvasRefit(viewer)  # before napari narrows the canvas for the dock: refit an unmoved view
        layout = self.layout()
        assert layout is not None  # OpensInTurns made it
        layout.addWidget(self.status.label)

    def build_sections(self) -> None:
        viewer = self._viewer
        self.undo_stack = UndoStack(on_change=lambda on: setattr(self.triage.undo_button, "enabled", on))
        self.inputs = InputsSection(viewer, self.say, self.undo_stack)
        self.panel = MarkersPanel(viewer, self.undo_stack, self.say)
        self.panel.image_of = lambda: self.inputs.image.value  # the ids' colours contrast with it
        self.options = OptionsSection()
        self.runner = Runner(self.say)
        self.results = ResultLayers(viewer)
        self.beads = BeadSection(viewer, self.inputs, self.options, self.runs, self.panel, self.results, self.say,
                                 lambda: self.busy)
        self.runner.locked += [self.beads.find_button, self.beads.runner.align_button]  # one job at a time
        self.beads.runner.locked.append(self.runner.align_button)
        self.report = ReportView(self.runs.surfaces)
        self.loader = AlignmentLoader(viewer, self.inputs, self.results, self.report, self.say,  # a saved alignment
                                      self.runs)
        self.triage = Triage(viewer, self.runs, self.panel, self.say)
        self.fixer = BeadFixer(viewer, self.runs, self.panel, self.inputs, self.beads.diameter_px, self.say,
                               dark=lambda: self.beads.polarity.value == "dark")
        self.triage.on_nothing_selected = lambda: self.fixer.accept_gap() if self.fixer.gap is not None else None
        self.tables = ResultTables(self.triage.go_to)
        self.tomograms = SliceView()
        self.tomograms.fit_to(self.steps_area)  # every panel in view at once
        self.comparison = Comparison(self.runs, self.tomograms, self.report, self.say)
        self.comparison.reveal = lambda: self.reveal_step(5)
        self.runs.on_load.append(self.comparison.refresh)
        self.restorer = Restorer(viewer, self.inputs, self.panel, self.say)
        self.earlier = EarlierLayers(viewer, self.say, self.beads.adopt_candidates)  # an earlier dock's layers
        self.panel.on_refresh.append(self._journal_edit)
        self.panel.on_refresh.append(self._check_stale)
        self.saving = SaveSection(self.runs, lambda: self.panel.layer, self.say, lambda: self.inputs.image.value)
        self.saving.on_markers_saved.append(self.restorer.saved)
        self.steps = self._build()
        self._connect()
        self.runner.warm_up()

    def first_looks(self) -> list[Callable[[], Any]]:
        """The dock's first looks at the viewer's layers, a turn each: the inputs and the marker colours, then a
        journal to restore."""
        def layers() -> None:
            self._journal_later = True
            self.refresh()
            self.steps[1].set_expanded(self.inputs.markers.value is None)  # bead finding folds when markers exist

        def journal() -> None:
            self._journal_later = False
            self.restorer.check()
            self.earlier.check()
            self.refit.settle()

        return [layers, journal]

    def _build(self) -> list[Step]:
        results = _column(self.loader.widget.native, self.results.widget.native, self.triage.widget.native,
                          self.triage.edit_row.native, self.triage.exclude_row.native, self.fixer.widget.native,
                          self.fixer.second_row.native, self.tables.widget, self.report.widget)
        self.options_fold = Step(None, "options", self.options.widget.native)
        steps = [
            Step(1, "Inputs", _column(self.inputs.widget.native, self.restorer.info.native,
                                      self.restorer.widget.native, self.earlier.info.native,
                                      self.earlier.widget.native)),
            Step(2, "Find and track beads", self.beads.widget.native),
            Step(3, "Markers", self.panel.widget.native),
            Step(4, "Align", _column(self.options_fold, self.runner.widget.native,
                                     self.runner.progress.native)),
            Step(5, "Results and triage", results),
            Step(6, "Tomogram and compare", _column(self.tomograms.widget, self.comparison.widget.native)),
            Step(7, "Save", self.saving.widget.native),
        ]
        return steps

    def _connect(self) -> None:
        self.inputs.on_change.append(self._on_inputs)
        self.panel.on_undo_key.append(self.undo)
        self.runner.align_button.changed.connect(lambda *_: self.start_alignment())
        self.runner.cancel_button.changed.connect(self.runner.cancel)
        self.triage.undo_button.changed.connect(lambda *_: self.undo())
        self.results.exaggeration.changed.connect(lambda *_: self._redraw_residuals())
        self.results.show_tomogram.changed.connect(lambda *_: self.show_tomogram())
        self._viewer.layers.events.inserted.connect(self.refresh)
        self._viewer.layers.events.removed.connect(self._on_removed)

    # ------------------------------------------------------------------ status and choices
    def say(self, text: str, error: bool = False) -> None:
        self.status.say(text, error)

    def refresh(self, *_: Any) -> None:
        self.inputs.refresh()

    def _journal_edit(self) -> None:
        self.restorer.journal.record()

    def _check_stale(self) -> None:
        """Mark step 5's tables stale once the markers differ from those the shown alignment was solved from."""
        shown = self._shown_from
        layer = self.panel.layer
        if shown is None or layer is None or layer is not shown[0]:
            return
        same = (len(layer.data) == len(shown[1]) and np.array_equal(layer.data, shown[1])
                and np.array_equal(layer.features["marker"].to_numpy(), shown[2]) and self.panel.excluded == shown[3])
        self.tables.mark_stale(not same)

    def _on_removed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            self.undo_stack.forget(layer)
            if layer is self.panel.layer:
                self.panel.unwatch()
            self.earlier.drop(layer)
        self.inputs.close()
        self.restorer.close()
        self.refresh()

    def _on_inputs(self) -> None:
        note = self.options.axis_from_stack(self.inputs.image.value)  # the axis' branch: the tomogram or its mirror
        if note is not None:
            self.say(note)
        layer = self.inputs.markers.value
        self.panel.watch(layer if layer is not None and is_markers(layer) else None)
        if not self._journal_later:  # the first look leaves it to a turn of its own
            self.restorer.check()
        self.beads.refresh()

    def show_tomogram(self) -> list[str]:
        """The last run's preview tomogram, in the dock's slice view (step 6)."""
        last = self.runs.last
        if last is None or last.tomogram is None:
            loaded = self.loader.loaded
            refuse(self.say, "no tomogram yet: align with a tilt series chosen; the tomogram is made from it" + (
                f" (the loaded '{loaded.name}': {loaded.elsewhere()})" if loaded else ""))
            return []
        label = f"tomogram: {last.name} (RMS {last.alignment.rms_residual_px:.3f} px)"
        beads = bead_section(last, last.tomogram.shape[0])
        shown = self.tomograms.show([(last.tomogram, voxel_nm(last), label)], start=beads[0] if beads else None)
        self.reveal_step(5)
        nz, ny, nx = last.tomogram.shape  # said as the command line says it: x by y by z
        kernel = last.kernel.line() if last.kernel is not None else ""  # the full model's; the plain one says nothing
        self.say(f"tomogram of '{last.name}' in step 6 ({nx} x {ny} x {nz} (x, y, z) voxels of "
                 f"{voxel_nm(last):.3g} nm), {self.tomograms.section_said(beads)}" + (f"; {kernel}" if kernel else ""))
        return shown

    def reveal_step(self, k: int) -> None:
        """Unfold step ``k + 1`` and scroll its top to the top of the dock (once the layout has its new size)."""
        from qtpy.QtCore import QTimer

        self.steps[k].set_expanded(True)
        for delay in SCROLL_DELAYS_MS:  # steps folded a moment ago give their room back over a few turns
            QTimer.singleShot(delay, lambda: self.scroll_to(self.steps[k]))

    def scroll_to(self, child: QWidget) -> None:
        """Scroll the steps so that ``child``'s top is at the top of the dock."""
        if self._closed:
            return
        try:
            bar, content = self.steps_area.verticalScrollBar(), self.steps_area.widget()
            if bar is not None and content is not None:
                bar.setValue(child.mapTo(content, child.rect().topLeft()).y())
        except RuntimeError:  # the dock was deleted before the timer fired
            pass

    def undo(self) -> None:
        """Undo the last edit of the markers: napari's add, move and delete, and the triage (also Ctrl+Z)."""
        undone = self.undo_stack.undo()
        if undone is not None:
            self.panel.excluded = undone[1]
            self.panel.refresh()
            self.say("undone")

    # ------------------------------------------------------------------ closing
    def event(self, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.ParentChange and self.parent() is None and not self._closed:
            self.teardown()  # napari takes a closed dock's widget out of its window
        return super().event(event)

    def teardown(self) -> None:
        """Leave nothing behind: stop a run, give back the GC, let go of the layers, close the tomograms."""
        if self._closed:
            return
        self._closed = True
        self.refit.disarm()
        if not self.opened:  # closed before its sections were built: nothing else to let go of
            return
        self.runner.teardown()
        self.beads.runner.teardown()
        self.panel.unwatch()
        self.inputs.close()
        self.restorer.close()
        for emitter, callback in ((self._viewer.layers.events.inserted, self.refresh),
                                  (self._viewer.layers.events.removed, self._on_removed)):
            emitter.disconnect(callback)
        self.tomograms.clear()

    def closeEvent(self, event: Any) -> None:
        self.teardown()
        super().closeEvent(event)


def _column(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    return box
