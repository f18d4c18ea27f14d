"""What a dock opened into a viewer that holds the layers of an earlier dock (closed, or still open) says of them.

The plugin's result layers (the aligned stack, the residuals, the predicted and aligned markers, the bead rings)
carry the dock's role in their metadata (`inputs.ROLE`); a new dock does not know them. At its first look, step 1
says so in one line ("4 layers from an earlier dock: aligned stack, residuals x10, ...") with two buttons:
*Reuse* keeps them (an Align updates them by name, as it updates its own; the rings of Find beads on the stack
chosen become the rings Track starts from) and *Clear* takes them out of the viewer. Markers layers are the user's
inputs, never counted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .inputs import ROLE
from .ui import button, row, text_label

SHOWN_NAMES = 4  # the names said in the line; the rest counted


class EarlierLayers:
    """The offer to reuse or clear an earlier dock's layers (step 1)."""

    def __init__(self, viewer: Any, status: Callable[..., None], adopt: Callable[[list[Any]], str | None]) -> None:
        self._viewer, self._status, self._adopt = viewer, status, adopt
        self.layers: list[Any] = []
        self.info = text_label("")
        self.reuse_button = button("Reuse", "keep them: an Align updates them by name, and Track starts from the "
                                   "stack's bead rings")
        self.clear_button = button("Clear", "take these layers out of the viewer (the markers layers stay)")
        self.widget = row(self.reuse_button, self.clear_button)
        self.reuse_button.changed.connect(lambda *_: self.reuse())
        self.clear_button.changed.connect(lambda *_: self.clear())
        self._show([])

    def _show(self, layers: list[Any]) -> None:
        self.layers = layers
        for w in (self.info.native, self.widget.native):
            w.setVisible(bool(layers))
        if layers:
            self.info.value = earlier_text([ly.name for ly in layers])

    def check(self, own: Callable[[Any], bool] = lambda _: False) -> list[Any]:
        """Look for the plugin's layers this dock did not make (``own`` tells its own); offer them."""
        found = [ly for ly in self._viewer.layers if ROLE in ly.metadata and not own(ly)]
        self._show(found)
        return found

    def drop(self, layer: Any) -> None:
        """``layer`` left the viewer: no longer offered (the line goes with the last one)."""
        if any(ly is layer for ly in self.layers):
            self._show([ly for ly in self.layers if ly is not layer])

    def reuse(self) -> None:
        layers = [ly for ly in self.layers if ly in self._viewer.layers]
        note = self._adopt(layers)
        self._show([])
        self._status(f"kept {len(layers)} layer{'s' * (len(layers) != 1)} of the earlier dock: an Align updates them"
                     + (f"; {note}" if note else ""))

    def clear(self) -> None:
        layers = [ly for ly in self.layers if ly in self._viewer.layers]
        for layer in layers:
            self._viewer.layers.remove(layer)
        self._show([])
        self._status(f"cleared {len(layers)} layer{'s' * (len(layers) != 1)} of the earlier dock")


def earlier_text(names: list[str]) -> str:
    """The one line of step 1: how many layers, and the first few names."""
    shown = ", ".join(names[:SHOWN_NAMES]) + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES
                                               else "")
    return f"{len(names)} layer{'s' * (len(names) != 1)} from an earlier dock: {shown}"
