"""Offering back the markers of a session that ended without saving them (a crash, a kill, a closed window).

When the dock's stack (and markers layer) change, `Restorer.check` looks for the stack's journal (`journal`);
if its last state was not saved and differs from the markers shown, step 1 offers it: "812 marker points of
'cell.st tracked' edited 14:02 were never saved", or "(tracked on cell.st, 14:02; not edited)" for markers never
edited since they were tracked or opened. *Restore* puts them into the markers layer of that name (or the chosen
one, or a new one on the stack), the states before it onto the undo stack, and the layer keeps being journalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Points

from ..layers import new_markers_kwargs
from .inputs import InputsSection, is_markers
from .journal import Journal, State, journal_dir, pending, stack_key, state_of
from .markers import MarkersPanel
from .ui import button, row, text_label


class Restorer:
    """The journal of the dock's markers layer, and the offer to restore an unsaved one."""

    def __init__(self, viewer: Any, inputs: InputsSection, panel: MarkersPanel, status: Callable[..., None]) -> None:
        self._viewer, self._inputs, self._panel, self._status = viewer, inputs, panel, status
        self.journal = Journal()
        self.offer: list[State] = []
        self.key: str | None = None
        self.info = text_label("")
        self.restore_button = button("Restore markers", "put back the marker points of the last session on this "
                                     "stack, which were never saved; Undo steps back through their edits")
        self.dismiss_button = button("Dismiss", "keep the markers as they are (the journal stays until you edit)")
        self.widget = row(self.restore_button, self.dismiss_button)
        self.restore_button.changed.connect(lambda *_: self.restore())
        self.dismiss_button.changed.connect(lambda *_: self._show([]))
        self._show([])

    def _show(self, offer: list[State]) -> None:
        self.offer = offer
        for w in (self.info.native, self.widget.native):
            w.setVisible(bool(offer))
        if offer:
            self.info.value = offer_text(offer)

    def check(self) -> list[State]:
        """Look for an unsaved journal of the chosen stack and start journalling the chosen markers layer."""
        image, layer = self._inputs.image.value, self._inputs.markers.value
        markers = layer if layer is not None and is_markers(layer) else None
        self.key = stack_key(image, markers)
        current = state_of(markers, self._panel.excluded) if markers is not None else None
        offer = pending(self.key, current, self.journal.folder)
        self._show(offer)
        if offer:
            self._status(f"{len(offer[-1].data)} unsaved marker points of '{offer[-1].layer}' from the last session: "
                         "Restore markers (step 1) puts them back", error=False)
        self.journal.watch(markers, self.key, lambda: self._panel.excluded, record_now=not offer)
        return offer

    def restore(self) -> Any:
        """Put the offered markers back (undoable), with their history on the undo stack; return the layer."""
        if not self.offer:
            return None
        states, last = self.offer, self.offer[-1]
        layer = self._target(last.layer)
        undo = self._panel.undo
        undo.remember(layer, self._panel.excluded)  # the markers as they were before restoring come back last
        for s in states[:-1]:
            undo.push(layer, s.data, _features(s), s.excluded)
        with undo.editing():
            layer.selected_data = set()
            layer.data = last.data
            layer.features = _features(last)
        self._panel.excluded = set(last.excluded)
        self._show([])
        self._inputs.markers.value = layer
        self.journal.watch(layer, self.key, lambda: self._panel.excluded, record_now=True)
        self._panel.refresh()
        self._status(f"restored {len(last.data)} marker points into '{layer.name}'; Undo steps back through "
                     f"{len(states) - 1} earlier edits")
        return layer

    def _target(self, name: str) -> Any:
        """The markers layer called ``name``, else the chosen one, else a new one on the stack."""
        if name in self._viewer.layers and is_markers(self._viewer.layers[name]):
            return self._viewer.layers[name]
        chosen = self._inputs.markers.value
        if chosen is not None and is_markers(chosen):
            return chosen
        image = self._inputs.image.value
        if image is None:
            raise ValueError("open the stack the markers were placed on first")
        layer = Points(**new_markers_kwargs(image, name))
        self._viewer.layers.append(layer)
        self._inputs.markers.reset_choices()
        return layer

    def saved(self) -> None:
        """The markers were saved: the journal says so, and nothing is offered for them next time."""
        self.journal.record(saved=True)

    def close(self) -> None:
        self.journal.unwatch()


def offer_text(offer: list[State]) -> str:
    """What step 1 says of an offer: the last state's points, and whether they were edited or are as they were
    taken in (tracked, opened; new user s13: tracked markers never touched were called "edited")."""
    last = offer[-1]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.time))
    edited = any(s.edited for s in offer if s.layer == last.layer)
    if edited:
        what = f"edited {when}"
    else:
        what = f"({last.source or 'as opened'}, {when}; not edited)"
    k = len(offer) - 1
    history = f"{k} earlier state{'s' * (k > 1)} kept as undo history" if k else "no undo history"
    return f"{len(last.data)} marker points of '{last.layer}' {what} were never saved ({history}, in {journal_dir()})"


def _features(state: State) -> dict[str, np.ndarray]:
    features: dict[str, np.ndarray] = {"marker": state.marker.copy()}
    if state.check is not None:
        features["check"] = state.check.copy()
    return features
