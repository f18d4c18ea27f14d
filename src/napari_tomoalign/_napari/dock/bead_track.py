"""Step 2's *Track* (`dock.beads`): `track_beads` in a worker (progress, Cancel) from the candidates' rings, or
from the beads it finds itself when there are none, into a new ordinary markers layer (the Markers, Align and
triage steps work on it); points tracking marks to check get a thick white outline and come first in triage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Points
from napari.utils.notifications import show_info, show_warning

from ...conventions import view_number
from ...tracking.result import TrackingResult
from ..layers import frame_of, marker_text, markers_to_points
from .bead_logic import RING_OVER_BEAD, seeds_from_points, tracked_legend, tracked_points, tracking_visits
from .bead_step import BeadStep, pixel_size_nm
from .patches import PatchPanel


class BeadTracking(BeadStep):
    """Track and the markers layer it fills."""

    patches: PatchPanel

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
