"""``reconstruct --slices/--width/--log`` (IMOD's SLICE, WIDTH and LOG): a subset equals the same region cut
from the whole tomogram; the logarithm equals the in-memory WBP of log10 of the aligned views."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import read_alignment_dir
from napari_tomoalign.reconstruction.subset import LOG_FLOOR, binned_columns, binned_rows
from napari_tomoalign.reconstruction.warp import aligned_stack, bin_image
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo_subset")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    stack = d / "sample.mrc"
    whole = d / "whole.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(d), "--output", str(whole), "--bin", "4",
                 "--thickness", "96", "--mode", "float32", "--quiet"]) == 0
    with mrcfile.open(whole) as m:
        return d, stack, m.data.copy()


def reconstruct(demo, tmp_path, *extra: str) -> np.ndarray:
    d, stack, _ = demo
    out = tmp_path / "part.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(d), "--output", str(out), "--bin", "4",
                 "--thickness", "96", "--mode", "float32", "--quiet", "--force", *extra]) == 0
    with mrcfile.open(out) as m:
        return m.data.copy()


def test_the_rows_and_columns_imod_numbers(demo):
    _, stack, whole = demo
    height, width = whole.shape[1] * 4, whole.shape[2] * 4
    assert (height, width) == (512, 512)
    assert binned_rows((100, 299), height, 4) == (25, 75)  # rows 100..299 from 0: binned 24.6 -> 25 .. 74.4 -> 74
    assert binned_rows((0, 511), height, 4) == (0, 128)  # the whole, both ends included
    assert binned_rows((255, 255), height, 4) == (63, 64)  # one slice: one row (the block of rows 252-255)
    assert binned_columns(300, width, 4) == (26, 101)  # 75 columns centred in 128 (to half a pixel)
    assert binned_columns(512, width, 4) == (0, 128)


def test_a_band_of_slices_and_a_narrower_width_are_that_region_of_the_whole(demo, tmp_path):
    whole = demo[2]
    part = reconstruct(demo, tmp_path, "--slices", "100,299", "--width", "300", "--memory", "400M")
    assert part.shape == (24, 50, 75)
    np.testing.assert_allclose(part, whole[:, 25:75, 26:101], rtol=0, atol=1e-6 * np.abs(whole).max())
    rows_only = reconstruct(demo, tmp_path, "--slices", "0,3")  # IMOD's quick look: a few slices
    np.testing.assert_allclose(rows_only, whole[:, 0:1], rtol=0, atol=1e-6 * np.abs(whole).max())


def test_log_is_the_wbp_of_log10_of_the_aligned_views(demo, tmp_path):
    d, stack, _ = demo
    with mrcfile.open(stack) as m:
        raw = m.data.astype(np.float32)
    offset = float(-raw.min() + 0.05 * np.ptp(raw))  # every value positive: a stained section's intensities
    got = reconstruct(demo, tmp_path, "--log", f"{offset!r}")
    saved = read_alignment_dir(d)
    views = np.flatnonzero(saved.view_determined)
    binned = np.stack([bin_image(raw[j], 4) for j in views])
    floor = LOG_FLOOR * float(binned.max() - binned.min())
    ali = aligned_stack(raw[views], saved.transforms[views], binning=4)
    ref = weighted_back_projection(np.log10(np.maximum(ali + np.float32(offset), floor)), saved.tilt_angles_deg[views],
                                   thickness=24)
    np.testing.assert_allclose(got, ref, rtol=0, atol=3e-5 * np.abs(ref).max())  # no rescaling, as IMOD's tilt


@pytest.mark.parametrize("extra,said", [
    (["--slices", "5,3"], "--slices 5,3 runs backwards: write 3,5"),
    (["--slices=-2,3"], "--slices -2,3: give FIRST <= LAST, numbered from 0"),
    (["--slices", "0,512"], "the aligned views have rows 0 to 511 (numbered from 0)"),
    (["--slices", "1-3"], "give FIRST,LAST"),
    (["--width", "0"], "--width 0: give a positive number"),
    (["--width", "600"], "--width 600 is wider than the aligned views (512 unbinned pixels)"),
    (["--log=-1e9"], "nothing is positive to take the logarithm of"),
])
def test_wrong_values_are_refused_in_one_line(demo, tmp_path, capsys, extra, said):
    d, stack, _ = demo
    assert main(["reconstruct", str(stack), "--alignment", str(d), "--output", str(tmp_path / "x.rec"), "--bin", "4",
                 "--thickness", "96", *extra]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.rec").exists()


def test_an_options_error_comes_before_the_existing_output(demo, tmp_path, capsys):
    """--slices 5,3 onto an existing x.rec: its own error first, not "already exists" then it (s16 new user)."""
    d, stack, _ = demo
    (tmp_path / "x.rec").write_bytes(b"kept")
    assert main(["reconstruct", str(stack), "--alignment", str(d), "--output", str(tmp_path / "x.rec"), "--bin", "4",
                 "--slices", "5,3"]) == 2
    err = capsys.readouterr().err
    assert "--slices 5,3 runs backwards" in err and "already exists" not in err, err
    assert (tmp_path / "x.rec").read_bytes() == b"kept"
