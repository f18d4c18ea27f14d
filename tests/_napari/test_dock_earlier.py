"""A dock opened into a viewer that holds an earlier dock's layers says so in step 1 (one line) and lets the user
reuse them (an Align updates them in place; the stack's bead rings become the rings Track starts from) or clear
them (session 15: a reopened dock said nothing of them)."""

import napari
import pytest

pytest.importorskip("napari")

from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.dock.earlier import earlier_text  # noqa: E402
from napari_tomoalign._napari.dock.inputs import ROLE  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def open_dock(viewer):
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    return widget


def close_dock(viewer, widget):
    widget.teardown()
    viewer.window.remove_dock_widget(widget)


def roles(viewer):
    return [ly for ly in viewer.layers if ROLE in ly.metadata]


def test_the_line_names_a_few_and_counts_the_rest():
    assert earlier_text(["aligned stack"]) == "1 layer from an earlier dock: aligned stack"
    assert earlier_text(list("abcdef")) == "6 layers from an earlier dock: a, b, c, d and 2 more"


def test_a_reopened_dock_offers_the_earlier_docks_layers(qtbot, make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer(show=True)
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = open_dock(viewer)
    assert not widget.earlier.info.native.isVisibleTo(widget)  # nothing earlier: nothing said
    widget.beads.diameter_nm.value = 5.0  # the sample's gold
    assert widget.beads.find() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    rings = widget.beads.candidates
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    made = roles(viewer)
    assert rings in made and len(made) >= 4
    close_dock(viewer, widget)

    widget = open_dock(viewer)  # the earlier dock's layers, said in one line, reused
    assert widget.earlier.info.native.isVisibleTo(widget)
    assert widget.earlier.info.value.startswith(f"{len(made)} layers from an earlier dock: ")
    assert widget.beads.candidates is None
    widget.earlier.reuse_button.native.click()
    assert not widget.earlier.info.native.isVisibleTo(widget)
    assert widget.beads.candidates is rings and "Track starts from the" in widget.status.text()
    assert widget.beads.gather()["seeds_xy"] is not None  # Track starts from the earlier dock's rings
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    again = roles(viewer)
    assert len(again) == len(made) and all(any(a is m for m in made) for a in again)  # updated in place
    close_dock(viewer, widget)

    widget = open_dock(viewer)  # and cleared: the markers and the stack stay
    viewer.layers.remove(rings)  # one taken out by hand meanwhile: no longer counted
    assert widget.earlier.info.value.startswith(f"{len(made) - 1} layers from an earlier dock")
    widget.earlier.clear_button.native.click()
    assert roles(viewer) == [] and len(viewer.layers) == 2
    assert "cleared" in widget.status.text() and not widget.earlier.info.native.isVisibleTo(widget)
    close_dock(viewer, widget)
