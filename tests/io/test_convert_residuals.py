"""``convert --to imod`` carries the residuals (``NAME.resid``, tiltalign's ResidualFile), so that nothing is lost:
an ``align`` folder, a solved alignment, a loaded one (the dock's Save) and IMOD's own set convert to a set that
loads back with the same residuals, on the same views and markers; inputs without residuals write none and say
nothing new; a ``.resid`` that is not the set's is refused in one line, and a stale one is never left beside a new
set (refused, or moved aside with ``overwrite``). All on IMOD's tutorial series BBa."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from support.paths import DATA as BB

from napari_tomoalign import AlignmentOptions, VariableOption, align_markers, read_markers, read_tilt_angles
from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import write_alignment
from napari_tomoalign.io.atomic import OverwriteError
from napari_tomoalign.io.convert import convert, read_any
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.imod import read_resid
from napari_tomoalign.io.set_residuals import set_residuals

ROUNDING = 0.005 + 1e-9  # the .resid's 2 decimals


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``tomoalign align`` of IMOD's tutorial markers."""
    out = tmp_path_factory.mktemp("resid") / "align"
    assert main(["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--output", str(out),
                 "--quiet"]) == 0
    return out


def _etomo(d, with_resid=True):
    """IMOD's own set of the tutorial (etomo's BBa.xf, .tlt, fid.xyz and tiltalign's .resid) in folder ``d``."""
    d.mkdir()
    for name in ("BBa.xf", "BBa.tlt", "BBafid.xyz", *(["BBa.resid"] if with_resid else [])):
        shutil.copy(BB / name, d / name)
    return d


def _model_marker(view, xy):
    """The marker of IMOD's model ``BBa.fid`` seen in ``view`` at ``xy`` (each residual's own, found as Beadfixer
    finds it), and how far that point is."""
    m = read_markers(BB / "BBa.fid")
    ids, dist = np.empty(len(view), dtype=np.int64), np.empty(len(view))
    for k, (v, p) in enumerate(zip(view, xy, strict=True)):
        here = np.flatnonzero(m.view == v)
        d = np.hypot(*(m.xy[here] - p).T)
        ids[k], dist[k] = m.marker[here[np.argmin(d)]], d.min()
    return ids, dist


def test_an_align_folder_converted_loads_back_with_the_same_residuals_views_and_markers(folder, tmp_path):
    written = convert(folder, "imod", tmp_path / "imod", name="tsA")
    assert sorted(p.name for p in written) == ["tsA.resid", "tsA.tlt", "tsA.xf", "tsAfid.xyz"]
    assert (tmp_path / "imod" / "tsA.resid").read_bytes() == (folder / "BBa.resid").read_bytes()
    back = set_residuals(read_any(tmp_path / "imod"))  # the set the dock and the command line load
    assert back is not None
    table = np.genfromtxt(folder / "residuals.csv", delimiter=",", names=True)
    fit = table[np.isfinite(table["dx"])]  # the observations in the fit, with their marker
    assert len(back.view) == len(fit) == 1525
    np.testing.assert_array_equal(back.view, fit["view"].astype(int))
    np.testing.assert_allclose(back.xy, np.stack([fit["x"], fit["y"]], 1), atol=ROUNDING)
    np.testing.assert_allclose(back.residual, np.stack([fit["dx"], fit["dy"]], 1), atol=ROUNDING)
    ids, dist = _model_marker(back.view, back.xy)
    assert dist.max() < 0.0071 and np.array_equal(ids, fit["marker"].astype(int))  # each on its marker's point


def test_the_docks_save_and_the_command_carry_them_too(folder, tmp_path, capsys):
    saved = read_any(folder)  # what the dock's Save converts (`save_loaded`): a loaded alignment, its set known
    names = [p.name for p in convert(saved, "imod", tmp_path / "dock", name="tsB", n_views=len(saved.transforms))]
    assert "tsB.resid" in names
    assert (tmp_path / "dock" / "tsB.resid").read_bytes() == (folder / "BBa.resid").read_bytes()
    assert main(["convert", str(folder), "--to", "imod", "--output", str(tmp_path / "cli"), "--name", "tsC"]) == 0
    assert "tsC.resid" in capsys.readouterr().out
    assert (tmp_path / "cli" / "tsC.resid").read_bytes() == (folder / "BBa.resid").read_bytes()


