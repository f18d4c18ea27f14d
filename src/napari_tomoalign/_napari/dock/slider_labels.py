"""The viewer's slider labels ("view 36", "y", "x") wide enough to read.

napari sizes the label beside each slider when its text is typed or the slider is resized, but not when
``dims.axis_labels`` changes from the model (it pulls the text with the label's signals blocked). The labels the
dock gives after the stack is open ("view 31", where napari had "-3") so kept the width of napari's default and
read "vie" under the play button, or "view ...", at 1280 x 800 until the window was next resized. `fit_axis_labels`
announces each label's text again through Qt's public ``textChanged`` signal, so that napari's own sizing runs
with the new text (nothing of napari's is set or called by name). The labels are found under the dock's window by
the object name napari gives them; where there are none (another napari, the dock not yet docked) it does nothing.
"""

from __future__ import annotations

from typing import Any

AXIS_LABEL = "axis_label"  # the object name of napari's slider label line edits


def fit_axis_labels(anchor: Any) -> int:
    """Have napari size the slider labels of the window holding ``anchor`` (a QWidget) for their present text;
    return how many labels were announced."""
    from qtpy.QtWidgets import QLineEdit

    try:
        window = anchor.window() if anchor is not None else None
        if window is None or window is anchor:
            return 0
        labels = window.findChildren(QLineEdit, AXIS_LABEL)
        for label in labels:
            label.textChanged.emit(label.text())
    except RuntimeError:  # the dock (or the window) was closed before a deferred call
        return 0
    return len(labels)


def fit_axis_labels_soon(anchor: Any) -> None:
    """`fit_axis_labels` now and once more after the event loop has laid the window out (a dock added in the same
    turn is not in the window yet)."""
    from qtpy.QtCore import QTimer

    fit_axis_labels(anchor)
    QTimer.singleShot(0, lambda: fit_axis_labels(anchor))
