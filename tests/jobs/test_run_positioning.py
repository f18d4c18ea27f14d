"""``run --shift`` and ``run --level`` (new user s14: gold on one face, the run's tomogram cut the section and ``run``
had no way to hold it): the same plan as ``reconstruct``'s (`tomogram_plan`), so the run's tomogram is ``reconstruct``'s
with the same options on the run's alignment folder; batch's ``shift`` column and option reach the same job."""

from __future__ import annotations

import argparse
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from support.beads import write_cryo_series

from napari_tomoalign.cli import main


@pytest.fixture(scope="module")
def cryo(tmp_path_factory):
    path, s = write_cryo_series(tmp_path_factory.mktemp("pos"), "pos")
    return path, s


def kernel_lines(said: str) -> list[str]:
    return [line for line in said.splitlines() if line.startswith(("full model", "local alignments"))]


@pytest.mark.parametrize("extra", [["--shift", "8", "-24", "--thickness", "120"],
                                   ["--level", "--thickness", "120", "--shift", "0", "10"], ["--level"]])
def test_run_positions_the_tomogram_as_reconstruct_does(cryo, tmp_path, capsys, extra):
    path, _ = cryo
    out = tmp_path / "r"
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--output", str(out), *extra]) == 0
    said = capsys.readouterr().out
    assert ("Levelled from the surface analysis" in said) == ("--level" in extra)
    rec = tmp_path / "again.rec"
    assert main(["reconstruct", str(path), "--alignment", str(out / "alignment"), "--bin", "2", "--output", str(rec),
                 *extra]) == 0
    again = capsys.readouterr().out
    assert kernel_lines(said) == kernel_lines(again)  # the same kernel, said in the same words (`kernel_choice`)
    assert len(kernel_lines(said)) == ("--level" in extra)  # levelled: an X-axis tilt, the full model's kernel
    with mrcfile.open(out / "pos_bin2.rec") as a, mrcfile.open(rec) as b:
        assert a.data.shape == b.data.shape
        # the same to float32 rounding (the levelled geometry's kernel sums in its threads' order; run uses one fewer)
        np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-5 * np.abs(b.data).max())
        if "--thickness" in extra:
            assert a.data.shape[0] == 60


def test_run_refuses_a_shift_that_is_not_finite_before_tracking(cryo, tmp_path, capsys):
    path, _ = cryo
    out = tmp_path / "r"
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--output", str(out), "--shift", "0", "nan"]) == 2
    assert "--shift X Z: give finite shifts" in capsys.readouterr().err and not out.exists()


def test_a_shift_column_and_option_reach_the_run_path():
    from napari_tomoalign.batch.cli import add_batch_arguments
    from napari_tomoalign.batch.run_series import run_settings
    from napari_tomoalign.batch.series import SeriesSpec
    from napari_tomoalign.errors import UsageError

    spec = SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0, options={"shift": "0 -105", "bin": "2"})
    assert run_settings(spec, {}).shift == (0.0, -105.0)
    comma = SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0, options={"shift": "4,-10", "bin": "2"})
    assert run_settings(comma, {"shift": [1.0, 2.0]}).shift == (4.0, -10.0)  # the table's cell wins
    plain = SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0, options={"bin": "2"})
    assert run_settings(plain, {"shift": [1.0, 2.0]}).shift == (1.0, 2.0) and run_settings(plain, {}).shift is None
    for bad, said in (("5", "give X and Z"), ("a b", "is not a number"), ("0 inf", "finite")):
        with pytest.raises(UsageError, match=said):
            run_settings(SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0,
                                    options={"shift": bad, "bin": "2"}), {})
    p = argparse.ArgumentParser()
    add_batch_arguments(p)
    assert p.parse_args(["x", "--output", "o", "--shift", "0", "-105"]).opt_shift == [0.0, -105.0]
