"""Step 2, beads: find the gold beads on one view, then track them through the series.

*Find beads* shows the beads found on the chosen view (default: the one nearest 0 degrees) as hollow rings
in a Points layer of their own, in the stack's frame: ring colour = strength, squares = clumps, white =
added by the user. The user deletes and adds rings with napari's Points tools; where no beads can be told
from the rest, the layer comes empty, in add mode, for the user to click them. *Track* runs `track_beads`
in a worker (progress, Cancel) from those rings, or from the beads it finds itself when there are none,
and fills a new ordinary markers layer with the tracks: the Markers, Align and triage steps work on it.
Points tracking marks to check (weak, flagged, unfitted) get a thick white outline and come first in triage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from napari.layers import Points
from napari.utils.notifications import show_error, show_info, show_warning

from ...conventions import view_index, view_number
from ...errors import Cancelled
from ...tracking.beads import BeadCandidates, BeadFindingError, diameter_px_from_nm
from ...tracking.diameter import MEASURE_NOTED
from ...tracking.result import TrackingResult
from ..layers import frame_of, marker_text, markers_to_points
from .bead_jobs import find_job, track_job
from .bead_logic import (
    ADDED_RGBA,
    RING_OVER_BEAD,
    candidate_points,
    nearest_zero_view,
    rgba_hex,
    seeds_from_points,
    strength_colors,
    strength_legend,
    tracked_legend,
    tracked_points,
    tracking_percent,
    tracking_visits,
)
from .inputs import ROLE, InputsSection
from .markers import MarkersPanel
from .options import OptionsSection
from .patches import PatchPanel
from .remembered import BeadMemory
from .results import ResultLayers
from .runner import Runner
from .state import Runs
from .ui import DOCK_CONTENT_WIDTH, button, form, row, text_label

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


class BeadSection:
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

    def view_chosen(self) -> int:
        """The 0-based index of the view the spin box names (numbered from 1)."""
        return view_index(int(self.view.value), int(self.view.max))

    # ------------------------------------------------------------------ find
    def find(self) -> Any:
        """Find the beads of the chosen view in a worker and show them as rings (errors go to the status)."""
        if self._busy():
            return None
        image = self._inputs.image.value
        try:
            d = self.diameter_px()
        except ValueError as exc:
            return self._refuse(exc)
        view = self.view_chosen()
        self.memory.keep(image)  # the values used: this stack's from now on
        job = {"image": image.data, "view": view, "diameter_px": d, "pixel_size_nm": pixel_size_nm(image)[0],
               "dark": self.polarity.value == "dark"}
        return self.runner.start(job, lambda cands: self._on_found(cands, image, view, d),
                                 lambda exc: self._on_find_failure(exc, image, view, d),
                                 work=find_job, busy_text=f"finding beads in view {view_number(view)}...")

    def _on_find_failure(self, exc: BaseException, image: Any, view: int, d: float) -> None:
        """Where no beads could be told from the rest (few gold among stain), an empty rings layer on the view, in
        napari's add mode: the user clicks the beads, as in etomo's seed model, and Track follows those."""
        self._on_failure(exc)
        if not isinstance(exc, BeadFindingError):
            return
        attrs = {"size": RING_OVER_BEAD * d, "symbol": "disc", "border_color": rgba_hex(ADDED_RGBA), **frame_of(image),
                 "metadata": {ROLE: CANDIDATES, "view": view, "threshold": float("nan"), "bead_diameter_px": d}}
        features = {"strength": np.empty(0), "clump": np.empty(0, dtype=bool)}
        self._candidates_layer(f"{image.name} {CANDIDATES_NAME}", np.empty((0, 3)), features, attrs)
        self._candidates_of = image
        layer = self.candidates
        assert layer is not None
        self._viewer.dims.set_point(0, float(layer.data_to_world([view, 0.0, 0.0])[0]))
        layer.visible = True
        self._viewer.layers.selection.active = layer
        layer.mode = "add"
        self._status(f"failed: {exc}. Or click at least 3 beads of view {view_number(view)} in '{layer.name}' (in add "
                     "mode now), then Track", error=True)

    def _on_found(self, cands: BeadCandidates, image: Any, view: int, given_px: float | None = None) -> None:
        if self.runner.stopping:
            self._done()
            self._on_failure(Cancelled("finding beads cancelled"))
            return
        note = ""
        if given_px is not None and abs(cands.bead_diameter_px / given_px - 1.0) > MEASURE_NOTED:
            # the beads measure off the diameter given: the spin box takes the measure (Track starts from it)
            pixel, given_nm = pixel_size_nm(image)[0], float(self.diameter_nm.value)
            self.diameter_nm.value = round(cands.bead_diameter_px * pixel, 1)
            note = (f"; the beads measure {cands.bead_diameter_px * pixel:.1f} nm across, not the {given_nm:.1f} nm "
                    "given: 'bead diameter (nm)' is set to the measure")
        self.runner.run_steps([*self._candidate_steps(cands, image, view, note), self._done])

    def _done(self) -> None:
        self.runner.progress.value = 100
        self.runner.finish()

    def show_candidates(self, cands: BeadCandidates, image: Any, view: int) -> Points:
        """Rings on the beads of ``view`` in the candidates layer (made, or updated in place), all at once."""
        for step in self._candidate_steps(cands, image, view):
            step()
        assert self.candidates is not None  # made by the first step
        return self.candidates

    def _candidate_steps(self, cands: BeadCandidates, image: Any, view: int, note: str = ""
                         ) -> list[Callable[[], None]]:
        """Showing the candidates in short steps (one per turn of the event loop when run by the runner):
        the layer (hidden), the view, showing it, then the selection and the legend."""
        data, clump = candidate_points(cands, view)
        strength = np.asarray(cands.strength, dtype=float)[np.asarray(cands.above, dtype=bool)]
        attrs = {"size": RING_OVER_BEAD * cands.bead_diameter_px, "symbol": np.where(clump, "square", "disc"),
                 "border_color": strength_colors(strength, cands.threshold), **frame_of(image),
                 "metadata": {ROLE: CANDIDATES, "view": view, "threshold": cands.threshold,
                              "bead_diameter_px": cands.bead_diameter_px}}
        features = {"strength": strength, "clump": clump}

        def place() -> None:
            self._candidates_layer(f"{image.name} {CANDIDATES_NAME}", data, features, attrs)
            self._candidates_of = image

        def go_to_view() -> None:
            assert self.candidates is not None
            self._viewer.dims.set_point(0, float(self.candidates.data_to_world([view, 0.0, 0.0])[0]))

        def reveal() -> None:
            assert self.candidates is not None
            self.candidates.visible = True

        def tell() -> None:
            assert self.candidates is not None
            self._viewer.layers.selection.active = self.candidates
            tilts = self._tilts()
            tilt = float(tilts[view]) if tilts is not None and view < len(tilts) else float("nan")
            self.show_legend(strength_legend(cands.threshold, len(data), int(clump.sum()), view, tilt))
            self._status(f"{len(data)} bead candidates in view {view_number(view)} ({int(clump.sum())} clumps); edit the "
                         f"rings, then Track{note}")

        return [place, go_to_view, reveal, tell]

    def _candidates_layer(self, name: str, data: np.ndarray, features: dict, attrs: dict) -> None:
        """Update the candidates layer in place, or make it: napari takes 0.1-0.2 s to add or remove a layer."""
        layer = self.candidates  # (not hidden while it changes: napari 0.9 then indexes its new colours with the
        if layer is not None and layer in self._viewer.layers:  # old slice's points, IndexError)
            layer.data = data
            layer.features = features
            for key, value in attrs.items():
                setattr(layer, key, value)
            layer.name = name
            return
        layer = Points(data, name=name, face_color="transparent", border_width=RING_BORDER, features=features,
                       feature_defaults={"strength": np.nan, "clump": False}, visible=False, **attrs)
        layer.current_border_color = rgba_hex(ADDED_RGBA)
        layer.current_face_color = "transparent"
        self._viewer.layers.append(layer)
        self.candidates = layer

    def show_legend(self, text: str) -> None:
        """Set the legend and reserve its height at the dock's width, plus a line: a wrapped label in a form
        keeps the height of its old text, and Qt's height for rich text falls a line short here."""
        label = self.legend.native
        label.setText(text)
        # the narrower of its laid-out width and the dock's design width: at 1280 x 800 the dock is 328 px, and a
        # height reserved at 340 px cut the legend to one line (new user's nit, session 12)
        width = min(label.width(), DOCK_CONTENT_WIDTH) if label.width() > 100 else DOCK_CONTENT_WIDTH
        label.setMinimumHeight(label.heightForWidth(width) + label.fontMetrics().lineSpacing())

    # ------------------------------------------------------------------ track
    def gather(self) -> dict[str, Any]:
        """The tracking job from the stack and the candidates layer (ValueError with a message if not ready)."""
        image = self._inputs.image.value
        d = self.diameter_px()
        tilts, _ = self._inputs.tilt_angles()
        if len(tilts) != image.data.shape[0]:
            raise ValueError(f"{len(tilts)} tilt angles for {image.data.shape[0]} views: give the stack's tilt file")
        layer, seeds = self.candidates, None
        view = self.view_chosen()
        if layer is not None and layer in self._viewer.layers and self._candidates_of is image:
            view = int(layer.metadata["view"])
            clump = layer.features["clump"].to_numpy(dtype=bool)
            seeds, elsewhere = seeds_from_points(layer.data, view, clump, bool(self.with_clumps.value))
            if len(seeds) < 3:
                raise ValueError(f"keep at least 3 rings (beads) in view {view_number(view)} of '{layer.name}' to "
                                 f"track; there are {len(seeds)}" + (" (clumps are left out)" if clump.any() else ""))
            if elsewhere:
                show_info(f"{elsewhere} ring(s) outside view {view_number(view)} are not seeds: add seeds in view "
                          f"{view_number(view)}")
        axis = None if self._options.axis_mode.value == "estimate" else float(self._options.axis_angle.value)
        return {"stack": image.data, "tilts": np.asarray(tilts, dtype=float), "diameter_px": d,
                "tilt_axis_deg": axis, "seed_view": view, "seeds_xy": seeds, "pixel_size_nm": pixel_size_nm(image)[0],
                "clumps": "track" if self.with_clumps.value else "skip",  # as `tomoalign track --clumps`
                "dark": self.polarity.value == "dark"}  # as --polarity

    def track(self) -> Any:
        """Start tracking in the worker; input problems are reported and nothing changes."""
        if self._busy():
            return None
        if self.patches.on:
            return self.patches.track()
        image = self._inputs.image.value
        try:
            job = self.gather()
        except ValueError as exc:
            return self._refuse(exc)
        self.memory.keep(image)
        seeds = "the beads it finds" if job["seeds_xy"] is None else f"{len(job['seeds_xy'])} rings"
        return self.runner.start(job, lambda result, hint: self._on_tracked(result, image, hint), self._on_failure,
                                 busy_text=f"tracking {seeds} from view {view_number(job['seed_view'])}...")

    def _on_tracked(self, result: TrackingResult, image: Any, hint: str | None = None) -> None:
        self.hint = hint
        self.runner.run_steps([*self._tracked_steps(result, image), self._done])

    def add_markers_layer(self, result: TrackingResult, image: Any) -> Points:
        """A new markers layer (never one the user edited) with the tracked points, chosen for Align; all at
        once (the runner shows a Track's result in steps)."""
        steps = self._tracked_steps(result, image)
        while steps:
            steps[0:1] = steps[0]() or []
        return self._inputs.markers.value

    def _tracked_steps(self, result: TrackingResult, image: Any) -> list[Callable[[], Any]]:
        """Showing a Track's result in short steps: the markers layer, choosing it, the predicted rings,
        then the legend, the status and the selection."""
        data, ids, check = tracked_points(result)
        _, kwargs = markers_to_points(result.markers, f"{image.name} tracked")
        size = RING_OVER_BEAD * result.bead_diameter_px
        kwargs.update(frame_of(image), size=size, text=marker_text(size),
                      features={"marker": ids, "check": check}, feature_defaults={"marker": 1, "check": False})
        kwargs["metadata"] = {**kwargs["metadata"], "source": f"tracked on {image.name}",
                              "tilt_angles_deg": image.metadata.get("tilt_angles_deg"),
                              "tilt_source": image.metadata.get("tilt_source")}
        made: list[Points] = []

        def add() -> None:  # hidden: napari slices and draws it when shown, in a turn of its own
            made.append(Points(data, **kwargs, visible=False))
            self._viewer.layers.append(made[0])

        def choose() -> None:
            self._inputs.markers.reset_choices()
            self._inputs.markers.value = made[0]  # the panel now watches it
            self._panel.flagged = set()
            self._runs.tracked(made[0], image, result.alignment, tracking_visits(result))

        def colour() -> None:
            self._panel.refresh()  # while still hidden: each property set would redraw it

        def show() -> None:
            if self.candidates is not None and self.candidates in self._viewer.layers:
                self.candidates.visible = False
            made[0].visible = True

        def overlay() -> list:
            if result.alignment is None:
                return []  # else rings marked '?' where the model puts a bead it did not track
            return self._results.overlay_predictions(result.alignment, image, made[0])

        def tell() -> None:
            self._viewer.layers.selection.active = made[0]
            hint = f" The beads {self.hint.removeprefix('the beads ')}" if self.hint else ""
            warns = [w.removeprefix("warning: ") for w in result.warnings if w.startswith("warning:")]
            self.show_legend(tracked_legend(result.n_beads, len(check), int(check.sum()), made[0].name)
                             + (f"<br><b style='color:#ff9040'>Bead size:</b> {self.hint}" if self.hint else "")
                             + "".join(f"<br><b style='color:#ff9040'>Check:</b> {w}" for w in warns))
            # a warning (tilt angles that are not this series', beads that fit no specimen) in the status line, in
            # the error colour: a toast alone went unseen (new user's finding, session 13)
            self._status(f"tracked: {result.summary().splitlines()[0]}" + (f".{hint}" if hint else "")
                         + (f". Check: {warns[0]}" if warns and not hint else ""), error=bool(self.hint or warns))
            for w in result.warnings:
                (show_warning if w.startswith("warning:") else show_info)(w)

        return [add, choose, colour, show, overlay, tell]

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
