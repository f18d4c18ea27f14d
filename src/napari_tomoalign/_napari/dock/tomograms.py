"""Tomograms are volumes, not tilt series: they get a napari viewer of their own, so that their Z
slider never doubles as the view slider of a tilt series. Voxel size on all three axes, opened at the
middle section, its axes named z, y, x, each panel labelled; two tomograms side by side share one camera (napari's grid)."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image

from ..layers import label_axes

TITLE = "TomoAlign: tomograms"


class TomogramViewer:
    """A second napari viewer, made on first use and closed with the dock."""

    def __init__(self) -> None:
        self.viewer: Any = None

    def _ensure(self) -> Any:
        if self.viewer is None:
            import napari

            self.viewer = napari.Viewer(title=TITLE, show=True)
            window = self.viewer.window.main_menu.window()
            window.destroyed.connect(self._forget)
        return self.viewer

    def _forget(self, *_: Any) -> None:
        self.viewer = None

    def show(self, panels: list[tuple[np.ndarray, float, str]]) -> list[Image]:
        """Show ``(volume (z, y, x), voxel size, label)`` panels, side by side when there are two."""
        viewer = self._ensure()
        viewer.layers.clear()
        added = []
        for volume, voxel, label in panels:
            lo, hi = (float(v) for v in np.percentile(volume[len(volume) // 2], [0.5, 99.5]))
            layer = Image(volume, name=label, scale=(voxel,) * 3, colormap="gray",
                          contrast_limits=(lo, hi if hi > lo else lo + 1.0), metadata={"volume": True})
            layer.name_overlay.visible = True
            viewer.layers.append(layer)
            added.append(layer)
        grid = viewer.canvas.grid
        grid.stride, grid.shape, grid.enabled = 1, (1, len(panels)), len(panels) > 1
        middle = added[0].data_to_world((added[0].data.shape[0] // 2, 0, 0))[0]
        viewer.dims.set_point(0, float(middle))
        label_axes(viewer.dims, ("z", "y", "x"))  # a volume's slider is z, not a view
        viewer.reset_view()
        return added

    def close(self) -> None:
        if self.viewer is not None:
            viewer, self.viewer = self.viewer, None
            try:
                viewer.close()
            except (RuntimeError, AttributeError):  # already closed by the user
                pass
