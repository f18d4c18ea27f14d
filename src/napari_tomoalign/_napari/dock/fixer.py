"""3dmod's Bead Fixer in step 5: centre a point on its bead, go to the next gap, accept a '?' ring as a point,
re-track one bead from a corrected point through the views; every edit undoable (Ctrl+Z) and each on a key
of the markers layer (`KEYS`), as 3dmod has them on keys. The fits run in a worker thread (a re-track reads
every view); the edit is made on the GUI thread in one step when the fit is back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.qt.threading import create_worker

from ...conventions import view_number
from ...tracking.diameter import MEASURE_NOTED
from .bead_logic import RING_OVER_BEAD
from .fixer_logic import centre_on_bead, gaps, measured_diameter, next_gap, retrack_bead, with_point
from .inputs import InputsSection
from .logic import view_index
from .markers import MarkersPanel
from .state import Runs
from .status import refuse
from .ui import button, row

KEYS = {"c": "centre", "g": "next_gap", "y": "accept_gap", "r": "retrack"}


class BeadFixer:
    """The Bead Fixer's actions on the dock's markers layer."""

    def __init__(self, viewer: Any, runs: Runs, panel: MarkersPanel, inputs: InputsSection,
                 diameter_px: Callable[[], float], status: Callable[..., None], dark: Callable[[], bool] = lambda: True
                 ) -> None:
        self._viewer, self._runs, self._panel, self._inputs = viewer, runs, panel, inputs
        self._diameter_px, self._status, self._dark = diameter_px, status, dark  # dark: the beads' polarity (step 2)
        self.centre_button = button("Centre on bead (C)", "move the selected points onto their beads' centres, with "
                                    "the tracker's own fit")
        self.gap_button = button("Next gap (G)", "the next view where a marker has no point but the model puts one "
                                 "(a '?' ring)")
        self.accept_button = button("Accept ? ring (Y)", "add the gap's point where the model puts it (the '?' "
                                    "ring); then C centres it")
        self.retrack_button = button("Re-track bead (R)", "from the selected (corrected) point, track its bead "
                                     "through the views on both sides")
        self.widget = row(self.centre_button, self.gap_button)
        self.second_row = row(self.accept_button, self.retrack_button)
        self.centre_button.changed.connect(lambda *_: self.centre())
        self.gap_button.changed.connect(lambda *_: self.next_gap())
        self.accept_button.changed.connect(lambda *_: self.accept_gap())
        self.retrack_button.changed.connect(lambda *_: self.retrack())
        self.gap: tuple[int, int, np.ndarray] | None = None  # (view, marker, predicted x, y) last gone to
        self._measured: dict[tuple[int, float, bool], float] = {}  # (image, given px, dark): the beads' measure
        self.worker: Any = None
        panel.keys.update({key: getattr(self, name) for key, name in KEYS.items()})

    # ------------------------------------------------------------------ helpers
    def _layer_and_image(self) -> tuple[Any, Any]:
        layer, image = self._panel.layer, self._inputs.image.value
        if layer is None:
            refuse(self._status, "choose a markers layer first (step 1)")
        elif image is None:
            refuse(self._status, "choose the tilt series: the beads are found in its pixels")
            layer = None
        return layer, image

    def _diameter(self, layer: Any) -> float:
        try:
            return float(self._diameter_px())
        except ValueError:
            sizes = np.asarray(layer.size, dtype=float)
            return float(np.median(sizes)) / RING_OVER_BEAD if sizes.size else 10.0

    def _edit(self, layer: Any, data: np.ndarray, marker: np.ndarray, select: set[int]) -> None:
        """Put ``data`` and ``marker`` into ``layer`` as one undoable edit (new points get default features)."""
        old = layer.features
        features = {name: old[name].to_numpy() for name in old.columns}
        n_old = len(old)
        features["marker"] = np.asarray(marker, dtype=np.int64)
        for name, column in features.items():
            if name != "marker" and len(column) < len(data):
                default = layer.feature_defaults[name].iloc[0] if name in layer.feature_defaults else column[0]
                features[name] = np.concatenate([column, np.full(len(data) - n_old, default, dtype=column.dtype)])
        self._panel.undo.remember(layer, self._panel.excluded)
        with self._panel.undo.editing():
            layer.selected_data = set()
            layer.data = data
            layer.features = features
            layer.selected_data = select
        self._panel.refresh()

    def _start(self, work: Callable[..., Any], done: Callable[[Any], None], *args: Any) -> Any:
        worker = create_worker(work, *args, _start_thread=False)
        worker.returned.connect(done)
        worker.errored.connect(lambda exc: refuse(self._status, f"the fit failed: {exc}"))
        worker.finished.connect(lambda: self._finished(worker))  # connected before start: never missed
        self.worker = worker
        worker.start()
        return worker

    def _finished(self, worker: Any) -> None:
        if self.worker is worker:
            self.worker = None  # nothing of the fixer's is running now

    # ------------------------------------------------------------------ centre
    def centre(self, *_: Any) -> Any:
        """Fit the selected points' beads in a worker and move the points onto them (one undoable edit)."""
        layer, image = self._layer_and_image()
        if layer is None:
            return None
        sel = sorted(int(i) for i in layer.selected_data)
        if not sel:
            refuse(self._status, "select the points to centre first (Next big residual selects one)")
            return None
        given, data, dark = self._diameter(layer), np.array(layer.data, dtype=float), bool(self._dark())
        stack, key = image.data, (id(image), given, dark)
        known = self._measured.get(key)

        def work() -> tuple[float, list[tuple[int, np.ndarray, bool]]]:
            d = known if known is not None else measured_diameter(stack[int(round(data[sel[0], 0]))], given, dark)
            return d, [(i, *centre_on_bead(stack[int(round(data[i, 0]))], data[i, [2, 1]], d, dark)) for i in sel]

        def done(outcome: tuple[float, list[tuple[int, np.ndarray, bool]]]) -> None:
            d, found = outcome
            self._measured[key] = d
            if len(layer.data) != len(data) or not np.array_equal(layer.data, data):
                return self._status("the points changed while their beads were being fitted; nothing moved")
            new = data.copy()
            moved = [(i, float(np.hypot(*(xy - data[i, [2, 1]])))) for i, xy, ok in found if ok]
            for i, xy, ok in found:
                if ok:
                    new[i, 1:] = xy[1], xy[0]
            if moved:
                self._edit(layer, new, layer.features["marker"].to_numpy(), set(sel))
            missed = len(found) - len(moved)
            size = "" if abs(d / given - 1.0) <= MEASURE_NOTED else (
                f"; the beads measure {d:.1f} px across, not the {given:.1f} px of 'bead diameter': fitted with the measure")
            self._status(f"centred {len(moved)} point(s) on their beads (moved {max(s for _, s in moved):.2f} px at "
                         f"most){size}" if moved else "no bead found under the selected point(s); nothing moved",
                         error=not moved)
            if moved and missed:
                self._status(f"centred {len(moved)} point(s); {missed} had no bead under them and stayed")
            return None

        self._status(f"centring {len(sel)} point(s) on their beads...")
        return self._start(work, done)

    # ------------------------------------------------------------------ gaps
    def next_gap(self, *_: Any) -> tuple[int, int] | None:
        """Go to the next '?' ring (marker by marker, view by view) and make it the gap to accept."""
        al, layer = self._runs.prediction, self._panel.layer
        found = gaps(al, layer.data, layer.features["marker"].to_numpy()) if al is not None and layer else []
        if not found or layer is None:
            refuse(self._status, "no gaps: every marker has a point wherever the model puts it in the image"
                   if al is not None else "align or track first: the gaps are where the model puts a bead")
            return None
        current = (self.gap[0], self.gap[1]) if self.gap is not None else None
        k = next_gap(found, current)
        assert k is not None  # found is not empty
        view, marker, xy = found[k]
        self.gap = (view, marker, xy)
        world = np.asarray(layer.data_to_world([float(view), float(xy[1]), float(xy[0])]))
        self._viewer.dims.set_point(0, world[0])
        camera = self._viewer.scene.camera
        camera.center = (camera.center[0], float(world[1]), float(world[2]))
        self._viewer.layers.selection.active = layer
        layer.selected_data = set()
        self._status(f"gap {k + 1} of {len(found)}: marker {marker} has no point in view {view_number(view)}; "
                     "Y accepts the '?' ring, then C centres it")
        return view, marker

    def accept_gap(self, *_: Any) -> int | None:
        """Add the gap's point where the model puts it (the '?' ring); its index in the layer."""
        layer = self._panel.layer
        if self.gap is None or layer is None:
            refuse(self._status, "go to a gap first (Next gap, G)")
            return None
        view, marker, xy = self.gap
        ids = layer.features["marker"].to_numpy(dtype=np.int64)
        if np.any((view_index(layer.data[:, 0]) == view) & (ids == marker)) if len(layer.data) else False:
            refuse(self._status, f"marker {marker} already has a point in view {view_number(view)}")
            return None
        data, marker_ids, k = with_point(layer.data, ids, view, marker, xy)
        self._edit(layer, data, marker_ids, {k})
        self._status(f"added marker {marker}'s point in view {view_number(view)} at the '?' ring; C centres it, "
                     "G goes to the next gap")
        return k

    # ------------------------------------------------------------------ re-track
    def retrack(self, *_: Any) -> Any:
        """From the one selected point, track its bead through the views in a worker; replace that marker's
        points in the views reached (one undoable edit)."""
        layer, image = self._layer_and_image()
        if layer is None:
            return None
        sel = sorted(int(i) for i in layer.selected_data)
        if len(sel) != 1:
            refuse(self._status, "select one point, the one you corrected, to re-track its bead from")
            return None
        data, ids = np.array(layer.data, dtype=float), layer.features["marker"].to_numpy(dtype=np.int64)
        i = sel[0]
        view, marker, start = int(round(data[i, 0])), int(ids[i]), data[i, [2, 1]]
        al = self._runs.prediction
        predicted = None
        if al is not None and marker in set(al.marker_ids.tolist()) and al.n_views == len(image.data):
            predicted = al.predicted_xy_px[:, list(al.marker_ids).index(marker)]
        d, stack = self._diameter(layer), image.data

        def done(track: dict[int, np.ndarray]) -> None:
            if not np.array_equal(layer.data, data):
                return self._status("the points changed while the bead was being tracked; nothing changed")
            new, m = data, ids
            for j, xy in sorted(track.items()):
                new, m, _ = with_point(new, m, j, marker, xy)
            _, _, k = with_point(new, m, view, marker, start)
            self._edit(layer, new, m, {k})
            views = sorted(track)
            self._status(f"re-tracked marker {marker} through {len(views)} views ({view_number(views[0])} to "
                         f"{view_number(views[-1])}); Ctrl+Z undoes it")
            return None

        self._status(f"re-tracking marker {marker} from view {view_number(view)}...")
        return self._start(retrack_bead, done, stack, view, start, d, predicted, bool(self._dark()))
