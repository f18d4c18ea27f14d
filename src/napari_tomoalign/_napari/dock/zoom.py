"""Zoom and pan of the dock's slice view (`tomograms.SliceView`): the wheel zooms about the point under the
cursor, a drag pans, a double-click (or *Reset zoom*) shows the whole section again.

The view is kept as fractions of the section (`ZoomState`), so that both panels of a comparison, which share
one grid, zoom and pan together. `window` turns it into the pixels to draw; the rest is the Qt label that
reports the wheel, the drag and the double-click.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QLabel

MAX_ZOOM = 16.0
WHEEL_STEP = 1.25  # zoom factor per notch of the wheel (120 units of Qt's angle delta)


@dataclass
class ZoomState:
    """How much of the section is shown: ``zoom`` (1 = all of it) about ``centre`` (y, x), in fractions of the
    section's height and width (0.5, 0.5 = its middle)."""

    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)

    def clamped(self) -> ZoomState:
        """The same view kept inside the section."""
        z = min(max(float(self.zoom), 1.0), MAX_ZOOM)
        half = 0.5 / z
        cy, cx = (min(max(float(c), half), 1.0 - half) for c in self.centre)
        return ZoomState(z, (cy, cx))

    def zoomed(self, factor: float, at: tuple[float, float]) -> ZoomState:
        """Zoom by ``factor`` keeping the point at ``at`` (fractions of the part shown, y and x) where it is."""
        old = self.clamped()
        new_zoom = min(max(old.zoom * factor, 1.0), MAX_ZOOM)
        shown_old, shown_new = 1.0 / old.zoom, 1.0 / new_zoom
        point = [c - shown_old / 2 + a * shown_old for c, a in zip(old.centre, at)]  # the section's fraction under it
        centre = tuple(p - a * shown_new + shown_new / 2 for p, a in zip(point, at))
        return ZoomState(new_zoom, (centre[0], centre[1])).clamped()

    def panned(self, dy: float, dx: float) -> ZoomState:
        """Move the section by (dy, dx) fractions of the part shown (a drag to the right shows what is left)."""
        z = self.clamped()
        return ZoomState(z.zoom, (z.centre[0] - dy / z.zoom, z.centre[1] - dx / z.zoom)).clamped()


def window(shape: tuple[int, int], state: ZoomState) -> tuple[slice, slice]:
    """The rows and columns of a ``(height, width)`` section that ``state`` shows (at least one pixel each)."""
    s = state.clamped()
    out = []
    for n, c in zip(shape, s.centre):
        size = max(1, int(round(n / s.zoom)))
        start = min(max(int(round(c * n - size / 2)), 0), n - size)
        out.append(slice(start, start + size))
    return out[0], out[1]


class ZoomLabel(QLabel):
    """A label showing one panel that reports the wheel (``on_zoom(factor, (fy, fx))``), a drag
    (``on_pan(dy, dx)`` in fractions of the panel) and a double-click (``on_reset()``)."""

    def __init__(self, on_zoom: Callable[[float, tuple[float, float]], None],
                 on_pan: Callable[[float, float], None], on_reset: Callable[[], None]) -> None:
        super().__init__()
        self._on_zoom, self._on_pan, self._on_reset = on_zoom, on_pan, on_reset
        self._drag: QPoint | None = None
        self.setToolTip("wheel: zoom; drag: pan; double-click: the whole section")
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def _fraction(self, x: float, y: float) -> tuple[float, float]:
        """(y, x) of a point of the label as fractions of the picture drawn in it (centred in the label)."""
        pixmap = self.pixmap()
        pw, ph = (pixmap.width(), pixmap.height()) if pixmap is not None and not pixmap.isNull() else (1, 1)
        left, top = (self.width() - pw) / 2, (self.height() - ph) / 2
        return (min(max((y - top) / max(ph, 1), 0.0), 1.0), min(max((x - left) / max(pw, 1), 0.0), 1.0))

    def _size(self) -> tuple[int, int]:
        pixmap = self.pixmap()
        return (pixmap.height(), pixmap.width()) if pixmap is not None and not pixmap.isNull() else (1, 1)

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        notches = event.angleDelta().y() / 120.0
        if notches:
            pos = event.position()
            self._on_zoom(WHEEL_STEP ** notches, self._fraction(pos.x(), pos.y()))
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = event.position().toPoint()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag is not None:
            pos = event.position().toPoint()
            h, w = self._size()
            self._on_pan((pos.y() - self._drag.y()) / h, (pos.x() - self._drag.x()) / w)
            self._drag = pos
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self._on_reset()
        event.accept()
