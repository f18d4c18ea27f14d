"""Round trips through AreTomo .aln, the CryoET Data Portal JSON, RELION 5 STAR and the IMOD folder.

The check: our solution, written, read back and applied to the solved marker positions, gives the
same projected marker positions (the solver's own predictions) to 0.01 px.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, VariableOption, align_markers, read_markers, read_tilt_angles
from napari_tomoalign.alignment.transforms import aligned_marker_positions
from napari_tomoalign.io.alignment import write_alignment
from napari_tomoalign.io.convert import (
    MagnificationLoss,
    convert,
    magnification_error_px,
    project_points,
    read_any,
    rotation_and_magnification,
    saved_from_alignment,
)
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.simulation.markers import simulate_markers

for _package in ("starfile", "alnfile", "cryoet_alignment"):  # the 'interchange' extra
    pytest.importorskip(_package)

from support.paths import DATA as BB  # noqa: E402

OUT = {"aretomo": "ts.aln", "cdp": "ts.json", "relion": "relion", "imod": "imod"}


@pytest.fixture(scope="module")
def bba():
    m = read_markers(BB / "BBa.fid")
    return align_markers(m.view, m.marker, m.xy, read_tilt_angles(BB / "BBa.rawtlt"), m.image_size,
                         AlignmentOptions(tilt_axis_deg=-12.5, magnification=VariableOption("fixed")), pixel_size_nm=2.02)


@pytest.fixture(scope="module")
def simulated():
    s = simulate_markers(n_views=41, n_markers=20, image_size=(1024, 960), dropout=0.05, seed=7)
    opts = AlignmentOptions(tilt_axis_deg=85.0, magnification=VariableOption("fixed"))
    return align_markers(s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size, opts, pixel_size_nm=0.54)


@pytest.fixture(scope="module")
def magnified():
    s = simulate_markers(n_views=31, n_markers=16, image_size=(800, 800), mag_error=0.01, seed=2)
    return align_markers(s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size,
                         AlignmentOptions(tilt_axis_deg=85.0), pixel_size_nm=1.0)


def _error(al, saved) -> float:
    return float(np.nanmax(np.abs(project_points(saved, aligned_marker_positions(al)) - al.predicted_xy_px)))


def test_projection_of_our_own_transforms_is_the_model(bba):
    assert _error(bba, saved_from_alignment(bba)) < 1e-9


@pytest.mark.parametrize("fmt", ["aretomo", "cdp", "relion", "imod"])
@pytest.mark.parametrize("case", ["bba", "simulated"])
def test_round_trip_gives_the_same_projections(fmt, case, request, tmp_path):
    al = request.getfixturevalue(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MagnificationLoss)
        convert(al, fmt, tmp_path / OUT[fmt], name="BBa")
    back = read_any(tmp_path / OUT[fmt], fmt, image_size=al.image_size, pixel_size_nm=al.pixel_size_nm)
    assert back.image_size == al.image_size
    if fmt == "imod":
        assert sorted(q.name for q in (tmp_path / "imod").iterdir()) == ["BBa.resid", "BBa.tlt", "BBa.xf"]
    np.testing.assert_array_equal(back.view_determined[: al.n_views], al.view_determined[: len(back.view_determined)])
    assert _error(al, back) < 0.01


@pytest.mark.parametrize("fmt", ["aretomo", "cdp", "relion"])
def test_from_an_align_folder(fmt, bba, tmp_path):
    write_alignment(bba, tmp_path / "align", "BBa")
    convert(tmp_path / "align", fmt, tmp_path / OUT[fmt])
    back = read_any(tmp_path / OUT[fmt], fmt, image_size=bba.image_size, pixel_size_nm=2.02)
    assert _error(bba, back) < 0.01


@pytest.mark.parametrize("star", ["relion", "relion/tomograms.star"])
def test_relion_back_to_imod_takes_the_tomogram_name(star, bba, tmp_path):
    write_alignment(bba, tmp_path / "align", "BBa")
    convert(tmp_path / "align", "relion", tmp_path / "relion")
    convert(tmp_path / star, "imod", tmp_path / "back")
    assert sorted(q.name for q in (tmp_path / "back").iterdir()) == ["BBa.tlt", "BBa.xf"]


def test_magnification_rides_in_aln_and_portal_and_relion_says_what_it_loses(magnified, tmp_path):
    _, s = rotation_and_magnification(saved_from_alignment(magnified).transforms)
    bound = magnification_error_px(s, magnified.image_size)
    assert bound > 1.0  # a 1% magnification spread moves corners by pixels
    for fmt in ("cdp", "aretomo"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MagnificationLoss)
            convert(magnified, fmt, tmp_path / OUT[fmt])
        assert _error(magnified, read_any(tmp_path / OUT[fmt], fmt, image_size=magnified.image_size)) < 0.01
    with pytest.warns(MagnificationLoss, match=f"{bound:.3f} px"):
        convert(magnified, "relion", tmp_path / "relion")
    err = _error(magnified, read_any(tmp_path / "relion", "relion"))
    assert 0.2 * bound < err <= bound + 0.01


def test_excluded_views_become_dark_frames_and_missing_rows(simulated, tmp_path):
    s = simulate_markers(n_views=21, n_markers=12, image_size=(512, 512), seed=4)
    keep = s.view != 3  # view 3 has no markers: undetermined
    al = align_markers(s.view[keep], s.marker[keep], s.xy[keep], s.nominal_tilt_angles_deg, s.image_size,
                       AlignmentOptions(tilt_axis_deg=85.0, magnification=VariableOption("fixed")), pixel_size_nm=1.0,
                       warn=False)
    assert not al.view_determined[3]
    convert(al, "aretomo", tmp_path / OUT["aretomo"])
    assert "# DarkFrame =     3    4" in (tmp_path / OUT["aretomo"]).read_text()  # frame 0-based, section 1-based
    for fmt in ("aretomo", "cdp", "relion"):
        if fmt != "aretomo":
            convert(al, fmt, tmp_path / OUT[fmt])
        back = read_any(tmp_path / OUT[fmt], fmt, image_size=al.image_size)
        assert not back.view_determined[3] and back.view_determined[[0, 2, 4, 20]].all()
        assert _error(al, back) < 0.01


def test_other_readers_agree(bba, tmp_path):
    """cryoet-alignment reads our files to the same IMOD transforms; RELION rows carry RELION's centre."""
    from cryoet_alignment import read as cdp_read

    saved = saved_from_alignment(bba)
    convert(bba, "cdp", tmp_path / "a.json")
    imod = cdp_read(str(tmp_path / "a.json")).to_imod(ts_size=(*bba.image_size, bba.n_views))
    xf = np.array([[[a.mxx, a.mxy, a.sx], [a.myx, a.myy, a.sy]] for a in imod.xf.alignments])
    np.testing.assert_allclose(xf, saved.transforms, atol=1e-9)
    convert(bba, "aretomo", tmp_path / "a.aln")
    aln = cdp_read(str(tmp_path / "a.aln"))
    first = next(g for g in aln.GlobalAlignments if g.sec == 1)  # rows in tilt order, SEC 1-based (AreTomo3)
    assert first.rot == pytest.approx(bba.rotation_deg[0], abs=1e-5)
    convert(bba, "relion", tmp_path / "rel", name="BBa")
    rel = cdp_read(str(tmp_path / "rel" / "tomograms.star"))
    assert rel.pixel_size_a == pytest.approx(20.2)
    assert [e.y_tilt for e in rel.entries] == pytest.approx(list(bba.tilt_angles_deg), abs=1e-5)


