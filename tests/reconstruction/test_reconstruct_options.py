"""``tomoalign reconstruct`` with IMOD's options, streamed: the same volume as the in-memory WBP."""

import re

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import read_alignment_dir
from napari_tomoalign.reconstruction.reconstruct_job import parse_memory, parse_view_list
from napari_tomoalign.reconstruction.warp import aligned_stack, bin_image
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo24")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    return d


def test_imod_options_give_the_in_memory_volume(demo_dir, tmp_path):
    stack = demo_dir / "sample.mrc"
    rec = tmp_path / "t.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(rec), "--bin", "4",
                 "--thickness", "96", "--radial", "0.35", "0.05", "--exclude-views", "1-3,61", "--offset", "0.5",
                 "--shift", "4", "-8", "--memory", "1G", "--quiet"]) == 0
    saved = read_alignment_dir(demo_dir)
    with mrcfile.open(stack) as m:
        raw = m.data.copy()
    views = np.flatnonzero(saved.view_determined & ~np.isin(np.arange(61), [0, 1, 2, 60]))
    ali = aligned_stack(raw[views], saved.transforms[views], binning=4)
    ref = weighted_back_projection(ali, saved.tilt_angles_deg[views] + 0.5, thickness=24, lowpass_cutoff=0.35,
                                   shift_px=(1.0, 2.0))  # IMOD's SHIFT 4 -8: z negated for wbp (wbp_shift)
    with mrcfile.open(rec) as m:
        got = m.data.copy()
        assert m.voxel_size.x == pytest.approx(40.0) and m.header.mode == 2
    np.testing.assert_allclose(got, ref, atol=3e-5 * np.abs(ref).max())


def test_level_mode_and_sirt_like(demo_dir, tmp_path):
    stack = demo_dir / "sample.mrc"
    rec = tmp_path / "lev.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(rec), "--bin", "4",
                 "--level", "1", "--mode", "int16", "--scale", "0", "100", "--sirt-like", "8", "--quiet"]) == 0
    with mrcfile.open(rec) as m:
        assert m.data.dtype == np.int16 and m.data.shape[1:] == (128, 128)
        assert 4 <= m.data.shape[0] <= 96 and m.data.std() > 0


def test_a_counting_camera_int16_stack_gives_a_tomogram_with_grey_levels(demo_dir, tmp_path, capsys):
    """Session 11's finding 1: an int16 stack of a few counts per pixel gave an int16 tomogram of 0 to 3 grey
    levels, silently. The integer tomogram now takes a SCALE from the data, said on the last line; a --scale
    that still leaves too few levels is warned about (on stderr, --quiet too)."""
    from napari_tomoalign.io.mrc import write_mrc

    with mrcfile.open(demo_dir / "sample.mrc") as m:
        raw, voxel = m.data.copy(), float(m.voxel_size.x)
    counts = np.random.default_rng(0).poisson(np.clip(2.0 + (raw - raw.mean()) / raw.std(), 0.0, None))
    write_mrc(tmp_path / "c.st", counts.astype(np.int16), voxel)
    base = ["reconstruct", str(tmp_path / "c.st"), "--alignment", str(demo_dir), "--bin", "4", "--thickness", "96"]
    assert main(base + ["--output", str(tmp_path / "a.rec")]) == 0
    out = capsys.readouterr().out
    assert "int16 values: (density " in out and "(IMOD's SCALE; --scale to choose)" in out
    with mrcfile.open(tmp_path / "a.rec") as m:
        assert m.data.dtype == np.int16 and len(np.unique(m.data)) > 5000
    assert main(base + ["--output", str(tmp_path / "b.rec"), "--scale", "0", "1", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grey levels in int16; give a larger --scale MULT, or --mode float32" in err[0]


def test_level_prints_the_surface_analysis_and_what_it_applied(demo_dir, tmp_path, capsys):
    """``reconstruct --level`` prints the surface analysis as ``align`` prints it (`SurfaceAnalysis.report`) and one
    line of the angle offset, X-axis tilt, thickness and Z shift it used; a given thickness is the one reported."""
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    stack = demo_dir / "sample.mrc"
    saved = read_alignment_dir(demo_dir)
    auto = plan_tomogram(saved, demo_dir, thickness=None, options=ReconstructOptions(level=2))
    for extra, thickness, offset in (([], auto.thickness, 0.0), (["--thickness", "200", "--offset", "1.5"], 200, 1.5)):
        plan = plan_tomogram(saved, demo_dir, thickness=None, options=ReconstructOptions(level=2, offset_deg=offset))
        capsys.readouterr()
        rec = tmp_path / f"lev{thickness}.rec"
        assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(rec), "--bin", "4",
                     "--level", "2", *extra]) == 0
        out = capsys.readouterr().out
        assert plan.surfaces.report() in out and out.count("SURFACE ANALYSIS:") == 1
        lev = plan.levelled
        line = [t for t in out.splitlines() if t.startswith("Levelled from the surface analysis (2 surfaces)")]
        assert len(line) == 1, out
        assert (f"angle offset {lev.tilt_change_deg:+.2f} deg (IMOD's OFFSET" in line[0] and
                f"X-axis tilt {lev.x_axis_tilt_deg:+.2f} deg (IMOD's XAXISTILT" in line[0] and
                f"thickness {thickness} px" + (f" (--thickness; the markers' {auto.thickness})" if extra else "")
                + f", Z shift {lev.z_shift_px:+.1f} px (unbinned" in line[0]), line[0]
        assert lev.tilt_change_deg == pytest.approx(plan.surfaces.tilt_angle_change_deg + offset)
        with mrcfile.open(rec) as m:
            assert m.data.shape[0] == thickness // 4
    capsys.readouterr()
    assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(tmp_path / "plain.rec"),
                 "--bin", "4", "--thickness", "64"]) == 0
    assert "Levelled" not in capsys.readouterr().out  # without --level: nothing of it


