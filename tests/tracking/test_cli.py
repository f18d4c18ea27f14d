"""``tomoalign track`` and ``tomoalign run`` on a simulated plastic-section series at 2 nm/px: markers with no
clicks, then an alignment, an aligned stack and a tomogram, with the CLI's error contract."""

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.io.mrc import open_tilt_series, write_mrc
from napari_tomoalign.simulation.beads import make_bead_series


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    s = make_bead_series("plastic", size=256, n_views=41, seed=2)
    path = d / "beads.st"
    write_mrc(path, s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (d / "beads.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    return path, s


def test_track_writes_markers_near_the_true_beads(stack, capsys):
    path, s = stack
    out = path.with_name("tracked.csv")
    diameter_nm = s.bead_diameter_px * s.pixel_size_nm
    assert main(["track", str(path), "--bead-diameter-nm", f"{diameter_nm}", "--output", str(out)]) == 0
    assert "beads" in capsys.readouterr().out
    t = read_markers(out)
    assert len(np.unique(t.marker)) >= 5 and out.with_name("tracked_beads.csv").exists()
    d = np.min(np.hypot(*(t.xy[:, None, :] - s.true_xy[t.view]).transpose(2, 0, 1)), axis=1)
    assert np.median(d) < 0.3  # pixels, against the truth
    # The contract: an existing output needs --force; no diameter, or both, is one line and exit 2.
    assert main(["track", str(path), "--bead-diameter-px", "5", "--output", str(out), "--quiet"]) == 2
    assert main(["track", str(path), "--output", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 2
    # Another format with the same stem: its quality table would replace this run's. Refused before any work, and
    # nothing written (new user's finding, session 9: tracked for 5 s, then refused, leaving tracked.fid).
    fid = out.with_suffix(".fid")
    assert main(["track", str(path), "--bead-diameter-nm", f"{diameter_nm}", "--output", str(fid), "--quiet"]) == 2
    assert "tracked_beads.csv already exists" in capsys.readouterr().err and not fid.exists()


def test_run_goes_from_the_raw_stack_to_a_tomogram(stack, capsys):
    path, s = stack
    out = path.parent / "run"
    assert main(["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(out),
                 "--quiet"]) == 0
    for name in ("beads.fid", "beads_markers.csv", "beads_beads.csv", "alignment/alignment.json", "beads.ali",
                 "beads_bin2.rec"):
        assert (out / name).exists(), name
    rec = open_tilt_series(out / "beads_bin2.rec", find_tilts=False)
    assert rec.pixel_size_angstrom == pytest.approx(40.0)
    ali = open_tilt_series(out / "beads.ali", find_tilts=False)
    assert ali.data.shape == s.images.shape


def test_run_can_erase_the_gold_before_reconstructing(stack, capsys):
    path, s = stack
    out = path.parent / "run_erased"
    assert main(["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(out),
                 "--erase-gold"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]  # every file it wrote, and where the angles came from
    assert "beads_erased.mrc" in last and f"(angles from {path.with_suffix('.rawtlt')})" in last, last
    erased = open_tilt_series(out / "beads_erased.mrc", find_tilts=False).data
    j = len(s.images) // 2
    xy = s.true_xy[j][s.visible[j]]
    cols, rows = np.clip(np.round(xy).astype(int).T, 0, np.array(s.images.shape[1:])[::-1, None] - 1)
    background = np.median(s.images[j])
    before = np.median(np.abs(s.images[j][rows, cols] - background))
    after = np.median(np.abs(erased[j][rows, cols] - background))
    assert after < 0.3 * before  # the beads' dark cores are gone
    assert (out / "beads_bin2.rec").exists()


def test_a_stack_without_a_pixel_size_takes_it_from_the_command_line(stack, tmp_path, capsys):
    """New user's finding (session 9): the error said to give the pixel size, and track/run had no option for it."""
    path, s = stack
    bare = tmp_path / "bare.st"
    write_mrc(bare, s.images.astype(np.float32), 0.0)
    bare.with_suffix(".rawtlt").write_text(path.with_suffix(".rawtlt").read_text())
    nm = f"{s.bead_diameter_px * s.pixel_size_nm}"
    out = tmp_path / "bare.csv"
    assert main(["track", str(bare), "--bead-diameter-nm", nm, "--output", str(out), "--quiet"]) == 2
    assert "--pixel-size-nm" in capsys.readouterr().err
    assert main(["track", str(bare), "--bead-diameter-nm", nm, "--pixel-size-nm", f"{s.pixel_size_nm}",
                 "--output", str(out), "--quiet"]) == 0
    assert len(np.unique(read_markers(out).marker)) >= 5
    run = tmp_path / "run"
    assert main(["run", str(bare), "--bead-diameter-nm", nm, "--pixel-size-nm", f"{s.pixel_size_nm}", "--output",
                 str(run), "--quiet"]) == 0
    rec = open_tilt_series(run / "bare_bin2.rec", find_tilts=False)
    assert rec.pixel_size_angstrom == pytest.approx(20.0 * s.pixel_size_nm)  # the given one, binned by 2


def test_run_streams_its_tomogram_within_memory(stack, tmp_path, capsys):
    """``run --memory``, as ``reconstruct --memory`` (the whole process's budget): too little is refused naming the
    least it needs; just above that the tomogram is made in slabs, the same as in one piece (new user's finding,
    session 9: run held the whole volume and had no limit)."""
    import re

    path, s = stack
    args = ["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--quiet", "--thickness", "96"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--memory", "3M", "--output", str(tmp_path / "b")]) == 2
    need = int(re.search(r"needs at least (\d+) MiB", capsys.readouterr().err).group(1))
    assert not (tmp_path / "b").exists()  # refused before the tracking (session 10's new user: after it)
    assert main([*args, "--memory", f"{need + 2}M", "--output", str(tmp_path / "b")]) == 0
    a = open_tilt_series(tmp_path / "a" / "beads_bin2.rec", find_tilts=False).data
    b = open_tilt_series(tmp_path / "b" / "beads_bin2.rec", find_tilts=False).data
    # the same to float32 rounding (slabs of other heights sum the views in another order)
    np.testing.assert_allclose(a, b, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(a).max())
    assert main([*args, "--memory", "lots", "--output", str(tmp_path / "c")]) == 2


def test_a_stack_too_big_to_track_in_this_memory_is_refused_before_any_work(stack, tmp_path, capsys, monkeypatch):
    """New user's finding (session 10): a 30000 x 30000 x 5 stack with 12 px beads grew to 23.5 GB and was killed
    after 54 s. The need is estimated from the header and the working binning, and refused at once (exit 2)."""
    import napari_tomoalign.compute as compute
    from napari_tomoalign.tracking.binned import tracking_memory_bytes

    path, s = stack
    shape = s.images.shape[1:]
    small, big = tracking_memory_bytes((30000, 30000), 12.0), tracking_memory_bytes((30000, 30000), 60.0)
    assert small > 50 * 2**30 and big < small / 4  # big beads are tracked binned: a fraction of it
    need = tracking_memory_bytes(shape, s.bead_diameter_px)
    monkeypatch.setattr(compute, "available_memory_bytes", lambda: need - 1)
    out = tmp_path / "t.fid"
    assert main(["track", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "newstack -bin 2" in err and err.count("\n") == 1 and not out.exists()


def test_a_serialem_mdoc_named_as_the_tilt_file_is_read(stack, tmp_path):
    """Session 11's nit: `--tilt-angles ts.st.mdoc` was read as a .tlt ("'PixelSpacing = 8' is not a tilt angle"),
    though the same .mdoc is read when it sits beside the stack."""
    path, s = stack
    mdoc = tmp_path / "beads.st.mdoc"
    mdoc.write_text("PixelSpacing = 20\nImageFile = beads.st\nImageSize = 256 256\nDataMode = 2\n\n"
                    "[T = SerialEM: Digitized on a Krios   06-Dec-26  10:00:00    ]\n\n" + "".join(
                        f"[ZValue = {k}]\nTiltAngle = {a:.2f}\nPixelSpacing = 20\n\n"
                        for k, a in enumerate(s.tilt_angles_deg)))
    out = tmp_path / "m.fid"
    assert main(["track", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--tilt-angles", str(mdoc),
                 "--output", str(out), "--quiet"]) == 0
    assert out.exists()


def test_a_dangling_link_as_the_output_is_not_replaced_without_force(stack, tmp_path, capsys):
    path, s = stack
    link = tmp_path / "t.fid"
    link.symlink_to(tmp_path / "missing.fid")
    assert main(["track", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(link),
                 "--quiet"]) == 2
    assert "a link to a missing file" in capsys.readouterr().err and link.is_symlink()
