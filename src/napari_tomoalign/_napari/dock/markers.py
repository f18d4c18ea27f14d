"""Step 3, markers: the current marker for new clicks, duplicates, tracks, and the points' colours.

It watches the chosen markers layer: napari's adds, moves and deletes are snapshotted for undo before
they happen, and after each edit the colours are redrawn (a hue per marker, red borders for two
points of one marker in one view, orange for points the robust fit flagged, a thick white outline for points
tracking marked to check, faded excluded markers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import SpinBox

from ..layers import hex_color, marker_colors
from .logic import duplicate_pairs, duplicates_text, next_marker_id, point_borders, track_data
from .ui import button, form, row, text_label
from .undo import UndoStack

UNDO_KEY = "Control-Z"
TRACKS = "marker tracks"


class MarkersPanel:
    """Editing aids for one markers layer at a time."""

    def __init__(self, viewer: Any, undo: UndoStack, status: Callable[[str], None]) -> None:
        self._viewer = viewer
        self.undo = undo
        self._status = status
        self.layer: Any = None
        self.excluded: set[int] = set()  # marker ids left out of the next fits
        self.flagged: set[tuple[int, int]] = set()  # (view, marker) flagged by the last robust fit
        self.on_undo_key: list[Callable[[], None]] = []  # Ctrl+Z on the markers layer
        self.current_marker = SpinBox(label="current marker", min=1, max=100000, value=1,
                                      tooltip="new clicks on the markers layer get this marker id")
        self.new_marker = button("New marker", "make the next unused id current: the next clicks start a new bead")
        self.show_tracks = button("Show tracks", "draw each marker's track across the views")
        self.duplicates = text_label("duplicates: none")
        self.widget = form(self.current_marker)
        self.widget.extend([row(self.new_marker, self.show_tracks), self.duplicates])
        self.current_marker.changed.connect(self._on_current_marker)
        self.new_marker.changed.connect(self.start_new_marker)
        self.show_tracks.changed.connect(self.toggle_tracks)

    # ------------------------------------------------------------------ which layer
    def watch(self, layer: Any) -> None:
        """Follow ``layer`` (a markers layer, or None) instead of the previous one."""
        if layer is self.layer:
            return
        self.unwatch()
        self.layer = layer
        if layer is None:
            return
        layer.events.data.connect(self._on_data)
        layer.bind_key(UNDO_KEY, self._undo_key, overwrite=True)
        ids = layer.features["marker"].to_numpy()
        self.current_marker.value = int(ids.max()) if ids.size else 1
        self._on_current_marker()
        self.refresh()

    def unwatch(self) -> None:
        if self.layer is None:
            return
        try:
            self.layer.events.data.disconnect(self._on_data)
            self.layer.bind_key(UNDO_KEY, None)
        except (TypeError, ValueError, RuntimeError, KeyError):
            pass
        self.layer = None

    def _undo_key(self, _layer: Any) -> None:
        for callback in self.on_undo_key:
            callback()

    # ------------------------------------------------------------------ current marker
    def _on_current_marker(self, *_: Any) -> None:
        layer = self.layer
        if layer is None:
            return
        value = int(self.current_marker.value)
        defaults = {name: column.iloc[0] for name, column in layer.feature_defaults.items()}
        layer.feature_defaults = {**defaults, "marker": value}  # other columns (tracking's "check") kept
        if not layer.selected_data:  # changing the colour would recolour a selection
            layer.current_face_color = hex_color(marker_colors(np.array([value]))[0])

    def start_new_marker(self, *_: Any) -> int:
        """Make the next unused marker id current, so new clicks start a new marker."""
        ids = self.layer.features["marker"].to_numpy() if self.layer is not None else np.zeros(0)
        self.current_marker.value = next_marker_id(ids)
        return int(self.current_marker.value)

    # ------------------------------------------------------------------ edits and colours
    def _on_data(self, event: Any = None) -> None:
        action = str(getattr(event, "action", ""))
        if action.endswith("ing"):  # napari announces an add, move or delete before doing it
            if self.layer is not None and not self.undo.own_edit:
                self.undo.remember(self.layer, self.excluded)
            return
        self.refresh()

    def refresh(self) -> None:
        """Recolour the points and update the duplicates line (and the tracks, when shown)."""
        layer = self.layer
        if layer is None or len(layer.data) != len(layer.features):
            return
        view, ids = layer.data[:, 0], layer.features["marker"].to_numpy(dtype=np.int64)
        if len(view):
            check = layer.features["check"].to_numpy(dtype=bool) if "check" in layer.features else None
            border, width = point_borders(view, ids, self.flagged, check)
            face = marker_colors(ids)
            face[np.isin(ids, list(self.excluded)), 3] = 0.25
            layer.border_color = border
            layer.border_width = width
            layer.face_color = face
        self.duplicates.value = "duplicates: " + duplicates_text(duplicate_pairs(view, ids))
        if TRACKS in self._viewer.layers:
            self.update_tracks()

    # ------------------------------------------------------------------ tracks
    def toggle_tracks(self, *_: Any) -> None:
        if TRACKS in self._viewer.layers:
            self._viewer.layers.remove(TRACKS)
            self.show_tracks.text = "Show tracks"
        else:
            self.update_tracks()

    def update_tracks(self, *_: Any) -> None:
        """Show (or refresh) each marker's track across the views as a Tracks layer under the markers."""
        layer = self.layer
        if layer is None or len(layer.data) == 0:
            return
        data = track_data(layer.data[:, 0], layer.features["marker"].to_numpy(), layer.data[:, 1:])
        if TRACKS in self._viewer.layers:
            self._viewer.layers[TRACKS].data = data
            return
        n_views = int(data[:, 1].max()) + 1
        from napari.layers import Tracks

        tracks = Tracks(data, name=TRACKS, scale=layer.scale, translate=layer.translate, tail_length=n_views,
                        head_length=n_views, tail_width=1.5, blending="translucent",
                        metadata={"tomoalign_role": "tracks"})
        self._viewer.layers.insert(self._viewer.layers.index(layer), tracks)
        self._viewer.layers.selection.active = layer
        self.show_tracks.text = "Hide tracks"
