"""The dock's status line: always the last thing that happened, whole (it wraps, long paths included, and
grows to its text), red for a failure or a refusal. `refuse` says it there and in napari's notification."""

from __future__ import annotations

from collections.abc import Callable

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QLabel, QSizePolicy

from .ui import DOCK_CONTENT_WIDTH

BREAK = "\u200b"  # a zero-width space: lets a long path wrap after its separators


def breakable(text: str) -> str:
    """``text`` with a break allowed after each path separator (nothing visible changes)."""
    return text.replace("/", "/" + BREAK).replace("\\", "\\" + BREAK)


class StatusLine:
    """A wrapped label under the steps; ``text()`` is what was said, without the break marks."""

    def __init__(self, text: str = "ready") -> None:
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.label.setContentsMargins(6, 2, 6, 4)
        self._text = ""
        self._lines = 0
        self.say(text)

    def text(self) -> str:
        return self._text

    def say(self, text: str, error: bool = False) -> None:
        self._text = str(text)
        self.label.setText(breakable(self._text))
        self.label.setToolTip(self._text)
        self.label.setStyleSheet("color: #ff6060;" if error else "")
        self.fit()

    def fit(self) -> None:
        """Grow or shrink to the text at the label's width (only when its number of lines changes)."""
        width = max(self.label.width(), DOCK_CONTENT_WIDTH) - 12
        height = self.label.heightForWidth(width)
        height = max(height, self.label.fontMetrics().lineSpacing()) + 6
        if height != self._lines:
            self._lines = height
            self.label.setFixedHeight(height)


def refuse(status: Callable[..., None], text: str) -> None:
    """Say ``text`` in the status line (red) and as napari's error notification."""
    status(text, error=True)
    show_error(text)
