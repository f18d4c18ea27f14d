"""``tomoalign run --imod-com`` with local alignments (``LocalAlignments 1``) and a memory budget: streamed in slabs of
rows as the global tomogram is (before session 19 its volume was made whole in memory and --memory was refused), the
same tomogram as ``tomoalign reconstruct --local`` makes from the run's folder."""

from pathlib import Path

import mrcfile
import numpy as np

from napari_tomoalign.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "imod-tutorial-BB"


def test_run_with_local_alignments_streams_and_equals_reconstruct_local(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "d"), "--quiet"]) == 0
    com = tmp_path / "local.com"  # aligna.com's options, local alignments on, the demo's tilt axis
    com.write_text("".join(line if not line.startswith("RotationAngle") else "RotationAngle\t86.1\n" for line in
                           (DATA / "aligna.com").read_text().replace("LocalAlignments\t0", "LocalAlignments\t1")
                           .splitlines(keepends=True)))
    stack, out = tmp_path / "d" / "sample.mrc", tmp_path / "run"
    assert main(["run", str(stack), "--bead-diameter-nm", "5.2", "--tilt-axis", "86", "--imod-com", str(com),
                 "--output", str(out), "--memory", "400M"]) == 0
    said = capsys.readouterr().out
    assert "(with the local alignments)" in said and "local alignments: one-row kernel" in said
    rec = tmp_path / "again.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(out / "alignment"), "--local", "--bin", "2",
                 "--output", str(rec), "--quiet"]) == 0
    ran, again = mrcfile.read(out / "sample_bin2.rec"), mrcfile.read(rec)
    assert ran.shape == again.shape and ran.shape[1:] == (256, 256)
    np.testing.assert_allclose(ran, again, rtol=0, atol=1e-5 * np.abs(again).max())
