"""Refit the canvas when the dock narrows it, if the user has not moved the camera.

napari fits the view to the canvas when the first layer is added; the dock, added afterwards, takes its width
from the canvas, and napari keeps the zoom and centre, so the right edge of the stack (and its markers) went
under the dock. `CanvasRefit` asks, before the dock is in the window, whether the camera still shows what
``viewer.reset_view()`` would show, give or take the zoom (the user has not zoomed or panned since the layers
came: `is_unmoved`); if so, each resize of the canvas while the dock opens fits the view again, until the
camera is moved by anything else or the opening is over. A camera the user has moved is never touched.
Public napari API only: the camera, the canvas size and its event, ``viewer.reset_view``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ZOOM_RANGE = (0.5, 2.0)  # an unmoved view's zoom over the fit's now (a window resized since the layers came)
SETTLE_MS = 1500  # how long after the dock has opened a canvas resize still refits (Qt lays the window out late)


def camera_state(viewer: Any) -> tuple[np.ndarray, float, np.ndarray]:
    camera = viewer.scene.camera
    return np.asarray(camera.center, dtype=float), float(camera.zoom), np.asarray(camera.angles, dtype=float)


def same_state(a: tuple[np.ndarray, float, np.ndarray], b: tuple[np.ndarray, float, np.ndarray]) -> bool:
    """The same view to a thousandth of a screen pixel's worth of zoom and of a data pixel of centre."""
    return (a[0].shape == b[0].shape and bool(np.allclose(a[0], b[0], rtol=0, atol=1e-3))
            and abs(a[1] - b[1]) <= 1e-6 * max(abs(b[1]), 1e-12) and bool(np.allclose(a[2], b[2], atol=1e-6)))


def set_state(viewer: Any, state: tuple[np.ndarray, float, np.ndarray]) -> None:
    camera = viewer.scene.camera
    camera.angles = tuple(state[2])
    camera.center = tuple(state[0])
    camera.zoom = state[1]


def is_unmoved(viewer: Any) -> bool:
    """True when the camera still looks at the middle of the layers, square on, at a zoom within
    `ZOOM_RANGE` of what ``reset_view`` gives now (the view is put back as it was either way).

    napari fits the view when the first layer comes, at the canvas size of that moment (the dims slider then
    takes a row of the canvas, so the fit is a few percent off by the time a dock opens): the zoom alone does not
    tell. The centre does: a pan moves it, and so does every wheel zoom that is not about the exact middle."""
    if not len(viewer.layers):
        return False
    before = camera_state(viewer)
    viewer.reset_view()
    fit = camera_state(viewer)
    set_state(viewer, before)
    extent = np.ptp(np.asarray(viewer.layers.extent.world, dtype=float), axis=0)
    tolerance = 1e-6 * max(float(extent.max()) if extent.size else 1.0, 1.0)
    return (before[0].shape == fit[0].shape and bool(np.allclose(before[0], fit[0], rtol=0, atol=tolerance))
            and bool(np.allclose(before[2], fit[2], atol=1e-6))
            and ZOOM_RANGE[0] <= before[1] / fit[1] <= ZOOM_RANGE[1])


class CanvasRefit:
    """Made before the dock is added to the window; refits while it opens (see the module's docstring)."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        self.armed = is_unmoved(viewer)
        self.refits = 0  # how many times the view was fitted again (for tests)
        self._fitted = camera_state(viewer) if self.armed else None
        if self.armed:
            viewer.canvas.events.size.connect(self._on_size)

    def _on_size(self, *_: Any) -> None:
        if self._fitted is None:
            return
        if not same_state(camera_state(self._viewer), self._fitted):  # moved since: the user's view stays
            self.disarm()
            return
        self._viewer.reset_view()
        self._fitted = camera_state(self._viewer)
        self.refits += 1

    def settle(self) -> None:
        """The dock has opened: stop following the canvas a little later (the last layout comes late)."""
        from qtpy.QtCore import QTimer

        if self.armed:
            QTimer.singleShot(SETTLE_MS, self.disarm)

    def disarm(self) -> None:
        if not self.armed:
            return
        self.armed, self._fitted = False, None
        try:
            self._viewer.canvas.events.size.disconnect(self._on_size)
        except (TypeError, ValueError, RuntimeError):
            pass
