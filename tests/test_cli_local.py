"""`tomoalign align --local`, `reconstruct --local` and the default thickness, on IMOD's tutorial and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import read_alignment_dir


def test_align_with_aligna_com_and_local_writes_imods_local_file(tmp_path, imod_data, capsys):
    out = tmp_path / "a"
    args = ["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
            "--imod-com", str(imod_data / "aligna.com"), "--local", "--output", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Residual error local mean: 0.289 px" in text  # IMOD's aligna.log with LocalAlignments 1: 0.289
    info = json.loads((out / "alignment.json").read_text())
    local = info["local_alignments"]
    assert local["file"] == "BBalocal.xf" and local["patches"] == 25 and local["mean_residual_px"] <= 0.289
    assert info["full_model"]["per_view"] and len(info["full_model"]["per_view"]) == 61
    saved = read_alignment_dir(out)
    assert saved.local_file == "BBalocal.xf" and saved.x_tilts_deg is not None and saved.x_tilts_deg.shape == (61,)
    header = (out / "BBalocal.xf").read_text().splitlines()[0].split()
    assert header[:2] == ["5", "5"]  # IMOD's 5 x 5 patches
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args) == 2  # everything or nothing: no file is replaced without --force
    assert "already exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.fixture(scope="module")
def demo_local(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo_local")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    al = d / "al"
    assert main(["align", str(d / "sample_markers.csv"), "--tilt-angles", str(d / "sample.rawtlt"),
                 "--image-size", "512", "512", "--local", "--output", str(al), "--quiet"]) == 0
    return d, al


def test_reconstruct_applies_the_folders_local_file(demo_local, tmp_path, capsys):
    d, al = demo_local
    stack = str(d / "sample.mrc")
    outs = {}
    for name, extra in (("auto", ["--local"]), ("named", ["--local", str(al / "samplelocal.xf")]),
                        ("global", [])):
        outs[name] = tmp_path / f"{name}.rec"
        assert main(["reconstruct", stack, "--alignment", str(al), "--bin", "4", "--thickness", "160",
                     "--output", str(outs[name]), "--quiet", *extra]) == 0
    auto, named, glob = (mrcfile.read(outs[k]) for k in ("auto", "named", "global"))
    assert np.array_equal(auto, named)  # the folder's own file, found by the run stamp
    assert auto.shape == glob.shape == (40, 128, 128)
    assert not np.array_equal(auto, glob) and np.corrcoef(auto.ravel(), glob.ravel())[0, 1] > 0.9
    # an alignment folder without local alignments says what to do
    assert main(["reconstruct", stack, "--alignment", str(d), "--local", "--output", str(tmp_path / "x.rec")]) == 2
    assert "align with --local first" in capsys.readouterr().err


def test_default_thickness_holds_every_marker(demo_local, tmp_path):
    d, al = demo_local
    z = np.abs(read_alignment_dir(al).marker_z_extent_px)
    rec = tmp_path / "t.rec"
    assert main(["reconstruct", str(d / "sample.mrc"), "--alignment", str(al), "--bin", "2", "--output", str(rec),
                 "--quiet"]) == 0
    with mrcfile.open(rec) as m:
        thickness_px = m.data.shape[0] * 2
    assert 2 * z + 32 > 512 // 4  # a quarter-image slab would cut these markers' margin: the default grows
    assert thickness_px >= 2 * z + 32


def test_outputs_that_are_the_wrong_kind_of_path(tmp_path, imod_data, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--output", str(afile), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, but the outputs go in a directory" in err
    assert afile.read_text() == "keep"


def test_a_closed_pipe_is_not_an_error(tmp_path, imod_data):
    cmd = [sys.executable, "-m", "napari_tomoalign.cli", "align", str(imod_data / "BBa.fid"), "--tilt-angles",
           str(imod_data / "BBa.rawtlt"), "--output", str(tmp_path / "o")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    assert p.stdout is not None
    p.stdout.read(10)
    p.stdout.close()  # as `| head -c 10` does
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0 and b"Broken pipe" not in err
    assert (tmp_path / "o" / "alignment.json").exists()


def test_help_says_where_to_start(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "where to start:" in out
    assert "tomoalign run STACK --bead-diameter-nm D" in out and "--imod-com align.com" in out


def test_excluded_views_get_finite_files_imods_tools_can_read(tmp_path, imod_data, capsys):
    com = tmp_path / "excl.com"
    text = (imod_data / "aligna.com").read_text()
    com.write_text(text.replace("AngleOffset\t-0.5", "AngleOffset\t-0.5\nExcludeList\t1-3"))
    out = tmp_path / "o"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--imod-com", str(com), "--output", str(out), "--quiet"]) == 0
    xf = np.loadtxt(out / "BBa.xf")
    tilts = np.loadtxt(out / "BBa.tlt")
    assert np.all(np.isfinite(xf)) and np.allclose(xf, np.loadtxt(out / "BBa.tltxf"), atol=1e-6)
    raw = np.loadtxt(imod_data / "BBa.rawtlt")
    assert np.all(np.abs(tilts[:3] - (raw[:3] - 0.5)) < 0.6)  # nominal + AngleOffset + the mapped tilt change
    info = json.loads((out / "alignment.json").read_text())
    record = info["imod_settings"]  # the align.com's options as given, not the default model's
    assert record["options"]["TiltOption"] == 5 and record["options"]["XStretchDefaultGrouping"] == 7
    assert record["excluded_views"] and record["geometric_variables"] > 100
    assert "views 1-3 excluded" in " ".join(info["warnings"])