def test_a_solved_alignment_writes_the_resid_align_writes(tmp_path):
    m = read_markers(BB / "BBa.fid")
    al = align_markers(m.view, m.marker, m.xy, read_tilt_angles(BB / "BBa.rawtlt"), m.image_size,
                       AlignmentOptions(tilt_axis_deg=-12.5, magnification=VariableOption("fixed")), pixel_size_nm=2.02)
    write_alignment(al, tmp_path / "align", "BBa")
    convert(al, "imod", tmp_path / "imod", name="BBa")
    assert (tmp_path / "imod" / "BBa.resid").read_bytes() == (tmp_path / "align" / "BBa.resid").read_bytes()


def test_imods_own_resid_is_carried_byte_for_byte_and_ours_is_in_its_format(folder, tmp_path):
    etomo = _etomo(tmp_path / "etomo")
    convert(etomo, "imod", tmp_path / "imod", name="tsA")
    assert (tmp_path / "imod" / "tsA.resid").read_bytes() == (BB / "BBa.resid").read_bytes()
    theirs, ours = (BB / "BBa.resid").read_text().splitlines(), (folder / "BBa.resid").read_text().splitlines()
    assert ours[0] == theirs[0] == "  1525 residuals"
    assert [len(line) for line in ours] == [len(line) for line in theirs]  # IMOD's columns, to the character
    assert [line[:25] for line in ours[1:]] == [line[:25] for line in theirs[1:]]  # x, y, view of the same points
    view, xy, _ = read_resid(BB / "BBa.resid")
    ids, dist = _model_marker(view, xy)  # IMOD's rows lie on its model's points: 0-based views, 0.5 px origin
    assert dist.max() < 0.0071 and len(np.unique(ids)) == len(np.unique(read_markers(BB / "BBa.fid").marker))


def test_inputs_without_residuals_write_none_and_say_nothing_new(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AreTomo's missing magnification: said by its own test
        convert(folder, "aretomo", tmp_path / "ts.aln")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aln = convert(tmp_path / "ts.aln", "imod", tmp_path / "from_aln", name="tsA")
        bare = convert(_etomo(tmp_path / "etomo", with_resid=False), "imod", tmp_path / "from_xf", name="tsA")
    assert sorted(p.name for p in aln) == ["tsA.tlt", "tsA.xf"]
    assert sorted(p.name for p in bare) == ["tsA.tlt", "tsA.xf", "tsAfid.xyz"]
    assert set_residuals(read_any(tmp_path / "from_aln")) is None


def test_a_stale_resid_is_refused_or_moved_aside_and_no_input_is_replaced(folder, tmp_path):
    out = tmp_path / "imod"
    convert(folder, "imod", out, name="tsA")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert(folder, "aretomo", tmp_path / "ts.aln")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OverwriteError, match="already exists|is there and would be read"):  # no silent overwrite
        convert(tmp_path / "ts.aln", "imod", out, name="tsA")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    convert(tmp_path / "ts.aln", "imod", out, name="tsA", overwrite=True)
    assert not (out / "tsA.resid").exists() and (out / "tsA.resid~").read_bytes() == before["tsA.resid"]
    assert not (out / "tsAfid.xyz").exists()  # the earlier set's markers are not the .aln's either
    assert set_residuals(read_any(out)) is None  # loads back with none, not with another alignment's
    convert(folder, "imod", out, name="tsA", overwrite=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OverwriteError, match="one of this command's inputs"):
        convert(out, "imod", out, name="tsA", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_resid_that_is_not_the_sets_is_refused_in_one_line(folder, tmp_path):
    lines = (BB / "BBa.resid").read_text().splitlines(keepends=True)
    other = _etomo(tmp_path / "other")
    (other / "BBa.resid").write_text("".join(lines[:-1] + [lines[-1].replace("   60 ", "   61 ")]))
    cut = _etomo(tmp_path / "cut")
    (cut / "BBa.resid").write_text("".join(lines[:-1]))
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    text = (edited / "BBa.resid").read_text()
    (edited / "BBa.resid").write_text(text[:-3] + ("1" if text[-3] != "1" else "2") + text[-2:])  # same size
    for src, message in ((other, r"view 61 \(0-based\) of an alignment of 61 views"),
                         (cut, "says 1525 residuals but it holds 1524"), (edited, "does not belong to the run")):
        with pytest.raises(FileFormatError, match=message) as err:
            convert(src, "imod", tmp_path / "out", name="tsA")
        assert "\n" not in str(err.value)
        assert not (tmp_path / "out").exists()
