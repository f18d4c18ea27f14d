"""*Load alignment...* (step 5): a saved alignment shown on the dock's stack, without aligning again.

The user picks an ``alignment.json`` (or a ``tomoalign align`` folder's ``.xf``, or etomo's ``NAME.xf``); it is read
and checked against the chosen tilt series by the command line's own reader (`dock.loaded`: a file of another run
or another stack is refused in one line) and its residuals are drawn as after Align (the residual vectors over the
stack, exaggerated by step 5's *residuals x*), with its RMS in the status line and, in step 5's report, what the
readers noted and the views of largest RMS; its aligned stack is step 5's *aligned stack* (warped view by view when
shown, as `tomoalign aligned-stack` warps it). The last Align's other layers (its predicted and aligned markers) are
hidden: they are not this alignment's. It joins the alignments Compare (step 6) and Save (step 7) offer, by its file's
name (`state.Runs.add_loaded`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_info, show_warning

from ...io.errors import FileFormatError
from ...io.prealignment import to_raw, vectors_to_raw
from .inputs import InputsSection
from .loaded import LoadedAlignment, load_alignment, stack_path_of
from .prealigned import prexg_of
from .report_view import ReportView
from .results import ResultLayers
from .state import Runs
from .status import refuse
from .ui import button, row

FILTERS = "alignment (alignment.json *.xf);;all files (*)"


class AlignmentLoader:
    """The Load alignment button and what it shows."""

    def __init__(self, viewer: Any, inputs: InputsSection, results: ResultLayers, report: ReportView,
                 status: Callable[..., None], runs: Runs | None = None) -> None:
        self._viewer, self._inputs, self._results, self._report, self._status = viewer, inputs, results, report, status
        self._runs = runs if runs is not None else Runs()  # where Save and Compare find it, by name
        self.loaded: LoadedAlignment | None = None
        self.load_button = button("Load alignment...", "show a saved alignment (alignment.json, or etomo's .xf) on "
                                  "this tilt series: its residuals, as after Align")
        self.widget = row(self.load_button)
        self.load_button.changed.connect(lambda *_: self.load())

    def load(self, path: str | Path | None = None) -> LoadedAlignment | None:
        """Read the alignment at ``path`` (asks for one when None) for the chosen stack and show its residuals."""
        image = self._inputs.image.value
        try:
            stack = stack_path_of(image)
        except ValueError as exc:
            refuse(self._status, f"not loaded: {exc}")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(None, "Load alignment", str(stack.parent), FILTERS)
            if not path:
                return None
        try:
            loaded = load_alignment(path, stack)
        except (FileFormatError, OSError, ValueError) as exc:
            refuse(self._status, f"not loaded: {exc}")
            return None
        self.loaded = loaded
        name = self._runs.add_loaded(loaded, self._inputs.markers.value, image)  # Save and Compare offer it
        self._show(loaded, image, name)
        return loaded

    def _show(self, loaded: LoadedAlignment, image: Any, name: str) -> None:
        view, xy, residual = loaded.view, loaded.xy, loaded.residual
        if view is None or xy is None or residual is None:  # no .resid: no arrows (not the last ones' left)
            view, xy, residual = np.empty(0, dtype=np.intp), np.empty((0, 2)), np.empty((0, 2))
        shown = prexg_of(self._inputs.markers.value)  # a .resid of markers on the .preali: drawn over the raw stack
        pre = loaded.saved.prexg if loaded.saved.prexg is not None else shown["transforms"] if shown else None
        if pre is not None and len(view):
            size = (int(image.data.shape[2]), int(image.data.shape[1]))  # the stack's: checked to be the set's
            xy, residual = to_raw(pre, view, xy, size), vectors_to_raw(pre, view, residual)
        steps = self._results.show_loaded(view, xy, residual, loaded.rms_px or 0.0, image, self._inputs.markers.value,
                                          loaded)
        while steps:  # a few layers at most: at once
            steps[0:1] = steps[0]() or []
        self._report.show_lines(loaded.report())
        self._status(f"{loaded.summary()}; '{name}' in Compare (step 6) and Save (step 7)")
        show_info(loaded.summary())
        for note in loaded.notes:
            (show_info if note.startswith("note:") else show_warning)(note)
