"""``run``'s images: one pass over the stack, its tomogram ``reconstruct``'s on the same folder (one function,
one order: bin the raw view, then warp it), and the aligned stack in the input's integer mode unless asked."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main


@pytest.fixture(scope="module")
def int16_run(tmp_path_factory):
    """A 256 x 256 x 41 int16 bead series (counts about 1000 +- a few hundred) and ``tomoalign run`` on it."""
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    d = tmp_path_factory.mktemp("run16")
    s = make_bead_series("plastic", size=256, n_views=41, seed=3)
    img = s.images.astype(np.float64)
    counts = np.rint(1000.0 + 300.0 * (img - img.mean()) / img.std()).astype(np.int16)
    path = d / "beads.st"
    write_mrc(path, counts, 10.0 * s.pixel_size_nm)
    (d / "beads.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    rc = main(["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(d / "run"),
               "--quiet"])
    assert rc == 0
    return path, d / "run"


def _data(path):
    with mrcfile.open(path, permissive=True) as m:
        return np.array(m.data), int(m.header.mode)


def test_run_tomogram_is_reconstruct_on_the_same_folder(int16_run):
    path, run = int16_run
    out = run.parent / "hand_bin2.rec"
    assert main(["reconstruct", str(path), "--alignment", str(run / "alignment"), "--bin", "2", "--output", str(out),
                 "--quiet"]) == 0
    a, mode_a = _data(run / "beads_bin2.rec")
    b, mode_b = _data(out)
    assert a.shape == b.shape and mode_a == mode_b == 1  # int16 in, int16 tomogram (as reconstruct keeps it)
    assert np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1] > 0.9999
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # the two warps round differently in float32 at most


def test_run_aligned_stack_keeps_the_integer_mode_and_is_aligned_stack_by_hand(int16_run):
    path, run = int16_run
    ali, mode = _data(run / "beads.ali")
    assert mode == 1 and ali.dtype == np.int16
    out = run.parent / "hand.ali"
    assert main(["aligned-stack", str(path), "--alignment", str(run / "alignment"), "--output", str(out),
                 "--quiet"]) == 0
    hand, hand_mode = _data(out)
    assert hand_mode == 1 and np.array_equal(hand, ali)
    as_float = run.parent / "float.ali"
    assert main(["aligned-stack", str(path), "--alignment", str(run / "alignment"), "--output", str(as_float),
                 "--mode", "float32", "--quiet"]) == 0
    f, f_mode = _data(as_float)
    assert f_mode == 2 and np.abs(f - ali).max() <= 0.5 + 1e-3 and np.abs(f - ali).mean() > 0.1  # rounded, not cut


def test_run_mode_option_and_a_bad_mode(tmp_path):
    from napari_tomoalign.errors import UsageError
    from napari_tomoalign.jobs.images import in_mode, output_mode

    assert output_mode(np.dtype(">i2"), None) == np.int16 and output_mode(np.float32, None) == np.float32
    assert output_mode(np.uint8, None) == np.uint8 and output_mode(np.int16, "float32") == np.float32
    assert output_mode(np.float64, None) == np.float32
    with pytest.raises(UsageError, match="give one of int16, float32"):
        output_mode(np.int16, "int32")
    clipped = in_mode(np.array([-40000.0, 1.4, 1.6, 40000.0]), np.dtype(np.int16))
    assert clipped.tolist() == [-32768, 1, 2, 32767]