def test_bad_inputs_say_what_is_wrong(tmp_path, simulated):
    bad = tmp_path / "x.aln"
    bad.write_text("hello\n")
    with pytest.raises(FileFormatError, match="not an AreTomo alignment"):
        read_any(bad)
    with pytest.raises(FileFormatError, match="unknown alignment format"):
        convert(simulated, "emdb", tmp_path / "w")
    nopix = saved_from_alignment(simulated)
    from napari_tomoalign.io.relion import write_relion

    with pytest.raises(FileFormatError, match="pixel size"):
        write_relion(type(nopix)(nopix.transforms, nopix.tilt_angles_deg, nopix.view_determined, nopix.image_size, None),
                     tmp_path / "r", "x")
    convert(simulated, "cdp", tmp_path / "a.json")
    with pytest.raises(FileFormatError, match="image size"):
        read_any(tmp_path / "a.json")
    with pytest.raises(FileExistsError):
        convert(simulated, "cdp", tmp_path / "a.json")


def test_the_convert_command(bba, tmp_path, capsys):
    import argparse

    from napari_tomoalign.io.convert_cli import add_convert_arguments, cmd_convert

    write_alignment(bba, tmp_path / "align", "BBa")
    parser = argparse.ArgumentParser()
    add_convert_arguments(parser)
    assert cmd_convert(parser.parse_args([str(tmp_path / "align"), "--to", "relion", "--output", str(tmp_path / "r")])) == 0
    assert "tomograms.star" in capsys.readouterr().out
    back = read_any(tmp_path / "r")
    assert back.pixel_size_nm == pytest.approx(2.02) and _error(bba, back) < 0.01
    args = parser.parse_args([str(tmp_path / "r" / "tomograms.star"), "--to", "aln", "--output", str(tmp_path / "b.aln")])
    assert cmd_convert(args) == 0
    assert _error(bba, read_any(tmp_path / "b.aln")) < 0.01


