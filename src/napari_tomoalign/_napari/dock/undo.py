"""The undo stack of marker edits: napari's adds, moves and deletes, and the dock's own triage.

napari's Points layer has no undo of its own. A snapshot (data, features, excluded markers) is taken
before each edit; undoing puts the layer back. GUI-free: it only touches the layer's public data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

UNDO_DEPTH = 50


class UndoStack:
    """Snapshots of markers layers, newest last, at most ``depth`` of them."""

    def __init__(self, depth: int = UNDO_DEPTH, on_change: Callable[[bool], None] | None = None) -> None:
        self._items: list[tuple[Any, np.ndarray, Any, set[int]]] = []
        self._depth = depth
        self._on_change = on_change
        self.own_edit = False  # True while the dock edits a layer itself (the layer's events must not snapshot)

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, layer: Any, excluded: set[int]) -> None:
        """Snapshot ``layer`` (and the excluded markers) before an edit."""
        self._items.append((layer, np.array(layer.data, copy=True), layer.features.copy(), set(excluded)))
        del self._items[: -self._depth]
        self._changed()

    def push(self, layer: Any, data: np.ndarray, features: Any, excluded: set[int]) -> None:
        """Put a state of ``layer`` on the stack as if it had been remembered before an edit (a restored history)."""
        import pandas as pd

        self._items.append((layer, np.array(data, copy=True), pd.DataFrame(features), set(excluded)))
        del self._items[: -self._depth]
        self._changed()

    @contextmanager
    def editing(self) -> Iterator[None]:
        """An edit of the dock's own: remembered once by the caller, not again by the layer's events."""
        self.own_edit = True
        try:
            yield
        finally:
            self.own_edit = False

    def undo(self) -> tuple[Any, set[int]] | None:
        """Put the newest snapshot back; return (layer, excluded markers then), or None if empty."""
        if not self._items:
            return None
        layer, data, features, excluded = self._items.pop()
        with self.editing():
            layer.selected_data = set()
            layer.data = data
            layer.features = features
        self._changed()
        return layer, excluded

    def forget(self, layer: Any) -> None:
        """Drop the snapshots of a layer that left the viewer."""
        self._items = [item for item in self._items if item[0] is not layer]
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(bool(self._items))