@pytest.mark.parametrize("extra, message", [
    (["--exclude-views", "0"], "give view numbers from 1"),
    (["--exclude-views", "62"], "not a view of this 61-view series"),
    (["--exclude-views", "41-39"], "--exclude-views '41-39': 41-39 runs backwards: write 39-41"),
    (["--exclude-views", "1-60,61"], "fewer than two views"),
    (["--memory", "10M"], "too little memory"),
    (["--memory", "lots"], "argument --memory: 'lots': give a size such as 2G, 1500M or 800000K"),
    (["--memory", "10T"], "argument --memory: 10T: this machine has"),  # more than RAM and swap: never usable (s15 new user)
    (["--sirt-like", "100000"], "--sirt-like 100000: give at most 1000 iterations"),
    (["--memory", "10"], "10 bytes (--memory takes a size such as 2G or 1500M; a number alone is bytes) is too little"),
    (["--radial", "0.9", "0.05"], "the cutoff must be in (0, 0.5]"),
    (["--radial", "0.35", "-1"], "the falloff (a Gaussian's sigma) must be from 0 to 0.5"),
    (["--radial", "0.35", "nan"], "the falloff"),
    (["--radial", "0.35", "0.05", "--lowpass", "0.2"], "give --radial or --lowpass, not both"),
    (["--x-axis-tilt", "95"], "--x-axis-tilt 95: give an angle strictly between -90 and 90"),
    (["--offset", "nan"], "--offset nan: give a finite angle"),
    (["--offset", "100"], "every tilt must stay strictly between -90 and 90"),
    (["--shift", "nan", "0"], "--shift X Z: give finite shifts"),
    (["--shift", "0", "inf"], "--shift X Z: give finite shifts"),
    (["--sirt-like", "0"], "--sirt-like 0: give the number of SIRT iterations to mimic, at least 1"),
    (["--scale", "0", "0"], "a finite, non-zero MULT"),
    (["--scale", "nan", "1"], "--scale nan 1"),
])
def test_bad_options_are_one_line_and_exit_2(demo_dir, tmp_path, capsys, extra, message):
    rec = tmp_path / "bad.rec"
    code = main(["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(demo_dir), "--output", str(rec),
                 "--bin", "4", "--thickness", "64", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not rec.exists()


def test_lists_and_sizes():
    assert parse_view_list("1-3, 7,3", 10) == [0, 1, 2, 6]
    assert parse_memory("2G") == 2 * 2**30 and parse_memory("1500M") == 1500 * 2**20 and parse_memory("4096") == 4096
    with pytest.raises(ValueError, match="such as 2G"):
        parse_memory("lots")


def test_a_budget_beyond_the_machine_is_refused_and_one_within_it_kept():
    """The bound is the machine's RAM and swap (/proc/meminfo), read here independently."""
    from napari_tomoalign.reconstruction.reconstruct_job import machine_memory_bytes

    with open("/proc/meminfo") as f:
        kib = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("MemTotal", "SwapTotal")}
    whole = 1024 * (kib["MemTotal"] + kib.get("SwapTotal", 0))
    assert machine_memory_bytes() == whole
    assert parse_memory(f"{whole // 1024}K") == whole
    with pytest.raises(ValueError, match=f"has {whole / 2**30:.1f} GiB in all .RAM and swap.*give at most"):
        parse_memory(f"{whole // 1024 + 1}K")


def test_a_zfac_in_the_alignment_folder_is_applied_and_a_bad_one_named(demo_dir, tmp_path, capsys):
    import shutil

    al = tmp_path / "al"
    shutil.copytree(demo_dir, al, ignore=shutil.ignore_patterns("*.mrc", "*.ali", "*.rec"))
    stack = demo_dir / "sample.mrc"
    zf = np.column_stack([np.linspace(-0.05, 0.05, 61), np.full(61, 0.03)])
    np.savetxt(al / "sample.zfac", zf, fmt="%12.6f")
    rec = tmp_path / "z.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(al), "--output", str(rec), "--bin", "4",
                 "--thickness", "64", "--quiet"]) == 0
    saved = read_alignment_dir(al)
    with mrcfile.open(stack) as m:
        raw = m.data.copy()
    views = np.flatnonzero(saved.view_determined)
    ali = aligned_stack(raw[views], saved.transforms[views], binning=4)
    ref = weighted_back_projection(ali, saved.tilt_angles_deg[views], thickness=16, z_factors=zf[views])
    plain = weighted_back_projection(ali, saved.tilt_angles_deg[views], thickness=16)
    with mrcfile.open(rec) as m:
        got = m.data.copy()
    np.testing.assert_allclose(got, ref, atol=3e-5 * np.abs(ref).max())
    assert np.abs(got - plain).max() > 0.05 * np.abs(plain).max()
    (al / "sample.zfac").write_text("1 2\n")
    assert main(["reconstruct", str(stack), "--alignment", str(al), "--output", str(tmp_path / "y.rec"),
                 "--bin", "4", "--thickness", "64"]) == 2
    assert "two finite Z factors" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_dir(demo_dir, tmp_path_factory):
    al = tmp_path_factory.mktemp("local24") / "al"
    assert main(["align", str(demo_dir / "sample_markers.csv"), "--tilt-angles", str(demo_dir / "sample.rawtlt"),
                 "--image-size", "512", "512", "--local", "--output", str(al), "--quiet"]) == 0
    return al


