"""``--shift`` beyond the specimen (new user s14, finding 24: ``--shift 5000 0`` wrote an all-zero tomogram, ``--shift 0
5000`` one of streaks, silently): the X range `shift_check` allows is where the WBP's volume stops being all zero;
a shift beyond it, or beyond where the thickest tomogram reaches, is refused in one line with the numbers; a shift
that holds none of the markers is warned about (the tomogram is still written, as IMOD's tilt would write it)."""

import mrcfile
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_tomoalign.cli import main
from napari_tomoalign.reconstruction.shift_check import x_range
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


@pytest.mark.parametrize("z_centre", [0.0, 40.0, -90.0])
def test_the_x_range_is_where_the_volume_stops_being_empty(z_centre):
    tilts = np.linspace(-60, 60, 31)
    rng = np.random.default_rng(0)
    views = np.stack([gaussian_filter(rng.normal(size=(8, 64)), 1.0) + 5.0 for _ in tilts]).astype(np.float32)
    lo, hi = x_range(tilts, 64, 32, z_centre)
    assert lo < 0 < hi
    for sx, empty in ((hi + 1.5, True), (hi - 1.5, False), (lo - 1.5, True), (lo + 1.5, False), (0.0, False)):
        # IMOD's SHIFT (sx, z_centre) is wbp's (sx, -z_centre)
        vol = weighted_back_projection(views, tilts, thickness=32, shift_px=(sx, -z_centre))
        assert (np.abs(vol).max() == 0.0) == empty, (sx, lo, hi)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("shiftdemo")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    return d


@pytest.mark.parametrize("shift, said", [(["5000", "0"], "would lie outside every view, an empty tomogram; for this"
                                                          " thickness and Z, X may go from -"),
                                         (["0", "5000"], "would reach 5048 px from the tilt axis, beyond the 1024 px")])
@pytest.mark.parametrize("local", [[], ["--local"]])
def test_a_shift_beyond_every_view_or_any_specimen_is_refused(demo_dir, tmp_path, capsys, shift, said, local):
    if local:
        assert main(["align", str(demo_dir / "sample_markers.csv"), "--tilt-angles", str(demo_dir / "sample.rawtlt"),
                     "--image-size", "512", "512", "--local", "--output", str(tmp_path / "al"), "--quiet"]) == 0
    alignment = tmp_path / "al" if local else demo_dir
    rec = tmp_path / "t.rec"
    assert main(["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(alignment), "--output", str(rec),
                 "--bin", "4", "--thickness", "96", "--shift", *shift, *local]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err
    assert not rec.exists()


def test_a_shift_that_holds_no_marker_is_warned_about(demo_dir, tmp_path, capsys):
    base = ["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(demo_dir), "--bin", "4", "--thickness", "96"]
    assert main([*base, "--shift", "0", "600", "--output", str(tmp_path / "far.rec"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: --shift 0 600 puts the volume (96 px thick) at z 552 to 648" in err, err
    assert "above them all: the " in err and "the volume likely holds no specimen; --shift 0 " in err
    centre = int(err.rsplit("--shift 0 ", 1)[1].split()[0])
    assert abs(centre) < 48
    with mrcfile.open(tmp_path / "far.rec") as m:
        assert m.data.shape == (24, 128, 128)  # written all the same
    assert main([*base, "--shift", "0", str(centre), "--output", str(tmp_path / "near.rec"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    low, high = (float(v) for v in err.split("markers lie at z ", 1)[1].split(" (")[0].split(" to "))
    thin = ["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(demo_dir), "--bin", "4", "--thickness", "8"]
    assert main([*thin, "--shift", "0", f"{(low + high) / 2:.0f}", "--output", str(tmp_path / "mid.rec"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # a thin slab between the markers' highest and lowest: not warned about
    assert main([*thin, "--shift", "0", f"{low - 20:.0f}", "--output", str(tmp_path / "low.rec"), "--quiet"]) == 0
    assert "below them all" in capsys.readouterr().err


def test_a_volume_placed_without_shift_above_or_below_the_markers_is_warned_about_too(demo_dir, tmp_path, capsys):
    """No --shift: the volume about the tilt axis. Between the demo's two bead layers a thin one says nothing; one
    that misses a layer of markers on one side is said so, without naming a --shift the user did not give."""
    from napari_tomoalign.reconstruction.shift_check import markers_outside

    base = ["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(demo_dir), "--bin", "4", "--output"]
    assert main([*base, str(tmp_path / "a.rec"), "--thickness", "600", "--shift", "0", "700", "--quiet"]) == 0
    low, high = (float(v) for v in capsys.readouterr().err.split("markers lie at z ", 1)[1].split(" (")[0].split(" to "))
    assert low < -40 and high > 40  # two layers, either side of the tilt axis
    assert main([*base, str(tmp_path / "b.rec"), "--thickness", "4", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    layer = np.array([[x, y, 100.0 + 0.01 * x] for x in (-200.0, 0.0, 150.0) for y in (-100.0, 80.0)])
    said = markers_outside((0.0, 0.0), layer, 512, 20, 0.0, 0.0, given=False)
    assert said is not None and said.startswith("warning: the volume lies (20 px thick) at z -10 to 10, below them all")
    assert said.endswith("--shift 0 100 centres them")
    assert markers_outside((0.0, 100.0), layer, 512, 20, 0.0, 0.0, given=False) is None
