"""Step 4's Align run of the dock (`widget.AlignWidget`): the job gathered from the layers, the worker started, and
its result shown in short steps (the layers, the flagged points, the tables, the report, the status)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from ...errors import Cancelled
from ...jobs.align import prealigned_note
from ...jobs.preview import PipelineResult, PreviewJob
from ...reconstruction.positioning import SurfaceAnalysis
from ..layers import points_to_markers
from .bead_logic import alignment_visits, checked_pairs
from .beads import BeadSection
from .compare import Comparison
from .inputs import InputsSection, is_markers
from .logic import dock_job, flagged_pairs, safe_stem, same_axis_options
from .markers import MarkersPanel
from .options import OptionsSection
from .prealigned import file_frame_points, prexg_of
from .report_view import ReportView
from .results import ResultLayers
from .runner import Runner
from .state import Runs
from .table_view import ResultTables
from .tomograms import SliceView
from .ui import Step


class Aligning:
    """Align: the dock's sections it reads and shows in are the dock's (`widget.AlignWidget` makes them)."""

    _viewer: Any
    runs: Runs
    inputs: InputsSection
    panel: MarkersPanel
    options: OptionsSection
    runner: Runner
    results: ResultLayers
    beads: BeadSection
    report: ReportView
    tables: ResultTables
    tomograms: SliceView
    comparison: Comparison
    options_fold: Step
    steps: list[Step]
    _shown_from: tuple[Any, np.ndarray, np.ndarray, set[int]] | None  # the markers of step 5's run
    _excluded_then: set[int]  # the exclusions of the run started last
    say: Callable[..., None]
    reveal_step: Callable[[int], None]
    show_tomogram: Callable[[], list[str]]

    @property
    def busy(self) -> bool:
        """True from Align (or Find beads, or Track) until the result is shown (or the run failed or was
        cancelled)."""
        return self.runner.busy or self.beads.runner.busy

    def gather_job(self) -> tuple[PreviewJob, tuple[np.ndarray, np.ndarray]]:
        """Everything the worker needs, copied out of the layers (ValueError with a message if not ready)."""
        image, markers = self.inputs.image.value, self.inputs.markers.value
        if markers is None or not is_markers(markers):
            raise ValueError("choose a markers layer (open a .fid or .csv, the sample, or 'New markers layer')")
        if len(markers.data) == 0:
            raise ValueError(f"the markers layer '{markers.name}' has no points")
        self.inputs.pair()  # markers hold the stack's pixels, in its frame: nothing to convert
        tilts, source = self.inputs.tilt_angles()
        data, ids = np.array(markers.data, dtype=float), markers.features["marker"].to_numpy(dtype=np.int64)
        prexg = prexg_of(markers)  # shown on the raw stack through etomo's .prexg: solved on the .preali, as the CLI
        table = points_to_markers(file_frame_points(data, markers.metadata) if prexg is not None else data, ids)
        if self.panel.excluded:
            keep = ~np.isin(table.marker, list(self.panel.excluded))
            if not keep.any():
                raise ValueError("every marker is excluded; undo an exclusion first")
            table = type(table)(table.view[keep], table.marker[keep], table.xy[keep])
        if image is not None:
            size, pixel_nm = (int(image.data.shape[2]), int(image.data.shape[1])), image.metadata.get("pixel_size_nm")
        else:
            size, pixel_nm = markers.metadata.get("image_size"), None
            if size is None:
                raise ValueError("choose the tilt series too: the image size is needed")
        settings, opts = self.options.settings(), self.options.options()
        last = self.runs.last
        on = self.runs.aligned_on  # warm from this series' own last Align only (finding V, s12: else its branch)
        warm = (self.options.warm_start.value and last is not None and on == (markers, image) and not settings[
            "only_markers_in_every_view"] and last.alignment.n_views == len(tilts) and last.name == settings["name"]
            and same_axis_options(last, opts))
        job = dock_job(table, tilts, size, pixel_nm, image.data if image is not None else None, opts,
                       settings, last.alignment if warm and last is not None else None, safe_stem(markers.name),
                       prexg=(prexg["path"], prexg["transforms"]) if prexg is not None else None)
        self._tilt_source = source
        check = markers.features["check"].to_numpy(dtype=bool) if "check" in markers.features else None
        self._checked = checked_pairs(data, ids, check)  # points tracking marked: triage visits them early
        self._excluded_then = set(self.panel.excluded)
        return job, (data, ids)

    def start_alignment(self) -> Any:
        """Start the worker; input problems are notified and nothing changes."""
        if self.busy:
            return None
        try:
            job, snapshot = self.gather_job()
        except ValueError as exc:
            show_error(str(exc))
            self.say(f"not started: {exc}", error=True)
            return None
        image, markers = self.inputs.image.value, self.inputs.markers.value
        worker = self.runner.start(job, lambda result, plot, surfaces: self._on_result(result, plot, image, markers,
                                                                                      snapshot, surfaces),
                                   self._on_failure)
        if worker is not None:  # the work goes on in the results: the options and the bead step fold away now,
            self.options_fold.set_expanded(False)  # so that the dock has its new height when the results come
            self.steps[1].set_expanded(False)
        return worker

    def _on_failure(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self.say("cancelled; nothing was changed")
            show_info("alignment cancelled; the layers are as they were")
            return
        self.say(f"failed: {exc}", error=True)
        show_error(str(exc))

    def _on_result(self, result: PipelineResult, plot: Any, image: Any, markers: Any,
                   snapshot: tuple[np.ndarray, np.ndarray], surfaces: SurfaceAnalysis | None = None) -> None:
        """Show the result in small steps, one per turn of the event loop, so the GUI never stalls long."""
        import time

        elapsed = time.perf_counter() - self.runner.started
        al = result.alignment
        self.runs.add(result, markers, image, alignment_visits(al, self._checked), surfaces)
        self._shown_from = (markers, snapshot[0], snapshot[1], self._excluded_then)
        self.panel.flagged = flagged_pairs(al)

        def colour() -> None:
            self.panel.refresh()  # colour the flagged points

        def tables() -> None:
            self.comparison.refresh(result.name)
            self.tables.show(al)

        def tell() -> None:
            self.runner.progress.value = 100
            self.reveal_step(4)
            self.say(f"done in {elapsed:.2f} s: RMS {al.rms_residual_px:.3f} px, tilt axis {al.tilt_axis_deg:.1f} deg"
                     f" (angles from {self._tilt_source})")
            for w in al.warnings:
                show_warning(w)
            for w in self.options.axis_warnings(al.tilt_axis_deg):  # the mirror, as the command line says it
                show_warning(w)
            placed, shown = (getattr(getattr(layer, "source", None), "path", None) for layer in (markers, image))
            note = prealigned_note(placed, shown) if placed and shown and (
                result.job is None or result.job.align.prexg is None) else None
            if note:  # etomo's model on the raw stack without its .prexg (step 1): the .xf is the .preali's
                show_warning(note)

        def finish() -> None:
            if markers in self._viewer.layers:
                self._viewer.layers.selection.active = markers
            if self.tomograms.shown and result.tomogram is not None:
                self.show_tomogram()
            self.runner.finish()

        steps = self.results.steps(result, image, markers, snapshot)
        self.runner.run_steps([*steps, colour, tables, lambda: self.report.show([result], plot=plot), tell, finish])

    def _redraw_residuals(self) -> None:
        if self.runs.last is not None or self.results.loaded is not None:  # an Align's, or a loaded alignment's
            self.results.show_residual_vectors()
            self.results.reveal()
