"""Step 1, inputs: the tilt series, its markers layer and the tilt angles, and the one coordinate rule.

Pairing a markers layer with a stack of another scale gives the markers the stack's scale (they hold
its pixels; see `layers`) and says so once. A plain Points layer can become a markers layer, and
"New markers layer" starts one from nothing on the chosen stack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, FileEdit
from napari.layers import Image, Points
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt

from ...io.errors import FileFormatError
from ...io.tilt_sources import read_tilt_file
from ..layers import (
    adopt_frame,
    frame_of,
    label_axes,
    marker_colors,
    new_markers_kwargs,
    number_view_axis,
    plain_points_to_pixels,
    unlabel_axes,
)
from .logic import tilt_summary
from .prealigned import PrealignedInput
from .slider_labels import fit_axis_labels, fit_axis_labels_soon
from .ui import DOCK_CONTENT_WIDTH, button, form, row, text_label

ROLE = "tomoalign_role"  # metadata key of the layers the dock makes (results are never inputs)


def is_markers(layer: Any) -> bool:
    return isinstance(layer, Points) and "marker" in layer.features.columns


PAIRED = "tomoalign_stack"  # a markers layer's metadata: the name of the stack it was first paired with


class InputsSection:
    """The stack, the markers layer and the angles the next Align will use."""

    def __init__(self, viewer: Any, status: Callable[..., None], undo: Any = None) -> None:
        self._viewer = viewer
        self._status = status
        self._told: set[int] = set()  # markers layers already told about a change of scale
        self._last_image: Any = None  # the stack chosen before: another one asks for its own markers
        self.on_change: list[Callable[[], None]] = []
        self._quiet = False  # True while `refresh` sets several choices
        self.image = ComboBox(label="tilt series", choices=self._image_layers, nullable=True)
        self.markers = ComboBox(label="markers", choices=self._points_layers, nullable=True)
        self.tilt_file = FileEdit(label="tilt file", mode=FileDialogMode.EXISTING_FILE,
                                  filter="*.tlt *.rawtlt *.mdoc", value=None,
                                  tooltip="leave empty to use the angles found beside the stack or the markers")
        self.prealigned = PrealignedInput(status, undo)  # etomo's .prexg, beside the markers (`prealigned`)
        self.tilt_source = text_label("-")
        self.new_layer = button("New markers layer", "an empty markers layer on the chosen tilt series")
        self.use_as_markers = button("Use as markers", "give the chosen plain Points layer marker ids", False)
        self.widget = form(self.image, self.markers, self.prealigned.file, self.tilt_file)
        self.widget.extend([self.tilt_source, row(self.new_layer, self.use_as_markers)])
        self.image.changed.connect(self._changed)
        self.markers.changed.connect(self._changed)
        self.tilt_file.changed.connect(self._changed)
        self.new_layer.changed.connect(self.new_markers_layer)
        self.use_as_markers.changed.connect(self.convert_points_layer)
        viewer.dims.events.current_step.connect(self._number_view)

    def _number_view(self, *_: Any) -> None:
        if number_view_axis(self._viewer.dims):
            fit_axis_labels(self.widget.native)  # "view 9" to "view 10": napari sizes it only when told

    def close(self) -> None:
        """Stop following the viewer's sliders (the dock is closing)."""
        self._viewer.dims.events.current_step.disconnect(self._number_view)

    # ------------------------------------------------------------------ choices
    def _image_layers(self, _w: Any = None) -> list[Image]:
        return [ly for ly in self._viewer.layers if isinstance(ly, Image) and ly.ndim == 3
                and not ly.metadata.get("volume") and ROLE not in ly.metadata]

    def _points_layers(self, _w: Any = None) -> list[Points]:
        return [ly for ly in self._viewer.layers if isinstance(ly, Points) and ly.ndim == 3 and ROLE not in ly.metadata]

    def refresh(self) -> None:
        """New choices after the layers changed; the sections hear of the result once, not once per choice."""
        self._quiet = True
        try:
            self.image.reset_choices()
            self.markers.reset_choices()
            if self.image.value is None and self._image_layers():
                self.image.value = self._image_layers()[0]
            if self.markers.value is None or not is_markers(self.markers.value):
                marked = [ly for ly in self._points_layers() if is_markers(ly)]
                if marked:
                    self.markers.value = marked[-1]
        finally:
            self._quiet = False
        self._changed()

    def _changed(self, *_: Any) -> None:
        if self._quiet:
            return
        self._markers_of_the_stack()
        layer = self.markers.value
        self.use_as_markers.enabled = layer is not None and not is_markers(layer)
        if self.image.value is not None or (layer is not None and is_markers(layer)):
            if label_axes(self._viewer.dims) | number_view_axis(self._viewer.dims):  # "view 36", "y", "x", not "-3"
                fit_axis_labels_soon(self.widget.native)  # wide enough to read (`slider_labels`)
        elif not self._image_layers():
            unlabel_axes(self._viewer.dims)
        self.pair()
        self.prealigned.follow(self.image.value, layer if layer is not None and is_markers(layer) else None)
        self.show_tilts(self.describe_tilts())
        for callback in self.on_change:
            callback()

    def _markers_of_the_stack(self) -> None:
        """Another stack chosen: a markers layer paired with another stack is not kept (Align would fit the last
        series' markers with this one's angles, Save name them after it: new user's finding X, session 12); this
        stack's own layer is chosen if there is one, else none, said."""
        image, layer = self.image.value, self.markers.value
        if image is self._last_image:
            return
        self._last_image = image
        if image is None or (layer is not None and layer.metadata.get(PAIRED, image.name) == image.name):
            return
        own = [ly for ly in self._points_layers() if is_markers(ly) and ly.metadata.get(PAIRED) == image.name]
        if layer is None and not own:
            return
        self._quiet = True
        try:
            self.markers.value = own[-1] if own else None
        finally:
            self._quiet = False
        self._status(f"markers: '{own[-1].name}', made on {image.name}" if own else
                     f"markers: none yet for {image.name} ('{layer.name}' was made on {layer.metadata[PAIRED]}):"
                     " track its beads, or choose a markers layer")

    # ------------------------------------------------------------------ the coordinate rule
    def pair(self) -> None:
        """Give the markers layer the chosen stack's frame (its data stay pixels), saying so once; the layer
        records which stack it was first paired with (`PAIRED`)."""
        image, layer = self.image.value, self.markers.value
        if image is None or layer is None or not is_markers(layer):
            return
        layer.metadata.setdefault(PAIRED, image.name)
        if layer.metadata.get("image_size") is None:
            layer.metadata["image_size"] = (int(image.data.shape[2]), int(image.data.shape[1]))
        old = tuple(float(s) for s in layer.scale)
        if adopt_frame(layer, image) and id(layer) not in self._told:
            self._told.add(id(layer))
            show_info(f"'{layer.name}' holds pixels of '{image.name}': it now uses that stack's scale "
                      f"({old[-1]:g} -> {float(image.scale[-1]):g} per pixel), so the points sit on the beads")

    # ------------------------------------------------------------------ tilt angles
    def tilt_angles(self) -> tuple[np.ndarray, str]:
        """The angles for the next Align and where they came from (ValueError with a message if none)."""
        image, layer = self.image.value, self.markers.value
        n_views = int(image.data.shape[0]) if image is not None else None
        text = str(self.tilt_file.value or "").strip()
        if text not in ("", "."):
            try:
                return read_tilt_file(text, n_views), str(Path(text))
            except FileFormatError as exc:
                raise ValueError(str(exc)) from None
        for source in (image, layer):
            tilts = None if source is None else source.metadata.get("tilt_angles_deg")
            if tilts is not None:
                return np.asarray(tilts, dtype=float), str(source.metadata.get("tilt_source", source.name))
        raise ValueError("no tilt angles: give a tilt file (.tlt, .rawtlt or .mdoc), or open the stack with its angles")

    def show_tilts(self, text: str) -> str:
        """Show where the angles come from; a path too long for the dock goes on its own line, elided in the middle
        (its file name stays whole), the full text in the tooltip. Returns what is shown."""
        label = self.tilt_source.native
        label.setToolTip(text)
        width = (label.width() if label.isVisible() else DOCK_CONTENT_WIDTH) - 8
        metrics = label.fontMetrics()
        head, sep, path = text.rpartition(" from ")
        if sep and ("/" in path or "\\" in path) and metrics.horizontalAdvance(text) > width:
            text = f"{head} from\n{metrics.elidedText(path, Qt.TextElideMode.ElideMiddle, width)}"
        self.tilt_source.value = text
        return text

    def describe_tilts(self) -> str:
        try:
            tilts, source = self.tilt_angles()
        except ValueError as exc:
            return f"tilt angles: {exc}"
        return "tilt angles: " + tilt_summary(tilts, source)

    # ------------------------------------------------------------------ starting from nothing
    def new_markers_layer(self, *_: Any) -> Points | None:
        """Add an empty markers layer on the chosen stack, in its frame, ready for clicking."""
        image = self.image.value
        if image is None:
            self._status("choose (or open) a tilt series first")
            return None
        layer = Points(**new_markers_kwargs(image, f"{image.name} markers"))
        if image.metadata.get("tilt_angles_deg") is not None:
            layer.metadata.update(tilt_angles_deg=image.metadata["tilt_angles_deg"],
                                  tilt_source=image.metadata.get("tilt_source"))
        self._viewer.layers.append(layer)
        self.markers.reset_choices()
        self.markers.value = layer
        layer.mode = "add"
        self._status(f"click the beads on '{image.name}': each click adds a point of the current marker")
        return layer

    def convert_points_layer(self, *_: Any) -> Points | None:
        """Turn the chosen plain Points layer into a markers layer of the chosen stack (marker 1 for all)."""
        layer, image = self.markers.value, self.image.value
        if layer is None or is_markers(layer):
            return layer
        if image is None:
            self._status("choose the tilt series the points were placed on first")
            return None
        pixels = plain_points_to_pixels(layer, image)
        frame = frame_of(image)
        layer.scale, layer.translate = frame["scale"], frame["translate"]
        layer.data = pixels
        layer.features = {"marker": np.ones(len(pixels), dtype=np.int64)}
        layer.feature_defaults = {"marker": 1}
        layer.symbol, layer.border_width = "ring", 0.05
        if len(pixels):
            layer.face_color = marker_colors(np.ones(len(pixels), dtype=np.int64))
        layer.metadata["image_size"] = (int(image.data.shape[2]), int(image.data.shape[1]))
        self._status(f"'{layer.name}' is a markers layer now, its {len(pixels)} point(s) marker 1; "
                     "'New marker' starts the next bead")
        self._changed()
        return layer
