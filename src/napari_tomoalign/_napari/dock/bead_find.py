"""Step 2's *Find beads* (`dock.beads`): the beads found on the chosen view, in a worker, shown as hollow rings in a
Points layer of their own, in the stack's frame (ring colour = strength, squares = clumps, white = added by the
user); where no beads can be told from the rest, the layer comes empty, in add mode, for the user to click them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Points

from ...conventions import view_number
from ...errors import Cancelled
from ...tracking.beads import BeadCandidates, BeadFindingError
from ...tracking.diameter import MEASURE_NOTED
from ..layers import frame_of
from .bead_jobs import find_job
from .bead_logic import ADDED_RGBA, RING_OVER_BEAD, candidate_points, rgba_hex, strength_colors, strength_legend
from .bead_step import CANDIDATES, CANDIDATES_NAME, RING_BORDER, BeadStep, pixel_size_nm
from .inputs import ROLE


class BeadFinding(BeadStep):
    """Find beads and the candidates layer."""

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

    def adopt_candidates(self, layers: list[Any]) -> str | None:
        """Of an earlier dock's layers, its rings on the stack chosen become this dock's (Track starts from them);
        what was taken, said, or None."""
        image = self._inputs.image.value
        if image is None or (self.candidates is not None and self.candidates in self._viewer.layers):
            return None
        for layer in layers:
            if (isinstance(layer, Points) and layer.metadata.get(ROLE) == CANDIDATES
                    and layer.name == f"{image.name} {CANDIDATES_NAME}"
                    and 0 <= int(layer.metadata.get("view", -1)) < image.data.shape[0]):
                self.candidates, self._candidates_of = layer, image
                return f"Track starts from the {len(layer.data)} rings of '{layer.name}'"
        return None
