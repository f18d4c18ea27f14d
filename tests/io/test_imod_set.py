"""An alignment IMOD (etomo) made, given to ``--alignment``: IMOD's own tutorial solution (BBa.xf, BBa.tlt,
BBafid.xyz) makes the tomogram the same transforms make through a ``tomoalign align`` folder; the full model's
.xtilt and .zfac beside it are applied; a set of another stack is refused in one line; a stamped folder keeps its
protection; ``convert`` needs no image size from an IMOD set written as IMOD's files."""

from __future__ import annotations

import json
import shutil

import mrcfile
import numpy as np
import pytest
from support.paths import DATA as BB

from napari_tomoalign import read_markers
from napari_tomoalign.cli import main
from napari_tomoalign.file_jobs import aligned_stack_to_file, reconstruct_to_file
from napari_tomoalign.io.alignment import SavedAlignment, write_transforms_folder
from napari_tomoalign.io.alignment_input import read_alignment_for_stack
from napari_tomoalign.io.bead_positions import read_bead_positions
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.imod import read_fid_xyz, read_xf
from napari_tomoalign.io.imod_set import read_imod_set
from napari_tomoalign.io.tilts import read_tilt_angles

PIXEL_A = 20.2  # BBafid.xyz's "Pix: 20.20000 Dim: 512 512"


