"""Step 2, beads: find the gold beads on one view, then track them through the series.

*Find beads* shows the beads found on the chosen view (default: the one nearest 0 degrees) as hollow rings
in a Points layer of their own, in the stack's frame: ring colour = strength, squares = clumps, white =
added by the user. The user deletes and adds rings with napari's Points tools; where no beads can be told
from the rest, the layer comes empty, in add mode, for the user to click them. *Track* runs `track_beads`
in a worker (progress, Cancel) from those rings, or from the beads it finds itself when there are none,
and fills a new ordinary markers layer with the tracks: the Markers, Align and triage steps work on it.
Points tracking marks to check (weak, flagged, unfitted) get a thick white outline and come first in triage.

This module makes the step's controls; Find is `dock.bead_find`, Track `dock.bead_track`, what they share
`dock.bead_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from napari.layers import Points

from ...conventions import view_number
from .bead_find import BeadFinding
from .bead_jobs import track_job
from .bead_logic import nearest_zero_view, tracking_percent
from .bead_step import CANDIDATES, CANDIDATES_NAME, RING_BORDER, pixel_size_nm
from .bead_track import BeadTracking
from .inputs import InputsSection
from .markers import MarkersPanel
from .options import OptionsSection
from .patches import PatchPanel
from .remembered import BeadMemory
from .results import ResultLayers
from .runner import Runner
from .state import Runs
from .ui import button, form, row, text_label

__all__ = ["CANDIDATES", "CANDIDATES_NAME", "RING_BORDER", "BeadSection", "pixel_size_nm"]


class BeadSection(BeadFinding, BeadTracking):
    """Find beads, the candidates layer, Track and the markers layer it fills."""

    def __init__(self, viewer: Any, inputs: InputsSection, options: OptionsSection, runs: Runs, panel: MarkersPanel,
                 results: ResultLayers, status: Callable[..., None], busy: Callable[[], bool]) -> None:
        self._busy = busy  # True while any job of the dock runs (an Align, a Find, a Track)
        self._viewer, self._inputs, self._options, self._runs, self._panel = viewer, inputs, options, runs, panel
        self._results = results
        self._status = status
        self._image_id: int | None = None
        self.candidates: Points | None = None
        self.hint: str | None = None  # the last Track's diameter hint (tracking.jobs.diameter_hint), if any
        self._candidates_of: Any = None  # the stack the candidates were found on
        self.diameter_nm = FloatSpinBox(label="bead diameter (nm)", min=0.5, max=500.0, step=0.5, value=10.0,
                                        tooltip="the gold's diameter; converted with the stack's pixel size")
        self.view = SpinBox(label="find in view", min=1, max=1, value=1,
                            tooltip="the view to find beads on and track from, numbered from 1 as in 3dmod "
                                    "(default: the one nearest 0 deg)")
        self.polarity = ComboBox(label="beads", choices=("dark", "bright"), value="dark",
                                 tooltip="dark gold on a bright background (bright field), or bright (HAADF STEM)")
        self.memory = BeadMemory(self.diameter_nm, self.polarity, self.describe)  # a reopened dock's values, whence
        self.with_clumps = CheckBox(text="track clumps too", value=False,
                                    tooltip="also track the candidates drawn as squares (clustered or elongated); "
                                            "as --clumps track on the command line")
        self.info = text_label("choose a tilt series")
        self.find_button = button("Find beads", "show the beads of the chosen view as rings you can edit")
        self.runner = Runner(status, "Track", "track the rings' beads (or, with none, the beads found) through "
                             "every view into a new markers layer", work=track_job, busy_text="tracking...",
                             percent=tracking_percent)
        self.runner.locked.append(self.find_button)
        self.legend = text_label("")
        self.patches = PatchPanel(self)  # "no beads (patch tracking)": its own controls, the same Track and runner
        self.widget = form(self.patches.source, self.diameter_nm, self.polarity, self.view, self.with_clumps)
        self.widget.extend([self.patches.options, self.info,
                            row(self.find_button, self.runner.align_button, self.runner.cancel_button),
                            self.runner.progress, self.legend])
        self.find_button.changed.connect(lambda *_: self.find())
        self.runner.align_button.changed.connect(lambda *_: self.track())
        self.runner.cancel_button.changed.connect(self.runner.cancel)
        self.diameter_nm.changed.connect(lambda *_: self.describe())
        self.view.changed.connect(lambda *_: self.describe())

    # ------------------------------------------------------------------ choices
    def refresh(self) -> None:
        """A new tilt series: the view range, the view nearest 0 degrees, and the diameter in pixels."""
        image = self._inputs.image.value
        if image is not None and id(image) != self._image_id:
            self._image_id = id(image)
            self.view.max = max(int(image.data.shape[0]), 1)
            self.view.value = view_number(nearest_zero_view(self._tilts(), image.data))
            self.memory.recall(image)
        self.describe()

    def describe(self) -> str:
        image = self._inputs.image.value
        try:
            d = self.diameter_px()
            pixel, source = pixel_size_nm(image)
            tilts = self._tilts()
            v = self.view_chosen()
            tilt = f" at {tilts[v]:.1f} deg" if tilts is not None and v < len(tilts) else ""
            text = f"{d:.1f} px at {pixel:.3g} nm/px ({source}); view {view_number(v)}{tilt}{self.memory.said()}"
        except ValueError as exc:
            text = str(exc)
        self.info.value = text
        return text
