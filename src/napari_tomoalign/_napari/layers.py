"""Conversions between the core's (x, y) arrays and napari's (view, y, x) layer data.

This is the only place where the axis order flips.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..io.markers import MarkerTable


def marker_colors(ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """``(n, 4)`` RGBA colour per point: a distinct, stable hue per marker id (golden-ratio spacing)."""
    uniq, inverse = np.unique(np.asarray(ids), return_inverse=True)
    table = np.array([(*colorsys.hsv_to_rgb((float(i) * 0.618034) % 1.0, 0.75, 1.0), 1.0) for i in uniq])
    return table[np.asarray(inverse).ravel()] if len(uniq) else np.zeros((0, 4))


def markers_to_points(table: MarkerTable, name: str = "markers") -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Points data ``(n, 3)`` as (view, y, x) and layer keyword arguments for a marker table."""
    data = np.column_stack([table.view.astype(float), table.xy[:, 1], table.xy[:, 0]])
    kwargs: dict[str, Any] = {
        "name": name,
        "features": {"marker": np.asarray(table.marker, dtype=np.int64)},
        "face_color": marker_colors(table.marker),
        "border_color": "black",
        "size": 10,
        "text": {"string": "{marker}", "size": 8, "color": "white", "anchor": "upper_left"},
        "metadata": {"image_size": table.image_size, "source": table.source},
    }
    return data, kwargs


def points_to_markers(data: NDArray[np.float64], marker: NDArray[np.int64]) -> MarkerTable:
    """A marker table from Points data (view, y, x) and the layer's ``marker`` feature."""
    d = np.asarray(data, dtype=float)
    view = np.round(d[:, 0]).astype(np.intp)
    return MarkerTable(view, np.asarray(marker, dtype=np.int64), d[:, [2, 1]].copy())
