"""The command line against a full disk, signals, concurrent and mixed outputs, and out-of-range options
(issue 15, classes 4, 5 and 7): exit 2 (130 / 143 for signals) with one line, no temporary file left,
the previous outputs untouched."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest
from support.hostile import folder_state, one_line_error, run_cli, run_stamp, small_series, temp_files

from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import SavedAlignment, read_alignment_dir, write_transforms_folder
from napari_tomoalign.io.atomic import folder_lock
from napari_tomoalign.io.mrc import write_mrc


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return small_series(tmp_path_factory.mktemp("series"))


def _err(capsys, rc, code=2):
    err = capsys.readouterr().err
    assert rc == code and err.count("\n") == 1 and "Traceback" not in err, (rc, err)
    return err


# --- 4. a full disk and signals -------------------------------------------------------------------


def test_full_disk_before_writing_fails_cleanly(series, tmp_path, capsys, monkeypatch):
    out = tmp_path / "a.ali"
    out.write_bytes(b"previous")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    rc = main(["aligned-stack", str(series["stack"]), "--alignment", str(series["al"]), "--output", str(out),
               "--force"])
    err = _err(capsys, rc)
    assert "No space left on device" in err and str(out) in err and ".tmp" not in err
    assert out.read_bytes() == b"previous" and temp_files(tmp_path) == []


def test_full_disk_in_the_middle_fails_cleanly(series, tmp_path, capsys, monkeypatch):
    from napari_tomoalign.reconstruction import stream  # reconstruct streams its slabs (issue 24)

    out = tmp_path / "t.rec"
    out.write_bytes(b"previous")

    def write(self, first, slab):
        self.f.write(bytes(100))  # part of the slab made it, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(stream.SlabWriter, "write_rows", write)
    rc = main(["reconstruct", str(series["stack"]), "--alignment", str(series["al"]), "--output", str(out),
               "--thickness", "16", "--force"])
    err = _err(capsys, rc)
    assert f"{out}: No space left on device; free some space" in err
    assert out.read_bytes() == b"previous" and temp_files(tmp_path) == []


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_write_removes_the_temp_file(tmp_path, sig, code):
    big = small_series(tmp_path / "s")
    stack = tmp_path / "big.mrc"
    # The same 21 views, large enough that the write takes a while: 21 x 2400 x 2000 float32.
    write_mrc(stack, np.zeros((21, 80, 96), np.float32), 5.0)
    al = big["al"]
    payload = np.random.default_rng(0).normal(size=(21, 80, 96)).astype(np.float32)
    write_mrc(stack, np.tile(payload, (1, 30, 25)), 5.0, overwrite=True)
    info = (al / "alignment.json").read_text().splitlines()
    stamp = run_stamp(al)
    saved = read_alignment_dir(al)
    write_transforms_folder(SavedAlignment(saved.transforms, saved.tilt_angles_deg, saved.view_determined,
                                           (2400, 2400), None), tmp_path / "bigal", "m")
    assert info and stamp
    out = tmp_path / "out.ali"
    out.write_bytes(b"previous")
    proc = subprocess.Popen([sys.executable, "-m", "napari_tomoalign.cli", "aligned-stack", str(stack),
                             "--alignment", str(tmp_path / "bigal"), "--output", str(out), "--force", "--cubic"],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # pytest may ignore it
    deadline = time.time() + 60
    while not temp_files(tmp_path) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert temp_files(tmp_path), "the write never started"
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert temp_files(tmp_path) == [] and out.read_bytes() == b"previous"


# --- 5. an alignment folder is one unit ---------------------------------------------------------------


def test_a_folder_mixed_from_two_runs_is_refused(series, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(series["al"], a)
    assert main(["align", str(series["csv"]), "--tilt-angles", str(series["tlt"]), "--image-size", "96", "80",
                 "--output", str(b), "--quiet", "--rotation", "one"]) == 0
    shutil.copy(b / "m.xf", a / "m.xf")  # .xf of one run, alignment.json of another
    rc = main(["aligned-stack", str(series["stack"]), "--alignment", str(a), "--output", str(tmp_path / "x.ali")])
    assert "does not belong to the run" in _err(capsys, rc)
    assert not (tmp_path / "x.ali").exists()


def test_a_second_writer_is_refused_while_the_folder_is_locked(series, tmp_path, capsys):
    out = tmp_path / "o"
    shutil.copytree(series["al"], out)
    before = folder_state(out)
    with folder_lock(out):
        rc = main(["align", str(series["csv"]), "--tilt-angles", str(series["tlt"]), "--image-size", "96", "80",
                   "--output", str(out), "--force", "--quiet"])
        assert "being written by another" in _err(capsys, rc)
        with pytest.raises(OSError, match="being written"):
            read_alignment_dir(out)
    assert folder_state(out) == before and temp_files(out) == []


def test_an_error_while_writing_leaves_the_previous_set(series, tmp_path, capsys, monkeypatch):
    from napari_tomoalign.io import alignment

    out = tmp_path / "o"
    shutil.copytree(series["al"], out)
    before = folder_state(out)

    def broken(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "m.resid"))

    monkeypatch.setattr(alignment, "format_resid", broken)
    rc = main(["align", str(series["csv"]), "--tilt-angles", str(series["tlt"]), "--image-size", "96", "80",
               "--output", str(out), "--force", "--quiet"])
    assert "No space left on device" in _err(capsys, rc)
    assert folder_state(out) == before and temp_files(out) == []
    read_alignment_dir(out)


# --- 7. one line and exit 2 -------------------------------------------------------------------------------


def _saved(series, **over):
    s = read_alignment_dir(series["al"])
    fields = dict(transforms=s.transforms, tilt_angles_deg=s.tilt_angles_deg, view_determined=s.view_determined,
                  image_size=s.image_size, pixel_size_nm=s.pixel_size_nm)
    fields.update(over)
    return SavedAlignment(**fields)


@pytest.mark.parametrize("args,message", [
    (["--bin", "200"], "larger than the image"),
    (["--bin", "0"], "--bin must be"),
    (["--thickness", "100000000"], "--thickness must be"),
    (["--thickness", "1000"], "--thickness 1000 is more than 4 x the image size"),
    (["--thickness", "1e8"], "invalid int value"),
    (["--lowpass", "0"], "--lowpass must be"),
    (["--lowpass", "nan"], "--lowpass must be"),
    (["--lowpass", "0.6"], "--lowpass must be"),
])
def test_reconstruct_options_are_checked_first(series, tmp_path, capsys, args, message):
    rc = main(["reconstruct", str(series["stack"]), "--alignment", str(series["al"]), "--output",
               str(tmp_path / "r.rec"), *args])
    assert message in _err(capsys, rc)
    assert not (tmp_path / "r.rec").exists()


@pytest.mark.parametrize("edit,message", [
    ("singular", "not a usable transform"),
    ("undetermined", "no view is determined"),
    ("pixel", "run stamp is damaged"),
    ("deep", "no run stamp"),
])
def test_broken_alignment_folders(series, tmp_path, capsys, edit, message):
    d = tmp_path / "al"
    s = read_alignment_dir(series["al"])
    if edit == "singular":
        xf = s.transforms.copy()
        xf[3, :, :2] = 0.0
        write_transforms_folder(_saved(series, transforms=xf), d, "m")
    elif edit == "undetermined":
        write_transforms_folder(_saved(series, view_determined=np.zeros(21, bool)), d, "m")
    else:
        write_transforms_folder(_saved(series), d, "m")
        lines = (d / "alignment.json").read_text().splitlines()
        if edit == "pixel":
            stamp = json.loads(lines[0][len('{"tomoalign_run": '):-1])
            stamp["pixel_size_nm"] = "abc"
            lines[0] = '{"tomoalign_run": ' + json.dumps(stamp) + ","
        else:
            lines[0] = "[" * 100_000 + "]" * 100_000
        (d / "alignment.json").write_text("\n".join(lines))
    rc = main(["aligned-stack", str(series["stack"]), "--alignment", str(d), "--output", str(tmp_path / "a.ali")])
    assert message in _err(capsys, rc)


@pytest.mark.parametrize("args,message", [
    (["--rotation", "group:12345678901234567890"], "group size"),
    (["--tilt-axis", "nan"], "tilt-axis angle must be a finite"),
    (["--axis-z-shift", "nan"], "--axis-z-shift must be"),
    (["--axis-z-shift", "inf"], "--axis-z-shift must be"),
    (["--max-iterations", "0"], "max_iterations"),
    (["--robust-scale", "-1"], "robust_scale"),
    (["--pixel-size-nm", "-2"], "--pixel-size-nm"),
    (["--image-size", "0", "80"], "--image-size"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_align_options_give_one_line(series, tmp_path, capsys, args, message):
    base = ["align", str(series["csv"]), "--tilt-angles", str(series["tlt"]), "--output", str(tmp_path / "o")]
    if "--image-size" not in args:
        base += ["--image-size", "96", "80"]
    rc = main(base + args)
    err = _err(capsys, rc)
    assert message in err and "usage:" not in err
    assert not (tmp_path / "o").exists()


def test_demo_refuses_a_negative_seed(tmp_path, capsys):
    rc = main(["demo", "--output", str(tmp_path), "--seed", "-1"])
    assert "--seed must be" in _err(capsys, rc)
    assert list(tmp_path.iterdir()) == []


def test_nan_pixels_in_the_stack_are_refused(series, tmp_path, capsys):
    data = np.random.default_rng(1).normal(size=(21, 80, 96)).astype(np.float32)
    data[5, 10, 10] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as m, pytest.warns(RuntimeWarning, match="NaN"):
        m.set_data(data)  # mrcfile warns of the NaN it writes: the file is the hostile input
    rc = main(["aligned-stack", str(tmp_path / "nan.mrc"), "--alignment", str(series["al"]), "--output",
               str(tmp_path / "a.ali")])
    assert "view 6 holds NaN" in _err(capsys, rc)  # index 5: views are numbered from 1 in messages
    assert not (tmp_path / "a.ali").exists() and temp_files(tmp_path) == []


def test_run_on_a_nan_view_says_one_line_before_any_work(tmp_path, capsys):
    """Session 11's nit: numpy's "invalid value encountered in subtract" came before the error (from the work beside
    the tracking); the views are checked first."""
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("cryo", 256, 21, seed=1)
    data = s.images.astype(np.float32)
    data[5, 10, 10] = np.nan
    with mrcfile.new(tmp_path / "nan.st") as m, pytest.warns(RuntimeWarning, match="NaN"):
        m.set_data(data)
    write_tilt_angles(tmp_path / "nan.rawtlt", s.tilt_angles_deg)
    rc = main(["run", str(tmp_path / "nan.st"), "--bead-diameter-nm", "10", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "view 6 of the tilt series holds NaN" in err, err
    assert not (tmp_path / "o").exists()


def test_an_unreadable_sibling_tlt_does_not_stop_aligned_stack(series, tmp_path, capsys):
    stack = tmp_path / "raw.mrc"
    shutil.copy(series["stack"], stack)
    (tmp_path / "raw.tlt").write_text("not a tilt\n")
    assert main(["aligned-stack", str(stack), "--alignment", str(series["al"]), "--output",
                 str(tmp_path / "a.ali"), "--quiet"]) == 0


def test_the_whole_contract_in_a_subprocess(series, tmp_path):
    run = run_cli(["reconstruct", series["stack"], "--alignment", series["al"], "--output", tmp_path / "r.rec",
                   "--thickness", "100000000"])
    assert "--thickness" in one_line_error(run)


@pytest.mark.parametrize("stored", ["<f2", ">f4", ">i2"])
def test_float16_and_big_endian_stacks_are_read_as_the_kernels_take_them(stored, tmp_path, capsys):
    """Session 11's finding 6: a float16 (MRC mode 12, as AreTomo3 writes it) or big-endian stack passed the header
    check, then every command ended in an internal error (numba takes neither). Views are read as float32 / in the
    machine's byte order; the run's alignment is the one of the same stack stored as float32."""
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("cryo", 256, 21, seed=1)
    data = (s.images * 50).astype(np.float32) if stored.endswith("i2") else s.images.astype(np.float32)
    for name, dtype in (("ref", "<f4" if not stored.endswith("i2") else "<i2"), ("odd", stored)):
        with mrcfile.new(tmp_path / f"{name}.st") as m:
            m.set_data(data.astype(dtype))
            m.voxel_size = 8.0
        write_tilt_angles(tmp_path / f"{name}.rawtlt", s.tilt_angles_deg)
    xfs = []
    for name in ("ref", "odd"):
        assert main(["run", str(tmp_path / f"{name}.st"), "--bead-diameter-nm", "10", "--output",
                     str(tmp_path / name), "--quiet"]) == 0, capsys.readouterr().err
        assert main(["reconstruct", str(tmp_path / f"{name}.st"), "--alignment", str(tmp_path / name / "alignment"),
                     "--bin", "4", "--output", str(tmp_path / f"{name}.rec"), "--quiet"]) == 0
        xfs.append(np.loadtxt(tmp_path / name / "alignment" / f"{name}.xf"))
    tol = 1e-3 if stored == "<f2" else 0.0  # float16 rounds the pixels: the same beads, nearly the same fit
    np.testing.assert_allclose(xfs[1], xfs[0], atol=max(tol, 1e-9) * 50)
    with mrcfile.open(tmp_path / "ref.rec") as a, mrcfile.open(tmp_path / "odd.rec") as b:
        assert np.corrcoef(a.data.ravel().astype(float), b.data.ravel().astype(float))[0, 1] > 0.999


def test_an_aligned_stack_given_as_the_stack_is_refused(series, tmp_path, capsys):
    """Session 11's finding 23: `reconstruct run/x.ali` (IMOD's tilt reads the .ali) aligned it a second time,
    silently: its size and pixel size pass every check."""
    ali = tmp_path / "raw.ali"
    shutil.copy(series["stack"], ali)
    for command in ("reconstruct", "aligned-stack"):
        rc = main([command, str(ali), "--alignment", str(series["al"]), "--output", str(tmp_path / f"{command}.out")])
        err = _err(capsys, rc)
        assert "is an aligned stack (.ali), which would be aligned twice: give the raw stack" in err
        assert not (tmp_path / f"{command}.out").exists()


def test_a_stack_files_views_are_checked_once_for_a_run(tmp_path):
    """run_track_job checks the views first (one line, before the work beside it); the tracker's own check of the same
    stack file then costs nothing (a 4096^2 float stack is 4 GB to read again)."""
    from napari_tomoalign.io.mrc import open_tilt_series, write_mrc
    from napari_tomoalign.reconstruction.input_checks import check_finite_views

    write_mrc(tmp_path / "s.mrc", np.ones((3, 8, 8), np.float32))
    stack = open_tilt_series(tmp_path / "s.mrc", find_tilts=False).data
    assert not stack.checked_finite
    check_finite_views(stack)
    assert stack.checked_finite and not getattr(stack[0:2], "checked_finite", False)  # a part: checked on its own
    with pytest.raises(ValueError, match="view 2 of the image holds NaN"):
        check_finite_views(np.array([np.ones((2, 2)), np.full((2, 2), np.nan)], np.float32))


def test_erasing_gold_of_a_patch_alignment_is_refused(series, tmp_path, capsys):
    """Session 11's finding 27: `aligned-stack --erase-gold` on an alignment of patches (no gold) replaced 42% of the
    specimen's pixels with background, without a word (`run` refuses the same combination)."""
    from support.hostile import SIZE

    from napari_tomoalign.io.imod_model import PATCHES_ON, write_imod_model
    from napari_tomoalign.io.markers import read_markers

    write_imod_model(tmp_path / "p.fid", read_markers(series["csv"]), image_size=SIZE, n_views=21,
                     name=PATCHES_ON + "raw.mrc")
    assert main(["align", str(tmp_path / "p.fid"), "--tilt-angles", str(series["tlt"]), "--output",
                 str(tmp_path / "al"), "--quiet"]) == 0
    rc = main(["aligned-stack", str(series["stack"]), "--alignment", str(tmp_path / "al"), "--output",
               str(tmp_path / "e.ali"), "--erase-gold", "--bead-diameter-px", "6"])
    assert "aligns patches of the specimen, not gold: there are no beads to erase" in _err(capsys, rc)
    assert not (tmp_path / "e.ali").exists()


