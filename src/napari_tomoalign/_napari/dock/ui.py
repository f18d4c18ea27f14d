"""Layout helpers of the dock: numbered collapsible steps in one vertical scroll area, controls that
never ask for more width than the dock has, and labels whose text changes never relayout the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import QObject, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

DOCK_CONTENT_WIDTH = 340  # px: everything fits this width (a plot of 320 px and the margins)


class Button:
    """A push button with magicgui's small interface (``text``, ``enabled``, ``changed``, ``native``),
    made directly in Qt: a dock of magicgui buttons took 50 ms longer to open."""

    def __init__(self, text: str, tooltip: str | None = None, enabled: bool = True) -> None:
        self.native = QPushButton(text)
        self.native.setToolTip(tooltip or "")
        self.native.setEnabled(enabled)
        self.changed = self.native.clicked

    @property
    def text(self) -> str:
        return self.native.text()

    @text.setter
    def text(self, value: str) -> None:
        self.native.setText(value)

    @property
    def enabled(self) -> bool:
        return self.native.isEnabled()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.native.setEnabled(bool(value))


class Text:
    """A label that wraps and whose changes of text never resize the dock while a worker runs."""

    def __init__(self, value: str = "", wrap: bool = True) -> None:
        self.native = QLabel(value)
        self.native.setWordWrap(wrap)
        self.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.native.setMinimumWidth(0)
        self.native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    @property
    def value(self) -> str:
        return self.native.text()

    @value.setter
    def value(self, text: str) -> None:
        self.native.setText(text)


class Row:
    """Buttons side by side that share the row's width."""

    def __init__(self, *items: Any) -> None:
        self.native = QWidget()
        layout = QHBoxLayout(self.native)
        layout.setContentsMargins(0, 0, 0, 0)
        for item in items:
            item.native.setMinimumWidth(40)
            item.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            layout.addWidget(item.native)


class Form:
    """Labelled controls one under the other (a ``QFormLayout``; magicgui's labelled containers
    cost three widgets per control); items without a label span the row."""

    def __init__(self, *items: Any) -> None:
        self.native = QWidget()
        self.layout = QFormLayout(self.native)
        self.layout.setContentsMargins(0, 0, 0, 0)
        self.layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.extend(items)

    def append(self, item: Any) -> None:
        compact(item.native)
        label = "" if isinstance(item, (Button, Text, Row, Form)) else getattr(item, "label", "")
        if label:
            self.layout.addRow(label, item.native)
        else:
            self.layout.addRow(item.native)

    def extend(self, items: Sequence[Any]) -> None:
        for item in items:
            self.append(item)


def row(*items: Any) -> Row:
    return Row(*items)


def form(*items: Any) -> Form:
    return Form(*items)


def compact(native: QWidget) -> QWidget:
    """Make a control content with the width it is given (long layer names do not widen the dock)."""
    for combo in ([native] if isinstance(native, QComboBox) else native.findChildren(QComboBox)):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
    return native


def text_label(value: str = "", *, wrap: bool = True) -> Text:
    return Text(value, wrap)


def button(text: str, tooltip: str | None = None, enabled: bool = True) -> Button:
    return Button(text, tooltip, enabled)


class Step(QWidget):
    """A numbered step of the dock: a header button that folds and unfolds its body."""

    def __init__(self, number: int | None, title: str, body: QWidget, expanded: bool = True) -> None:
        super().__init__()
        self.title = title
        self.header = QToolButton()
        self.header.setText(f"{number}. {title}" if number is not None else title)  # None: a fold inside a step
        self.header.setCheckable(True)
        self.header.setChecked(expanded)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.header.setStyleSheet("QToolButton { font-weight: bold; text-align: left; border: none; }")
        self.body = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(body)
        self.header.toggled.connect(self.set_expanded)
        self.set_expanded(expanded)

    def set_expanded(self, expanded: bool) -> None:
        self.header.setChecked(expanded)
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)

    @property
    def expanded(self) -> bool:
        return self.header.isChecked()


def scroll_area(steps: Sequence[QWidget]) -> QScrollArea:
    """A vertical scroll area holding the steps (`set_steps` replaces them); it never scrolls sideways, so
    nothing is cut off."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
    bar = area.verticalScrollBar()
    assert bar is not None  # a QScrollArea always has its scroll bars
    area.setMinimumWidth(DOCK_CONTENT_WIDTH + bar.sizeHint().width() + 2)
    area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
    KeepsBottom(area)  # a child of the area: `set_steps` finds it
    set_steps(area, steps)
    return area


class KeepsBottom(QObject):
    """A scroll area scrolled to its bottom stays there when what it shows grows or its view gets shorter: the
    status under the steps grown by lines (a Save's list of files), a label grown by a line, the window made
    smaller. Qt keeps the scroll value, so the last controls (step 7's Save buttons at 1280 x 800) slid under the
    dock's foot (session 15's new user). A step folded or unfolded (`hold`) moves nothing: its header stays where
    it was clicked."""

    HOLD_MS = 300

    def __init__(self, area: QScrollArea) -> None:
        super().__init__(area)
        bar = area.verticalScrollBar()
        assert bar is not None  # a QScrollArea always has its scroll bars
        self._bar = bar
        self._at_bottom = False
        self._held = 0
        bar.valueChanged.connect(self._moved)
        bar.rangeChanged.connect(self._ranged)

    def hold(self, *_: Any) -> None:
        """Leave the scroll value to Qt for a moment: a step is folding or unfolding."""
        from qtpy.QtCore import QTimer

        self._held += 1
        QTimer.singleShot(self.HOLD_MS, self._release)

    def _release(self) -> None:
        self._held -= 1
        self._at_bottom = self._bar.value() >= self._bar.maximum() > 0

    def _moved(self, value: int) -> None:
        self._at_bottom = value >= self._bar.maximum() > 0

    def _ranged(self, _minimum: int, maximum: int) -> None:
        if self._at_bottom and not self._held:
            self._bar.setValue(maximum)
        else:
            self._at_bottom = self._bar.value() >= maximum > 0


def set_steps(area: QScrollArea, steps: Sequence[QWidget]) -> None:
    """Put ``steps`` in a `scroll_area`, in place of what it held: built apart and put in at once, a dock's
    steps are styled and laid out once (added one by one to a shown dock, each is laid out again)."""
    content = QWidget()
    layout = QVBoxLayout(content)
    layout.setContentsMargins(4, 4, 4, 4)
    for s in steps:
        layout.addWidget(s)
    layout.addStretch(1)
    content.setMinimumWidth(DOCK_CONTENT_WIDTH)
    keeper = area.findChild(KeepsBottom)
    if keeper is not None:
        for step in content.findChildren(Step):  # the folds inside steps too
            step.header.toggled.connect(keeper.hold)
    area.setWidget(content)
