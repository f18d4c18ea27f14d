"""*Load alignment...*: a saved alignment (a `tomoalign align` folder's alignment.json, or etomo's NAME.xf) shown on
the dock's stack without aligning again, read and checked by the command line's own reader; an alignment of another
stack or another run refused in one line (session 15: no way to load one into the dock)."""

import json

import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import dock_on, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock.inputs import ROLE  # noqa: E402
from napari_tomoalign._napari.dock.results import PREDICTED, RESIDUALS  # noqa: E402
from napari_tomoalign.io.imod import read_resid  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def residual_layer(viewer):
    [layer] = [ly for ly in viewer.layers if ly.metadata.get(ROLE) == RESIDUALS]
    return layer


def test_a_saved_alignment_is_shown_on_its_stack_and_another_refused(qtbot, make_napari_viewer, imod_data, tmp_path,
                                                                     monkeypatch):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    (tmp_path / "small").mkdir()
    small, _ = write_bead_stack(tmp_path / "small", imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02, size=256)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    widget, image = dock_on(viewer, st, fid)
    try:
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        al = widget.runs.last.alignment
        widget.saving.save_dir.value = tmp_path / "saved"
        (tmp_path / "saved").mkdir()
        assert widget.saving.save_alignment()

        # etomo's own alignment of BBa (IMOD's tiltalign): its .resid, drawn as after Align
        loaded = widget.loader.load(imod_data / "BBa.xf")
        assert loaded is not None and loaded.saved.transforms.shape == (61, 2, 3)
        view, xy, residual = read_resid(imod_data / "BBa.resid")
        layer = residual_layer(viewer)
        assert len(layer.data) == len(view) == 1525 and layer.visible
        exaggeration = widget.results.exaggeration.value
        np.testing.assert_allclose(layer.data[:, 1, 1:], residual[:, ::-1] * exaggeration)  # (dy, dx) per point
        assert f"RMS {np.sqrt(np.mean(np.sum(residual**2, axis=1))):.3f} px over 1525 residuals" in widget.status.text()
        per_view = np.sqrt(np.bincount(view, np.sum(residual**2, axis=1)) / np.bincount(view))
        worst = int(np.argmax(per_view))
        assert f"largest RMS by view: view {worst + 1} {per_view[worst]:.3f} px" in widget.report.value
        assert f"its tomogram is made by Compare (step 6, beside an Align's), or by tomoalign reconstruct --alignment" \
               f" {imod_data / 'BBa.xf'}" in widget.report.value  # s16 new user
        assert not viewer.layers[PREDICTED].visible  # the last Align's: hidden, not this alignment's
        widget.results.exaggeration.value = 2 * exaggeration  # step 5's control redraws the loaded residuals
        np.testing.assert_allclose(residual_layer(viewer).data[:, 1, 1:], residual[:, ::-1] * 2 * exaggeration)

        # the dock's own saved alignment, read back through its alignment.json: the Align's RMS (the .resid's 2 decimals)
        loaded = widget.loader.load(tmp_path / "saved" / "alignment.json")
        assert loaded is not None and loaded.rms_px == pytest.approx(al.rms_residual_px, abs=0.005)
        assert len(residual_layer(viewer).data) == int(al.obs_used.sum())

        # an etomo set without its .resid: no arrows (not the last alignment's left over)
        (tmp_path / "etomo").mkdir()
        for name in ("BBa.xf", "BBa.tlt"):
            (tmp_path / "etomo" / name).write_bytes((imod_data / name).read_bytes())
        loaded = widget.loader.load(tmp_path / "etomo" / "BBa.xf")
        assert loaded is not None and loaded.residual is None and "no residuals to show" in widget.status.text()
        assert not [ly for ly in viewer.layers if ly.metadata.get(ROLE) == RESIDUALS]

        # refused in one line: a file of another run, another stack's size, a layer with no file
        xf = next((tmp_path / "saved").glob("*.xf"))
        xf.write_text(xf.read_text() + "\n")
        assert widget.loader.load(tmp_path / "saved" / "alignment.json") is None
        said = widget.status.text()
        assert said.startswith("not loaded: ") and "does not belong to the run" in said and "\n" not in said
        xf.write_text(xf.read_text()[:-1])
        [other] = viewer.open(str(small), plugin="napari-tomoalign")
        widget.inputs.image.value = other
        assert widget.loader.load(tmp_path / "saved" / "alignment.json") is None
        assert "256 x 256 but the alignment was solved for 512 x 512" in widget.status.text()
        plain = viewer.add_image(np.asarray(image.data[:, :64, :64]), name="no file")
        widget.inputs.image.value = plain
        assert widget.loader.load(tmp_path / "saved" / "alignment.json") is None
        assert "'no file' was not opened from a file" in widget.status.text()
        assert json.loads((tmp_path / "saved" / "alignment.json").read_text())  # nothing was written over
    finally:
        widget.teardown()
