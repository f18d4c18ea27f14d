"""A dock that opens in short turns of the event loop, not in one long one.

napari builds a plugin's dock widget, adds it to its window and redraws the canvas the dock narrows, all in
one turn of the event loop; with the whole Align dock built in its constructor, that turn held the GUI for
about 100 ms. An `OpensInTurns` dock's constructor makes only an empty scroll area (of the dock's final
width, so that nothing moves later); the next turns, a timer apart, build the sections (`build_sections`),
put their steps in the scroll area as a whole (styled and laid out once), and take the first looks at the
viewer's layers (`first_looks`).

A script or a test that reaches a section before then (``dock.inputs``) opens the dock whole at once: the
sections, listed in ``SECTIONS``, are attributes made on first access. One that runs the event loop a little
first calls `OpensInTurns.open_now` (or waits until ``opening`` is false).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .ui import Step, scroll_area, set_steps

TURN_MS = 2  # a timer, not a posted call: Qt holds timers back while posted events are pending, so it is a new turn


class OpensInTurns(QWidget):
    """The base of a dock built over a few short turns (see the module's docstring). Subclasses list their
    sections' attribute names in ``SECTIONS`` and define `build_sections` (which sets them and ``steps``) and
    `first_looks` (the looks at the viewer's layers, one turn each)."""

    SECTIONS: frozenset[str] = frozenset()
    steps: list[Step]

    def __init__(self) -> None:
        super().__init__()
        self._closed = False
        self._in_turn = False
        self._turns: list[Callable[[], Any]] | None = None  # what is left of the opening, one turn each
        self.opened = False  # True once the sections are built
        self.ready = False  # True once the dock has taken its first looks at the layers
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.steps_area = scroll_area([])  # the steps go in when built; its width is the dock's from the start
        layout.addWidget(self.steps_area)
        QTimer.singleShot(TURN_MS, self._next_turn)

    def build_sections(self) -> None:
        raise NotImplementedError

    def first_looks(self) -> list[Callable[[], Any]]:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        """A section reached before the dock's later turns built it: open the dock whole now."""
        if name in self.SECTIONS and not self.__dict__.get("_in_turn") and not self.__dict__.get("opened"):
            self.open_now()
            if name in self.__dict__:
                return self.__dict__[name]
            raise AttributeError(f"the dock was closed before its {name!r} was built")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def opening(self) -> bool:
        """True until the dock has taken its first looks at the layers (unless it was closed first)."""
        return not self.ready and not self._closed

    def open_now(self) -> None:
        """Do what is left of the opening at once: for a script that let the event loop run a little and then
        drives the dock."""
        while self.opening:
            self._turn()

    def _next_turn(self) -> None:
        if self.opening:
            self._turn()
        if self.opening:
            QTimer.singleShot(TURN_MS, self._next_turn)

    def _turn(self) -> None:
        if self._turns is None:
            self._turns = [self._build_now, self._place]  # building adds the first looks
        self._in_turn = True
        try:
            self._turns.pop(0)()
        finally:
            self._in_turn = False
        self.ready = not self._turns

    def _build_now(self) -> None:
        self.build_sections()
        self.opened = True
        assert self._turns is not None
        self._turns.extend(self.first_looks())  # after `_place`

    def _place(self) -> None:
        set_steps(self.steps_area, self.steps)  # styled and laid out at once, as a whole
