"""Tomograms in a light slice view inside the dock: one canvas (napari's), never a second napari viewer.

A second napari viewer aborts napari on software OpenGL (``GLError 1281`` then ``Aborted``, exit 134), and
adding or removing a volume layer in the main viewer stalls it 0.1-0.3 s and changes its sliders' range and step
for the tilt series. The preview tomogram is small (binned), so its sections are drawn here as plain Qt images:
no OpenGL, no layer, nothing in the viewer changes. Two tomograms (Compare) are drawn one above the other at the
same section of one grid, each labelled with its alignment's name and RMS; one slider moves both. The wheel
zooms and a drag pans both panels together (`zoom`); a double-click or *Reset zoom* shows the whole section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QVBoxLayout, QWidget

from .ui import DOCK_CONTENT_WIDTH
from .zoom import ZoomLabel, ZoomState, window

PLANES = ("XY sections", "XZ sections")
NBSP = "\u00a0"  # a space the label does not wrap at
MIN_PANEL_PX = 120  # a panel is never made shorter than this to fit the dock's height


def contrast(volume: NDArray) -> tuple[float, float]:
    """Display limits of a tomogram: the 0.5 and 99.5 percentiles of its middle section."""
    lo, hi = (float(v) for v in np.percentile(volume[len(volume) // 2], [0.5, 99.5]))
    return lo, hi if hi > lo else lo + 1.0


def section(volume: NDArray, plane: str, k: int) -> NDArray:
    """Section ``k`` of a ``(z, y, x)`` volume: an XY section (y rows), or an XZ one (z rows, top = first z)."""
    return np.asarray(volume[k]) if plane == PLANES[0] else np.asarray(volume[:, k, :])


def grey8(image: NDArray, limits: tuple[float, float]) -> NDArray[np.uint8]:
    """An image as 8-bit grey through ``limits`` (low black, high white)."""
    lo, hi = limits
    scaled = (np.asarray(image, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / max(hi - lo, 1e-12))
    return np.ascontiguousarray(np.clip(scaled, 0.0, 255.0).astype(np.uint8))


class _OnWidthChange(QObject):
    """Calls ``action`` when the watched widget's width (or, with ``height``, its height) changes: a slice view shown
    for the first time is drawn before the dock has laid it out, at a width it does not have (session 11's finding
    15); the panels fitted to the dock's height must follow it when the window or the status below them changes
    (session 14's new user: Compare's lower panel cut at 1280 x 800)."""

    def __init__(self, action: Callable[[], None], height: bool = False) -> None:
        super().__init__()
        self._action, self._height = action, height

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            new, old = event.size(), event.oldSize()
            if (new.height() != old.height()) if self._height else (new.width() != old.width()):
                self._action()
        return False


class SliceView:
    """The tomograms of the last *Show tomogram* or *Compare*, as sections with a slider, in the dock."""

    def __init__(self) -> None:
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plane = QComboBox()
        self.plane.addItems(list(PLANES))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("the section shown (Z for XY sections, Y for XZ sections); both panels move together")
        self.where = QLabel("")
        self.where.setWordWrap(True)
        self.where.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        self.reset_zoom = QPushButton("Reset zoom")
        self.reset_zoom.setToolTip("show the whole section (the wheel zooms, a drag pans, a double-click resets)")
        self.reset_zoom.clicked.connect(lambda *_: self.set_zoom(ZoomState()))
        top.addWidget(self.plane)
        top.addWidget(self.where, 1)
        top.addWidget(self.reset_zoom)
        layout.addLayout(top)
        layout.addWidget(self.slider)
        self._box = QVBoxLayout()
        self._box.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._box)
        self.titles: list[QLabel] = []
        self.images: list[ZoomLabel] = []
        self.volumes: list[tuple[NDArray, float, str, tuple[float, float]]] = []
        self.zoom = ZoomState()  # shared by the panels: they show one grid
        self.room: Callable[[], int] | None = None  # the height the slice view may fill (the dock's, when set)
        self._start: int | None = None  # the XY section to open at (None: the middle one)
        self.plane.currentTextChanged.connect(lambda *_: self._plane_changed())
        self.slider.valueChanged.connect(lambda *_: self.render())
        self._on_width = _OnWidthChange(self.render)
        self.widget.installEventFilter(self._on_width)
        self.widget.setVisible(False)

    @property
    def shown(self) -> list[str]:
        """The labels of the tomograms shown (empty when none)."""
        return [v[2] for v in self.volumes]

    def show(self, panels: list[tuple[NDArray, float, str]], start: int | None = None) -> list[str]:
        """Show ``(volume (z, y, x), voxel size nm, label)`` panels at XY section ``start`` (the middle one when
        None)."""
        self._start = start
        self.volumes = [(v, float(voxel), label, contrast(v)) for v, voxel, label in panels]
        while len(self.images) < len(panels):
            title = QLabel()
            image = ZoomLabel(lambda f, at: self.set_zoom(self.zoom.zoomed(f, at)),
                              lambda dy, dx: self.set_zoom(self.zoom.panned(dy, dx)), lambda: self.set_zoom(ZoomState()))
            title.setWordWrap(True)
            title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
            image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._box.addWidget(title)
            self._box.addWidget(image)
            self.titles.append(title)
            self.images.append(image)
        for k, (title, panel) in enumerate(zip(self.titles, self.images)):
            title.setVisible(k < len(panels))
            panel.setVisible(k < len(panels))
            if k < len(panels):
                title.setText(panels[k][2])
        self.widget.setVisible(bool(panels))
        self.plane.blockSignals(True)
        self.plane.setCurrentIndex(0)
        self.plane.blockSignals(False)
        self._plane_changed()
        return self.shown

    def _plane_changed(self) -> None:
        if not self.volumes:
            return
        axis = 0 if self.plane.currentText() == PLANES[0] else 1
        n = min(int(v[0].shape[axis]) for v in self.volumes)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        start = self._start if axis == 0 and self._start is not None and 0 <= self._start < n else None
        self.slider.setValue(n // 2 if start is None else start)
        self.slider.blockSignals(False)
        self.zoom = ZoomState()
        self.render()

    def fit_to(self, area: QWidget) -> None:
        """Size the panels so that the controls and every panel fit ``area``'s height (the dock's steps), and follow
        that height when it changes."""
        self.room = area.height
        self._on_height = _OnWidthChange(lambda: self.render() if self.widget.isVisible() else None, height=True)
        area.installEventFilter(self._on_height)

    def set_zoom(self, state: ZoomState) -> None:
        """Show the part of the sections ``state`` names, in every panel."""
        self.zoom = state.clamped()
        self.render()

    def render(self) -> None:
        """Draw the current section of each tomogram at the dock's width."""
        if not self.volumes:
            return
        plane, k = self.plane.currentText(), int(self.slider.value())
        full = max(self.widget.width(), DOCK_CONTENT_WIDTH) - 4
        tallest = self._panel_room()
        for (volume, _, _, limits), label in zip(self.volumes, self.images):
            whole = section(volume, plane, k)
            rows, cols = window(whole.shape, self.zoom)
            pixels = grey8(whole[rows, cols], limits)
            h, w = pixels.shape
            aspect = whole.shape[0] / whole.shape[1]
            width = min(full, int(tallest / aspect)) if tallest is not None else full  # both panels in the dock
            height = max(1, int(round(width * aspect)))  # the panel keeps its size
            image = QImage(cast(bytes, pixels.data), w, h, w, QImage.Format.Format_Grayscale8).copy()
            smooth = Qt.TransformationMode.SmoothTransformation if self.zoom.zoom < 3 else \
                Qt.TransformationMode.FastTransformation  # voxels as squares when zoomed in
            pixmap = QPixmap.fromImage(image).scaled(width, height, Qt.AspectRatioMode.IgnoreAspectRatio, smooth)
            label.setPixmap(pixmap)
            label.setFixedHeight(pixmap.height())
        volume, voxel = self.volumes[0][0], self.volumes[0][1]
        axis = "z" if plane == PLANES[0] else "y"
        n = volume.shape[0 if plane == PLANES[0] else 1]
        zoom = f", zoom{NBSP}x{self.zoom.zoom:.3g}" if self.zoom.zoom > 1 else ""
        at = f"{axis} {k + 1} of {n}".replace(" ", NBSP)  # a narrow dock wraps at the commas, never in "-77 nm"
        self.where.setText(f"{at}, {(k - (n - 1) / 2) * voxel:+.0f}{NBSP}nm{zoom}")

    def section_said(self, beads: tuple[int, int] | None) -> str:
        """Where the slice view opened, for the status line (``beads``: `compare.bead_section`'s answer)."""
        n = len(self.volumes[0][0]) if self.volumes else 0
        if beads is None:
            return f"at the middle section (z {n // 2 + 1} of {n}): no solved bead inside the volume"
        return f"at z {beads[0] + 1} of {n}: the section with the most beads ({beads[1]}, by their solved z)"

    def _panel_room(self) -> int | None:
        """The height each panel may have so that the controls and every panel fit in `room` (None: no limit)."""
        if self.room is None:
            return None
        n = len(self.volumes)
        width = max(self.widget.width(), DOCK_CONTENT_WIDTH)
        fixed = self.widget.sizeHint().height() - sum(p.minimumHeight() for p in self.images[:n])  # all but panels
        fixed += sum(max(0, t.heightForWidth(width) - t.sizeHint().height()) for t in self.titles[:n])  # wrapped
        return max(MIN_PANEL_PX, (int(self.room()) - fixed) // max(n, 1))

    def clear(self) -> None:
        """Forget the tomograms (their memory goes with them)."""
        self.volumes = []
        for label in self.images:
            label.clear()
        self.widget.setVisible(False)

    def pixels(self, k: int = 0) -> Any:
        """The image drawn in panel ``k`` (a QPixmap), for tests and screenshots."""
        return self.images[k].pixmap()
