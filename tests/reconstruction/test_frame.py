"""The aligned frame (`reconstruction.frame`): transposed, as etomo does, when the alignment turns a non-square
frame nearer 90 degrees than 0, so that the field along the tilt axis reaches the aligned stack and the tomogram;
the square and the axis-near-0 cases unchanged to the byte."""

import mrcfile
import numpy as np
import pytest
from support.frames import field_fraction, frame_series, in_tomogram, inside_raw_field, peak_at, rotation

from napari_tomoalign.cli import main
from napari_tomoalign.errors import UsageError
from napari_tomoalign.file_jobs import aligned_stack_to_file, reconstruct_to_file
from napari_tomoalign.reconstruction.frame import frame_size, nearer_90, xf_rotation_deg
from napari_tomoalign.reconstruction.frame_option import parse_size
from napari_tomoalign.reconstruction.warp import aligned_stack, warp_view
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


def _xf(deg, n=5, shift=(0.0, 0.0)):
    xf = np.zeros((n, 2, 3))
    xf[:, :, :2] = rotation(deg)
    xf[:, :, 2] = shift
    return xf


@pytest.mark.parametrize(("raw", "deg", "size"), [
    ((160, 96), -84.0, (96, 160)), ((160, 96), 95.0, (96, 160)), ((160, 96), -10.0, (160, 96)),
    ((160, 96), 178.0, (160, 96)), ((128, 128), -84.0, (128, 128)), ((5760, 4092), -85.3, (4092, 5760)),
    ((160, 96), 45.0, (160, 96)),  # exactly half way: not nearer 90 (etomo: "closer to 90")
])
def test_the_frame_is_transposed_only_for_a_non_square_frame_turned_nearer_90(raw, deg, size):
    f = frame_size(raw, _xf(deg))
    assert f.size == size and f.transposed == (size != raw)
    assert f.rotation_deg == pytest.approx(deg)
    assert f.shape(2) == (size[1] // 2, size[0] // 2)  # binned after, whole blocks (as bin_image)


def test_the_rotation_ignores_undetermined_views_and_wraps_at_180():
    xf = _xf(179.0, 6)
    xf[1:3, :, :2] = rotation(-179.0)
    xf[4] = np.nan
    assert abs(abs(xf_rotation_deg(xf)) - 179.0) < 1.01
    assert not nearer_90(xf_rotation_deg(xf)) and not nearer_90(float("nan"))
    assert np.isnan(xf_rotation_deg(np.full((3, 2, 3), np.nan)))


def test_a_given_size_wins_and_bad_ones_are_refused():
    f = frame_size((160, 96), _xf(-84.0), size=(160, 96))
    assert f.size == (160, 96) and f.given and not f.transposed
    assert parse_size("4092,5760") == (4092, 5760) == parse_size("4092x5760")
    for bad in ("4092", "a,b", "0,5", "1,2,3"):
        with pytest.raises(ValueError, match="--size"):
            parse_size(bad)
    with pytest.raises(UsageError, match="from 1 to 640"):
        frame_size((160, 96), _xf(-84.0), size=(641, 96))


def test_a_raw_point_lands_where_the_frame_says_in_the_warped_view():
    raw = np.zeros((96, 160), np.float32)
    raw[30, 121] = 1.0
    xf = _xf(-84.0, 1, shift=(2.5, -1.5))
    f = frame_size((160, 96), xf)
    view = warp_view(raw, xf[0], out_shape=f.shape(), fill=0.0)
    want = f.to_aligned(xf[0], np.array([[121.0, 30.0]]))[0]
    yy, xx = np.mgrid[0 : view.shape[0], 0 : view.shape[1]]
    got = np.array([(view * xx).sum(), (view * yy).sum()]) / view.sum()
    np.testing.assert_allclose(got, want, atol=0.05)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return frame_series(tmp_path_factory.mktemp("frame"))


def test_the_raw_field_reaches_the_tomogram_but_the_corners_the_axis_turn_leaves(odd):
    """160 x 96 at 84 degrees, the specimen over the whole raw field, the true alignment: the raw-sized tomogram
    (as before, now ``--size 160,96``) holds about 60% of the points; the transposed one all but those in the
    corners that the 6 degrees the axis is off 90 turn out of it (as etomo's frame), each reconstructed as a peak.
    Each fraction is the share of the raw field the frame holds, to sampling error."""
    assert inside_raw_field(odd).all()
    frac, truth = {}, {}
    for name, size in (("raw", (160, 96)), ("transposed", None)):
        out = odd.stack.parent / f"{name}.rec"
        r = reconstruct_to_file(odd.stack, odd.xf_path, out, thickness=24, size=size)
        vol = mrcfile.read(out)
        assert vol.shape == r.shape == ((24, 96, 160) if size else (24, 160, 96))
        inside = in_tomogram(odd.xyz, vol)
        frac[name], truth[name] = inside.mean(), field_fraction(odd, vol.shape[:0:-1])
        peaks = peak_at(odd.xyz[inside], vol)
        assert peaks.min() > 6 * vol.std()  # every point on the tomogram is there, as a peak
    sampling = 3 * np.sqrt(0.25 / len(odd.xyz))
    assert abs(frac["raw"] - truth["raw"]) < sampling and truth["raw"] < 0.62
    assert abs(frac["transposed"] - truth["transposed"]) < sampling and truth["transposed"] > 0.93


def test_at_90_degrees_every_point_reaches_the_tomogram(tmp_path):
    s = frame_series(tmp_path, axis_deg=90.0, n_points=120, tilts=np.arange(-60.0, 61.0, 6.0), seed=2, shift_px=0.0)
    r = reconstruct_to_file(s.stack, s.xf_path, tmp_path / "t.rec", thickness=24, binning=2)
    vol = mrcfile.read(r.path)
    assert vol.shape == (12, 80, 48)
    assert in_tomogram(s.xyz, vol, binning=2).all()


def test_the_streamed_tomogram_is_the_wbp_of_the_transposed_aligned_stack(odd):
    out = odd.stack.parent / "stream.rec"
    reconstruct_to_file(odd.stack, odd.xf_path, out, thickness=24, binning=2)
    f = frame_size(odd.raw_size, odd.transforms)
    raw = mrcfile.read(odd.stack)
    ali = aligned_stack(raw, odd.transforms, binning=2, out_shape=f.shape(2))
    ref = weighted_back_projection(ali, odd.tilts, thickness=12)  # the views binned already
    np.testing.assert_allclose(mrcfile.read(out), ref, atol=1e-5 * np.abs(ref).max())


def test_the_output_lines_name_the_frame(odd, capsys):
    d = odd.stack.parent
    assert main(["aligned-stack", str(odd.stack), "--alignment", str(odd.xf_path), "--output", str(d / "o.ali")]) == 0
    assert main(["reconstruct", str(odd.stack), "--alignment", str(odd.xf_path), "--output", str(d / "o.rec"),
                 "--bin", "2", "--thickness", "24"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    assert "aligned views of 96 x 160, 2.170 A/pixel; aligned frame 96 x 160 (x by y; the raw 160 x 96 transposed" \
        in lines[0]
    assert "48 x 80 x 12 (x, y, z)" in lines[1] and "aligned frame 48 x 80 (x by y; the raw 160 x 96 transposed" in lines[1]
    assert mrcfile.read(d / "o.ali").shape == (len(odd.tilts), 160, 96)
    assert main(["aligned-stack", str(odd.stack), "--alignment", str(odd.xf_path), "--output", str(d / "p.ali"),
                 "--size", "100,50", "--bin", "2"]) == 0
    assert "aligned views of 50 x 25, 4.340 A/pixel; aligned frame 50 x 25 (x by y; as given by --size, binned by 2)" in \
        capsys.readouterr().out
    assert main(["aligned-stack", str(odd.stack), "--alignment", str(odd.xf_path), "--output", str(d / "q.ali"),
                 "--size", "100"]) == 2
    assert "--size '100': give WIDTH,HEIGHT" in capsys.readouterr().err
    assert main(["aligned-stack", str(odd.stack), "--alignment", str(odd.xf_path), "--output", str(d / "q.ali"),
                 "--size", "1,1", "--bin", "2"]) == 2
    assert "less than one binned pixel" in capsys.readouterr().err and not (d / "q.ali").exists()


@pytest.mark.parametrize(("raw", "deg"), [((128, 128), -84.0), ((160, 96), -12.0)])
def test_the_square_and_the_axis_near_0_cases_are_what_they_were(tmp_path, raw, deg):
    """The frame is the raw one: the aligned stack is `warp.aligned_stack`'s default frame, and the files are those
    of the raw frame given by hand, to the byte."""
    s = frame_series(tmp_path, raw_size=raw, axis_deg=deg, n_points=60, tilts=np.arange(-60.0, 61.0, 10.0))
    assert frame_size(raw, s.transforms).size == raw
    a = aligned_stack_to_file(s.stack, s.xf_path, tmp_path / "a.ali")
    np.testing.assert_array_equal(mrcfile.read(a.path), aligned_stack(mrcfile.read(s.stack), s.transforms))
    assert a.notes == ()
    for name, size in (("default", None), ("given", raw)):
        reconstruct_to_file(s.stack, s.xf_path, tmp_path / f"{name}.rec", thickness=20, binning=2, size=size)
        aligned_stack_to_file(s.stack, s.xf_path, tmp_path / f"{name}.ali", binning=2, size=size)
    for ext in ("rec", "ali"):
        assert (tmp_path / f"default.{ext}").read_bytes() == (tmp_path / f"given.{ext}").read_bytes()


def test_local_alignments_place_their_patches_in_the_transposed_frame(odd):
    """A local file (as IMOD's tiltalign and `align --local` make it, its patch grid over the raw-sized frame about
    the centre the frames share) whose patches below the middle shift every view by +2 px and those above by -2 px:
    the local tomogram's rows there are the global tomograms of the alignment shifted by the same amounts, and
    its middle row blends the two (0), as the patches sit in the transposed frame."""
    from napari_tomoalign.io.imod import write_xf
    from napari_tomoalign.io.imod_local import LocalTransforms, write_local_transforms

    d = odd.stack.parent
    n = len(odd.tilts)
    xf = np.zeros((4, n, 2, 3))
    xf[..., :2] = np.eye(2)
    xf[:2, :, :, 2] = [2.0, 0.0]  # the two patches at y = -30 (IMOD y 18 of the 96-row raw frame)
    xf[2:, :, :, 2] = [-2.0, 0.0]  # and at y = +30
    write_local_transforms(d / "oddlocal.xf", LocalTransforms((2, 2), (30, 18), (100, 60), 21.7, np.zeros((4, n)), xf))
    try:
        local = reconstruct_to_file(odd.stack, odd.xf_path, d / "local.rec", thickness=24, local=True)
    finally:
        (d / "oddlocal.xf").unlink()
    vol = mrcfile.read(local.path)
    assert vol.shape == (24, 160, 96)
    (d / "shifted").mkdir(exist_ok=True)
    for y, shift in ((-60, 2.0), (0, 0.0), (60, -2.0)):
        moved = odd.transforms.copy()
        moved[:, :, 2] -= np.array([shift, 0.0])  # sampled at proj + shift: the content moved by -shift
        stem = d / "shifted" / f"s{int(shift)}"
        write_xf(stem.with_suffix(".xf"), moved, overwrite=True)
        np.savetxt(stem.with_suffix(".tlt"), odd.tilts, fmt="%.2f")
        ref = mrcfile.read(reconstruct_to_file(odd.stack, stem.with_suffix(".xf"), stem.with_suffix(".rec"),
                                               thickness=24, overwrite=True).path)
        row = int(round(y + (160 - 1) / 2))
        a, b = vol[:, row - 3:row + 4].ravel(), ref[:, row - 3:row + 4].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.98, (y, shift)
