"""The shared part of step 2 (`dock.beads`): the stack's pixel size, the bead diameter in pixels, the view chosen,
the legend, and how a Find or a Track that could not start or failed is said. `dock.bead_find` and `dock.bead_track`
build on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from napari.layers import Points
from napari.utils.notifications import show_error, show_info

from ...conventions import view_index
from ...errors import Cancelled
from ...tracking.beads import diameter_px_from_nm
from .inputs import InputsSection
from .markers import MarkersPanel
from .options import OptionsSection
from .remembered import BeadMemory
from .results import ResultLayers
from .runner import Runner
from .state import Runs
from .ui import DOCK_CONTENT_WIDTH, Text

CANDIDATES = "bead candidates"  # the layer's role; its name is short: "<stack> beads?"
CANDIDATES_NAME = "beads?"
RING_BORDER = 0.12  # relative to the ring's diameter


def pixel_size_nm(image: Any) -> tuple[float, str]:
    """The stack's pixel size in nm and where it came from (ValueError with a message if there is none)."""
    value = image.metadata.get("pixel_size_nm")
    if value:
        return float(value), "header"
    scale = float(image.scale[-1])
    if scale != 1.0:
        return scale, "layer scale"
    raise ValueError(f"'{image.name}' records no pixel size, so a diameter in nm cannot be converted: open an MRC "
                     "whose header has it with TomoAlign's reader, or set the layer's scale to nm per pixel")


class BeadStep:
    """What Find beads and Track share; `dock.beads.BeadSection` makes the controls."""

    _viewer: Any
    _inputs: InputsSection
    _options: OptionsSection
    _runs: Runs
    _panel: MarkersPanel
    _results: ResultLayers
    _status: Callable[..., None]
    _busy: Callable[[], bool]
    candidates: Points | None
    _candidates_of: Any  # the stack the candidates were found on
    hint: str | None
    diameter_nm: FloatSpinBox
    view: SpinBox
    polarity: ComboBox
    with_clumps: CheckBox
    memory: BeadMemory
    runner: Runner
    legend: Text

    def _tilts(self) -> np.ndarray | None:
        try:
            return self._inputs.tilt_angles()[0]
        except ValueError:
            return None

    def diameter_px(self) -> float:
        image = self._inputs.image.value
        if image is None:
            raise ValueError("choose (or open) a tilt series first")
        return diameter_px_from_nm(float(self.diameter_nm.value), pixel_size_nm(image)[0])

    def view_chosen(self) -> int:
        """The 0-based index of the view the spin box names (numbered from 1)."""
        return view_index(int(self.view.value), int(self.view.max))

    def _done(self) -> None:
        self.runner.progress.value = 100
        self.runner.finish()

    def show_legend(self, text: str) -> None:
        """Set the legend and reserve its height at the dock's width, plus a line: a wrapped label in a form
        keeps the height of its old text, and Qt's height for rich text falls a line short here."""
        label = self.legend.native
        label.setText(text)
        # the narrower of its laid-out width and the dock's design width: at 1280 x 800 the dock is 328 px, and a
        # height reserved at 340 px cut the legend to one line (new user's nit, session 12)
        width = min(label.width(), DOCK_CONTENT_WIDTH) if label.width() > 100 else DOCK_CONTENT_WIDTH
        label.setMinimumHeight(label.heightForWidth(width) + label.fontMetrics().lineSpacing())


    # ------------------------------------------------------------------ failures
    def _refuse(self, exc: Exception) -> None:
        show_error(str(exc))
        self._status(f"not started: {exc}", error=True)
        return None

    def _on_failure(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self._status("cancelled; nothing was changed")
            show_info("cancelled; the layers are as they were")
            return
        self._status(f"failed: {exc}", error=True)
        show_error(str(exc))
