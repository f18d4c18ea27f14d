"""The tomoalign command line: its outputs, its messages, and what it imports."""

import json
import subprocess
import sys

import numpy as np
import pytest
from gui_modules import GUI_MODULES

from napari_tomoalign.cli import main
from napari_tomoalign.io import read_markers
from napari_tomoalign.io.imod import read_fid_xyz, read_resid, read_xf


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
    (lambda d: (d / "t.tlt").write_text("0\n10\n"), "placed on view 60 but only 2 tilt angles"),
    (lambda d: (d / "t.tlt").write_text("zero\n"), "is not a tilt angle"),
])
def test_bad_input_gives_one_line(tmp_path, imod_data, capsys, make, message):
    make(tmp_path)
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(tmp_path / "t.tlt"),
               "--output", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "simulated" in out and "RMS residual" in out
    info = json.loads((tmp_path / "alignment.json").read_text())
    assert 0.3 < info["rms_residual_px"] < 0.55  # noise 0.3 px per coordinate


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
