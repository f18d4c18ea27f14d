"""Save alignment writes the alignment chosen among those the dock made (the last one unless another is chosen): after
Compare a user keeps the better one, not whichever was aligned last."""

import json

import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def test_save_alignment_writes_the_one_chosen(qtbot, make_napari_viewer, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        saving = widget.saving
        assert saving.save_alignment() == [] and "align first" in widget.status.text()
        for every_view in (False, True):
            widget.options.every_view_only.value = every_view
            assert widget.start_alignment() is not None
            qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        runs = widget.runs.results
        assert list(saving.which.choices) == ["all markers", "markers in every view"]
        assert saving.which.value == "markers in every view"  # the last made, as before
        saving.which.value = "all markers"
        for name in ("all", "last"):
            (tmp_path / name).mkdir()
        saving.save_dir.value = tmp_path / "all"
        assert saving.save_alignment()
        assert "'all markers'" in widget.status.text()
        saving.which.value = "markers in every view"
        saving.save_dir.value = tmp_path / "last"
        assert saving.save_alignment()
        for folder, name in (("all", "all markers"), ("last", "markers in every view")):
            saved = json.loads((tmp_path / folder / "alignment.json").read_text())
            al = runs[name].alignment
            assert saved["inputs"]["name"] == name, saved["inputs"]
            assert saved["rms_residual_px"] == pytest.approx(al.rms_residual_px, abs=1e-4)
        a, b = (np.loadtxt(next((tmp_path / f).glob("*.xf"))) for f in ("all", "last"))
        assert not np.allclose(a, b)  # two alignments, two sets of transforms
    finally:
        widget.teardown()
