"""Save alignment writes the alignment chosen among those the dock made (the last one unless another is chosen): after
Compare a user keeps the better one, not whichever was aligned last; with the aligned stack too when asked."""

import json

import mrcfile
import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.reconstruction.warp import aligned_stack  # noqa: E402

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
        # With the aligned stack: the chosen alignment's, full size, streamed; never over a file unless told.
        saving.which.value = "all markers"
        saving.with_aligned.value = True
        saving.save_dir.value = tmp_path / "all"
        assert saving.save_alignment() == [] and "already exists" in widget.status.text()  # alignment.json is there
        saving.overwrite.value = True
        paths = saving.save_alignment()
        ali = next(p for p in paths if p.suffix == ".ali")
        assert f"with the aligned stack {ali.name}" in widget.status.text()  # asked for: named (s16 new user)
        image = viewer.layers[0].data
        result = runs["all markers"]
        with mrcfile.open(ali) as m:
            assert m.data.shape == (len(image), *result.frame.shape())
            np.testing.assert_array_equal(m.data, aligned_stack(np.asarray(image), result.transforms,
                                                                 out_shape=result.frame.shape()).astype(m.data.dtype))
        saving.overwrite.value = False
        (tmp_path / "ali").mkdir()
        ali.rename(tmp_path / "ali" / ali.name)
        saving.save_dir.value = tmp_path / "ali"  # the .ali alone is there: refused before anything is written
        assert saving.save_alignment() == [] and f"{ali.name} already exists" in widget.status.text()
        assert [p.name for p in (tmp_path / "ali").iterdir()] == [ali.name]
    finally:
        widget.teardown()


def test_the_aligned_stack_saved_is_warped_from_the_chosen_alignments_own_series(qtbot, make_napari_viewer, tmp_path,
                                                                                 monkeypatch):
    """Session 15: *with the aligned stack* warped the last run's series whichever alignment was chosen; an alignment
    of another series with as many views got the wrong stack's pixels (and its name)."""
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    viewer.open_sample("napari-tomoalign", "beads")
    first = viewer.layers[0]
    second = viewer.add_image(np.roll(np.asarray(first.data), 9, axis=2), name="other series", scale=first.scale,
                              metadata=dict(first.metadata))
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        for image, name in ((first, "first"), (second, "second")):
            widget.inputs.image.value = image
            widget.inputs.markers.value = viewer.layers["sample markers"]
            widget.options.result_name.value = name
            assert widget.start_alignment() is not None
            qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        saving = widget.saving
        saving.which.value, saving.with_aligned.value = "first", True
        saving.save_dir.value = tmp_path
        paths = saving.save_alignment()
        ali = next(p for p in paths if p.suffix == ".ali")
        assert ali.name == "sample_tilt_series.ali"  # named after its own series, not the last run's
        result = widget.runs.results["first"]
        with mrcfile.open(ali) as m:
            np.testing.assert_array_equal(m.data, aligned_stack(np.asarray(first.data), result.transforms,
                                                                 out_shape=result.frame.shape()).astype(m.data.dtype))
    finally:
        widget.teardown()
