"""Conversions between the core's (x, y) arrays and napari's (view, y, x) layers, and the one
coordinate rule of the plugin.

The rule: **marker points are pixels of their tilt series.** A marker file holds pixels, so a markers
layer's data are pixels too, and the layer shares the stack's ``scale`` and ``translate`` so that
both line up in world coordinates (nm when the pixel size is known). Nothing ever divides coordinates
by a pixel size: a markers layer paired with a stack of another scale takes the stack's scale
(`adopt_frame`). Only a plain Points layer, whose points were placed in world coordinates, is mapped
through the world into the stack's pixels when it becomes a markers layer (`plain_points_to_pixels`).

This is the only place where the axis order flips.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..conventions import view_number
from ..io.markers import MarkerTable

# Hollow rings coloured per marker: the bead stays visible under a click.
MARKER_STYLE: dict[str, Any] = {"symbol": "ring", "size": 12, "border_width": 0.05, "border_color": "black"}
MARKER_TEXT: dict[str, Any] = {"string": "{marker}", "size": 8, "color": "white", "anchor": "upper_left",
                               "translation": [0, -7, 7]}  # beside the ring, not over the bead
TILT_AXES = ("view", "y", "x")  # the dims sliders' names for a tilt series (IMOD's "view", not napari's "-3")
ON_PREALI = "tomoalign_on_preali"  # a markers layer read from a model placed on the .preali (etomo's): its frame
PLACED_ON = "tomoalign_placed_on"  # the stack a markers layer read from one of our models was placed on (its name says)
LABEL_OFFSET = 0.55  # of the ring's size: the label's corner sits just off the ring (7 px for a ring of 12)


def marker_text(ring_size: float) -> dict[str, Any]:
    """The markers' label style for rings of ``ring_size`` (data units): beside the ring at any size, and a
    little larger than `MARKER_TEXT` (a whole field of tracked beads is shown at a low zoom)."""
    d = LABEL_OFFSET * float(ring_size)
    return {**MARKER_TEXT, "size": 10, "translation": [0, -d, d]}


def marker_colors(ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """``(n, 4)`` RGBA colour per point: a distinct, stable hue per marker id (golden-ratio spacing)."""
    uniq, inverse = np.unique(np.asarray(ids), return_inverse=True)
    table = np.array([(*colorsys.hsv_to_rgb((float(i) * 0.618034) % 1.0, 0.75, 1.0), 1.0) for i in uniq])
    return table[np.asarray(inverse).ravel()] if len(uniq) else np.zeros((0, 4))


def hex_color(rgba: NDArray[np.float64]) -> str:
    r, g, b = (int(round(255 * float(c))) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def markers_to_points(table: MarkerTable, name: str = "markers") -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Points data ``(n, 3)`` as (view, y, x) in pixels and layer keyword arguments for a marker table."""
    data = np.column_stack([table.view.astype(float), table.xy[:, 1], table.xy[:, 0]])
    kwargs: dict[str, Any] = {
        "name": name,
        "features": {"marker": np.asarray(table.marker, dtype=np.int64)},
        "face_color": marker_colors(table.marker) if len(table) else "white",
        **MARKER_STYLE,
        "text": dict(MARKER_TEXT),
        "metadata": {"image_size": table.image_size, "source": table.source},
    }
    return data, kwargs


def points_to_markers(data: NDArray[np.float64], marker: NDArray[np.int64]) -> MarkerTable:
    """A marker table from Points data (view, y, x) in pixels and the layer's ``marker`` feature."""
    d = np.asarray(data, dtype=float).reshape(-1, 3)
    view = np.round(d[:, 0]).astype(np.intp)
    return MarkerTable(view, np.asarray(marker, dtype=np.int64), d[:, [2, 1]].copy())


def frame_of(image: Any) -> dict[str, tuple[float, ...]]:
    """The ``scale`` and ``translate`` that a layer drawn over ``image`` in its pixels must carry."""
    return {"scale": tuple(float(s) for s in image.scale), "translate": tuple(float(t) for t in image.translate)}


