"""Step 5, the result layers, each drawn over the image in whose frame it was measured.

- Raw frame (the default after Align): the tilt series, the markers on top, the residual vectors
  and the predicted markers, all in the stack's scale and translate.
- Aligned frame: the aligned stack and the markers taken into it by each view's transform.

Layers are inserted under the markers layer, hidden, and shown one per turn of the event loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox
from napari.layers import Image, Points, Vectors

from ...alignment.result import Alignment
from ...workflows import PipelineResult
from ..layers import LABEL_OFFSET, frame_of, marker_colors
from .inputs import ROLE
from .labels import LUMA, label_colors, under_aligned_labels, under_labels
from .logic import aligned_points, predicted_gap_points, residual_arrows, residual_vectors
from .patches import is_patch_layer
from .prealigned import drawn
from .ui import button, form

ALIGNED, RESIDUALS, PREDICTED, ALIGNED_MARKERS = "aligned stack", "residuals", "predicted markers", "aligned markers"
FRAMES = ("raw stack", "aligned stack")


class ResultLayers:
    """Adds and updates the result layers, and switches between the raw and the aligned frame."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        self.frame = ComboBox(label="show", choices=FRAMES, value=FRAMES[0],
                              tooltip="raw stack: markers, residuals and predictions over the tilt series; "
                                      "aligned stack: the markers taken into the aligned frame")
        self.exaggeration = FloatSpinBox(label="residuals x", min=1.0, max=1000.0, step=1.0, value=10.0)
        self.show_tomogram = button("Show tomogram", "the preview tomogram's sections, in the dock's slice view (step 6)")
        self.widget = form(self.frame, self.exaggeration)
        self.widget.append(self.show_tomogram)
        self.frame.changed.connect(lambda *_: self.show_frame())
        self.result: PipelineResult | None = None
        self.image: Any = None
        self.markers: Any = None
        self.loaded: tuple[Any, Any, Any, float] | None = None  # a loaded alignment's (view, xy, residual, RMS)
        self.drawn: Alignment | None = None  # the last run's alignment as drawn over the raw stack (`prealigned`)
        self._loaded_roles = {RESIDUALS}  # the layers a loaded alignment shows: its residuals, its aligned stack
        self._pending: list[Any] = []  # layers added hidden, to be shown one per turn

    # ------------------------------------------------------------------ adding layers
    def _place(self, layer: Any, above: bool = False) -> Any:
        """Insert ``layer`` under the markers layer (or just above it: the residual arrows), hidden until revealed."""
        layers = self._viewer.layers
        index = layers.index(self.markers) + int(above) if self.markers in layers else len(layers)
        layers.insert(index, layer)
        self._pending.append(layer)
        return layer

    def _frame(self) -> dict[str, tuple[float, ...]]:
        return frame_of(self.image if self.image is not None else self.markers)

    def _layer(self, name: str) -> Any:
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def steps(self, result: PipelineResult, image: Any, markers: Any, data: tuple[np.ndarray, np.ndarray]) -> list:
        """The display steps of a finished run (each one short; see `Runner.run_steps`)."""
        self.result, self.image, self.markers, self.loaded = result, image, markers, None
        self.drawn = drawn(result)  # its observations and predictions over the raw stack (through a .prexg)
        self._pending = []
        steps = [self.show_residual_vectors, self.show_predicted_markers]
        if result.aligned is not None or warpable(result, image):
            steps += [self.show_aligned_stack, lambda: self.show_aligned_markers(data)]
        return [*steps, self.reveal]

    def show_aligned_stack(self) -> None:
        """The aligned stack, warped view by view when a view is shown (`AlignedViews`, a few kept): the dock's
        Align makes none (`logic.dock_job`), so each Align holds no full-resolution copy of the series; saved
        (File > Save), it is written view by view as ``tomoalign aligned-stack`` writes it (`writer`)."""
        from ...reconstruction.aligned_views import AlignedViews

        result = self.result
        assert result is not None  # scheduled by `steps` only when there is an aligned stack or one can be warped
        data: Any = result.aligned
        if data is None:
            data = AlignedViews(self.image.data, result.transforms, result.frame.shape())
        self._aligned_layer(data, {"tilt_angles_deg": result.alignment.tilt_angles_deg, "tilt_kind": "solved",
                                   "tilt_source": f"solved by '{result.name}'",
                                   "pixel_size_nm": result.alignment.pixel_size_nm})

    def _aligned_layer(self, data: Any, meta: dict[str, Any]) -> None:
        """The *aligned stack* layer shows ``data`` (updated by name, or added hidden), with ``meta``."""
        mid = data[len(data) // 2][::4, ::4]
        lo, hi = (float(v) for v in np.percentile(mid, [0.5, 99.5]))
        hi = hi if hi > lo else lo + 1.0
        meta = {ROLE: ALIGNED, **meta}
        raw = getattr(self.image, "data", None)
        if raw is not None and np.dtype(raw.dtype).kind in "iu":  # saved in the stack's own mode, as newstack keeps it
            meta["source_dtype"] = np.dtype(raw.dtype).newbyteorder("=").name
        layer = self._layer(ALIGNED)
        if layer is not None:
            layer.data, layer.contrast_limits, layer.metadata = data, (lo, hi), meta
            layer.scale, layer.translate = self._frame()["scale"], self._frame()["translate"]
            return
        self._place(Image(data, name=ALIGNED, colormap="gray", contrast_limits=(lo, hi), visible=False,
                          metadata=meta, **self._frame()))

    def show_loaded_stack(self, loaded: Any) -> bool:
        """A loaded alignment's aligned stack (`dock.loaded`), warped view by view when shown, in the frame ``tomoalign
        aligned-stack`` gives it (`frame.frame_size_of`); False (nothing shown) when the stack is not its series."""
        from ...reconstruction.aligned_views import AlignedViews
        from ...reconstruction.frame import frame_size_of

        saved = loaded.saved
        shape: tuple[int, ...] = tuple(getattr(getattr(self.image, "data", None), "shape", ()))
        if len(shape) != 3 or shape[0] != len(saved.transforms):
            return False
        data = AlignedViews(self.image.data, saved.transforms, frame_size_of(saved).shape())
        self._aligned_layer(data, {"tilt_angles_deg": saved.tilt_angles_deg, "tilt_kind": "solved",
                                   "tilt_source": f"loaded from {loaded.given or loaded.path}",
                                   "pixel_size_nm": saved.pixel_size_nm})
        return True

    def show_loaded(self, view: Any, xy: Any, residual: Any, rms_px: float, image: Any, markers: Any,
                    loaded: Any = None) -> list:
        """A loaded alignment's residuals (`dock.loaded`), drawn as a run's are, and its aligned stack (``loaded``);
        the steps that show them (the last Align's other layers are hidden: they are not this alignment's)."""
        self.image, self.markers, self.loaded, self._pending = image, markers, (view, xy, residual, rms_px), []
        self.show_residual_vectors()
        self._loaded_roles = {RESIDUALS} | ({ALIGNED} if loaded is not None and self.show_loaded_stack(loaded) else set())
        return [self.reveal]

    def show_aligned_markers(self, data: tuple[np.ndarray, np.ndarray]) -> None:
        """The markers of the snapshot ``(points, ids)`` taken into the aligned frame."""
        result = self.result
        assert result is not None  # set by `steps`
        points, ids = aligned_points(result.alignment, result.transforms, data[0], data[1], result.frame)
        self._points(ALIGNED_MARKERS, points, ids, symbol="ring", size=self._ring_size(), text="{marker}")

    def show_residual_vectors(self) -> None:
        """Residual vectors from each observed point, exaggerated, in the raw frame: of the last run, or of the
        alignment loaded since (`loaded`)."""
        exaggeration, edge = float(self.exaggeration.value), self._ring_size() / 2
        if self.loaded is not None and not len(self.loaded[0]):  # loaded without a .resid: no arrows at all
            for ly in [ly for ly in self._viewer.layers if ly.metadata.get(ROLE) == RESIDUALS]:
                self._viewer.layers.remove(ly)
            return
        if self.loaded is not None:
            vectors, colours = residual_arrows(*self.loaded, exaggeration, edge)
        elif self.drawn is not None:
            vectors, colours = residual_vectors(self.drawn, exaggeration, edge)
        else:
            return
        name = f"{RESIDUALS} x{self.exaggeration.value:g}"
        for ly in [ly for ly in self._viewer.layers if ly.metadata.get(ROLE) == RESIDUALS and ly.name != name]:
            self._viewer.layers.remove(ly)
        layer = self._layer(name)
        if layer is not None:
            layer.data, layer.edge_color = vectors, colours
            layer.scale, layer.translate = self._frame()["scale"], self._frame()["translate"]
            return
        self._place(Vectors(vectors, name=name, edge_color=colours, edge_width=2.0, vector_style="arrow",
                            visible=False, metadata={ROLE: RESIDUALS}, **self._frame()), above=True)

    def show_predicted_markers(self, alignment: Alignment | None = None) -> None:
        """The model's position of each marker where it was not clicked, inside the image (raw frame); of
        the last run's alignment, or of ``alignment`` (tracking's)."""
        al = alignment if alignment is not None else self.drawn
        if al is None:
            return
        points, ids = predicted_gap_points(al)
        if is_patch_layer(self.markers):  # patch contours: no '?' rings (see dock/patches.py)
            points, ids = points[:0], ids[:0]
            if self._layer(PREDICTED) is None:
                return
        self._points(PREDICTED, points, ids, symbol="ring", size=self._ring_size() + 2, text="{marker}?")

    def overlay_predictions(self, alignment: Alignment, image: Any, markers: Any) -> list:
        """After Track: rings where tracking's model puts a bead in views it was not tracked in; returns the
        steps that show them (`Runner.run_steps`; run them at once where there is no runner)."""
        self.image, self.markers, self._pending = image, markers, []
        self.show_predicted_markers(alignment)
        return [self.reveal]

    def _ring_size(self) -> float:
        """The markers' ring size (tracked layers are sized to their beads), 12 without markers."""
        sizes = np.asarray(getattr(self.markers, "size", []), dtype=float)
        return float(np.median(sizes)) if sizes.size else 12.0

    def _points(self, name: str, points: np.ndarray, ids: np.ndarray, *, symbol: str, size: float, text: str) -> None:
        colours = marker_colors(ids) if len(ids) else "white"
        d = LABEL_OFFSET * float(size)  # the label beside its ring, down and left (the markers' ids go up and right)
        ink = self._ink(name, points, colours, size) if len(ids) else "white"
        layer = self._layer(name)
        if layer is not None:
            layer.data, layer.features = points, {"marker": ids}
            layer.scale, layer.translate = self._frame()["scale"], self._frame()["translate"]
            if len(ids):
                layer.face_color, layer.size = colours, size
                layer.text.translation = [0, d, -d]
                layer.text.color = ink
            return
        self._place(Points(points, name=name, features={"marker": ids}, symbol=symbol, size=size,
                                   face_color=colours, border_width=0, visible=False, metadata={ROLE: name},
                                   text={"string": text, "size": 8, "color": ink, "anchor": "lower_right",
                                         "translation": [0, d, -d]},
                                   **self._frame()))

    def _ink(self, name: str, points: np.ndarray, colours: Any, size: float) -> Any:
        """The labels' colours: each marker's hue, light or dark by the image they are drawn over (the aligned
        stack for the aligned markers, the tilt series for the rest), as the markers' own ids are."""
        from ...reconstruction.aligned_views import AlignedViews

        under = self._layer(ALIGNED) if name == ALIGNED_MARKERS else self.image
        data: Any = getattr(under, "data", None)
        if not isinstance(data, (np.ndarray, AlignedViews)) or data.ndim != 3 or len(points) == 0:
            return label_colors(colours)
        r = float(size)  # these labels sit down and left of their rings, the markers' ids up and right
        yx = points[:, 1:] + np.array([1.7 * r, -2.6 * r])
        values = (under_aligned_labels(data, points[:, 0], yx, r) if isinstance(data, AlignedViews)  # none warped
                  else under_labels(data, points[:, 0], yx, r)).astype(float)
        lo, hi = (float(v) for v in under.contrast_limits)
        norm = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        rgb = np.asarray(under.colormap.map(norm.ravel()))[:, :3]
        return label_colors(colours, np.median((rgb @ LUMA).reshape(norm.shape), axis=1))

    # ------------------------------------------------------------------ showing
    def reveal(self) -> list:
        """Show the layers just added that belong to the current frame, one per turn of the event loop."""
        if not self._pending:
            self.show_frame()
            return []
        layer = self._pending.pop(0)
        _show(layer, self._in_frame(layer))
        return [self.reveal]

    def _in_frame(self, layer: Any) -> bool:
        aligned = self.frame.value == FRAMES[1]
        role = layer.metadata.get(ROLE)
        return (role in (ALIGNED, ALIGNED_MARKERS)) == aligned

    def show_frame(self) -> None:
        """Show the layers of the chosen frame and hide the others (the markers belong to the raw one)."""
        aligned = self.frame.value == FRAMES[1]
        if aligned and self._layer(ALIGNED) is None:
            return
        for layer in self._viewer.layers:
            role = layer.metadata.get(ROLE)
            if role in (ALIGNED, ALIGNED_MARKERS, RESIDUALS, PREDICTED):  # a loaded alignment's layers alone
                _show(layer, self._in_frame(layer) and (self.loaded is None or role in self._loaded_roles))
        for layer in (self.image, self.markers):
            if layer is not None and layer in self._viewer.layers:
                _show(layer, not aligned)


def warpable(result: PipelineResult, image: Any) -> bool:
    """Whether the dock can show ``result``'s aligned stack warped from ``image``'s views (the series it aligned)."""
    shape: tuple[int, ...] = tuple(getattr(getattr(image, "data", None), "shape", ()))
    return result.frame is not None and len(shape) == 3 and shape[0] == len(result.transforms)


def _show(layer: Any, visible: bool) -> None:
    """Show or hide ``layer``; napari re-slices and redraws a layer even when told what it already is."""
    if layer.visible != visible:
        layer.visible = visible
