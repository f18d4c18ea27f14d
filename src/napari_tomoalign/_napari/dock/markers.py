"""Step 3, markers: the current marker for new clicks, duplicates, tracks, and the points' colours.

It watches the chosen markers layer: napari's adds, moves and deletes are snapshotted for undo before
they happen, and after each edit the colours are redrawn (a hue per marker, red borders for two
points of one marker in one view, orange for points the robust fit flagged, a thick white outline for points
tracking marked to check, faded excluded markers). Each point's id is drawn in its marker's colour (readable
on dark and light images alike, and tied to its ring), and only where it fits (`labels`): "marker ids" chooses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, SpinBox

from ..layers import hex_color, marker_colors
from .labels import (
    LABEL_MODES,
    LUMA,
    indices_mask,
    label_colors,
    label_mask,
    label_strings,
    nearest_neighbour,
    under_labels,
)
from .logic import duplicate_pairs, duplicates_text, next_marker_id, point_borders, track_data, view_index
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
        self.keys: dict[str, Callable[..., Any]] = {}  # more keys of the markers layer (the Bead Fixer's)
        self.on_refresh: list[Callable[[], None]] = []  # after every redraw (edits, undo, exclusions): the journal
        self.current_marker = SpinBox(label="current marker", min=1, max=100000, value=1,
                                      tooltip="new clicks on the markers layer get this marker id")
        self.new_marker = button("New marker", "make the next unused id current: the next clicks start a new bead")
        self.show_tracks = button("Show tracks", "draw each marker's track across the views")
        self.ids = ComboBox(label="marker ids", choices=LABEL_MODES, value=LABEL_MODES[0],
                            tooltip="which rings get their id: where it fits at this zoom (and always the selected "
                            "points and those worth a check), all, only those, or none")
        self.duplicates = text_label("duplicates: none")
        self._spacing: np.ndarray | None = None  # nearest other point of the same view, data pixels
        self._shown: np.ndarray | None = None  # the points whose id is drawn
        self.image_of: Callable[[], Any] = lambda: None  # the tilt series under the markers (the dock sets it)
        self._shown_on: Any = None  # the tilt series whose contrast the ids' colours follow
        self.widget = form(self.current_marker, self.ids)
        self.widget.extend([row(self.new_marker, self.show_tracks), self.duplicates])
        self.current_marker.changed.connect(self._on_current_marker)
        self.new_marker.changed.connect(self.start_new_marker)
        self.show_tracks.changed.connect(self.toggle_tracks)
        self.ids.changed.connect(lambda *_: self.update_labels(force=True))

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
        layer.selected_data.events.items_changed.connect(self.update_labels)
        self._viewer.scene.camera.events.zoom.connect(self.update_labels)
        layer.bind_key(UNDO_KEY, self._undo_key, overwrite=True)
        for key, action in self.keys.items():
            layer.bind_key(key, _on_key(action), overwrite=True)
        ids = layer.features["marker"].to_numpy()
        self.current_marker.value = int(ids.max()) if ids.size else 1
        self._on_current_marker()
        self.refresh()

    def unwatch(self) -> None:
        if self.layer is None:
            return
        try:
            self.layer.events.data.disconnect(self._on_data)
            self.layer.selected_data.events.items_changed.disconnect(self.update_labels)
            self._viewer.scene.camera.events.zoom.disconnect(self.update_labels)
            self.layer.bind_key(UNDO_KEY, None)
            for key in self.keys:
                self.layer.bind_key(key, None)
        except (TypeError, ValueError, RuntimeError, KeyError):
            pass
        self.layer = None
        self._follow(None)

    def _follow(self, image: Any) -> None:
        """Recolour the ids when ``image``'s contrast limits or colormap change (and stop following the last one)."""
        if image is self._shown_on:
            return
        for old in [self._shown_on] if self._shown_on is not None else []:
            for emitter in (old.events.contrast_limits, old.events.colormap):
                emitter.disconnect(self.recolour_ids)
        self._shown_on = image
        if image is not None:
            image.events.contrast_limits.connect(self.recolour_ids)
            image.events.colormap.connect(self.recolour_ids)

    def recolour_ids(self, *_: Any) -> None:
        layer = self.layer
        if layer is not None and len(layer.data) and len(layer.data) == len(layer.features):
            layer.text.color = label_colors(layer.face_color, self.backgrounds(layer))

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
            layer.text.color = label_colors(face, self.backgrounds(layer))  # the id in its ring's hue, at one lightness
        self._spacing = None
        self.update_labels(force=True)
        self.duplicates.value = "duplicates: " + duplicates_text(duplicate_pairs(view, ids))
        if TRACKS in self._viewer.layers:
            self.update_tracks()
        for callback in self.on_refresh:
            callback()

    def backgrounds(self, layer: Any) -> np.ndarray | float:
        """The luminance (0-1) under each point's id as napari shows the tilt series (through its contrast limits
        and colormap); 0 (dark) when there is none or its pixels are not in memory or a memory map."""
        image = self.image_of()
        self._follow(image)
        if image is None or image.rgb or image.ndim != 3 or not isinstance(image.data, np.ndarray):
            return 0.0
        if tuple(image.data.shape[-2:]) != tuple(int(n) for n in layer.metadata.get("image_size", (0, 0)))[::-1]:
            return 0.0
        values = under_labels(image.data, layer.data[:, 0], layer.data[:, 1:], float(np.median(layer.size)))
        lo, hi = (float(v) for v in image.contrast_limits)
        norm = np.clip((values.astype(float) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        rgb = np.asarray(image.colormap.map(norm.ravel()))[:, :3]
        return np.median((rgb @ LUMA).reshape(norm.shape), axis=1)

    def update_labels(self, *_: Any, force: bool = False) -> None:
        """Draw the ids the "marker ids" choice asks for at the current zoom (after an edit, a zoom, a selection)."""
        layer = self.layer
        if layer is None or len(layer.data) == 0 or len(layer.data) != len(layer.features):
            return
        ids = layer.features["marker"].to_numpy(dtype=np.int64)
        if self._spacing is None or len(self._spacing) != len(ids):
            self._spacing = nearest_neighbour(layer.data[:, 0], layer.data[:, 1:])
        px = float(self._viewer.scene.camera.zoom) * abs(float(layer.scale[-1]))  # screen px per data pixel
        check = layer.features["check"].to_numpy(dtype=bool) if "check" in layer.features else np.zeros(len(ids), bool)
        flagged = np.array([(int(v), int(m)) in self.flagged for v, m in zip(view_index(layer.data[:, 0]), ids)],
                           dtype=bool)
        keep = indices_mask(len(ids), layer.selected_data) | check | flagged
        shown = label_mask(str(self.ids.value), ids, self._spacing * px, float(np.median(layer.size)) * px,
                           float(layer.text.size), keep)
        if not force and self._shown is not None and np.array_equal(shown, self._shown):
            return
        self._shown = shown
        layer.text.string = label_strings(ids, shown)

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


def _on_key(action: Callable[..., Any]) -> Callable[[Any], None]:
    """A key binding of the layer that runs ``action`` (napari passes the layer, which the action does not need)."""

    def pressed(_layer: Any) -> None:
        action()

    return pressed
