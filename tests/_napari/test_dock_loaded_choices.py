"""A loaded alignment is a result like one made in the dock (session 18, new user: "a loaded alignment is not in Save's
or Compare's lists", "a loaded alignment shows no aligned stack"): it is offered by its file's name, saved as
``tomoalign convert --to imod`` writes it (and its aligned stack as ``tomoalign aligned-stack`` does), shown as an
aligned stack, and compared with an Align's tomogram, its own made as ``tomoalign reconstruct`` makes it."""

import mrcfile
import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import dock_on, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock.inputs import ROLE  # noqa: E402
from napari_tomoalign._napari.dock.results import ALIGNED, ALIGNED_MARKERS, FRAMES, RESIDUALS  # noqa: E402
from napari_tomoalign.cli import main  # noqa: E402
from napari_tomoalign.io.imod import read_xf  # noqa: E402
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel
LOADED = "cli/alignment.json (loaded)"


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def cli(*args) -> None:
    assert main([*(str(a) for a in args), "--quiet"]) == 0


def mrc_data(path):
    with mrcfile.open(path, permissive=True) as m:
        return np.array(m.data), float(m.voxel_size.x)


def test_a_loaded_alignment_is_offered_saved_shown_and_compared(qtbot, make_napari_viewer, imod_data, tmp_path,
                                                                monkeypatch):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    cli("align", fid, "--tilt-angles", imod_data / "BBa.rawtlt", "--pixel-size-nm", "2.02", "--output", tmp_path / "cli")
    cli("aligned-stack", st, "--alignment", tmp_path / "cli", "--output", tmp_path / "by-cli.ali")
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    widget, _ = dock_on(viewer, st, fid)
    try:
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        fresh = widget.runs.last
        saving, comparison = widget.saving, widget.comparison
        assert list(saving.which.choices) == [fresh.name]

        # loaded: in both lists by its file's name, chosen in Save and on top in Compare
        loaded = widget.loader.load(tmp_path / "cli" / "alignment.json")
        assert loaded is not None
        assert list(saving.which.choices) == [fresh.name, LOADED] and saving.which.value == LOADED
        for box in (comparison.compare_a, comparison.compare_b):
            assert [c for c in box.choices if c is not None] == [fresh.name, LOADED]
        assert (comparison.compare_a.value, comparison.compare_b.value) == (LOADED, fresh.name)
        assert f"'{LOADED}' in Compare (step 6) and Save (step 7)" in widget.status.text()

        # its aligned stack: step 5's layer, the views `tomoalign aligned-stack` writes, shown in the aligned frame
        ali_cli, voxel = mrc_data(tmp_path / "by-cli.ali")
        layer = viewer.layers[ALIGNED]
        assert layer.metadata["tilt_source"] == f"loaded from {tmp_path / 'cli' / 'alignment.json'}"
        assert layer.data.shape == ali_cli.shape
        np.testing.assert_array_equal(layer.data[30], ali_cli[30])
        widget.results.frame.value = FRAMES[1]
        assert layer.visible and not viewer.layers[ALIGNED_MARKERS].visible  # the last Align's markers: not its own
        assert not [ly for ly in viewer.layers if ly.metadata.get(ROLE) == RESIDUALS and ly.visible]
        widget.results.frame.value = FRAMES[0]

        # saved: the files `tomoalign convert --to imod --name BBa` writes from the same folder, the .xf the one loaded
        (tmp_path / "saved").mkdir()
        saving.save_dir.value, saving.with_aligned.value = tmp_path / "saved", True
        paths = saving.save_alignment()
        assert sorted(p.name for p in paths) == ["BBa.ali", "BBa.resid", "BBa.tlt", "BBa.xf", "BBafid.xyz"]
        assert f"saved '{LOADED}' to {tmp_path / 'saved'}" in widget.status.text()
        cli("convert", tmp_path / "cli", "--to", "imod", "--name", "BBa", "--output", tmp_path / "by-cli")
        for p in paths[:-1]:
            assert p.read_bytes() == (tmp_path / "by-cli" / p.name).read_bytes(), p.name
        assert (tmp_path / "saved" / "BBa.xf").read_bytes() == (tmp_path / "cli" / "BBa.xf").read_bytes()
        ali, ali_voxel = mrc_data(tmp_path / "saved" / "BBa.ali")
        np.testing.assert_array_equal(ali, ali_cli)
        assert ali_voxel == pytest.approx(voxel)
        assert saving.save_alignment() == [] and "BBa.ali already exists" in widget.status.text()  # nothing over it

        # the saved set loads back: the same transforms, a second entry by its own name
        again = widget.loader.load(tmp_path / "saved" / "BBa.xf")
        assert again is not None
        np.testing.assert_allclose(again.saved.transforms, read_xf(tmp_path / "cli" / "BBa.xf"), atol=0)
        for got, want in ((again.view, loaded.view), (again.xy, loaded.xy), (again.residual, loaded.residual)):
            np.testing.assert_array_equal(got, want)  # and the same residuals (its .resid saved too)
        assert list(saving.which.choices) == [fresh.name, LOADED, "BBa.xf (loaded)"]
        assert widget.loader.load(tmp_path / "cli" / "alignment.json") is not None  # again: the same entry
        (tmp_path / "copy").mkdir()
        for p in paths[:-1]:
            (tmp_path / "copy" / p.name).write_bytes(p.read_bytes())
        assert widget.loader.load(tmp_path / "copy" / "BBa.xf") is not None  # another BBa.xf: numbered
        assert list(saving.which.choices) == [fresh.name, LOADED, "BBa.xf (loaded)", "BBa.xf (loaded) 2"]

        # compared with the Align: the same markers aligned twice give the same tomogram, on one grid
        comparison.compare_a.value, comparison.compare_b.value = LOADED, fresh.name
        worker = comparison.compare()
        assert worker is not None
        qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: len(widget.tomograms.volumes) == 2, timeout=60_000)
        (top, _, label_top, _), (bottom, _, label_bottom, _) = widget.tomograms.volumes
        assert label_top == f"RMS {loaded.rms_px:.3f} px: {LOADED}" and label_bottom.endswith(f": {fresh.name} (25 "
                                                                                               "markers)")
        assert normalised_cross_correlation(top, bottom) > 0.9
        b = fresh.tomogram_binning
        cli("reconstruct", st, "--alignment", tmp_path / "cli", "--output", tmp_path / "by-cli.rec", "--bin", b,
            "--thickness", fresh.tomogram.shape[0] * b, "--lowpass", "0.35", "--mode", "float32")
        rec, _ = mrc_data(tmp_path / "by-cli.rec")
        np.testing.assert_allclose(top, rec, atol=1e-5 * float(np.abs(rec).max()))  # a's grid: the loaded one's own
        said = widget.status.text()
        assert said.startswith(f"comparing '{LOADED}' (top) with '{fresh.name}' (bottom)") and "most beads" in said
        assert "largest RMS by view" in widget.report.value and fresh.name in widget.report.value

        # two loaded ones: refused in one line
        comparison.compare_b.value = "BBa.xf (loaded)"
        assert comparison.compare() is None and "compare a loaded one with one aligned here" in widget.status.text()
    finally:
        widget.teardown()
