"""Step 5, triage: step through the points by residual and fix them (move to the predicted position,
delete, exclude the marker), every edit undoable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...conventions import view_number
from .logic import view_index
from .markers import MarkersPanel
from .state import Runs
from .status import refuse
from .ui import button, row

SELECT_FIRST = "select one or more marker points first (for example with Next big residual)"


def find_point(layer: Any, view: int, marker_id: int) -> int | None:
    """Index of the point of ``marker_id`` in ``view`` in the layer as it is now."""
    if len(layer.data) == 0:
        return None
    hit = np.flatnonzero((view_index(layer.data[:, 0]) == view) & (layer.features["marker"].to_numpy() == marker_id))
    return int(hit[0]) if hit.size else None


class Triage:
    """Next big residual, Move to predicted, Delete point, Exclude marker and Undo."""

    def __init__(self, viewer: Any, runs: Runs, panel: MarkersPanel, status: Callable[..., None]) -> None:
        self._viewer, self._runs, self._panel, self._status = viewer, runs, panel, status
        self.next_residual = button("Next big residual (N)", "select the point with the next largest residual "
                                    "(points the robust fit flagged first)")
        self.move_to_predicted = button("Move to predicted (M)", "put the selected points where the fit predicts "
                                        "them; with none selected, add the gap's missing point there")
        self.delete_point = button("Delete point")
        self.exclude_marker = button("Exclude marker", "leave the selected points' markers out of the next fits")
        self.undo_button = button("Undo", "undo the last add, move or delete of a marker point (Ctrl+Z)", False)
        self.widget = row(self.next_residual, self.undo_button)
        # Two rows: three buttons side by side cut their labels short in a dock of napari's default width.
        self.edit_row = row(self.move_to_predicted, self.delete_point)
        self.exclude_row = row(self.exclude_marker)
        panel.keys.update({"n": self.go_to_next_residual, "m": self.move_selected_to_predicted})
        self.on_nothing_selected: Callable[[], Any] | None = None  # the Bead Fixer's accept of a gap
        self.next_residual.changed.connect(self.go_to_next_residual)
        self.move_to_predicted.changed.connect(self.move_selected_to_predicted)
        self.delete_point.changed.connect(self.delete_selected)
        self.exclude_marker.changed.connect(self.exclude_selected_markers)

    def go_to_next_residual(self, *_: Any) -> tuple[int, int] | None:
        """Show the view and select the next point to check (flagged or weak first, then by residual);
        return (point, view)."""
        runs = self._runs
        if runs.markers is None or not runs.visits:
            refuse(self._status, "align or track first: there are no residuals yet")
            return None
        visit = runs.visits[runs.position % len(runs.visits)]
        runs.position += 1
        k = self.go_to(visit.view, visit.marker)
        if k is None:
            return None
        note = f" ({visit.note})" if visit.note else ""
        resid = f"residual {visit.residual_px:.2f} px" if np.isfinite(visit.residual_px) else "no residual"
        self._status(f"#{runs.position}: marker {visit.marker} in view {view_number(visit.view)}, {resid}{note}")
        return k, visit.view

    def go_to(self, view: int, marker: int) -> int | None:
        """Show ``view`` (0-based), centre the point of ``marker`` in it and select it; its index, or None."""
        layer = self._runs.markers if self._runs.markers is not None else self._panel.layer
        k = find_point(layer, view, marker) if layer is not None else None
        if k is None or layer not in self._viewer.layers:
            self._status(f"marker {marker} has no point in view {view_number(view)} now (deleted since the last "
                         "alignment or tracking)")
            return None
        world = np.asarray(layer.data_to_world(layer.data[k]))
        self._viewer.dims.set_point(0, world[0])
        self._viewer.scene.camera.center = (self._viewer.scene.camera.center[0], float(world[1]), float(world[2]))
        if not layer.visible:  # napari redraws a layer even when told what it already is (50 ms here)
            layer.visible = True
        if self._viewer.layers.selection.active is not layer:
            self._viewer.layers.selection.active = layer
        if layer.mode != "select":
            layer.mode = "select"
        layer.selected_data = {k}
        self._status(f"marker {marker} in view {view_number(view)}")
        return k

    def _selection(self) -> tuple[Any, list[int]]:
        layer = self._panel.layer
        if layer is None or not layer.selected_data:
            refuse(self._status, SELECT_FIRST)
            return layer, []
        return layer, sorted(int(i) for i in layer.selected_data)

    def move_selected_to_predicted(self, *_: Any) -> int:
        """Move the selected points to where the last alignment predicts their marker; return how many. With
        none selected, the missing point of the gap last gone to is added there (``on_nothing_selected``)."""
        layer = self._panel.layer
        if layer is not None and not layer.selected_data and self.on_nothing_selected is not None:
            if self.on_nothing_selected() is not None:
                return 1
        layer, sel = self._selection()
        if not sel:
            return 0
        al = self._runs.prediction
        if al is None:
            refuse(self._status, "align or track first: there is no prediction yet")
            return 0
        index = {int(m): k for k, m in enumerate(al.marker_ids)}
        data = layer.data.copy()
        moved = 0
        for i in sel:
            view, k = int(round(data[i, 0])), index.get(int(layer.features["marker"].iloc[i]))
            if k is not None and 0 <= view < al.n_views and np.all(np.isfinite(al.predicted_xy_px[view, k])):
                data[i, 1:] = al.predicted_xy_px[view, k][::-1]  # pixels into pixels: no scale involved
                moved += 1
        if moved:
            self._panel.undo.remember(layer, self._panel.excluded)
            with self._panel.undo.editing():
                layer.data = data
            self._status(f"moved {moved} point(s) to the predicted position; Align again to refit")
        return moved

    def delete_selected(self, *_: Any) -> int:
        """Delete the selected points (undoable); return how many."""
        layer, sel = self._selection()
        if not sel:
            return 0
        self._panel.undo.remember(layer, self._panel.excluded)
        with self._panel.undo.editing():
            layer.selected_data = set(sel)
            layer.remove_selected()
        self._status(f"deleted {len(sel)} point(s); Align again to refit")
        return len(sel)

    def exclude_selected_markers(self, *_: Any) -> list[int]:
        """Leave the markers of the selected points out of the next fits (shown faded; undoable)."""
        layer, sel = self._selection()
        if not sel:
            return []
        ids = sorted({int(layer.features["marker"].iloc[i]) for i in sel})
        self._panel.undo.remember(layer, self._panel.excluded)
        self._panel.excluded.update(ids)
        self._panel.refresh()
        self._status(f"marker(s) {', '.join(map(str, ids))} excluded from the fit; Align again to refit")
        return ids
