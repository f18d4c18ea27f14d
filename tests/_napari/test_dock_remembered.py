"""A reopened dock starts from the bead diameter and polarity last set for its stack, else from the last set on
another stack, and says which (session 14's new user: it started at its 10 nm default whatever the series)."""

import napari
import pytest

pytest.importorskip("napari")

from support.gui import first_look, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock.remembered import recall, remember, settings_path  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def test_recall_own_then_last_then_nothing(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    assert recall("a", path) == (None, "")
    remember("a", "A.st", {"diameter_nm": 15.0, "polarity": "bright"}, path)
    remember("b", "B.st", {"diameter_nm": 5.0, "polarity": "dark"}, path)
    own, said = recall("a", path)
    assert own["diameter_nm"] == 15.0 and own["polarity"] == "bright" and "this stack" in said
    last, said = recall("c", path)
    assert last["diameter_nm"] == 5.0 and "B.st (another stack)" in said
    _, said = recall("/data/a/B.st|10|2", path)  # another series named as the last one: its folder said
    assert said == "as last set, for B.st (another stack): check them for this one", said
    remember("/data/a/B.st|10|1", "B.st", {"diameter_nm": 6.0, "polarity": "dark"}, path)
    _, said = recall("/data/b/B.st|10|2", path)
    assert "for B.st in /data/a (another stack)" in said, said
    last, said = recall("/data/a/B.st|12|3", path)  # the same file rewritten: said so
    assert last["diameter_nm"] == 6.0 and said.startswith("as last set for this file before it changed"), said
    path.write_text("{not json")  # a damaged file: the defaults, said as such
    assert recall("a", path) == (None, "")
    monkeypatch.setenv("TOMOALIGN_SETTINGS_DIR", str(tmp_path / "cfg"))
    assert settings_path() == tmp_path / "cfg" / "bead-settings.json"


def open_dock(viewer):
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    return widget


def close_dock(viewer, widget):
    widget.teardown()
    viewer.window.remove_dock_widget(widget)


def test_a_reopened_dock_starts_from_the_stacks_own_bead_settings(make_napari_viewer, imod_data, tmp_path,
                                                                  monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sta, _ = write_bead_stack(tmp_path / "a", imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    stb, _ = write_bead_stack(tmp_path / "b", imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02, name="BBb")
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    [a] = viewer.open(str(sta), plugin="napari-tomoalign")
    [b] = viewer.open(str(stb), plugin="napari-tomoalign")
    widget = open_dock(viewer)
    widget.inputs.image.value = a
    beads = widget.beads
    assert beads.diameter_nm.value == 10.0 and "the default" in beads.info.value
    beads.diameter_nm.value = 15.0  # the user's own values: nothing more said
    beads.polarity.value = "bright"
    assert "default" not in beads.info.value and "last set" not in beads.info.value
    close_dock(viewer, widget)

    widget = open_dock(viewer)  # reopened on the same stack: its own values, said so
    widget.inputs.image.value = a
    beads = widget.beads
    assert (beads.diameter_nm.value, beads.polarity.value) == (15.0, "bright")
    assert "15 nm, bright beads as last set for this stack" in beads.info.value, beads.info.value
    assert beads.diameter_px() == pytest.approx(15.0 / 2.02)
    widget.inputs.image.value = b  # another stack: the last values, said to be another stack's
    assert (beads.diameter_nm.value, beads.polarity.value) == (15.0, "bright")
    assert "for BBa.st (another stack): check them" in beads.info.value, beads.info.value
    beads.polarity.value = "dark"
    close_dock(viewer, widget)

    widget = open_dock(viewer)
    widget.inputs.image.value = a  # each stack its own
    assert (widget.beads.diameter_nm.value, widget.beads.polarity.value) == (15.0, "bright")
    widget.inputs.image.value = b
    assert (widget.beads.diameter_nm.value, widget.beads.polarity.value) == (15.0, "dark")
    assert "last set for this stack" in widget.beads.info.value
    widget.inputs.image.value = a
    assert "last set for this stack" in widget.beads.info.value
    widget.beads.memory.keep(a)  # used by a Find or a Track: the values are the user's, nothing more said
    assert "last set" not in widget.beads.info.value
    close_dock(viewer, widget)


def test_a_find_keeps_the_values_it_used_for_its_stack(qtbot, make_napari_viewer, monkeypatch):
    """Values taken from another stack and used by a Find are this stack's after it (as given, or as measured): the
    next dock says so, not 'another stack' again."""
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    remember("elsewhere", "other.st", {"diameter_nm": 9.0, "polarity": "dark"})
    viewer.open_sample("napari-tomoalign", "beads")
    widget = open_dock(viewer)
    assert widget.beads.diameter_nm.value == 9.0 and "(another stack)" in widget.beads.info.value
    assert widget.beads.find() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
    assert "another stack" not in widget.beads.info.value, widget.beads.info.value
    used = widget.beads.diameter_nm.value  # 9 nm, or the beads' measure when they measure otherwise
    close_dock(viewer, widget)
    widget = open_dock(viewer)
    assert widget.beads.diameter_nm.value == used and "last set for this stack" in widget.beads.info.value
    close_dock(viewer, widget)