def test_imod_output_carries_the_full_models_and_local_files(tmp_path):
    """A full-model alignment with local alignments, converted to IMOD, keeps what IMOD's tilt reads beside the
    .xf (new user's finding, session 10: the .xtilt and .zfac were dropped without a word): the same bytes,
    under the new name."""
    from napari_tomoalign.cli import main

    src = tmp_path / "full"
    assert main(["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--imod-com",
                 str(BB / "aligna.com"), "--local", "--output", str(src), "--quiet"]) == 0
    written = convert(src, "imod", tmp_path / "out", name="tsA")
    assert sorted(p.name for p in written) == ["tsA.resid", "tsA.tlt", "tsA.xf", "tsA.xtilt", "tsA.zfac", "tsAfid.xyz",
                                               "tsAlocal.xf"]
    for ours, theirs in (("tsA.xtilt", "BBa.xtilt"), ("tsA.zfac", "BBa.zfac"), ("tsAlocal.xf", "BBalocal.xf"),
                         ("tsA.resid", "BBa.resid")):
        assert (tmp_path / "out" / ours).read_bytes() == (src / theirs).read_bytes()
    assert np.abs(np.loadtxt(src / "BBa.zfac")).max() > 0  # real Z factors, not zeros
    with pytest.raises(FileExistsError):  # all or none: nothing is replaced
        convert(src, "imod", tmp_path / "out", name="tsA")


def test_a_converted_file_can_be_read_back_and_a_missing_input_is_named(bba, tmp_path):
    """New user's findings (session 10): `--to aretomo --output x` wrote a file without .aln that convert could
    not read back, and a path that does not exist was 'a name whose format cannot be told'."""
    write_alignment(bba, tmp_path / "align", "BBa")
    for fmt, suffix in (("aretomo", ".aln"), ("cdp", ".json")):
        written = convert(tmp_path / "align", fmt, tmp_path / f"out_{fmt}")
        assert [p.name for p in written] == [f"out_{fmt}{suffix}"]
        assert _error(bba, read_any(written[0], image_size=bba.image_size)) < 0.01
    with pytest.raises(FileFormatError, match="no such file or folder"):
        read_any(tmp_path / "nothere")
    (tmp_path / "odd").write_text("x")
    with pytest.raises(FileFormatError, match=r"--from aretomo"):
        read_any(tmp_path / "odd")


def test_a_format_without_local_alignments_says_it_drops_them(tmp_path):
    """New user's finding (session 13): AreTomo, RELION and the portal dropped a folder's local alignments without a
    word; and `reconstruct` of the IMOD set said it was "read with" the local file it applies only with --local."""
    from napari_tomoalign.cli import main

    src = tmp_path / "loc"
    assert main(["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--magnification", "fixed",
                 "--local", "--output", str(src), "--quiet"]) == 0
    with pytest.warns(UserWarning, match="aretomo has no local alignments: BBalocal.xf is not carried .IMOD's set"):
        convert(src, "aretomo", tmp_path / "a.aln")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(src, "imod", tmp_path / "imod", name="BBa")  # IMOD's set carries it
    assert (tmp_path / "imod" / "BBalocal.xf").is_file() and (tmp_path / "imod" / "BBafid.xyz").is_file()
