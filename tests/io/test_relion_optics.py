"""RELION's optics (new user's finding, session 13): `convert --to relion` and `batch --export relion` wrote 300 kV,
Cs 2.7 mm, amplitude contrast 0.1 and hand -1 into tomograms.star without a word and without a way to give others
on the command line; for 200 kV data RELION's CTF would be wrong."""

from __future__ import annotations

import warnings

import pytest
from support.paths import DATA as BB

from napari_tomoalign.cli import main
from napari_tomoalign.io.relion import OPTICS_DEFAULTS, OpticsAssumed, checked_optics


def _star_optics(folder):
    import starfile

    row = starfile.read(folder / "tomograms.star").iloc[0]
    return {k: float(row[c]) for k, c in (("voltage_kv", "rlnVoltage"), ("cs_mm", "rlnSphericalAberration"),
                                          ("amplitude_contrast", "rlnAmplitudeContrast"), ("hand", "rlnTomoHand"))}


def test_optics_given_on_the_command_line_are_written_and_the_rest_are_said(tmp_path, capsys):
    pytest.importorskip("starfile")
    assert main(["align", str(BB / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--magnification", "fixed",
                 "--pixel-size-nm", "2.02", "--output", str(tmp_path / "al"), "--quiet"]) == 0
    base = ["convert", str(tmp_path / "al"), "--to", "relion"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", OpticsAssumed)  # the command line catches it and prints it: never raised here
        assert main(base + ["--output", str(tmp_path / "a"), "--voltage", "200", "--cs", "2.7"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("warning: RELION's optics were not given and are written as amplitude contrast"
                                     " 0.1, hand -1: give --amplitude-contrast, --hand (tomoalign convert) when the"
                                     " microscope's differ") in err
    assert _star_optics(tmp_path / "a") == {**OPTICS_DEFAULTS, "voltage_kv": 200.0}
    assert main(base + ["--output", str(tmp_path / "b"), "--voltage", "200", "--cs", "0.01", "--amplitude-contrast",
                        "0.07", "--hand", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert _star_optics(tmp_path / "b") == {"voltage_kv": 200.0, "cs_mm": 0.01, "amplitude_contrast": 0.07, "hand": 1.0}


@pytest.mark.parametrize("flag, value, said", [("--voltage", "0.3", "--voltage 0.3: give the microscope's voltage,"
                                                " from 10 to 3000 kV"), ("--hand", "0", "--hand 0.0: give the"
                                                " microscope's hand, -1 or 1"), ("--amplitude-contrast", "nan", "")])
def test_optics_out_of_range_are_refused_before_anything_is_written(tmp_path, capsys, flag, value, said):
    pytest.importorskip("starfile")
    out = tmp_path / "o"
    assert main(["convert", str(BB / "BBa.xf"), "--to", "relion", "--pixel-size-nm", "2.02", "--image-size", "512",
                 "512", "--output", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} " in err and said in err
    assert not out.exists()


def test_checked_optics_warns_only_for_what_is_missing():
    with pytest.warns(OpticsAssumed, match="written as voltage 300 kV, Cs 2.7 mm, amplitude contrast 0.1, hand -1"):
        assert checked_optics(None) == OPTICS_DEFAULTS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = {"voltage_kv": 120, "cs_mm": 1.2, "amplitude_contrast": 0.1, "hand": -1}
        assert checked_optics(full) == {k: float(v) for k, v in full.items()}
