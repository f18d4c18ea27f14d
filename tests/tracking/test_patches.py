"""Patch tracking (no gold) against simulated lamellae with known geometry: the parts, the recovery of the
geometry end to end, a blank stack refused in one line, and the command line's contract."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.alignment.transforms import imod_transforms
from napari_tomoalign.cli import main
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.simulation.lamella import end_to_end_error, make_lamella_series
from napari_tomoalign.tracking._patch_follow import PatchCorrelator
from napari_tomoalign.tracking.patches import (
    PatchOptions,
    PatchTrackingError,
    chop_contours,
    lay_patches,
    track_patches,
)


@pytest.fixture(scope="module")
def thin():
    """A 20 nm lamella at 1 nm/px (thin enough that each patch follows one depth), 256 x 256 x 41."""
    return make_lamella_series("easy", 256, seed=2, thickness_nm=20.0)


def test_the_correlator_finds_sub_pixel_shifts_without_a_pull_to_whole_pixels():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.standard_normal((200, 200)), 3).astype(np.float32)
    corr = PatchCorrelator(64, 0.03, 0.125, 0.03, 16)
    for shift in ((0.0, 0.4), (-0.3, 0.25), (0.45, -0.2)):
        moved = ndimage.shift(img, shift[::-1], order=3)
        res = corr.correlate(img[60:124, 60:124][None], moved[60:124, 60:124][None])
        assert res.shift[0] == pytest.approx(shift, abs=0.05)
        assert res.ncc[0] > 0.9 and res.roundness[0] > 0.3


def test_patches_are_laid_3_32_of_the_image_overlapping_by_half():
    xy = lay_patches((1024, 1024), PatchOptions())
    assert len(xy) == 19 * 19  # 96 px patches, 51 px borders, steps of at most 48 px
    step = np.diff(np.unique(xy[:, 0]))
    assert np.all(step <= 96 * 0.5 + 1e-9) and xy.min() >= 51 + 96 / 2 - 1 and xy.max() <= 1023 - 51 - 47
    # etomo's fifth of the image with a third overlap, asked for
    assert len(lay_patches((1024, 1024), PatchOptions(patch_size=204, overlap=0.33))) == 49
    # the default on other sizes: 384 px on 4096, at least 48 px, a fifth of images under 240 px
    assert [PatchOptions().size_for((n, n)) for n in (4096, 512, 256, 200)] == [384, 48, 48, 40]


def test_tracks_are_cut_into_overlapping_contours_in_tilt_order():
    tilts = np.linspace(-60, 60, 41)
    pos = np.zeros((41, 2, 2))
    pos[:5, 1] = np.nan  # patch 2 tracked in 36 views
    table, patch_of, short = chop_contours(pos, tilts, 16, 4)
    counts = np.bincount(table.marker)[1:]
    assert list(patch_of) == [0, 0, 0, 1, 1, 1] and short == 0
    assert list(counts) == [16, 16, 17, 16, 16, 12]  # pieces start every 12 views; a short tail joins the last
    first = table.view[table.marker == 2]
    assert first.min() == 12 and first.max() == 27


def test_a_thin_lamella_is_recovered_end_to_end(thin):
    r = track_patches(thin.images, thin.tilt_angles_deg, tilt_axis_deg=thin.tilt_axis_deg)
    al = r.alignment
    err = end_to_end_error(imod_transforms(al), al.output_tilt_angles_deg(), (256, 256), thin.true_xy)
    assert err < 0.8, r.summary()  # 0.38 px here; thicker slabs drift (see benchmarks/bench_patches.py)
    assert abs(al.tilt_axis_deg - thin.tilt_axis_deg) < 1.0
    assert r.n_contours >= 60 and "patches of 48 px" in r.summary()
    # the second pass (windows where the first fit projects each contour's point) ran and kept the contours
    assert "second pass" in r.timings_s and r.dropped["contours lost in the second pass"] <= 0.1 * r.n_contours
    assert r.patch_of.shape == (r.n_contours,) and r.markers.marker.max() == r.n_contours
    # The same tracks scattered to a mean residual of 5 px are refused, in one line with the deciding figure.
    from dataclasses import replace

    mean = float(np.nanmean(np.hypot(*al.residuals_px.T)))
    scattered = replace(r, alignment=replace(al, residuals_px=(5.0 / mean) * al.residuals_px))
    with pytest.raises(PatchTrackingError, match=r"the patches disagree: mean residual \d+\.\d+ px") as exc:
        scattered.check_agreement()
    assert "\n" not in str(exc.value)
    few = replace(r, markers=type(r.markers)(r.markers.view[:100], r.markers.marker[:100], r.markers.xy[:100]))
    with pytest.raises(PatchTrackingError, match=r"too few patches could be followed: a median of \d+ points per view"):
        few.check_agreement()


def test_the_protective_layer_is_left_out_at_the_start(thin):
    lam = make_lamella_series("easy", 256, seed=3, thickness_nm=20.0, protective=0.25)
    r = track_patches(lam.images, lam.tilt_angles_deg, tilt_axis_deg=lam.tilt_axis_deg)
    assert r.dropped["dark at the start (protective layer)"] >= 3
    assert r.centres[:, 0].min() > 0.2 * 256  # nothing followed on the dark band at the left


def test_a_stack_without_texture_is_refused_in_one_line():
    rng = np.random.default_rng(1)
    blank = rng.poisson(20.0, (21, 256, 256)).astype(np.float32)
    with pytest.raises(PatchTrackingError, match="too little texture") as exc:
        track_patches(blank, np.linspace(-60, 60, 21), tilt_axis_deg=0.0)
    assert "\n" not in str(exc.value) and "median correlation" in str(exc.value)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="patch size"):
        PatchOptions(patch_size=400).check((256, 256))
    with pytest.raises(ValueError, match="overlap"):
        PatchOptions(overlap=0.95).check((256, 256))
    with pytest.raises(ValueError, match="1 or 2 iterations"):
        PatchOptions(iterations=3).check((256, 256))


def test_the_command_line_tracks_patches_and_keeps_its_contract(thin, tmp_path, capsys):
    path = tmp_path / "lam.st"
    write_mrc(path, thin.images, 10.0 * thin.pixel_size_nm)
    (tmp_path / "lam.rawtlt").write_text("".join(f"{a:.2f}\n" for a in thin.tilt_angles_deg))
    out = tmp_path / "lam.csv"
    assert main(["track", str(path), "--patches", "--tilt-axis", "-4", "--output", str(out)]) == 0
    assert "patch tracking" in capsys.readouterr().out
    t = read_markers(out)
    assert len(np.unique(t.marker)) >= 60 and (tmp_path / "lam_patches.csv").exists()
    # one line and exit 2: an existing output, patch options without --patches, gold erasure with no gold,
    # a patch larger than the image
    assert main(["track", str(path), "--patches", "--output", str(out), "--quiet"]) == 2
    assert main(["track", str(path), "--bead-diameter-px", "5", "--patch-size", "40", "--output",
                 str(tmp_path / "b.csv")]) == 2
    assert main(["run", str(path), "--patches", "--erase-gold", "--output", str(tmp_path / "r")]) == 2
    assert main(["track", str(path), "--patches", "--patch-size", "999", "--output", str(tmp_path / "c.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 4
    assert not (tmp_path / "r").exists() and not (tmp_path / "c.csv").exists()


def test_a_nan_patch_is_refused_naming_its_view(thin, tmp_path, capsys):
    images = thin.images.copy()
    images[7, 100:140, 60:90] = np.nan  # a NaN region in view 8
    path = tmp_path / "nan.st"
    with mrcfile.new(path) as mrc, pytest.warns(RuntimeWarning, match="NaN"):  # our writer refuses NaN
        mrc.set_data(images)
    (tmp_path / "nan.rawtlt").write_text("".join(f"{a:.2f}\n" for a in thin.tilt_angles_deg))
    assert main(["track", str(path), "--patches", "--output", str(tmp_path / "n.csv"), "--quiet"]) == 2
    assert main(["run", str(path), "--patches", "--output", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count("view 8 of the stack nan.st holds NaN") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.rawtlt", "nan.st"]
    with pytest.raises(ValueError, match="view 8 of the stack holds NaN"):
        track_patches(images, thin.tilt_angles_deg, tilt_axis_deg=thin.tilt_axis_deg)


def test_a_batch_table_column_aligns_a_stack_by_patch_tracking(thin, tmp_path):
    pytest.importorskip("dask.distributed")
    import json

    from dask.distributed import Client, LocalCluster

    from napari_tomoalign.batch import run_batch

    folder = tmp_path / "in"
    folder.mkdir()
    write_mrc(folder / "lam.st", thin.images, 10.0)
    (folder / "lam.rawtlt").write_text("".join(f"{a:.2f}\n" for a in thin.tilt_angles_deg))
    write_mrc(folder / "gold.st", thin.images, 10.0)
    (folder / "gold.rawtlt").write_text("".join(f"{a:.2f}\n" for a in thin.tilt_angles_deg))
    table = folder / "t.csv"
    table.write_text("stack,patches,tilt_axis,erase_gold\nlam.st,yes,-4,\ngold.st,yes,,yes\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client:
            res = run_batch(table, tmp_path / "out", client=client, progress=False)
    rows = {r["name"]: r for r in res.rows}
    assert rows["lam"]["status"] == "done", rows["lam"]["error"]
    assert rows["gold"]["status"] == "failed" and "needs gold" in rows["gold"]["error"]
    d = tmp_path / "out" / "lam"
    assert (d / "lam_patches.csv").is_file() and (d / "lam.ali").is_file() and (d / "lam_bin2.rec").is_file()
    info = json.loads((d / "tracking.json").read_text())
    assert info["method"] == "patch tracking" and info["beads_tracked"] >= 60
