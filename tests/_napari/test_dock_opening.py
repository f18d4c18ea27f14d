"""The dock opens over short turns of the event loop (`dock.opening.OpensInTurns`): nothing is built in the
constructor (the turn in which napari adds the dock and redraws its canvas), the sections, the steps and
each first look come in turns of their own, and a script that reaches a section first gets the dock whole."""

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QApplication, QLabel  # noqa: E402

from napari_tomoalign._napari.dock.opening import OpensInTurns  # noqa: E402
from napari_tomoalign._napari.dock.ui import Step  # noqa: E402


class Dock(OpensInTurns):
    SECTIONS = frozenset(("section", "steps"))

    def __init__(self):
        super().__init__()
        self.calls = []
        self.ticks = 0  # event-loop turns seen by a 1 ms timer, to tell the turns apart

    def build_sections(self):
        self.calls.append(("build", self.ticks))
        self.section = QLabel("a section")
        self.steps = [Step(1, "One", self.section)]

    def first_looks(self):
        return [lambda: self.calls.append(("look 1", self.ticks)), lambda: self.calls.append(("look 2", self.ticks))]


def test_the_turns_come_one_by_one_after_the_constructor(qtbot):
    from qtpy.QtCore import QTimer

    dock = Dock()
    qtbot.addWidget(dock)
    timer = QTimer()
    timer.timeout.connect(lambda: setattr(dock, "ticks", dock.ticks + 1))
    timer.start(1)
    assert dock.calls == [] and dock.opening and not dock.opened and "section" not in vars(dock)
    qtbot.waitUntil(lambda: not dock.opening, timeout=5000)
    timer.stop()
    assert [c for c, _ in dock.calls] == ["build", "look 1", "look 2"] and dock.ready
    ticks = [t for _, t in dock.calls]
    assert ticks[0] < ticks[1] < ticks[2]  # each in a turn of its own (the steps placed in the one between)
    assert dock.section.isVisibleTo(dock) and dock.steps_area.widget().findChild(QLabel) is dock.section


def test_a_section_reached_first_opens_the_dock_whole_at_once(qtbot):
    dock = Dock()
    qtbot.addWidget(dock)
    assert dock.section.text() == "a section"  # built, placed and looked at, without the event loop
    assert [c for c, _ in dock.calls] == ["build", "look 1", "look 2"] and not dock.opening
    QApplication.processEvents()
    qtbot.wait(20)
    assert len(dock.calls) == 3  # the pending timer finds nothing left to do
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        _ = dock.other


def test_open_now_finishes_what_the_turns_left_and_a_closed_dock_stops(qtbot):
    dock = Dock()
    qtbot.addWidget(dock)
    qtbot.waitUntil(lambda: dock.opened, timeout=5000)
    dock.open_now()
    assert [c for c, _ in dock.calls][-2:] == ["look 1", "look 2"] and dock.ready
    closed = Dock()
    qtbot.addWidget(closed)
    closed._closed = True  # as `AlignWidget.teardown` marks it
    qtbot.wait(30)
    assert closed.calls == [] and not closed.opening
    with pytest.raises(AttributeError, match="closed before its 'section' was built"):
        _ = closed.section
