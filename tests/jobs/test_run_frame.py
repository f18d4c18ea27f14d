"""``run`` on a K3-shaped series (wider than tall, the tilt axis at 84 degrees): the aligned stack and the tomogram
in the transposed frame (`reconstruction.frame`, as etomo), said on the output line, and the same files as
``aligned-stack`` and ``reconstruct`` make on the run's folder."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main


@pytest.fixture(scope="module")
def k3_run(tmp_path_factory):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    d = tmp_path_factory.mktemp("k3")
    s = make_bead_series("cryo", (192, 256), 21, seed=1)  # 256 wide, 192 tall; the axis near 84 degrees
    write_mrc(d / "k3.st", np.ascontiguousarray(s.images), 8.0)
    write_tilt_angles(d / "k3.rawtlt", s.tilt_angles_deg)
    return d, s


def test_run_writes_the_transposed_frame_and_says_so(k3_run, capsys):
    d, s = k3_run
    assert main(["run", str(d / "k3.st"), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(d / "run"),
                 "--bin", "2"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("wrote")][-1]
    assert "; aligned frame 192 x 256 (x by y; the raw 256 x 192 transposed: the .xf turns the views by -84" in line
    assert mrcfile.read(d / "run" / "k3.ali").shape == (21, 256, 192)
    rec = mrcfile.read(d / "run" / "k3_bin2.rec")
    assert rec.shape[1:] == (128, 96)
    assert main(["reconstruct", str(d / "k3.st"), "--alignment", str(d / "run" / "alignment"), "--bin", "2",
                 "--output", str(d / "hand.rec"), "--quiet"]) == 0
    hand = mrcfile.read(d / "hand.rec")
    assert hand.shape == rec.shape and np.abs(hand.astype(int) - rec.astype(int)).max() <= 1
    assert main(["aligned-stack", str(d / "k3.st"), "--alignment", str(d / "run" / "alignment"), "--output",
                 str(d / "hand.ali"), "--quiet"]) == 0
    np.testing.assert_array_equal(mrcfile.read(d / "hand.ali"), mrcfile.read(d / "run" / "k3.ali"))


def test_run_size_keeps_the_raw_frame_when_asked(k3_run, capsys):
    d, s = k3_run
    assert main(["run", str(d / "k3.st"), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(d / "raw"),
                 "--bin", "2", "--size", "256,192"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("wrote")][-1]
    assert line.endswith("; aligned frame 256 x 192 (x by y; as given by --size)")
    assert mrcfile.read(d / "raw" / "k3.ali").shape == (21, 192, 256)
    assert mrcfile.read(d / "raw" / "k3_bin2.rec").shape[1:] == (96, 128)