def same_frame(layer: Any, image: Any) -> bool:
    """True when ``layer``'s data coordinates are ``image``'s pixels in the world (last three axes)."""
    return bool(np.allclose(np.asarray(layer.scale)[-3:], np.asarray(image.scale)[-3:])
                and np.allclose(np.asarray(layer.translate)[-3:], np.asarray(image.translate)[-3:]))


def adopt_frame(layer: Any, image: Any) -> bool:
    """Give a markers layer the stack's scale and translate (its data, pixels, are kept); return
    whether anything changed."""
    if layer.ndim != 3 or image.ndim != 3 or same_frame(layer, image):
        return False
    frame = frame_of(image)
    layer.scale = frame["scale"]
    layer.translate = frame["translate"]
    return True


def plain_points_to_pixels(layer: Any, image: Any) -> NDArray[np.float64]:
    """``(n, 3)`` positions of a plain Points layer's points in ``image``'s pixels, through the world."""
    data = np.asarray(layer.data, dtype=float).reshape(-1, layer.ndim)
    if layer.ndim != 3:
        raise ValueError(f"'{layer.name}' is {layer.ndim}-D; marker points need (view, y, x)")
    scale_p, trans_p = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
    scale_i, trans_i = np.asarray(image.scale, float), np.asarray(image.translate, float)
    world = data * scale_p + trans_p
    return (world - trans_i) / scale_i


def new_markers_kwargs(image: Any, name: str) -> dict[str, Any]:
    """Keyword arguments of an empty markers layer for ``image`` (its frame, marker 1 current)."""
    rows, cols = (int(n) for n in image.data.shape[-2:])
    return {
        "ndim": 3, "name": name, **frame_of(image), **MARKER_STYLE,
        "features": {"marker": np.zeros(0, dtype=np.int64)}, "feature_defaults": {"marker": 1},
        "face_color": hex_color(marker_colors(np.array([1]))[0]), "text": dict(MARKER_TEXT),
        "metadata": {"image_size": (cols, rows), "source": f"clicked on {image.name}"},
    }


def label_axes(dims: Any, names: tuple[str, ...] = TILT_AXES) -> bool:
    """Name the last ``len(names)`` axes of a viewer's ``dims`` (napari's public ``axis_labels``), leaving alone
    any label a user or another plugin gave (only napari's numeric defaults are replaced); return whether any
    label changed."""
    n = int(dims.ndim)
    if n < len(names):
        return False
    labels = list(dims.axis_labels)
    for k, name in zip(range(n - len(names), n), names):
        if labels[k].lstrip("-").isdigit():
            labels[k] = name
    if tuple(labels) == tuple(dims.axis_labels):
        return False
    dims.axis_labels = labels
    return True


def plain_label(label: str) -> str:
    """An axis label without the view number `number_view_axis` adds ("view 36" is "view")."""
    head, _, tail = str(label).partition(" ")
    return head if head == TILT_AXES[0] and tail.isdigit() else str(label)


def number_view_axis(dims: Any) -> bool:
    """Name the tilt series' view axis after the view shown, numbered from 1 as IMOD and 3dmod number views
    ("view 36"); napari's own box beside the slider counts from 0. Only a label `label_axes` gave is changed."""
    n = int(dims.ndim)
    if n < len(TILT_AXES):
        return False
    k = n - len(TILT_AXES)
    labels = list(dims.axis_labels)
    if plain_label(labels[k]) != TILT_AXES[0]:
        return False
    name = f"{TILT_AXES[0]} {view_number(int(dims.current_step[k]))}"
    if labels[k] == name:
        return False
    labels[k] = name
    dims.axis_labels = labels
    return True


def unlabel_axes(dims: Any, names: tuple[str, ...] = TILT_AXES) -> bool:
    """Give the axes `label_axes` named back napari's default labels (the tilt series is gone)."""
    n = int(dims.ndim)
    labels = [plain_label(label) for label in dims.axis_labels]
    if n < len(names) or tuple(labels[n - len(names):]) != tuple(names):
        return False
    dims.axis_labels = [*labels[: n - len(names)], *(str(k - n) for k in range(n - len(names), n))]
    return True