def test_an_alignment_applied_to_another_series_of_the_same_size_is_refused_or_warned(tmp_path, capsys):
    """Session 11's finding 16: two series of one session share size, views and pixel size, so the alignment of one
    was applied to the other without a word (the tomogram a blur). `run` records 64 pixels of its stack. New user
    s13: only warned of; now refused where certain (the alignment's own stack is there, with its pixels), warned of
    where the recorded stack is gone, silent for the same images in another type or scale."""
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    names = ("a", "b")
    for k, name in enumerate(names):
        s = make_bead_series("cryo", 256, 21, seed=1 + k)
        write_mrc(tmp_path / f"{name}.st", s.images.astype(np.float32), 8.0)
        write_tilt_angles(tmp_path / f"{name}.rawtlt", s.tilt_angles_deg)
    with mrcfile.new(tmp_path / "a16.st") as m:  # the same images as float16: the same stack
        m.set_data(mrcfile.read(tmp_path / "a.st").astype(np.float16))
        m.voxel_size = 8.0
    assert main(["run", str(tmp_path / "a.st"), "--bead-diameter-nm", "10", "--tilt-axis", "84", "--output",
                 str(tmp_path / "r"), "--quiet"]) == 0
    capsys.readouterr()
    al = str(tmp_path / "r" / "alignment")
    from napari_tomoalign.errors import AlignmentWarning

    def rec(stack):
        return main(["reconstruct", str(tmp_path / stack), "--alignment", al, "--bin", "4", "--output",
                     str(tmp_path / f"{stack}.rec"), "--quiet"])

    import warnings

    assert rec("b.st") == 2  # certain: a.st, the stack the alignment records, is there and holds its pixels
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: b.st holds other images than" in err and "a.st, which this alignment" in err
    assert f"give a.st, or, to apply it to b.st anyway (a filtered copy), --alignment {al}/a.xf" in err
    for named in (f"{al}/alignment.json", str(tmp_path / "r")):  # its file, or run's --output: the same (s16 new user)
        assert main(["reconstruct", str(tmp_path / "b.st"), "--alignment", named, "--bin", "4", "--output",
                     str(tmp_path / "named.rec"), "--quiet"]) == 2
        assert "error: b.st holds other images than" in capsys.readouterr().err
    (tmp_path / "other").mkdir()  # another series under the recorded stack's name: the recorded one named in full
    (tmp_path / "other" / "a.st").write_bytes((tmp_path / "b.st").read_bytes())
    assert main(["reconstruct", str(tmp_path / "other" / "a.st"), "--alignment", al, "--bin", "4", "--output",
                 str(tmp_path / "other.rec"), "--quiet"]) == 2
    assert f"give {tmp_path / 'a.st'}, or" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "b.st"), "--alignment", f"{al}/a.xf", "--bin", "4", "--output",
                 str(tmp_path / "bxf.rec"), "--quiet"]) == 0  # the way out it names: the .xf records no stack
    assert rec("a.st") == 0 and rec("a16.st") == 0  # no warning: pytest makes one an error
    mrcfile.write(tmp_path / "a_scaled.st", (mrcfile.read(tmp_path / "a.st") * 3.0 - 7.0).astype(np.float32),
                  voxel_size=8.0)
    assert rec("a_scaled.st") == 0  # the same images rescaled (another mode's copy): the same stack, silent
    (tmp_path / "a.st").rename(tmp_path / "gone.st")  # the recorded stack gone: only suspicious, warned of
    with warnings.catch_warnings():
        warnings.simplefilter("always", AlignmentWarning)  # printed by the command line, as a user sees it
        assert rec("b.st") == 0
    err = capsys.readouterr().err
    assert "tomoalign: warning: b.st holds other images than" in err and "a.st, which this alignment was solved" in err
