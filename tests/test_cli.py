"""The tomoalign command line: its outputs, its messages, and what it imports."""

import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
from support.gui import GUI_MODULES

from napari_tomoalign.cli import main
from napari_tomoalign.io import read_markers
from napari_tomoalign.io.imod import read_fid_xyz, read_resid, read_xf
from napari_tomoalign.io.mrc import write_mrc


def test_align_imod_model_writes_every_output(tmp_path, imod_data, capsys):
    out = tmp_path / "out"
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
               "--tilt-axis", "-12.5", "--pixel-size-nm", "2.02", "--output", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "RMS residual 0.3720 px" in text and "nm" in text and "stage tilt" in text and "worst views" in text
    names = {p.name for p in out.iterdir()}
    assert names == {"alignment.json", "predicted.csv", "residuals.csv", "BBa.xf", "BBa.tlt", "BBafid.xyz", "BBa.resid"}
    info = json.loads((out / "alignment.json").read_text())
    assert info["rms_residual_px"] <= 0.371964
    assert info["package_version"] and info["options"]["tilt"] == "view"
    assert [s["name"] for s in info["stages"]] == ["initial", "main", "tilt"]
    assert len(info["views"]["tilt_angle_deg"]) == 61 and len(info["markers"]["id"]) == 25
    pred = np.loadtxt(out / "predicted.csv", delimiter=",", skiprows=1)
    assert pred.shape == (61 * 25, 4)
    res = np.loadtxt(out / "residuals.csv", delimiter=",", skiprows=1)
    assert res.shape == (1525, 6)
    assert read_xf(out / "BBa.xf").shape == (61, 2, 3)
    assert np.loadtxt(out / "BBa.tlt").shape == (61,)
    assert read_fid_xyz(out / "BBafid.xyz")[1].shape == (25, 3)
    assert read_resid(out / "BBa.resid")[0].shape == (1525,)


