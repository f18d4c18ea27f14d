"""A model the plugin saves says what stack its points are placed on (`_napari.writer.model_name`), so that opened again
it is not taken for etomo's model of the ``.preali`` (`io.imod_model.placed_on_preali`) unless it is one: before
session 19 every saved ``.fid`` had 3dmod's default name and read as etomo's, and a ``STEM.prexg`` beside a raw
``STEM.st`` would have been filled in for markers placed on that raw stack."""

import shutil

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_tomoalign._napari.dock.inputs import PAIRED  # noqa: E402
from napari_tomoalign._napari.dock.prealigned import PREXG  # noqa: E402
from napari_tomoalign._napari.reader import marker_file_layer  # noqa: E402
from napari_tomoalign._napari.writer import write_markers_fid  # noqa: E402
from napari_tomoalign.io.imod_model import placed_on_preali, read_imod_model  # noqa: E402


def _meta(kwargs, **metadata):
    return {"features": kwargs["features"], "metadata": {**kwargs["metadata"], **metadata}}


@pytest.mark.parametrize("paired, placed", [("BBa.st", False), ("sample.mrc", False), ("BBa.preali", True), (None, True)])
def test_markers_placed_in_the_dock_are_saved_as_placed_on_their_stack(imod_data, tmp_path, paired, placed):
    src = tmp_path / "in" / "points.csv"  # markers that are no model of etomo's: a table of clicks
    src.parent.mkdir()
    table = read_imod_model(imod_data / "BBa.fid")
    src.write_text("view,marker,x,y\n" + "".join(f"{v},{m},{float(x)!r},{float(y)!r}\n" for v, m, (x, y) in
                                                 zip(table.view, table.marker, table.xy, strict=True)))
    data, kwargs, _ = marker_file_layer(src)
    extra = {PAIRED: paired} if paired else {}
    out = write_markers_fid(str(tmp_path / "saved.fid"), data, _meta(kwargs, image_size=(512, 512), **extra))[0]
    assert placed_on_preali(out) is placed  # no stack paired: 3dmod's name, as before (nothing tells)
    np.testing.assert_allclose(read_imod_model(out).xy, table.xy, atol=1e-3)


def test_etomos_model_saved_again_stays_etomos_shown_through_a_prexg_or_not(imod_data, tmp_path):
    shutil.copy(imod_data / "BBa.fid", tmp_path / "BBa.fid")
    data, kwargs, _ = marker_file_layer(tmp_path / "BBa.fid")
    assert placed_on_preali(tmp_path / "BBa.fid")
    plain = write_markers_fid(str(tmp_path / "a.fid"), data, _meta(kwargs, **{PAIRED: "BBa.st"}))[0]
    assert placed_on_preali(plain)  # its points are still the .preali's (no .prexg: not moved)
    prexg = {"path": str(imod_data / "BBa.prexg"), "transforms": np.loadtxt(imod_data / "BBa.prexg").reshape(-1, 2, 3),
             "image_size": (512, 512)}
    assert placed_on_preali(write_markers_fid(str(tmp_path / "b.fid"), data, _meta(kwargs, **{PAIRED: "BBa.st",
                                                                                              PREXG: prexg}))[0])


@pytest.mark.parametrize("stack, placed", [("BBa.st", False), ("BBa.preali", True)])
@pytest.mark.parametrize("made_by", ["tomoalign track ", "tomoalign markers "])
def test_our_model_saved_again_with_no_stack_paired_keeps_the_stack_it_names(imod_data, tmp_path, stack, placed, made_by):
    """A model `track` made (or the dock saved) on a stack, opened and saved by napari's File > Save with no dock:
    3dmod's name before session 20, so a model of the raw stack read back as etomo's of the .preali."""
    from napari_tomoalign.io.imod_model import DEFAULT_NAME, model_name, write_imod_model

    table = read_imod_model(imod_data / "BBa.fid")
    src = tmp_path / "tracked.fid"
    write_imod_model(src, table, name=made_by + stack)
    assert placed_on_preali(src) is placed
    data, kwargs, _ = marker_file_layer(src)
    out = write_markers_fid(str(tmp_path / "saved.fid"), data, _meta(kwargs))[0]  # nothing paired
    assert placed_on_preali(out) is placed
    assert model_name(out) == (DEFAULT_NAME if placed else "tomoalign markers " + stack)  # the .preali's: as etomo's
    np.testing.assert_allclose(read_imod_model(out).xy, table.xy, atol=1e-3)
    paired = write_markers_fid(str(tmp_path / "re.fid"), data, _meta(kwargs, **{PAIRED: "x.st"}))[0]
    assert placed_on_preali(paired) is placed  # a stack paired in the dock names it; the .preali's points stay so
