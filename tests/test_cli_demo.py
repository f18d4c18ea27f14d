"""``tomoalign demo --size N``: a camera-sized int16 series with known truth, run through ``tomoalign run`` and
judged against that truth; absurd sizes refused in one line before any work (new user s13: the 4096^2
simulator was reachable from Python only)."""

import mrcfile
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.simulation.camera_demo import plan


def test_the_camera_demo_runs_and_recovers_the_truth(tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["demo", "--output", str(out), "--size", "512", "--views", "21", "--pixel-nm", "0.8"]) == 0
    text = capsys.readouterr().out
    assert "tomoalign run " in text and "--bead-diameter-nm 10" in text
    with mrcfile.open(out / "camera512.mrc", header_only=True) as m:
        assert int(m.header.mode) == 1 and (int(m.header.nx), int(m.header.nz)) == (512, 21)
        assert float(m.voxel_size.x) == pytest.approx(8.0)
    assert (out / "run" / "camera512.ali").exists() and (out / "run" / "alignment" / "camera512.xf").exists()
    line = next(t for t in text.splitlines() if t.startswith("against the simulation's truth"))
    e2e = float(line.split("within ")[1].split(" px")[0])
    tilt_err = float(line.split("tilts within ")[1].split(" deg")[0])
    assert e2e < 0.3 and tilt_err < 0.3  # measured 0.09 px and 0.05 deg
    assert main(["demo", "--output", str(out), "--size", "512", "--views", "21", "--pixel-nm", "0.8"]) == 2
    assert "already exists" in capsys.readouterr().err  # nothing replaced without --force


def test_the_default_camera_series_is_a_4k_frame_at_0_2_nm():
    s = plan(4096)
    assert (s.base, s.factor, s.pixel_nm, s.bead_px, s.n_views) == (1024, 4, 0.2, 50.0, 41)
    assert plan(2048).pixel_nm == 0.4 and plan(1000).factor == 1


@pytest.mark.parametrize("args, says", [
    (["--size", "100"], "give 256 to 8192 pixels"),
    (["--size", "20000"], "give 256 to 8192 pixels"),
    (["--size", "4096", "--bead-nm", "0.5"], "span 2.5 px"),
    (["--size", "1024", "--views", "500"], "--views 500: give 3 to 181"),
    (["--size", "1024", "--pixel-nm", "-1"], "positive numbers"),
    (["--views", "21"], "give --size N too"),
])
def test_absurd_sizes_are_refused_in_one_line(tmp_path, capsys, args, says):
    assert main(["demo", "--output", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and not (tmp_path / "d").exists()


def test_a_demo_larger_than_the_memory_is_refused(tmp_path, capsys, monkeypatch):
    import napari_tomoalign.compute as compute

    monkeypatch.setattr(compute, "available_memory_bytes", lambda: 2**30)
    assert main(["demo", "--output", str(tmp_path / "d"), "--size", "4096"]) == 2
    err = capsys.readouterr().err
    assert "needs about 2.0 GiB of memory" in err and "1.0 GiB are available" in err
    assert not (tmp_path / "d").exists()
