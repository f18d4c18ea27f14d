"""The Align dock widget: marker editing, the staged solve in a worker thread, result layers, report,
triage ("next big residual"), saving, and side-by-side comparison of alignments.

All numerical work happens in the core (`pipeline.run_alignment`) in a worker thread; this module only
converts layers to arrays and back, and keeps the GUI responsive.
"""

from __future__ import annotations

import gc
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Points, Vectors
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..alignment._lm import Cancelled
from ..alignment.options import AlignmentOptions, VariableOption
from ..io.errors import FileFormatError
from ..workflows import PipelineResult, run_alignment
from .layers import marker_colors, points_to_markers

if TYPE_CHECKING:
    import napari

VARIABLE_CHOICES = {"per view": "view", "one for all": "one", "fixed": "fixed", "grouped": "group"}
AXIS_CHOICES = ("estimate", "estimate near the angle", "use the angle as given")
UNDO_KEY, UNDO_DEPTH = "Control-Z", 50
STEP_GAP_MS = 2  # between display steps, so that the event loop gets a turn between them
ALIGNED, RESIDUALS, PREDICTED, TRACKS = "aligned stack", "residuals", "predicted markers", "marker tracks"


def _run_job(**job: Any) -> tuple[PipelineResult | None, BaseException | None]:
    """The worker's function: expected failures come back as values, so Qt never sees a raise.

    (superqt re-raises an exception that a worker returns bare, hence the pair.)
    """
    from ..alignment.errors import AlignmentError
    from ..report import report_plot

    try:
        result = run_alignment(**job)
        return (result, report_plot({result.name: result.alignment})), None
    except (Cancelled, AlignmentError, FileFormatError, ValueError) as exc:
        return None, exc