def test_local_takes_the_filter_views_and_angles_options(demo_dir, local_dir, tmp_path):
    """``reconstruct --local`` applies ``--radial``, ``--sirt-like``, ``--exclude-views``, ``--offset`` and
    ``--x-axis-tilt`` as the global path does: the volume is the local WBP made with them by hand."""
    from napari_tomoalign.local_jobs import local_projection_for

    stack = demo_dir / "sample.mrc"
    rec = tmp_path / "loc.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(local_dir), "--local", "--output", str(rec), "--bin", "4",
                 "--thickness", "96", "--radial", "0.3", "0.08", "--sirt-like", "6", "--exclude-views", "1-2,61",
                 "--offset", "0.7", "--x-axis-tilt", "1.5", "--quiet"]) == 0
    saved = read_alignment_dir(local_dir)
    with mrcfile.open(stack) as m:
        raw = m.data.copy()
    use = saved.view_determined & ~np.isin(np.arange(61), [0, 1, 60])
    ali = aligned_stack(raw, saved.transforms, binning=4)
    x_tilt = (np.zeros(61) if saved.x_tilts_deg is None else saved.x_tilts_deg) - 1.5  # XAXISTILT: subtracted
    tilts = saved.tilt_angles_deg + 0.7
    lp = local_projection_for(local_dir / "samplelocal.xf", tilts, x_tilt, (128, 128), saved.pixel_size_nm,
                              saved.pixel_size_nm, 4)
    ref = weighted_back_projection(ali, tilts, thickness=24, use_view=use, lowpass_cutoff=0.3, lowpass_falloff=0.08,
                                   weighting="sirt-like", sirt_iterations=6, local=lp)
    plain = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=24, use_view=saved.view_determined,
                                     local=local_projection_for(local_dir / "samplelocal.xf", saved.tilt_angles_deg,
                                                                saved.x_tilts_deg, (128, 128), saved.pixel_size_nm,
                                                                saved.pixel_size_nm, 4))
    got = mrcfile.read(rec)
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    assert np.abs(got - plain).max() > 0.1 * np.abs(plain).max()  # the options changed it


