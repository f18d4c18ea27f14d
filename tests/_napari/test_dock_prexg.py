"""The dock takes etomo's ``.prexg`` (step 1), as ``tomoalign align --prexg`` does: etomo's BBa.fid (placed on the
``.preali``) opened with the raw BBa.st is drawn on the raw stack's beads through BBa.prexg (filled in by itself), its
Align saves the CLI's ``.xf`` byte for byte and shows the raw stack aligned, and an edit made on the raw stack is saved
back on the ``.preali``, where the inverse mapping puts it. The raw stack is BBa's beads rendered where the ``.prexg``
says the raw stack has them (`io.prealignment.to_raw` of etomo's clicks)."""

import shutil
from dataclasses import replace

import mrcfile
import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import dock_on, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock import aligning  # noqa: E402
from napari_tomoalign._napari.dock.prealigned import PREXG  # noqa: E402
from napari_tomoalign._napari.dock.results import ALIGNED, RESIDUALS  # noqa: E402
from napari_tomoalign.cli import main  # noqa: E402
from napari_tomoalign.io.imod import read_xf  # noqa: E402
from napari_tomoalign.io.imod_model import write_imod_model  # noqa: E402
from napari_tomoalign.io.markers import read_markers  # noqa: E402
from napari_tomoalign.io.prealignment import to_prealigned, to_raw  # noqa: E402
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel
SIZE = (512, 512)


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def etomo_folder(tmp_path, imod_data):
    """etomo's layout: BBa.st (raw; its beads where BBa.prexg puts etomo's clicks back), BBa.prexg, BBa.fid, BBa.rawtlt."""
    pre, clicks = read_xf(imod_data / "BBa.prexg"), read_markers(imod_data / "BBa.fid")
    (tmp_path / "raw").mkdir()
    write_imod_model(tmp_path / "raw" / "BBa.fid", replace(clicks, xy=to_raw(pre, clicks.view, clicks.xy, SIZE)),
                     SIZE, 61)
    st, fid = write_bead_stack(tmp_path, tmp_path / "raw" / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    shutil.copy(imod_data / "BBa.fid", fid)
    shutil.copy(imod_data / "BBa.prexg", tmp_path / "BBa.prexg")
    return st, fid, pre, clicks


def by_pair(view, marker, xy):
    order = np.lexsort((marker, view))
    return np.column_stack([view[order], marker[order]]), xy[order]


def layer_xy(layer):
    d = np.asarray(layer.data)
    return by_pair(np.round(d[:, 0]).astype(int), layer.features["marker"].to_numpy(), d[:, [2, 1]])


@pytest.fixture
def dock(qtbot, make_napari_viewer, imod_data, tmp_path, monkeypatch):
    st, fid, pre, clicks = etomo_folder(tmp_path, imod_data)
    warned: list[str] = []
    monkeypatch.setattr(aligning, "show_warning", warned.append)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    widget, image = dock_on(viewer, st, fid)
    yield widget, image, pre, clicks, warned
    widget.teardown()


def test_etomos_model_is_drawn_on_the_raw_beads_and_aligned_as_the_cli_does(dock, qtbot, imod_data, tmp_path):
    widget, image, pre, clicks, warned = dock
    assert str(widget.inputs.prealigned.file.value) == str(tmp_path / "BBa.prexg")  # filled in by itself
    layer = widget.inputs.markers.value
    pairs, xy = layer_xy(layer)
    want_pairs, want = by_pair(clicks.view, clicks.marker, to_raw(pre, clicks.view, clicks.xy, SIZE))
    np.testing.assert_array_equal(pairs, want_pairs)
    np.testing.assert_allclose(xy, want, atol=1e-4)
    assert np.abs(xy - by_pair(clicks.view, clicks.marker, clicks.xy)[1]).max() > 5.0  # not where the .preali has them
    under = image.data[pairs[:, 0], np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)]
    assert np.median(under) < 60.0  # on the beads (background 100, a bead's core 40)

    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert not [w for w in warned if "placed on the .preali" in w]  # given its .prexg: nothing to warn of
    (tmp_path / "saved").mkdir()
    widget.saving.save_dir.value = tmp_path / "saved"
    widget.saving.save_alignment()
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--pixel-size-nm",
                 "2.02", "--prexg", str(imod_data / "BBa.prexg"), "--output", str(tmp_path / "cli"), "--quiet"]) == 0
    for name in ("BBa.xf", "BBa.tltxf", "BBa.tlt", "BBa.resid"):
        assert (tmp_path / "saved" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name

    # the raw stack aligned by the raw stack's .xf (as tomoalign aligned-stack makes it from the CLI's folder)
    assert main(["aligned-stack", str(image.source.path), "--alignment", str(tmp_path / "cli"), "--output",
                 str(tmp_path / "cli.ali"), "--quiet"]) == 0
    with mrcfile.open(tmp_path / "cli.ali", permissive=True) as m:
        ali = np.array(m.data)
    shown = widget._viewer.layers[ALIGNED].data
    for k in (0, 30, 60):
        assert normalised_cross_correlation(np.asarray(shown[k], float), ali[k].astype(float)) > 0.999, k

    # the residual arrows start on the raw stack's points (on their rings), not on the .preali's
    [arrows] = [ly for ly in widget._viewer.layers if ly.metadata.get("tomoalign_role") == RESIDUALS]
    assert arrow_tails_on(layer, arrows) <= 1.0 + 1e-6


def test_an_edit_on_the_raw_stack_is_saved_on_the_preali(dock, qtbot, tmp_path):
    widget, _, pre, clicks, _ = dock
    layer = widget.inputs.markers.value
    data = np.array(layer.data)
    i, d = 100, np.array([3.0, -2.0])  # (dx, dy) raw px, as a drag on screen
    data[i, 2] += d[0]
    data[i, 1] += d[1]
    layer.data = data
    widget.saving.save_markers(tmp_path / "edited.fid")
    saved = read_markers(tmp_path / "edited.fid")
    view, marker = int(round(data[i, 0])), int(layer.features["marker"].iloc[i])
    row = np.flatnonzero((saved.view == view) & (saved.marker == marker))
    want = to_prealigned(pre, np.array([view]), data[i, [2, 1]][None], SIZE)[0]
    np.testing.assert_allclose(saved.xy[row[0]], want, atol=1e-3)
    others = ~((saved.view == view) & (saved.marker == marker))
    pairs, xy = by_pair(saved.view[others], saved.marker[others], saved.xy[others])
    keep = ~((clicks.view == view) & (clicks.marker == marker))
    np.testing.assert_allclose(xy, by_pair(clicks.view[keep], clicks.marker[keep], clicks.xy[keep])[1], atol=1e-3)
    assert np.abs(want - (clicks.xy[(clicks.view == view) & (clicks.marker == marker)][0])).max() > 0.5

    # Move to predicted after an Align: the raw stack's predicted point, saved as the .preali's prediction
    assert widget.start_alignment() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    al = widget.runs.last.alignment
    layer.selected_data = {i}
    assert widget.triage.move_selected_to_predicted() == 1
    widget.saving.save_markers(tmp_path / "predicted.fid")
    saved = read_markers(tmp_path / "predicted.fid")
    row = np.flatnonzero((saved.view == view) & (saved.marker == marker))
    k = list(al.marker_ids).index(marker)
    np.testing.assert_allclose(saved.xy[row[0]], al.predicted_xy_px[view, k], atol=1e-3)


def test_a_prexg_of_another_series_is_refused_and_clearing_shows_the_files_frame(dock, tmp_path, imod_data):
    widget, _, _, clicks, _ = dock
    layer = widget.inputs.markers.value
    before = np.array(layer.data)
    short = tmp_path / "short.prexg"
    short.write_text("".join((imod_data / "BBa.prexg").read_text().splitlines(keepends=True)[:10]))
    widget.inputs.prealigned.file.value = short
    said = widget.status.text()
    assert said == f".prexg not used: {short} has 10 transforms but there are 61 tilt angles; give the .prexg of this" \
                   " tilt series"
    np.testing.assert_array_equal(layer.data, before)
    assert str(widget.inputs.prealigned.file.value) == str(tmp_path / "BBa.prexg")

    widget.inputs.prealigned.file.value = None  # cleared: the model's own frame, and not filled in again
    assert PREXG not in layer.metadata
    np.testing.assert_allclose(layer_xy(layer)[1], by_pair(clicks.view, clicks.marker, clicks.xy)[1], atol=1e-4)
    widget.refresh()
    assert widget.inputs.prealigned.file.value is None


def test_choosing_the_preali_as_the_stack_shows_the_markers_in_its_frame_and_the_st_again_through_the_prexg(
        dock, tmp_path, imod_data):
    """The .prexg maps the .preali to the raw .st: with the .preali itself chosen as the tilt series, the markers are
    shown in their file's frame (the .preali's) and the field empties; the raw .st chosen again fills it in again."""
    widget, image, pre, clicks, _ = dock
    layer = widget.inputs.markers.value
    preali = napari.current_viewer().add_image(np.array(image.data), name="BBa.preali", scale=image.scale)
    widget.inputs.image.value = preali
    widget.inputs.markers.value = layer
    widget.refresh()
    assert PREXG not in layer.metadata and widget.inputs.prealigned.file.value is None
    np.testing.assert_allclose(layer_xy(layer)[1], by_pair(clicks.view, clicks.marker, clicks.xy)[1], atol=1e-4)
    assert "does not apply" in widget.status.text()
    widget.inputs.image.value = image
    widget.inputs.markers.value = layer
    widget.refresh()
    assert str(widget.inputs.prealigned.file.value) == str(tmp_path / "BBa.prexg")
    np.testing.assert_allclose(layer_xy(layer)[1], by_pair(clicks.view, clicks.marker, to_raw(pre, clicks.view,
                                                                                                clicks.xy, SIZE))[1],
                               atol=1e-4)


def arrow_tails_on(layer, arrows) -> float:
    """The farthest any arrow's tail lies from a point of the markers layer in its view, in ring radii."""
    tails, points = np.asarray(arrows.data)[:, 0, :], np.asarray(layer.data)
    far = 0.0
    for t in tails:
        same = points[np.round(points[:, 0]) == round(t[0])]
        far = max(far, float(np.hypot(*(same[:, 1:] - t[1:]).T).min()))
    return far / (float(np.median(layer.size)) / 2)


def test_etomos_resid_loaded_is_drawn_on_the_raw_stack(dock, tmp_path, imod_data):
    """*Load alignment...* of etomo's set (BBa.xf, its .tlt and .resid, of the model on the .preali): the residual
    arrows start on the raw stack's points, through step 1's .prexg; cleared, they start on the .preali's."""
    widget, *_ = dock
    (tmp_path / "etomo").mkdir()
    for name in ("BBa.xf", "BBa.tlt", "BBa.resid", "BBafid.xyz"):
        shutil.copy(imod_data / name, tmp_path / "etomo" / name)
    assert widget.loader.load(tmp_path / "etomo" / "BBa.xf") is not None
    layer = widget.inputs.markers.value
    [arrows] = [ly for ly in widget._viewer.layers if ly.metadata.get("tomoalign_role") == RESIDUALS]
    assert len(arrows.data) > 1000 and arrow_tails_on(layer, arrows) < 1.01  # the .resid's 0.01 px
    widget.inputs.prealigned.file.value = None
    assert widget.loader.load(tmp_path / "etomo" / "BBa.xf") is not None
    [arrows] = [ly for ly in widget._viewer.layers if ly.metadata.get("tomoalign_role") == RESIDUALS]
    assert arrow_tails_on(layer, arrows) < 1.01  # the markers and the arrows, both in the file's frame


def test_a_prexg_beside_of_another_series_is_said_once_and_the_preali_warning_stays(
        qtbot, make_napari_viewer, imod_data, tmp_path, monkeypatch):
    from napari_tomoalign._napari.dock import status

    st, fid, _, clicks = etomo_folder(tmp_path, imod_data)
    lines = (imod_data / "BBa.prexg").read_text().splitlines(keepends=True)
    (tmp_path / "BBa.prexg").write_text("".join(lines[:10]))
    refused: list[str] = []
    monkeypatch.setattr(status, "refuse", lambda say, text: refused.append(text))
    warned: list[str] = []
    monkeypatch.setattr(aligning, "show_warning", warned.append)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    widget, _ = dock_on(viewer, st, fid)
    try:
        widget.refresh()
        widget.inputs.tilt_file.value = imod_data / "BBa.rawtlt"  # the inputs change again: not said again
        assert refused == [f".prexg not used: {tmp_path / 'BBa.prexg'} has 10 transforms but there are 61 tilt angles;"
                           " give the .prexg of this tilt series"]
        layer = widget.inputs.markers.value
        assert PREXG not in layer.metadata and widget.inputs.prealigned.file.value is None
        np.testing.assert_allclose(layer_xy(layer)[1], by_pair(clicks.view, clicks.marker, clicks.xy)[1], atol=1e-4)
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        assert [w for w in warned if "placed on the .preali" in w]  # no .prexg: the alignment is the .preali's, said
    finally:
        widget.teardown()
