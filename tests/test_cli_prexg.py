"""`tomoalign align --prexg`: etomo's raw-stack .xf (the .prexg x .tltxf product), against IMOD's own files."""

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io.bead_positions import read_bead_positions
from napari_tomoalign.io.imod import compose_xf, read_xf


def test_compose_is_imods_xfproduct(imod_data):
    product = compose_xf(read_xf(imod_data / "BBa.prexg"), read_xf(imod_data / "BBa.tltxf"))
    imod = read_xf(imod_data / "BBa.xf")  # etomo's align.com: xfproduct BBa.prexg BBa.tltxf
    assert np.abs(product[:, :, :2] - imod[:, :, :2]).max() < 1e-6
    assert np.abs(product[:, :, 2] - imod[:, :, 2]).max() < 1e-3  # the files' 3 decimals


def test_with_aligna_com_the_folder_holds_etomos_xf_and_tltxf(tmp_path, imod_data, capsys):
    out = tmp_path / "p"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--imod-com",
                 str(imod_data / "aligna.com"), "--prexg", str(imod_data / "BBa.prexg"), "--output", str(out)]) == 0
    assert "note: the .xf applies" not in capsys.readouterr().out
    for ours, imods in (("BBa.xf", "BBa.xf"), ("BBa.tltxf", "BBa.tltxf")):
        a, b = read_xf(out / ours), read_xf(imod_data / imods)
        assert np.abs(a[:, :, :2] - b[:, :, :2]).max() < 1e-3, ours
        assert np.abs(a[:, :, 2] - b[:, :, 2]).max() < 0.05, ours  # px; IMOD's x0 scan aside, the same frame


def test_default_model_and_gold_positions_on_the_raw_stack(tmp_path, imod_data, capsys):
    out = tmp_path / "d"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--prexg",
                 str(imod_data / "BBa.prexg"), "--output", str(out), "--quiet"]) == 0
    pre, tlt, xf = read_xf(imod_data / "BBa.prexg"), read_xf(out / "BBa.tltxf"), read_xf(out / "BBa.xf")
    assert np.abs(compose_xf(pre, tlt) - xf).max() < 2e-3
    # gold erasure reads the beads where the raw stack has them: the prealignment carries them to predicted.csv
    view, xy_raw = read_bead_positions(out)
    table = np.loadtxt(out / "predicted.csv", delimiter=",", skiprows=1)
    table = table[np.all(np.isfinite(table[:, 2:]), axis=1)]
    centre = (np.array([512.0, 512.0]) - 1.0) / 2.0
    forward = np.einsum("nij,nj->ni", pre[view, :, :2], xy_raw - centre) + pre[view, :, 2] + centre
    assert len(view) == len(table) and np.abs(forward - table[:, 2:]).max() < 1e-6
    assert np.abs(xy_raw - table[:, 2:]).max() > 1.0  # and the prealignment really moved them


def test_a_prexg_of_another_series_is_one_line(tmp_path, imod_data, capsys):
    short = tmp_path / "short.prexg"
    short.write_text("".join((imod_data / "BBa.prexg").read_text().splitlines(keepends=True)[:10]))
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--prexg",
                 str(short), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 10 transforms but there are 61 tilt angles" in err
    assert not (tmp_path / "x").exists()


def test_the_preali_note_is_for_etomos_models_not_ours(tmp_path, imod_data, capsys):
    """New user s14: a model `tomoalign run` tracked on the raw stack was told its .xf is the .preali's."""
    from napari_tomoalign.io.imod_model import TRACKED_ON, read_imod_model, write_imod_model

    ours = tmp_path / "BBa.fid"
    write_imod_model(ours, read_imod_model(imod_data / "BBa.fid"), name=TRACKED_ON + "BBa.st")
    for model, said in ((imod_data / "BBa.fid", True), (ours, False)):
        assert main(["align", str(model), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--output",
                     str(tmp_path / ("e" if said else "o"))]) == 0
        assert ("note: the .xf applies" in capsys.readouterr().out) == said