def test_local_streams_as_the_global_path_with_memory_width_slices_and_log(demo_dir, local_dir, tmp_path):
    """``reconstruct --local`` is streamed in slabs of rows as without it (refused with --memory, --width, --slices
    and --log before session 19, its volume made whole in memory): each gives the part of the whole --local volume it
    asks for, and --log the local WBP of the logarithm made by hand."""
    from napari_tomoalign.local_jobs import local_projection_for
    from napari_tomoalign.reconstruction.subset import LOG_FLOOR

    stack = str(demo_dir / "sample.mrc")
    base = ["reconstruct", stack, "--alignment", str(local_dir), "--local", "--bin", "4", "--thickness", "64",
            "--quiet", "--output"]
    assert main([*base, str(tmp_path / "w.rec")]) == 0
    whole = mrcfile.read(tmp_path / "w.rec")
    assert main([*base, str(tmp_path / "m.rec"), "--memory", "1G"]) == 0
    np.testing.assert_array_equal(mrcfile.read(tmp_path / "m.rec"), whole)
    assert main([*base, str(tmp_path / "c.rec"), "--width", "256"]) == 0  # the middle 64 of 128 binned columns
    np.testing.assert_array_equal(mrcfile.read(tmp_path / "c.rec"), whole[:, :, 32:96])
    assert main([*base, str(tmp_path / "s.rec"), "--slices", "128,383"]) == 0  # binned rows 32 .. 95
    part = mrcfile.read(tmp_path / "s.rec")
    assert part.shape == (16, 64, 128)
    np.testing.assert_allclose(part, whole[:, 32:96], atol=5e-3 * np.abs(whole).max())  # its own first block
    with mrcfile.open(stack) as m:
        raw = m.data.astype(np.float32)
    offset = float(-raw.min() + 0.05 * np.ptp(raw))
    assert main([*base, str(tmp_path / "l.rec"), "--log", f"{offset!r}"]) == 0
    saved = read_alignment_dir(local_dir)
    views = np.flatnonzero(saved.view_determined)
    ali = aligned_stack(raw[views], saved.transforms[views], binning=4)
    binned = np.stack([bin_image(raw[j], 4) for j in views])
    floor = LOG_FLOOR * float(binned.max() - binned.min())
    lp = local_projection_for(local_dir / "samplelocal.xf", saved.tilt_angles_deg[views], saved.x_tilts_deg[views]
                              if saved.x_tilts_deg is not None else None, (128, 128), saved.pixel_size_nm,
                              saved.pixel_size_nm, 4)
    ref = weighted_back_projection(np.log10(np.maximum(ali + np.float32(offset), floor)), saved.tilt_angles_deg[views],
                                   thickness=16, local=lp)
    np.testing.assert_allclose(mrcfile.read(tmp_path / "l.rec"), ref, atol=1e-4 * np.abs(ref).max())