def _warm_up_quietly(done: threading.Event) -> None:
    from ..workflows import warm_up

    try:
        warm_up()
        # The report plot's matplotlib imports take about 0.3 s: better here than during the first Align.
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except Exception:  # a failed warm-up only means the first Align loads the kernels itself
        pass
    finally:
        done.set()


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued Qt connection)."""

    progress = Signal(str, int, int, str)


def _hex(rgba: np.ndarray) -> str:
    r, g, b = (int(round(255 * float(c))) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


class AlignWidget(Container):
    """Dock widget: align a tilt series from the markers in a Points layer and show the result."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(scrollable=True, labels=True)
        self._viewer = viewer
        self._results: dict[str, PipelineResult] = {}
        self._last: PipelineResult | None = None
        self._last_markers: np.ndarray | None = None
        self._last_layer: Points | None = None
        self._residual_order: np.ndarray = np.zeros(0, dtype=np.intp)
        self._residual_pos = 0
        self._worker = None
        self._stop = threading.Event()
        self._watched: Points | None = None
        self._comparing: dict[str, bool] | None = None
        self._scale: tuple[float, ...] = (1.0, 1.0, 1.0)
        self._started = 0.0
        self._busy = False
        self._gc_was_on = False
        self._to_reveal: list = []  # (new hidden layer, layer it replaces, follow-up step) to show
        self._last_progress = 0.0
        self.display_times_ms: list[tuple[str, float]] = []  # how long each display step held the GUI
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)

        # Inputs
        self.image = ComboBox(label="tilt series", choices=self._image_layers)
        self.markers = ComboBox(label="markers", choices=self._points_layers)
        self.tilt_source = Label(label="tilt angles", value="-")
        self.tilt_file = FileEdit(label="tilt file", mode="r", filter="*.tlt *.rawtlt", value="")
        self.axis_mode = ComboBox(label="tilt axis", choices=AXIS_CHOICES, value="estimate")
        self.axis_angle = FloatSpinBox(label="axis angle (deg)", min=-180.0, max=180.0, step=0.5, value=0.0)
        self.rotation = ComboBox(label="rotation", choices=list(VARIABLE_CHOICES), value="per view")
        self.tilt = ComboBox(label="tilt", choices=list(VARIABLE_CHOICES), value="per view")
        self.magnification = ComboBox(label="magnification", choices=list(VARIABLE_CHOICES), value="per view")
        self.group_size = SpinBox(label="group size", min=2, max=50, value=5)
        self.initial_stage = CheckBox(text="initial stage", value=True)
        self.every_view_only = CheckBox(text="only markers seen in every view", value=False)
        self.robust = CheckBox(text="robust fitting (Tukey bisquare)", value=False)
        self.robust_scale = FloatSpinBox(label="robust scale", min=0.5, max=5.0, step=0.1, value=1.8,
                                         tooltip="multiplies Tukey's 4.685; larger flags fewer points")
        self.leave_out = CheckBox(text="leave-out error", value=False)
        self.warm_start = CheckBox(text="warm start from the last solution", value=True)
        self.result_name = LineEdit(label="name", value="")
        self.thickness = SpinBox(label="preview thickness", min=0, max=4096, value=0,
                                 tooltip="tomogram thickness in unbinned pixels; 0 picks one from the markers' Z")
        self.align_button = PushButton(text="Align")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=100, value=0)
        self.status = Label(label="status", value="ready")

        # Marker editing
        self.current_marker = SpinBox(label="current marker", min=1, max=100000, value=1)
        self.new_marker = PushButton(text="New marker")
        self.show_tracks = PushButton(text="Show tracks")
        self.duplicates = Label(label="duplicates", value="none")

        # Results and triage
        self.exaggeration = FloatSpinBox(label="residual x", min=1.0, max=1000.0, step=1.0, value=10.0)
        self.next_residual = PushButton(text="Next big residual")
        self.move_to_predicted = PushButton(text="Move to predicted")
        self.delete_point = PushButton(text="Delete point")
        self.exclude_marker = PushButton(text="Exclude marker")
        self.undo_button = PushButton(text="Undo", enabled=False,
                                      tooltip="undo the last add, move or delete of a marker point (Ctrl+Z)")
        self.report = Label(label="report", value="no alignment yet")
        self.save_dir = FileEdit(label="save to", mode="d", value="")
        self.overwrite = CheckBox(text="overwrite existing files", value=False)
        self.save_button = PushButton(text="Save alignment")
        self.compare_a = ComboBox(label="compare", choices=self._result_names)
        self.compare_b = ComboBox(label="with", choices=self._result_names)
        self.compare_button = PushButton(text="Compare side by side")

        self.extend([
            Label(value="<b>Inputs</b>"), self.image, self.markers, self.tilt_source, self.tilt_file,
            self.axis_mode, self.axis_angle, self.rotation, self.tilt, self.magnification, self.group_size,
            self.initial_stage, self.every_view_only, self.robust, self.robust_scale, self.leave_out,
            self.warm_start, self.result_name, self.thickness,
            Container(widgets=[self.align_button, self.cancel_button], layout="horizontal", labels=False),
            self.progress, self.status,
            Label(value="<b>Markers</b>"), self.current_marker,
            Container(widgets=[self.new_marker, self.show_tracks], layout="horizontal", labels=False),
            self.duplicates,
            Label(value="<b>Result</b>"), self.report, self.exaggeration, self.next_residual,
            Container(widgets=[self.move_to_predicted, self.delete_point], layout="horizontal", labels=False),
            Container(widgets=[self.exclude_marker, self.undo_button], layout="horizontal", labels=False),
            self.save_dir, self.overwrite, self.save_button,
            Label(value="<b>Compare</b>"), self.compare_a, self.compare_b, self.compare_button,
        ])
        self.report.native.setStyleSheet("font-family: monospace; font-size: 8pt;")
        self.report.native.setMaximumWidth(330)
        self.report.native.setWordWrap(False)
        from qtpy.QtWidgets import QSizePolicy

        for label in (self.status, self.tilt_source, self.duplicates, self.report):
            # Text changes must not relayout the dock (and repaint the viewer) while a worker runs.
            label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._plot: np.ndarray | None = None
        self._excluded: set[int] = set()
        self._undo: list[tuple[Points, np.ndarray, Any, set[int]]] = []
        self._own_edit = False
        self._flagged_pairs: set[tuple[int, int]] = set()
        self._canvas = self._make_canvas()

        self.image.changed.connect(self._on_image_changed)
        self.markers.changed.connect(self._on_markers_layer_changed)
        self.align_button.changed.connect(self.start_alignment)
        self.cancel_button.changed.connect(self.cancel)
        self.current_marker.changed.connect(self._on_current_marker)
        self.new_marker.changed.connect(self.start_new_marker)
        self.show_tracks.changed.connect(self.update_tracks)
        self.next_residual.changed.connect(self.go_to_next_residual)
        self.move_to_predicted.changed.connect(self.move_selected_to_predicted)
        self.delete_point.changed.connect(self.delete_selected)
        self.exclude_marker.changed.connect(self.exclude_selected_markers)
        self.undo_button.changed.connect(self.undo)
        self.exaggeration.changed.connect(lambda *_: self._show_residual_layers())
        self.save_button.changed.connect(self.save_alignment)
        self.compare_button.changed.connect(self.toggle_comparison)
        # Load the compiled kernels now, in the background, rather than in the middle of the first Align.
        self.warmed_up = threading.Event()
        threading.Thread(target=_warm_up_quietly, args=(self.warmed_up,), daemon=True).start()
        viewer.layers.events.inserted.connect(self._refresh_choices)
        viewer.layers.events.removed.connect(self._refresh_choices)
        self._refresh_choices()

    # ----------------------------------------------------------------- layer choices
    def _image_layers(self, _w=None) -> list[Image]:
        return [ly for ly in self._viewer.layers if isinstance(ly, Image) and ly.ndim == 3
                and not ly.name.startswith(("tomogram", ALIGNED))]

    def _points_layers(self, _w=None) -> list[Points]:
        return [ly for ly in self._viewer.layers if isinstance(ly, Points) and "marker" in ly.features.columns
                and ly.name != PREDICTED]

    def _result_names(self, _w=None) -> list[str]:
        return list(self._results)

    def _refresh_choices(self, *_: Any) -> None:
        for w in (self.image, self.markers, self.compare_a, self.compare_b):
            w.reset_choices()
        if self.compare_b.value == self.compare_a.value and len(self._results) > 1:
            self.compare_b.value = list(self._results)[-1] if self.compare_a.value != list(self._results)[-1] \
                else list(self._results)[0]
        self._on_image_changed()
        self._on_markers_layer_changed()

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image.value
        if layer is None:
            self.tilt_source.value = "no tilt series"
            return
        tilts = layer.metadata.get("tilt_angles_deg")
        source = layer.metadata.get("tilt_source", "none found")
        n = "no angles" if tilts is None else f"{len(tilts)} angles, {np.min(tilts):.0f}..{np.max(tilts):.0f} deg"
        self.tilt_source.value = f"{n} ({source})"

    # ----------------------------------------------------------------- marker editing
    def _on_markers_layer_changed(self, *_: Any) -> None:
        layer = self.markers.value
        if layer is self._watched:
            return
        if self._watched is not None:
            try:
                self._watched.events.data.disconnect(self._on_points_edited)
                self._watched.bind_key(UNDO_KEY, None)
            except (TypeError, ValueError, RuntimeError, KeyError):
                pass
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._on_points_edited)
            layer.bind_key(UNDO_KEY, lambda _layer: self.undo(), overwrite=True)
            ids = layer.features["marker"].to_numpy()
            self.current_marker.value = int(ids.max()) if ids.size else 1
            self._on_current_marker()
            self._on_points_edited()

    def _on_current_marker(self, *_: Any) -> None:
        layer = self.markers.value
        if layer is None:
            return
        value = int(self.current_marker.value)
        layer.feature_defaults = {"marker": value}
        if not layer.selected_data:  # changing the colour would recolour a selection
            layer.current_face_color = _hex(marker_colors(np.array([value]))[0])

    def start_new_marker(self, *_: Any) -> None:
        """Make the next unused marker id current, so new clicks start a new marker."""
        layer = self.markers.value
        ids = layer.features["marker"].to_numpy() if layer is not None else np.zeros(0)
        self.current_marker.value = int(ids.max()) + 1 if ids.size else 1

    def _on_points_edited(self, event: Any = None) -> None:
        layer = self.markers.value
        action = str(getattr(event, "action", ""))
        if action.endswith("ing"):  # napari announces an add, move or delete before doing it
            if layer is not None and not self._own_edit:
                self._remember(layer)
            return
        if layer is None or len(layer.data) != len(layer.features):
            return
        view = np.round(layer.data[:, 0]).astype(np.int64) if len(layer.data) else np.zeros(0, np.int64)
        ids = layer.features["marker"].to_numpy(dtype=np.int64)
        pairs = view * 1_000_003 + ids
        _, inverse, counts = np.unique(pairs, return_inverse=True, return_counts=True)
        dup = counts[np.asarray(inverse).ravel()] > 1 if pairs.size else np.zeros(0, bool)
        flagged = np.array([(int(a), int(b)) in self._flagged_pairs for a, b in zip(view, ids)], dtype=bool)
        border = np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (len(view), 1))
        border[flagged] = (1.0, 0.55, 0.0, 1.0)
        border[dup] = (1.0, 0.0, 0.0, 1.0)
        if len(view):
            layer.border_color = border
            layer.border_width = np.where(dup | flagged, 0.3, 0.1)
            face = marker_colors(ids)
            face[np.isin(ids, list(self._excluded)), 3] = 0.25
            layer.face_color = face
        if dup.any():
            where = sorted({(int(v), int(m)) for v, m in zip(view[dup], ids[dup])})
            text = ", ".join(f"marker {m} in view {v}" for v, m in where[:4]) + (" ..." if len(where) > 4 else "")
            self.duplicates.value = f"{len(where)}: {text}"
        else:
            self.duplicates.value = "none"
        if TRACKS in self._viewer.layers:
            self.update_tracks()

    def update_tracks(self, *_: Any) -> None:
        """Show (or refresh) each marker's track across views as a Tracks layer."""
        layer = self.markers.value
        if layer is None or len(layer.data) == 0:
            return
        ids = layer.features["marker"].to_numpy(dtype=np.int64)
        view = np.round(layer.data[:, 0]).astype(np.int64)
        order = np.lexsort((view, ids))
        data = np.column_stack([ids[order], view[order], layer.data[order, 1], layer.data[order, 2]]).astype(float)
        first = np.ones(len(data), bool)
        first[1:] = (np.diff(data[:, 0]) != 0) | (np.diff(data[:, 1]) != 0)
        data = data[first]  # a duplicated point would give a track two positions at one time
        n_views = int(view.max()) + 1
        if TRACKS in self._viewer.layers:
            self._viewer.layers[TRACKS].data = data
        else:
            self._viewer.add_tracks(data, name=TRACKS, scale=layer.scale, tail_length=n_views,
                                    head_length=n_views, tail_width=1.5, blending="translucent")
            self._viewer.layers.selection.active = layer

    # ----------------------------------------------------------------- running
    def _gather(self) -> dict[str, Any]:
        """Everything the worker needs, copied out of the layers (raises ValueError with a message)."""
        image, markers = self.image.value, self.markers.value
        if markers is None:
            raise ValueError("choose a Points layer with a 'marker' feature (open a .fid or .csv, or the sample)")
        if len(markers.data) == 0:
            raise ValueError(f"the markers layer '{markers.name}' has no points")
        if markers.data.shape[1] != 3:
            raise ValueError("marker points must be (view, y, x)")
        tilts, source = None, None
        if self.tilt_file.value and str(self.tilt_file.value) not in ("", "."):
            from ..io.tilts import read_tilt_angles

            path = Path(self.tilt_file.value)
            if path.is_file():
                tilts, source = read_tilt_angles(path), str(path)
        if tilts is None and image is not None:
            tilts = image.metadata.get("tilt_angles_deg")
            source = image.metadata.get("tilt_source")
        if tilts is None:
            raise ValueError("no tilt angles: choose a tilt series that has them, or give a .tlt file")
        data = np.asarray(markers.data, dtype=float).copy()
        if image is not None:
            # Points and image may have different scales; the solver works in image pixels.
            factor = np.asarray(markers.scale, float)[1:] / np.asarray(image.scale, float)[1:]
            rows, cols = image.data.shape[1:]
            size = (int(cols), int(rows))
            pixel_nm = image.metadata.get("pixel_size_nm")
        else:
            factor = np.ones(2)
            size = markers.metadata.get("image_size")
            pixel_nm = None
            if size is None:
                raise ValueError("choose the tilt series too: the image size is needed")
        pix = data.copy()
        pix[:, 1:] *= factor
        table = points_to_markers(pix, markers.features["marker"].to_numpy())
        if self._excluded:
            keep = ~np.isin(table.marker, list(self._excluded))
            if not keep.any():
                raise ValueError("every marker is excluded; undo an exclusion first")
            table = type(table)(table.view[keep], table.marker[keep], table.xy[keep])
        mode = self.axis_mode.value
        options = AlignmentOptions(
            rotation=self._variable(self.rotation.value), tilt=self._variable(self.tilt.value),
            magnification=self._variable(self.magnification.value),
            tilt_axis_deg=None if mode == "estimate" else float(self.axis_angle.value),
            estimate_tilt_axis=mode != "use the angle as given", initial_stage=bool(self.initial_stage.value),
            robust=bool(self.robust.value), robust_scale=float(self.robust_scale.value),
        )
        every = bool(self.every_view_only.value)
        start = None
        if (self.warm_start.value and self._last is not None and self._last_layer is markers
                and self._last.alignment.n_views == len(tilts) and not every
                and self._last.name == (self.result_name.value.strip() or "all markers")):
            start = self._last.alignment
        name = self.result_name.value.strip() or ("markers in every view" if every else "all markers")
        return {
            "images": image.data if image is not None else None, "view": table.view, "marker": table.marker,
            "xy": table.xy, "tilt_angles_deg": np.asarray(tilts, float), "image_size": size, "options": options,
            "name": name, "only_markers_in_every_view": every, "pixel_size_nm": pixel_nm,
            "tomogram_thickness_px": int(self.thickness.value) or None,
            "leave_out": bool(self.leave_out.value), "start": start,
            "_markers_layer": markers, "_markers_data": data, "_tilt_source": source,
            "_scale": tuple(image.scale) if image is not None else tuple(markers.scale),
        }

    def _variable(self, label: str) -> VariableOption:
        mode = VARIABLE_CHOICES[label]
        return VariableOption("group", int(self.group_size.value)) if mode == "group" else VariableOption(mode)

    def start_alignment(self, *_: Any) -> Any:
        """Start the worker; input problems are notified and nothing changes."""
        from napari.qt.threading import create_worker

        if self._busy:
            return None
        try:
            job = self._gather()
        except (ValueError, FileFormatError) as exc:
            show_error(str(exc))
            self.status.value = f"not started: {exc}"
            return None
        layer, data = job.pop("_markers_layer"), job.pop("_markers_data")
        job.pop("_tilt_source")
        self._scale = job.pop("_scale")
        self._stop.clear()
        import os

        # Leave one core to the GUI so that it stays responsive while the worker computes.
        threads = max(1, (os.cpu_count() or 2) - 1)
        worker = create_worker(_run_job, **job, threads=threads, progress=self._bridge.progress.emit,
                               should_stop=self._stop.is_set, _start_thread=False)
        worker.returned.connect(lambda result: self._on_returned(result, layer, data))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        # CPython's full garbage collection walks every object napari holds: about 0.2 s, in whichever
        # thread allocates. Adding result layers makes one due; hold it off until the run is shown.
        self._gc_was_on = gc.isenabled()
        gc.disable()
        self._busy = True
        self._started = time.perf_counter()
        self.align_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.status.value = "aligning..."
        worker.start()
        return worker

    def cancel(self, *_: Any) -> None:
        """Ask the worker to stop at its next iteration or view."""
        if self._busy:
            self._stop.set()
            self.status.value = "cancelling..."

    def _on_progress(self, stage: str, done: int, total: int, text: str) -> None:
        now = time.perf_counter()
        if now - self._last_progress < 0.1 and done < total:
            return  # at most ten updates a second: each one repaints part of the window
        self._last_progress = now
        share = {"initial": (0, 10), "main": (10, 30), "tilt": (30, 50), "aligned stack": (50, 80),
                 "tomogram": (80, 100)}.get(stage, (0, 100))
        frac = min(1.0, done / max(total, 1)) if stage in ("aligned stack", "tomogram") else min(1.0, done / 30.0)
        self.progress.value = int(share[0] + frac * (share[1] - share[0]))
        self.status.value = text

    def _on_error(self, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, Cancelled):
            self.status.value = "cancelled; nothing was changed"
            show_info("alignment cancelled; the layers are as they were")
            return
        self.status.value = f"failed: {exc}"
        show_error(str(exc))

    def _on_finished(self) -> None:
        self._worker = None

    def _on_returned(self, outcome: tuple, layer: Points, data: np.ndarray) -> None:
        result, error = outcome
        if error is not None:
            self._on_error(error)
        else:
            self._on_done(result[0], layer, data, plot=result[1])

    def _on_done(self, result: PipelineResult, layer: Points, data: np.ndarray, plot: np.ndarray | None = None) -> None:
        """Show the result in small steps, one per turn of the event loop, so the GUI never stalls long."""
        elapsed = time.perf_counter() - self._started
        self._results[result.name] = result
        self._last, self._last_layer, self._last_markers = result, layer, data
        al = result.alignment
        res = np.hypot(*al.residuals_px.T)
        used = np.flatnonzero(al.obs_used)
        flagged = al.flagged[used]
        # Flagged points first (largest residual first), then the rest by residual.
        order = np.lexsort((-res[used], ~flagged))
        self._residual_order = used[order]
        self._residual_pos = 0
        ids = al.marker_ids[al.obs_marker]
        self._flagged_pairs = {(int(al.obs_view[k]), int(ids[k])) for k in np.flatnonzero(al.flagged)}
        image = self.image.value
        scale = self._scale

        def choices() -> None:
            self._refresh_choices()
            self.compare_a.value = result.name

        def aligned() -> None:
            self._put_image(ALIGNED, result.aligned, scale, visible=True, replaces=image)

        def tomogram() -> None:
            b = result.tomogram_binning
            sy = scale[1] * b
            self._put_image(f"tomogram: {result.name}", result.tomogram, (sy, sy, sy), visible=False,
                            translate=(0.0, scale[1] * (b - 1) / 2, scale[2] * (b - 1) / 2))

        def finish() -> None:
            self._on_points_edited()  # colour the flagged points
            self.progress.value = 100
            self.status.value = f"done in {elapsed:.2f} s: RMS {al.rms_residual_px:.3f} px"
            for w in result.warnings:
                show_warning(w)
            self._viewer.layers.selection.active = layer
            self._finish()

        def reveal() -> list:
            # New layers were added hidden. Showing one per turn of the event loop spreads the cost of
            # building and first drawing their visuals; a layer's follow-up (text labels) gets a turn too.
            if not self._to_reveal:
                return []
            ly, replaces, then = self._to_reveal.pop(0)
            ly.visible = True
            if replaces is not None:
                replaces.visible = False
            return ([then] if then is not None else []) + ([reveal] if self._to_reveal else [])

        steps = [choices]
        if result.aligned is not None:
            steps.append(aligned)
        if result.tomogram is not None:
            steps.append(tomogram)
        steps += [self._show_residual_vectors, self._show_predicted_markers,
                  lambda: self._update_report([result], plot=plot), reveal, finish]
        self._run_steps(steps)

    def _run_steps(self, steps: list) -> None:
        """Run each step on its own turn of the Qt event loop; a step may return more steps to run next."""
        from qtpy.QtCore import QTimer

        def next_step() -> None:
            if not steps:
                return
            step = steps.pop(0)
            t0 = time.perf_counter()
            try:
                more = step()
                if more:
                    steps[0:0] = more
                self.display_times_ms.append((getattr(step, "__name__", "step"), 1000 * (time.perf_counter() - t0)))
            except Exception as exc:  # a display problem must not leave the widget busy
                steps.clear()
                show_error(f"could not show the result: {exc}")
                self._finish()
                return
            if steps:
                # A timer, not a posted call: Qt holds timers back while posted events are pending, so
                # steps chained as posted calls ran back to back with no turn of the loop between them.
                QTimer.singleShot(STEP_GAP_MS, next_step)

        self.display_times_ms = []
        QTimer.singleShot(0, next_step)

    @property
    def busy(self) -> bool:
        """True from Align until the result is shown (or the run failed or was cancelled)."""
        return self._busy

    def _finish(self) -> None:
        if self._gc_was_on:
            gc.enable()
            self._gc_was_on = False
        self._busy = False
        self.align_button.enabled = True
        self.cancel_button.enabled = False

    def _put_image(self, name: str, data: np.ndarray, scale, visible: bool, translate=None,
                   replaces: Image | None = None) -> Image:
        """Update the image layer ``name``, or add it hidden and queue it to be shown (hiding ``replaces``)."""
        lo, hi = (float(v) for v in np.percentile(data[len(data) // 2], [0.5, 99.5]))
        if not hi > lo:
            hi = lo + 1.0
        if name in self._viewer.layers:
            ly = self._viewer.layers[name]
            ly.data = data
            ly.scale = scale
            ly.contrast_limits = (lo, hi)
            if translate is not None:
                ly.translate = translate
            if replaces is not None:
                replaces.visible = False
            return ly
        ly = self._add_result_layer(Image(data, name=name, scale=scale, colormap="gray", visible=False,
                                          contrast_limits=(lo, hi), translate=translate or (0.0, 0.0, 0.0)))
        if visible:
            self._to_reveal.append((ly, replaces, None))
        return ly

    def _add_result_layer(self, layer):
        """Add a result layer without making it the active one.

        Activating a new layer swaps napari's layer-controls panel, which costs the GUI tens of
        milliseconds per layer; the markers layer is made active again when the result is shown anyway.
        """
        layers = self._viewer.layers
        before = getattr(layers, "_activate_on_insert", None)
        if before is not None:
            layers._activate_on_insert = False
        try:
            layers.append(layer)
        finally:
            if before is not None:
                layers._activate_on_insert = before
        return layer

    def _show_residual_layers(self) -> None:
        self._show_residual_vectors()
        self._show_predicted_markers()

    def _show_residual_vectors(self) -> None:
        """Residual vectors from each observed point, exaggerated, in raw-image space."""
        if self._last is None or self._last_layer is None:
            return
        al = self._last.alignment
        scale = self._scale
        used = al.obs_used
        start = np.column_stack([al.obs_view[used], al.obs_xy_px[used, 1], al.obs_xy_px[used, 0]]).astype(float)
        d = al.residuals_px[used] * float(self.exaggeration.value)
        direction = np.column_stack([np.zeros(len(d)), d[:, 1], d[:, 0]])
        vectors = np.stack([start, direction], axis=1)
        length = np.hypot(*al.residuals_px[used].T)
        big = length > 3.0 * max(al.rms_residual_px, 1e-9)
        colors = np.where(big[:, None], [[1.0, 0.2, 0.2, 1.0]], [[1.0, 0.85, 0.1, 1.0]])
        name = f"{RESIDUALS} x{self.exaggeration.value:g}"
        for ly in [ly for ly in self._viewer.layers if ly.name.startswith(RESIDUALS)]:
            if ly.name != name:
                self._viewer.layers.remove(ly)
        if name in self._viewer.layers:
            self._viewer.layers[name].data = vectors
            self._viewer.layers[name].edge_color = colors
        else:
            ly = self._add_result_layer(Vectors(vectors, name=name, scale=scale, edge_color=colors, edge_width=1.5,
                                                vector_style="arrow", visible=False))
            self._to_reveal.append((ly, None, None))

    def _show_predicted_markers(self) -> None:
        """The model's position of each marker where it was not clicked, inside the image."""
        if self._last is None:
            return
        al = self._last.alignment
        scale = self._scale
        seen = np.zeros((al.n_views, al.n_markers), bool)
        seen[al.obs_view, al.obs_marker] = True
        ok = ~seen & al.view_determined[:, None] & al.marker_included[None, :]
        vi, mi = np.nonzero(ok)
        p = al.predicted_xy_px[vi, mi]
        w, h = al.image_size
        inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
        vi, mi, p = vi[inside], mi[inside], p[inside]
        data = np.column_stack([vi, p[:, 1], p[:, 0]]).astype(float)
        ids = al.marker_ids[mi]
        kwargs = {"features": {"marker": ids}, "border_color": marker_colors(ids) if len(ids) else "white"}
        if PREDICTED in self._viewer.layers:
            ly = self._viewer.layers[PREDICTED]
            ly.data = data
            ly.features = kwargs["features"]
            if len(ids):
                ly.border_color = kwargs["border_color"]
        else:
            ly = self._add_result_layer(Points(data, name=PREDICTED, scale=scale, symbol="ring", size=14,
                                               face_color="transparent", border_width=0.15, **kwargs, visible=False))

            def label() -> None:  # on a turn of its own: the first text drawn builds another shader
                ly.text = {"string": "{marker}?", "size": 8, "color": "white", "anchor": "lower_right"}

            self._to_reveal.append((ly, None, label))

    # ----------------------------------------------------------------- report
    def _make_canvas(self):
        from qtpy.QtWidgets import QLabel

        canvas = QLabel()
        canvas.setFixedSize(324, 306)
        layout = self.native.layout()
        layout.insertWidget(layout.indexOf(self.exaggeration.native.parent()), canvas)
        return canvas

    def _show_plot(self, rgba: np.ndarray) -> None:
        from qtpy.QtGui import QImage, QPixmap

        rgba = np.ascontiguousarray(rgba)
        h, w = rgba.shape[:2]
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self._canvas.setPixmap(QPixmap.fromImage(image))
        self._plot = rgba

    def _update_report(self, results: list[PipelineResult], plot: np.ndarray | None = None) -> None:
        lines = []
        for r in results:
            al = r.alignment
            lines.append(f"[{r.name}] {len(r.markers_used)} markers, {int(al.obs_used.sum())} points")
            lines.append(f"  RMS {al.rms_residual_px:.3f} px, mean {al.mean_residual_px:.3f} px"
                         + ("" if al.converged else "  NOT CONVERGED"))
            for s in al.stages:
                ms = 1000 * s.wall_time_s
                lines.append(f"  {s.name:<8}{s.iterations:>3} it {ms:7.1f} ms  RMS {s.rms_residual_px:.3f}")
            for k in ("leave-out", "aligned stack", "tomogram"):
                if k in r.timings_s:
                    lines.append(f"  {k:<14}{1000 * r.timings_s[k]:7.0f} ms")
            lines.append("  worst views: " + ", ".join(f"{v} ({e:.2f})" for v, e in al.worst_views(3)))
            lines.append("  worst markers: " + ", ".join(f"{m} ({e:.2f})" for m, e in al.worst_markers(3)))
            if al.robust_weights is not None:
                lines.append(f"  robust: {int(al.flagged.sum())} point(s) flagged (weight < 0.5)")
            if r.leave_out is not None:
                lo = r.leave_out
                rob = "" if lo.overall_robust_px is None else f", robust {lo.overall_robust_px:.3f}"
                lines.append(f"  leave-out error {lo.overall_px:.3f} px{rob}")
            if al.excluded_views or al.excluded_markers:
                lines.append(f"  left out: views {al.excluded_views}, markers {al.excluded_markers}")
        self.report.value = "\n".join(lines)
        if plot is None:
            from ..report import report_plot

            plot = report_plot({r.name: r.alignment for r in results})
        self._show_plot(plot)

    # ----------------------------------------------------------------- triage
    def go_to_next_residual(self, *_: Any) -> tuple[int, int] | None:
        """Show the view and select the point with the next largest residual; return (point, view)."""
        if self._last is None or self._last_layer is None or not self._residual_order.size:
            show_info("align first: there are no residuals yet")
            return None
        layer = self._last_layer
        al = self._last.alignment
        obs = int(self._residual_order[self._residual_pos % self._residual_order.size])
        self._residual_pos += 1
        k = self._find_point(layer, int(al.obs_view[obs]), int(al.marker_ids[al.obs_marker[obs]]))
        if k is None:
            self.status.value = "that point was deleted since the last alignment"
            return None
        view, y, x = layer.data[k]
        world = np.asarray(layer.data_to_world(layer.data[k]))
        self._viewer.dims.set_point(0, world[0])
        self._viewer.camera.center = (self._viewer.camera.center[0], float(world[1]), float(world[2]))
        self._viewer.layers.selection.active = layer
        layer.mode = "select"
        layer.selected_data = {k}
        r = np.hypot(*al.residuals_px[obs])
        flag = " (flagged)" if al.flagged[obs] else ""
        self.status.value = (f"#{self._residual_pos}: marker {int(layer.features['marker'].iloc[k])} in view "
                             f"{int(round(view))}, residual {r:.2f} px{flag}")
        return k, int(round(view))

    @staticmethod
    def _find_point(layer: Points, view: int, marker_id: int) -> int | None:
        """Index of the point of ``marker_id`` in ``view`` in the layer as it is now."""
        if len(layer.data) == 0:
            return None
        hit = np.flatnonzero((np.round(layer.data[:, 0]) == view) & (layer.features["marker"].to_numpy() == marker_id))
        return int(hit[0]) if hit.size else None

    # ----------------------------------------------------------------- edits (undoable)
    def _remember(self, layer: Points) -> None:
        self._undo.append((layer, layer.data.copy(), layer.features.copy(), set(self._excluded)))
        del self._undo[:-UNDO_DEPTH]
        self.undo_button.enabled = True

    @contextmanager
    def _editing(self):
        """An edit of our own: it is remembered once, by the caller, not again by the layer's events."""
        self._own_edit = True
        try:
            yield
        finally:
            self._own_edit = False

    def undo(self, *_: Any) -> None:
        """Undo the last edit of the markers: napari's add, move and delete, and our triage (also Ctrl+Z)."""
        if not self._undo:
            return
        layer, data, features, excluded = self._undo.pop()
        self._excluded = excluded
        with self._editing():
            layer.selected_data = set()
            layer.data = data
            layer.features = features
        self._on_points_edited()
        self.undo_button.enabled = bool(self._undo)
        self.status.value = "undone"

    def _selection(self) -> tuple[Points | None, list[int]]:
        layer = self.markers.value
        if layer is None or not layer.selected_data:
            show_info("select one or more marker points first (for example with Next big residual)")
            return layer, []
        return layer, sorted(int(i) for i in layer.selected_data)

    def move_selected_to_predicted(self, *_: Any) -> int:
        """Move the selected points to where the last alignment predicts their marker; return how many."""
        layer, sel = self._selection()
        if not sel or self._last is None:
            if sel:
                show_info("align first: there is no prediction yet")
            return 0
        al = self._last.alignment
        index = {int(m): k for k, m in enumerate(al.marker_ids)}
        data = layer.data.copy()
        moved = 0
        factor = np.asarray(self._scale, float)[1:] / np.asarray(layer.scale, float)[1:]
        for i in sel:
            view = int(round(data[i, 0]))
            k = index.get(int(layer.features["marker"].iloc[i]))
            if k is None or not 0 <= view < al.n_views:
                continue
            p = al.predicted_xy_px[view, k]
            if np.all(np.isfinite(p)):
                data[i, 1:] = np.array([p[1], p[0]]) * factor
                moved += 1
        if moved:
            self._remember(layer)
            with self._editing():
                layer.data = data
            self.status.value = f"moved {moved} point(s) to the predicted position; Align again to refit"
        return moved

    def delete_selected(self, *_: Any) -> int:
        """Delete the selected points (undoable); return how many."""
        layer, sel = self._selection()
        if not sel:
            return 0
        self._remember(layer)
        with self._editing():
            layer.selected_data = set(sel)
            layer.remove_selected()
        self.status.value = f"deleted {len(sel)} point(s); Align again to refit"
        return len(sel)

    def exclude_selected_markers(self, *_: Any) -> list[int]:
        """Leave the markers of the selected points out of the next fits (shown faded; undoable)."""
        layer, sel = self._selection()
        if not sel:
            return []
        ids = sorted({int(layer.features["marker"].iloc[i]) for i in sel})
        self._remember(layer)
        self._excluded.update(ids)
        self._on_points_edited()
        self.status.value = f"marker(s) {', '.join(map(str, ids))} excluded from the fit; Align again to refit"
        return ids

    # ----------------------------------------------------------------- saving and comparing
    def save_alignment(self, *_: Any) -> list[Path]:
        """Write the last alignment as `tomoalign align` does."""
        from ..io.alignment import write_alignment
        from ..io.atomic import OverwriteError

        if self._last is None:
            show_error("nothing to save: align first")
            return []
        target = str(self.save_dir.value or "")
        if target in ("", "."):
            show_error("choose a directory to save the alignment in")
            return []
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in self._last_layer.name) or "markers"
        try:
            paths = write_alignment(self._last.alignment, target, stem, overwrite=bool(self.overwrite.value),
                                    extra={"markers_layer": self._last_layer.name, "name": self._last.name})
        except (OverwriteError, OSError) as exc:
            show_error(f"not saved: {exc}")
            return []
        show_info(f"saved {len(paths)} files to {target}")
        return paths

    def toggle_comparison(self, *_: Any) -> None:
        """Show two alignments' tomograms side by side (grid mode), or go back to the normal view."""
        viewer = self._viewer
        if self._comparing is not None:
            for ly in viewer.layers:
                if ly.name in self._comparing:
                    ly.visible = self._comparing[ly.name]
            viewer.canvas.grid.enabled = False
            self._comparing = None
            self.compare_button.text = "Compare side by side"
            return
        a, b = self.compare_a.value, self.compare_b.value
        if a is None or b is None or a == b:
            show_error("align twice under two names first (for example with and without "
                       "'only markers seen in every view'), then pick both")
            return
        names = [f"tomogram: {a}", f"tomogram: {b}"]
        if not all(n in viewer.layers for n in names):
            show_error("both alignments need a tomogram: align them with a tilt series chosen")
            return
        self._comparing = {ly.name: ly.visible for ly in viewer.layers}
        for ly in viewer.layers:
            ly.visible = ly.name in names
        # Grid mode fills the viewboxes in layer-list order (stride 1): a goes left, b right.
        for n in names:
            viewer.layers.move(viewer.layers.index(n), len(viewer.layers))
        grid = viewer.canvas.grid
        grid.stride = 1
        grid.shape = (1, 2)
        grid.enabled = True
        tomo = viewer.layers[names[0]]
        viewer.dims.set_point(0, float(tomo.data_to_world((tomo.data.shape[0] // 2, 0, 0))[0]))
        self.compare_button.text = "End comparison"
        self._update_report([self._results[a], self._results[b]])