def test_align_csv_needs_image_size(tmp_path, imod_data, capsys):
    m = read_markers(imod_data / "BBa.fid")
    csv = tmp_path / "m.csv"
    csv.write_text("view,marker,x,y\n" + "".join(f"{v},{k},{x},{y}\n" for v, k, (x, y) in zip(m.view, m.marker, m.xy)))
    rc = main(["align", str(csv), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--output", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == "tomoalign: error: --image-size W H is required for CSV markers (the file does not record it)"
    rc = main(["align", str(csv), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--image-size", "512", "512",
               "--output", str(tmp_path / "o"), "--quiet"])
    assert rc == 0 and capsys.readouterr().out == ""
    assert (tmp_path / "o" / "mfid.xyz").exists()


def test_refuses_to_overwrite_without_force(tmp_path, imod_data, capsys):
    args = ["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
            "--output", str(tmp_path), "--quiet"]
    (tmp_path / "BBa.xf").write_text("precious\n")
    assert main(args) == 2
    assert "BBa.xf already exists" in capsys.readouterr().err
    assert (tmp_path / "BBa.xf").read_text() == "precious\n"
    assert not (tmp_path / "alignment.json").exists()  # nothing written at all
    assert main(args + ["--force"]) == 0


@pytest.mark.parametrize("make,message", [
    (lambda d: None, "no such tilt-angle file"),
    (lambda d: (d / "t.tlt").write_text("0\n10\n"), "was made on a 61-view stack"),
    (lambda d: (d / "t.tlt").write_text("zero\n"), "is not a tilt angle"),
])
def test_bad_input_gives_one_line(tmp_path, imod_data, capsys, make, message):
    make(tmp_path)
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(tmp_path / "t.tlt"),
               "--output", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    return d


def test_demo_writes_inputs_alignment_stack_and_tomogram(demo_dir):
    info = json.loads((demo_dir / "alignment.json").read_text())
    assert 0.3 < info["rms_residual_px"] < 0.55  # click noise 0.3 px per coordinate, one mis-click
    with mrcfile.open(demo_dir / "sample.mrc") as m:
        assert m.data.shape == (61, 512, 512) and m.voxel_size.x == pytest.approx(10.0)
    with mrcfile.open(demo_dir / "sample.ali") as m:
        assert m.data.shape == (61, 512, 512) and m.voxel_size.x == pytest.approx(10.0)
    with mrcfile.open(demo_dir / "sample_bin2.rec") as m:
        assert m.data.shape == (80, 256, 256) and m.voxel_size.x == pytest.approx(20.0)
        assert np.isfinite(m.data).all() and m.data.std() > 0


def test_the_demo_says_how_close_it_came_to_its_truth(tmp_path, capsys):
    """New user's finding (session 13): the demo printed an RMS residual and never said how close the alignment came
    to the misalignment it simulated. Every bead's true position through the .xf and .tlt: within 0.3 px."""
    import re

    assert main(["demo", "--output", str(tmp_path / "d")]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("against the simulation's truth"))
    e2e = float(re.search(r"within ([0-9.]+) px RMS", line).group(1))
    assert 0.05 < e2e < 0.3 and "(the clicks had 0.3 px of noise, and one mis-click)" in line


def test_aligned_stack_and_reconstruct_commands(demo_dir, tmp_path, capsys):
    stack, out = str(demo_dir / "sample.mrc"), tmp_path / "b4.ali"
    assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(out), "--bin", "4"]) == 0
    assert "61 aligned views of 128 x 128" in capsys.readouterr().out
    with mrcfile.open(out) as m:
        assert m.data.shape == (61, 128, 128) and m.voxel_size.x == pytest.approx(40.0)
    # No overwrite without --force, and the file is untouched.
    before = out.read_bytes()
    assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(out), "--cubic"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(out), "--force",
                 "--quiet"]) == 0
    rec = tmp_path / "t.rec"
    assert main(["reconstruct", stack, "--alignment", str(demo_dir), "--output", str(rec), "--bin", "4",
                 "--thickness", "96"]) == 0
    with mrcfile.open(rec) as m:
        assert m.data.shape == (24, 128, 128) and m.voxel_size.x == pytest.approx(40.0)
    assert main(["reconstruct", stack, "--alignment", str(demo_dir), "--output", str(rec)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_reconstruct_refuses_a_stack_that_does_not_fit(demo_dir, tmp_path, capsys):
    small = tmp_path / "small.mrc"
    with mrcfile.new(small) as m:
        m.set_data(np.zeros((61, 256, 256), np.float32))
    assert main(["reconstruct", str(small), "--alignment", str(demo_dir), "--output", str(tmp_path / "r.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "256 x 256 but the alignment was solved for 512 x 512" in err
    assert main(["aligned-stack", str(demo_dir / "sample.mrc"), "--alignment", str(tmp_path),
                 "--output", str(tmp_path / "a.ali")]) == 2
    assert "no alignment.json" in capsys.readouterr().err


def test_console_script_does_not_import_gui(tmp_path, imod_data):
    code = (
        "import sys; from napari_tomoalign.cli import main; "
        f"rc = main(['align', r'{imod_data / 'BBb.fid'}', '--tilt-angles', r'{imod_data / 'BBb.rawtlt'}', "
        f"'--output', r'{tmp_path}', '--quiet']); "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r}]; "
        "print(rc, bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "0 []"


def test_convert_and_batch_are_commands(tmp_path, imod_data, capsys):
    out = tmp_path / "al"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--tilt-axis", "-12.5", "--pixel-size-nm", "2.02", "--magnification", "fixed", "--output", str(out),
                 "--quiet"]) == 0
    assert main(["convert", str(out), "--to", "aretomo", "--output", str(tmp_path / "BBa.aln"), "--quiet"]) == 0
    assert (tmp_path / "BBa.aln").read_text().count("\n") > 61
    assert main(["convert", str(out), "--to", "nonsense", "--output", str(tmp_path / "x"), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["batch", "--help"])
    assert exc.value.code == 0 and "--scheduler" in capsys.readouterr().out


def test_a_stack_of_another_pixel_size_is_refused(tmp_path, imod_data, capsys):
    out = tmp_path / "al"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--tilt-axis", "-12.5", "--pixel-size-nm", "2.02", "--output", str(out), "--quiet"]) == 0
    stack = tmp_path / "other.mrc"
    write_mrc(stack, np.zeros((61, 512, 512), np.int8), 10.0)  # 1 nm pixels, not 2.02
    assert main(["aligned-stack", str(stack), "--alignment", str(out), "--output", str(tmp_path / "a.ali"),
                 "--bin", "8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "1 nm pixels but the alignment was solved at 2.02 nm" in err and err.count("\n") == 1
    assert not (tmp_path / "a.ali").exists()


def test_aligned_stack_can_erase_the_gold_first(demo_dir, tmp_path, capsys):
    from napari_tomoalign.io.bead_positions import read_bead_positions
    from napari_tomoalign.io.imod import apply_transform
    from napari_tomoalign.io.mrc import open_tilt_series

    stack = str(demo_dir / "sample.mrc")
    plain, erased = tmp_path / "plain.ali", tmp_path / "erased.ali"
    pix_nm = open_tilt_series(stack, find_tilts=False).pixel_size_angstrom / 10
    assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(plain), "--quiet"]) == 0
    assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(erased), "--quiet",
                 "--erase-gold", "--bead-diameter-nm", f"{9.0 * pix_nm}"]) == 0  # the sample's beads: 9 px
    a = open_tilt_series(plain, find_tilts=False).data
    b = open_tilt_series(erased, find_tilts=False).data
    view, xy = read_bead_positions(demo_dir)
    xf = read_xf(demo_dir / "sample.xf")
    centre = (np.array(a.shape[:0:-1], float) - 1) / 2
    j = a.shape[0] // 2
    cols, rows = np.round(apply_transform(xf[j], xy[view == j], centre)).astype(int).T
    inside = (cols >= 0) & (cols < a.shape[2]) & (rows >= 0) & (rows < a.shape[1])
    background = np.median(a[j])
    before = np.median(np.abs(a[j][rows[inside], cols[inside]] - background))
    after = np.median(np.abs(b[j][rows[inside], cols[inside]] - background))
    assert inside.sum() >= 10 and after < 0.3 * before  # the beads' cores are gone in the aligned stack
    far = np.ones(a.shape[1:], bool)
    for c, r in zip(cols[inside], rows[inside]):
        far[max(0, r - 12) : r + 13, max(0, c - 12) : c + 13] = False
    values, counts = np.unique(a[j], return_counts=True)
    far &= a[j] != values[np.argmax(counts)]  # the fill beyond the view is its mean, which erasing changes
    np.testing.assert_allclose(b[j][far], a[j][far], atol=1e-5)  # and nothing else changed
    # The size is needed with --erase-gold, and only then: one line, exit 2.
    for extra in (["--erase-gold"], ["--bead-diameter-px", "9"], ["--erase-gold", "--bead-diameter-px", "0"]):
        assert main(["aligned-stack", stack, "--alignment", str(demo_dir), "--output", str(erased), "--force",
                     "--quiet", *extra]) == 2
    assert capsys.readouterr().err.count("\n") == 3


def test_align_with_an_imod_command_file_matches_tiltalign(tmp_path, imod_data, capsys):
    """``--imod-com aligna.com``: IMOD's full model with the tutorial's options; the transforms, tilts and mean
    residual agree with tiltalign's own outputs for BBa, and the full model's files join the folder's unit."""
    out = tmp_path / "com"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--imod-com", str(imod_data / "aligna.com"), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mean residual 0.31" in text  # tiltalign's log: "Residual error mean and sd: 0.315 0.176"
    ours, imods = read_xf(out / "BBa.tltxf"), read_xf(imod_data / "BBa.tltxf")
    np.testing.assert_allclose(ours[:, :, :2], imods[:, :, :2], atol=2e-3)
    np.testing.assert_allclose(ours[:, :, 2], imods[:, :, 2], atol=0.1)  # pixels
    np.testing.assert_allclose(np.loadtxt(out / "BBa.tlt"), np.loadtxt(imod_data / "BBa.tlt"), atol=0.05)
    assert np.loadtxt(out / "BBa.xtilt").shape == (61,) and np.loadtxt(out / "BBa.zfac").shape == (61, 2)
    run = json.loads((out / "alignment.json").read_text().splitlines()[0][len('{"tomoalign_run": '):-1])
    assert {"BBa.xtilt", "BBa.tltxf", "BBa.zfac"} <= set(run["files"])  # stamped with the others
    info = json.loads((out / "alignment.json").read_text())
    assert info["inputs"]["imod_com"].endswith("aligna.com")
    assert info["aligned_frame"]["tilt_axis_z_px"] is not None
    # The model comes from the file: a model option beside it is one line and exit 2.
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--robust",
                 "--imod-com", str(imod_data / "aligna.com"), "--output", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--imod-com" in capsys.readouterr().err


def test_quiet_hides_the_report_not_its_warnings(imod_data, tmp_path, capsys):
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--tilt-axis",
               "77.5", "--output", str(tmp_path / "o"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0 and out == ""
    assert err.startswith("tomoalign: warning: the markers' tilt axis (about") and err.count("\n") == 1


def test_a_python_warning_reaching_the_command_line_is_one_line(tmp_path, capsys, monkeypatch):
    import warnings

    import napari_tomoalign.demo_cli as demo_cli

    def warns(args):
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(demo_cli, "cmd_demo", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        rc = main(["demo", "--output", str(tmp_path / "d")])
    assert rc == 0 and capsys.readouterr().err == "tomoalign: warning: something odd\n"


class _ReaderGone:
    """A standard output whose reader has gone (``| head`` after its lines): every write is a broken pipe."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_leaves_early_does_not_stop_the_job(tmp_path, monkeypatch, capsys):
    # `tomoalign demo | head -1`: the text is dropped once the reader has gone, and every file is still made
    monkeypatch.setattr(sys, "stdout", _ReaderGone())
    rc = main(["demo", "--output", str(tmp_path / "d")])
    assert rc == 0, capsys.readouterr().err
    for name in ("sample.ali", "sample_bin2.rec", "sample.xf", "sample.tlt"):
        assert (tmp_path / "d" / name).stat().st_size > 0, name
    assert sys.stdout.__class__ is _ReaderGone  # given back as it was


class _DiskFull:
    """A standard output on a full disk (``> /dev/full``)."""

    def write(self, text):
        raise OSError(28, "No space left on device")

    def flush(self):
        raise OSError(28, "No space left on device")


def test_a_full_standard_output_is_named_as_such(tmp_path, monkeypatch, capsys, imod_data):
    monkeypatch.setattr(sys, "stdout", _DiskFull())
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--output",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err == ("tomoalign: error: the standard output: No space left on device; free some space or"
                               " write the output elsewhere\n"), err
