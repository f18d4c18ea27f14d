"""The dock's status line: always the last thing that happened, whole (it wraps, long paths included, and
grows to its text), red for a failure or a refusal. `refuse` says it there and in napari's notification."""

from __future__ import annotations

from collections.abc import Callable

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy

BREAK = "\u200b"  # a zero-width space: lets a long path wrap after its separators


def breakable(text: str) -> str:
    """``text`` with a break allowed after each path separator (nothing visible changes)."""
    return text.replace("/", "/" + BREAK).replace("\\", "\\" + BREAK)


class StatusLine:
    """A wrapped label under the steps, as tall as its text at the dock's width (the layout asks the label's
    height for its width); ``text()`` is what was said, without the break marks."""

    def __init__(self, text: str = "ready") -> None:
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        policy.setHeightForWidth(True)
        self.label.setSizePolicy(policy)
        self.label.setMinimumWidth(0)
        self.label.setContentsMargins(6, 2, 6, 4)
        self._text = ""
        self.say(text)

    def text(self) -> str:
        return self._text

    def say(self, text: str, error: bool = False) -> None:
        self._text = str(text)
        self.label.setText(breakable(self._text))
        self.label.setToolTip(self._text)
        self.label.setStyleSheet("color: #ff6060;" if error else "")


def refuse(status: Callable[..., None], text: str) -> None:
    """Say ``text`` in the status line (red) and as napari's error notification."""
    status(text, error=True)
    show_error(text)