def test_local_applies_mode_and_scale_as_the_streamed_volume_is_written(demo_dir, local_dir, tmp_path):
    """``--local --mode/--scale`` (refused before session 12): the float volume, plus ADD, times MULT, rounded and
    clipped into the mode; an integer mode without --scale takes the one chosen from the middle slab."""
    base = ["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(local_dir), "--local", "--bin", "4",
            "--thickness", "64", "--quiet"]
    assert main([*base, "--output", str(tmp_path / "f.rec"), "--mode", "float32"]) == 0
    ref = mrcfile.read(tmp_path / "f.rec")
    assert main([*base, "--output", str(tmp_path / "i.rec"), "--mode", "int16", "--scale", "0.01", "20000"]) == 0
    with mrcfile.open(tmp_path / "i.rec") as m:
        assert m.header.mode == 1
        got = m.data.copy()
    want = np.clip(np.rint((ref.astype(np.float32) + np.float32(0.01)) * np.float32(20000)), -32768, 32767)
    assert np.abs(got.astype(np.float64) - want).max() <= 1
    assert main([*base, "--output", str(tmp_path / "a.rec"), "--mode", "int16"]) == 0
    auto = mrcfile.read(tmp_path / "a.rec").astype(np.float64)
    assert np.corrcoef(auto.ravel(), ref.ravel())[0, 1] > 0.999 and np.ptp(auto) > 1000  # scaled, not rounded away


def test_local_takes_shift_and_level_as_the_global_path_does(demo_dir, local_dir, tmp_path, capsys):
    """``reconstruct --local --shift`` (refused before session 15; etomo's tilt.com has LOCALFILE with SHIFT): the local
    WBP made by hand with the shift (IMOD's SHIFT 8 -16 is wbp's (8, 16), here binned by 4); ``--local --level`` takes
    the levelling ``--level`` prints without --local, and gives the volume those numbers give pasted by hand."""
    from napari_tomoalign.local_jobs import local_projection_for

    stack = str(demo_dir / "sample.mrc")
    base = ["reconstruct", stack, "--alignment", str(local_dir), "--local", "--bin", "4"]
    rec = tmp_path / "s.rec"
    assert main([*base, "--thickness", "96", "--shift", "8", "-16", "--output", str(rec), "--quiet"]) == 0
    saved = read_alignment_dir(local_dir)
    with mrcfile.open(stack) as m:
        ali = aligned_stack(m.data.copy(), saved.transforms, binning=4)
    lp = local_projection_for(local_dir / "samplelocal.xf", saved.tilt_angles_deg, saved.x_tilts_deg, (128, 128),
                              saved.pixel_size_nm, saved.pixel_size_nm, 4)
    ref = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=24, use_view=saved.view_determined, local=lp,
                                   shift_px=(2.0, 4.0))
    unshifted = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=24, use_view=saved.view_determined,
                                         local=lp)
    got = mrcfile.read(rec)
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    assert np.abs(got - unshifted).max() > 0.1 * np.abs(unshifted).max()
    assert main(["reconstruct", stack, "--alignment", str(local_dir), "--bin", "4", "--level", "--output",
                 str(tmp_path / "g.rec")]) == 0
    said = capsys.readouterr().out
    m = re.search(r"angle offset ([-+.\d]+) deg.*X-axis tilt ([-+.\d]+) deg.*thickness (\d+) px, Z shift ([-+.\d]+) px",
                  said)
    assert m, said
    assert main([*base, "--level", "--output", str(tmp_path / "l.rec")]) == 0
    assert "Levelled from the surface analysis" in capsys.readouterr().out  # said as without --local
    pasted = ["--offset", m[1], "--x-axis-tilt", m[2], "--thickness", m[3], "--shift", "0", m[4]]
    assert main([*base, *pasted, "--output", str(tmp_path / "p.rec"), "--quiet"]) == 0
    lev, by_hand = mrcfile.read(tmp_path / "l.rec"), mrcfile.read(tmp_path / "p.rec")
    assert lev.shape == by_hand.shape == (int(m[3]) // 4, 128, 128)
    np.testing.assert_allclose(lev, by_hand, atol=1e-2 * np.abs(by_hand).max())  # the printed numbers are rounded
    assert np.corrcoef(lev.ravel(), by_hand.ravel())[0, 1] > 0.999