def _stack(path, n_views=61, size=512, pixel_a=PIXEL_A, seed=0):
    """A tilt series of the tutorial's shape: smooth blobs on noise (only the geometry matters)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    base = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 200.0) for cx, cy in rng.uniform(0.2, 0.8, (12, 2)) * size)
    data = (base[None] + 0.1 * rng.standard_normal((n_views, size, size))).astype(np.float32)
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.voxel_size = pixel_a
    return path


@pytest.fixture(scope="module")
def bb(tmp_path_factory):
    d = tmp_path_factory.mktemp("bb")
    etomo = d / "etomo"
    etomo.mkdir()
    for name in ("BBa.xf", "BBa.tlt", "BBafid.xyz"):
        shutil.copy(BB / name, etomo / name)
    return d, _stack(d / "BBa.st"), etomo


def _rec(stack, alignment, out, **kw):
    r = reconstruct_to_file(stack, alignment, out, binning=4, thickness=64, **kw)
    return r, mrcfile.read(out)


def test_imods_own_solution_makes_the_tomogram_of_the_same_transforms_in_an_align_folder(bb):
    d, stack, etomo = bb
    xf, tlt = read_xf(BB / "BBa.xf"), read_tilt_angles(BB / "BBa.tlt")
    write_transforms_folder(SavedAlignment(xf, tlt, np.ones(61, bool), (512, 512), 2.02), d / "ours", "BBa")
    r0, ours = _rec(stack, d / "ours", d / "ours.rec")
    for given in (etomo, etomo / "BBa.xf"):  # the folder or the .xf itself
        r, theirs = _rec(stack, given, d / "imod.rec", overwrite=True)
        np.testing.assert_array_equal(theirs, ours)
        assert r.shape == r0.shape == (16, 128, 128) and r.n_views_used == 61
        assert r.voxel_size_angstrom == pytest.approx(4 * PIXEL_A)
    saved = read_alignment_for_stack(etomo, stack)
    assert saved.image_size == (512, 512) and saved.pixel_size_nm == pytest.approx(2.02) and saved.view_determined.all()
    assert saved.marker_z_extent_px == pytest.approx(58.4)  # from BBafid.xyz: the default thickness holds the beads
    ali = aligned_stack_to_file(stack, etomo / "BBa.xf", d / "imod.ali", binning=4)
    assert ali.shape == (61, 128, 128)
    assert main(["convert", str(d / "ours"), "--to", "cdp", "--output", str(d / "BBa.json"), "--quiet"]) == 0
    _, portal = _rec(stack, d / "BBa.json", d / "portal.rec")  # another tool's file: read for the stack too
    np.testing.assert_allclose(portal, ours, atol=1e-4 * np.abs(ours).max())


def test_the_command_says_what_it_took_from_where_and_refuses_another_stacks_set(bb, tmp_path, capsys):
    d, stack, etomo = bb
    assert main(["reconstruct", str(stack), "--alignment", str(etomo), "--bin", "4", "--thickness", "64",
                 "--output", str(tmp_path / "e.rec")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("note: BBa.xf is an IMOD alignment (no run stamp) read with BBa.tlt: image size 512 x 512 and"
                      " pixel size 2.02 nm from BBa.st's header (BBafid.xyz agrees), 61 of 61 views fitted")
    assert out[1].startswith("wrote ") and "from 61 views" in out[1]
    cases = {  # stack -> what the one line says
        _stack(tmp_path / "short.st", n_views=60): "61 transforms but short.st has 60 views",
        _stack(tmp_path / "half.st", size=256, pixel_a=2 * PIXEL_A): "solved on 512 x 512 images, not 256 x 256",
        _stack(tmp_path / "other.st", pixel_a=8.0): "the alignment was solved at 2.02 nm pixels, but other.st has 0.8 nm",
    }
    for bad, said in cases.items():
        assert main(["reconstruct", str(bad), "--alignment", str(etomo / "BBa.xf"), "--output", str(tmp_path / "x.rec"),
                     "--bin", "4"]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "x.rec").exists()
    no_fid = tmp_path / "nofid"
    no_fid.mkdir()
    for name in ("BBa.xf", "BBa.tlt"):
        shutil.copy(BB / name, no_fid / name)
    with pytest.raises(FileFormatError, match="view 1: a shift of -36.4, 1.2 px moves the centre out of the 64 x 64"):
        read_alignment_for_stack(no_fid, _stack(tmp_path / "tiny.st", size=64))
    with pytest.raises(FileFormatError, match=r"2 IMOD \.xf files \(BBa\.xf, BBb\.xf\); give the \.xf itself"):
        read_imod_set(BB)
    shutil.copy(BB / "BBb.xf", no_fid)
    with pytest.raises(FileFormatError, match="no BBb.tlt beside it"):
        read_imod_set(no_fid / "BBb.xf")


def test_a_stamped_folder_keeps_its_protection(bb, tmp_path, capsys):
    d, stack, _ = bb
    folder = tmp_path / "al"
    xf = read_xf(BB / "BBa.xf")
    write_transforms_folder(SavedAlignment(xf, read_tilt_angles(BB / "BBa.tlt"), np.ones(61, bool), (512, 512), 2.02),
                            folder, "BBa")
    xf[5, 0, 2] += 1.0
    with open(folder / "BBa.xf", "w") as f:  # edited: no longer the file the run stamp vouches for
        from napari_tomoalign.io.imod import format_xf

        format_xf(f, xf)
    for given in (folder, folder / "BBa.xf"):
        assert main(["reconstruct", str(stack), "--alignment", str(given), "--output", str(tmp_path / "r.rec")]) == 2
        assert "does not belong to the run" in capsys.readouterr().err


def test_the_full_models_files_beside_the_xf_are_applied(bb, tmp_path):
    d, stack, _ = bb
    folder = tmp_path / "full"
    assert main(["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--imod-com",
                 str(BB / "aligna.com"), "--output", str(folder), "--quiet"]) == 0
    etomo = tmp_path / "etomo"
    etomo.mkdir()
    for suffix in (".xf", ".tlt", ".xtilt", ".zfac", "fid.xyz"):
        shutil.copy(folder / f"BBa{suffix}", etomo / f"BBa{suffix}")
    saved = read_alignment_for_stack(etomo / "BBa.xf", stack)
    assert saved.x_tilts_deg is not None and "BBa.xtilt, BBa.zfac" in saved.provenance
    _, stamped = _rec(stack, folder, tmp_path / "stamped.rec")
    _, imod = _rec(stack, etomo / "BBa.xf", tmp_path / "imod.rec")
    for suffix in (".xtilt", ".zfac"):
        (etomo / f"BBa{suffix}").unlink()
    _, bare = _rec(stack, etomo / "BBa.xf", tmp_path / "bare.rec")
    corr = np.corrcoef(imod.ravel(), stamped.ravel())[0, 1]
    assert corr > 0.9999  # the .tlt's two decimals are the only difference
    assert np.abs(imod - bare).max() > 10 * np.abs(imod - stamped).max()  # the .xtilt and .zfac were applied
    shutil.copy(folder / "BBa.xtilt", etomo)
    assert main(["convert", str(etomo), "--to", "imod", "--output", str(tmp_path / "conv"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["BBa.tlt", "BBa.xf", "BBa.xtilt", "BBafid.xyz"]


def test_convert_of_an_imod_set_needs_no_image_size_for_imods_files(bb, tmp_path, capsys):
    _, stack, etomo = bb
    assert main(["convert", str(etomo), "--to", "imod", "--output", str(tmp_path / "conv")]) == 0
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["BBa.tlt", "BBa.xf", "BBafid.xyz"]
    np.testing.assert_allclose(read_xf(tmp_path / "conv" / "BBa.xf"), read_xf(BB / "BBa.xf"))
    no_size = tmp_path / "nofid"
    no_size.mkdir()
    for name in ("BBa.xf", "BBa.tlt"):
        shutil.copy(BB / name, no_size / name)
    assert main(["convert", str(no_size), "--to", "cdp", "--output", str(tmp_path / "p.json")]) == 2
    assert "give it (--image-size W H), or the stack (--stack STACK)" in capsys.readouterr().err
    assert main(["convert", str(no_size), "--to", "cdp", "--stack", str(stack), "--output", str(tmp_path / "p.json")]) == 0
    dims = json.loads((tmp_path / "p.json").read_text())["volume_dimension"]  # the stack's size and pixel
    assert dims["x"] == dims["y"] == pytest.approx(512 * PIXEL_A, rel=1e-6)


def test_gold_erasure_takes_the_beads_of_an_imod_sets_fid_xyz(bb, tmp_path):
    _, stack, etomo = bb
    pre = tmp_path / "pre"  # the set of the .preali, where BBa.fid was clicked
    pre.mkdir()
    shutil.copy(BB / "BBa.tltxf", pre / "BBa.xf")
    for name in ("BBa.tlt", "BBafid.xyz"):
        shutil.copy(BB / name, pre / name)
    view, xy = read_bead_positions(pre)
    clicks = read_markers(BB / "BBa.fid")
    ids = read_fid_xyz(BB / "BBafid.xyz")[0]
    where = {(int(v), int(ids[k % ids.size])): p for k, (v, p) in enumerate(zip(view, xy))}
    err = [np.hypot(*(where[int(v), int(m)] - c)) for v, m, c in zip(clicks.view, clicks.marker, clicks.xy)]
    assert np.median(err) < 0.4 and np.max(err) < 1.0  # tiltalign's own fit: 0.37 px RMS
    r = aligned_stack_to_file(stack, etomo / "BBa.xf", tmp_path / "erased.ali", binning=4, erase_gold_diameter_px=8.0)
    assert r.shape == (61, 128, 128)
    (pre / "BBafid.xyz").unlink()
    with pytest.raises(FileFormatError, match="--erase-gold needs BBafid.xyz"):
        read_bead_positions(pre)


def test_an_earlier_runs_z_factors_are_moved_aside_and_not_applied(tmp_path):
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    folder, args = tmp_path / "al", ["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--quiet"]
    assert main([*args, "--imod-com", str(BB / "aligna.com"), "--output", str(folder)]) == 0
    assert plan_tomogram(read_alignment_dir(folder), folder, thickness=64, options=ReconstructOptions()).z_factors \
        is not None
    assert main([*args, "--output", str(folder), "--force"]) == 0  # the default model: no .zfac written this time
    assert not (folder / "BBa.zfac").exists() and (folder / "BBa.zfac~").is_file()  # the full model's, moved aside
    assert not (folder / "BBa.xtilt").exists() and not (folder / "BBa.tltxf").exists()
    assert plan_tomogram(read_alignment_dir(folder), folder, thickness=64, options=ReconstructOptions()).z_factors is None


def test_etomos_raw_stack_xf_given_for_the_preali_is_said_and_its_tltxf_taken(bb, tmp_path):
    from napari_tomoalign.file_jobs import alignment_notes

    _, stack, etomo = bb
    shutil.copy(BB / "BBa.tltxf", etomo / "BBa.tltxf")
    preali = shutil.copy(stack, tmp_path / "BBa.preali")
    notes = alignment_notes(preali, etomo)
    assert notes[1] == (f"warning: BBa.xf is etomo's transform of the raw stack (BBa.st), but BBa.preali is"
                        f" prealigned: give --alignment {etomo / 'BBa.tltxf'} for it, or the raw stack")
    assert alignment_notes(stack, etomo)[1:] == [] and alignment_notes(preali, etomo / "BBa.tltxf")[1:] == []
    np.testing.assert_allclose(read_alignment_for_stack(etomo / "BBa.tltxf", preali).transforms, read_xf(BB / "BBa.tltxf"))
    with pytest.raises(FileFormatError, match="BBa.tlt: not an alignment; give the output folder of 'tomoalign align'"):
        read_alignment_for_stack(etomo / "BBa.tlt", stack)


def test_the_other_axis_set_is_warned_of_by_its_name():
    """etomo's dual-axis pair: BBb.xf given for BBa.st is the classic mix-up (s16 new user); other names pass."""
    import warnings
    from pathlib import Path

    from napari_tomoalign.errors import AlignmentWarning
    from napari_tomoalign.io.alignment_input import other_axis_warning

    with pytest.warns(AlignmentWarning, match="BBb.xf is named for the other axis of BBa.st's dual-axis pair"):
        other_axis_warning(Path("et/BBb.xf"), Path("raw/BBa.st"))
    with pytest.warns(AlignmentWarning, match="give tomo3b.xf"):
        other_axis_warning(Path("tomo3a.xf"), Path("tomo3b.mrc"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for xf, st in (("BBa.xf", "BBa.st"), ("BBa.xf", "BBa_bin2.st"), ("stack.xf", "other.st"), ("a.xf", "b.st")):
            other_axis_warning(Path(xf), Path(st))
