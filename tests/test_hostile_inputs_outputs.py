"""Hostile input, round 3 (issue 22): outputs that would replace an input, a special file or leave their
folder; FIFOs and endless devices as every file that ``convert`` and an alignment folder read; sizes and
indices from headers; numbers that cannot be used in ``align.com``; partial output. Each answers in one
line with exit 2 (or a correct result), in its time, with no traceback, no temporary file, and the user's
files untouched."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from support.hostile import one_line_error, run_cli, small_series, temp_files

from napari_tomoalign.io.atomic import OverwriteError, check_writable, input_scope, note_input, safe_name
from napari_tomoalign.io.convert import MagnificationLoss
from napari_tomoalign.io.errors import FileFormatError

pytest.importorskip("starfile")
pytest.importorskip("alnfile")
pytest.importorskip("cryoet_alignment")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return small_series(tmp_path_factory.mktemp("series"))


@pytest.fixture(scope="module")
def handed_over(series, tmp_path_factory):
    """The series' alignment in every other format (written in-process)."""
    from napari_tomoalign.io.convert import convert

    d = tmp_path_factory.mktemp("formats")
    with warnings.catch_warnings():  # the formats without per-view magnification say what they lose: expected here
        warnings.simplefilter("ignore", MagnificationLoss)
        paths = {"aln": convert(series["al"], "aretomo", d / "a.aln")[0],
                 "json": convert(series["al"], "cdp", d / "a.json")[0],
                 "star": convert(series["al"], "relion", d / "rel", pixel_size_nm=0.5)[0]}
    paths["ts_star"] = d / "rel" / "tilt_series" / "m.star"
    return paths


def _quick(run, message: str) -> str:
    err = one_line_error(run)
    assert message in err, err
    assert run.seconds < 20, run.seconds  # a shared, loaded machine; a hang would hit the 60 s time-out
    return err


# --- 1. an output never resolves to an input, a special file or outside its folder ---------------------------


def test_the_stack_given_as_the_output_is_refused(series, tmp_path):
    stack = tmp_path / "raw.mrc"
    shutil.copy(series["stack"], stack)
    before = stack.read_bytes()
    run = run_cli(["reconstruct", stack, "--alignment", series["al"], "--output", stack, "--force"])
    _quick(run, "one of this command's inputs")
    assert stack.read_bytes() == before and not temp_files(tmp_path)
    link = tmp_path / "tomo.rec"
    link.symlink_to(stack)  # the same file under another name
    _quick(run_cli(["reconstruct", stack, "--alignment", series["al"], "--output", link, "--force"]), "inputs")
    assert stack.read_bytes() == before


def test_convert_into_its_own_input_is_refused(series, tmp_path):
    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    before = {p.name: p.read_bytes() for p in al.iterdir()}
    _quick(run_cli(["convert", al, "--to", "cdp", "--output", al / "alignment.json", "--force"]), "inputs")
    imod = tmp_path / "imod"
    imod.mkdir()
    for ext in ("xf", "tlt"):
        shutil.copy(al / f"m.{ext}", imod / f"m.{ext}")
    run = run_cli(["convert", imod / "m.xf", "--to", "imod", "--output", imod, "--name", "m", "--force",
                   "--image-size", 96, 80])
    _quick(run, "inputs")
    assert {p.name: p.read_bytes() for p in al.iterdir()} == before and not temp_files(tmp_path)


@pytest.mark.parametrize("special", ["fifo", "device"])
def test_force_replaces_only_regular_files(series, tmp_path, special):
    target = tmp_path / "out.json"
    if special == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/null")
    _quick(run_cli(["convert", series["al"], "--to", "cdp", "--output", target, "--force"]), "special file")
    assert os.path.islink(target) or os.stat(target).st_mode & 0o170000 == 0o010000  # still the FIFO / the link
    assert not temp_files(tmp_path)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/tomoalign-absolute", "", "..", "a/b", " padded"])
def test_convert_name_cannot_leave_the_output_folder(series, tmp_path, name):
    out = tmp_path / "box" / "out"
    run = run_cli(["convert", series["al"], "--to", "imod", "--output", out, "--name", name])
    _quick(run, "not a plain file name")
    assert not (tmp_path / "box").exists() and not os.path.exists("/tmp/tomoalign-absolute.xf")


def test_output_checks_in_process(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("mine")
    with pytest.raises(OverwriteError, match="already exists"):
        check_writable(f, False)
    assert check_writable(f, True) == f
    with input_scope():
        note_input(os.stat(f))
        with pytest.raises(OverwriteError, match="inputs"):
            check_writable(f, True)
    assert check_writable(f, True) == f  # the scope ended with the command
    assert safe_name("TS_01.tomostar") == "TS_01.tomostar"
    for bad in ("", ".", "..", "../x", "x/y", "x\\y", "a\x00b", "x "):
        with pytest.raises(OverwriteError):
            safe_name(bad)


# --- 2. FIFOs, endless devices and huge files as every file convert and an alignment folder read -----------


@pytest.mark.parametrize("which", ["aln", "json", "star", "ts_star"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_convert_inputs_that_never_end(handed_over, tmp_path, which, kind):
    src = handed_over[which]
    d = tmp_path / "in"
    shutil.copytree(src.parent if which != "ts_star" else src.parent.parent, d)
    victim = d / (src.name if which != "ts_star" else f"tilt_series/{src.name}")
    victim.unlink()
    os.mkfifo(victim) if kind == "fifo" else victim.symlink_to("/dev/zero")
    given = d / (src.name if which != "ts_star" else "tomograms.star")
    run = run_cli(["convert", given, "--to", "imod", "--output", tmp_path / "o", "--image-size", 96, 80])
    _quick(run, "FIFO" if kind == "fifo" else "character device")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["m.xf", "m.tlt", "mfid.xyz"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_alignment_folder_files_that_never_end(series, tmp_path, name, kind):
    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    (al / name).unlink()
    os.mkfifo(al / name) if kind == "fifo" else (al / name).symlink_to("/dev/zero")
    run = run_cli(["convert", al, "--to", "cdp", "--output", tmp_path / "o.json"])
    _quick(run, "FIFO" if kind == "fifo" else "character device")
    assert not (tmp_path / "o.json").exists()


def test_a_sparse_huge_aln_is_refused_by_size(tmp_path):
    p = tmp_path / "big.aln"
    with open(p, "wb") as f:
        f.truncate(10 * 2**30)  # 10 GiB of holes: no disk used
    run = run_cli(["convert", p, "--to", "imod", "--output", tmp_path / "o"])
    _quick(run, "too large")


# --- sizes and indices from headers, checked before allocating -------------------------------------------------


def test_portal_z_index_is_checked(handed_over, tmp_path):
    doc = json.loads(handed_over["json"].read_text())
    for z in (10**12, -1, 2.5):
        bad = json.loads(json.dumps(doc))
        bad["per_section_alignment_parameters"][0]["z_index"] = z
        (tmp_path / "a.json").write_text(json.dumps(bad))
        run = run_cli(["convert", tmp_path / "a.json", "--to", "imod", "--output", tmp_path / "o",
                       "--image-size", 96, 80])
        err = one_line_error(run)
        assert "z_index" in err and ("out of range" in err or "integer" in err), err


def test_relion_micrograph_index_zero_or_huge(handed_over, tmp_path):
    from napari_tomoalign.io.relion import read_relion

    d = tmp_path / "rel"
    shutil.copytree(handed_over["star"].parent, d)
    ts = d / "tilt_series" / "m.star"
    text = ts.read_text()
    for bad in ("0@", "-3@", "900000000@"):
        ts.write_text(text.replace("1@", bad, 1))
        with pytest.raises(FileFormatError, match="micrograph index"):
            read_relion(d / "tomograms.star")


@pytest.mark.parametrize("header", ["1000000 1000000 0 0 100 100 0 0.5 0", "nan 4 0 0 100 100", "4 inf 0 0 100 100",
                                    "4 4 0 0 1e400 100"])
def test_local_file_header_counts(tmp_path, header):
    from napari_tomoalign.io.imod_local import read_local_transforms

    p = tmp_path / "local.xf"
    p.write_text(header + "\n" + "0 0 0 0 0 0 0 0 0 0\n" * 50)
    with pytest.raises(FileFormatError):
        read_local_transforms(p)
    with pytest.raises(FileFormatError):
        read_local_transforms(p, n_views=10**9)


def test_huge_marker_z_in_fid_xyz(series, tmp_path):
    from napari_tomoalign.io.alignment import read_alignment_dir

    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    lines = (al / "mfid.xyz").read_text().splitlines()
    z = lines[0].split()[3]
    at = lines[0].index(f" {z}") + 1
    lines[0] = lines[0][:at] + ("1e300" if len(z) >= 5 else "9e99" if len(z) == 4 else "inf").rjust(len(z)) + \
        lines[0][at + len(z):]
    body = "\n".join(lines) + "\n"
    run = json.loads((al / "alignment.json").read_text().splitlines()[0][len('{"tomoalign_run": '):-1])
    if len(body.encode()) != run["files"]["mfid.xyz"]["bytes"]:
        pytest.skip("the edit changed the size; the run stamp refuses it first")
    (al / "mfid.xyz").write_text(body)
    with pytest.raises(FileFormatError, match="marker Z"):
        read_alignment_dir(al)


# --- numbers in align.com -------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["RotOption inf", "TiltOption nan", "RotationFixedView 1e308", "LocalMagOption -inf",
                                  "SeparateGroup 1-3,nan", "AngleOffset 1e400", "KFactorScaling NaN",
                                  "TargetPatchSizeXandY 700,Infinity"])
def test_align_com_numbers_that_cannot_be_used(tmp_path, line):
    from napari_tomoalign.io.imod_com import read_com_section

    p = tmp_path / "align.com"
    p.write_text(f"$tiltalign -StandardInput\nModelFile a.fid\n{line}\n$if (-e ./savework) ./savework\n")
    with pytest.raises(FileFormatError, match="not a usable number") as exc:
        read_com_section(p)
    assert "line 3" in str(exc.value) and "\n" not in str(exc.value)
    p.write_text("$tiltalign -StandardInput\nModelFile inf.fid\nRotOption 1\nAngleOffset -0.5\n")
    assert read_com_section(p)["ModelFile"] == ["inf.fid"]


# --- 5. partial output ------------------------------------------------------------------------------------------


def test_convert_of_a_bad_aln_leaves_nothing(tmp_path):
    p = tmp_path / "bad.aln"
    p.write_text("# AreTomo Alignment / Priims bprmMn\n# RawSize = 96 80 3\n# SEC ROT GMAG TX TY SMEAN SFIT SCALE "
                 "BASE TILT\n    1 85 1 0 0 1 1 1 0 0\n    2 85 1 nan 0 1 1 1 0 3\n    3 85 1 0 0 1 1 1 0 6\n")
    for to in ("imod", "relion", "cdp", "aretomo"):
        out = tmp_path / f"o-{to}"
        _quick(run_cli(["convert", p, "--to", to, "--output", out, "--pixel-size-nm", 0.5]), "not a usable number")
        assert not out.exists()


def test_relion_pair_is_written_whole_or_not_at_all(series, tmp_path, monkeypatch):
    import starfile

    from napari_tomoalign.io.convert import convert

    calls = []
    real = starfile.write

    def failing(data, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(data, path, **kw)

    monkeypatch.setattr(starfile, "write", failing)
    with pytest.raises(OSError, match="No space"), warnings.catch_warnings():
        warnings.simplefilter("ignore", MagnificationLoss)
        convert(series["al"], "relion", tmp_path / "rel", pixel_size_nm=0.5)
    assert not (tmp_path / "rel").exists() or not [p for p in (tmp_path / "rel").rglob("*") if p.is_file()]


def test_imod_pair_is_written_whole_or_not_at_all(series, tmp_path):
    from napari_tomoalign.io.convert import convert

    out = tmp_path / "imod"
    out.mkdir()
    (out / "m.tlt").write_text("someone else's\n")  # the series of folder 'al' is 'm' (its stamp)
    with pytest.raises(OverwriteError):
        convert(series["al"], "imod", out)
    assert sorted(p.name for p in out.iterdir()) == ["m.tlt"] and (out / "m.tlt").read_text() == "someone else's\n"
    np.testing.assert_equal(len(convert(series["al"], "imod", out, overwrite=True)), 4)  # .xf, .tlt, fid.xyz, .resid


def test_temporaries_of_a_killed_writer_are_cleared_by_the_next(tmp_path):
    import subprocess
    import sys

    from napari_tomoalign.io.atomic import atomic_open

    target = tmp_path / "out.xf"
    code = ("import os, sys; from napari_tomoalign.io.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1]) as f:\n    f.write('half'); f.flush(); os.kill(os.getpid(), 9)\n")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True)
    assert r.returncode == -9
    left = temp_files(tmp_path)
    assert len(left) == 1 and not target.exists()
    mine = tmp_path / f".out.xf.{os.getpid()}.keepme.tmp"  # a live writer's temporary is left alone
    mine.write_text("busy")
    with atomic_open(target) as f:
        f.write("whole\n")
    assert target.read_text() == "whole\n" and temp_files(tmp_path) == [mine]


def test_a_local_file_from_another_run_is_refused(series, tmp_path):
    import hashlib

    from napari_tomoalign.io.alignment import read_alignment_dir

    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    body = b"local transforms of this run\n"
    (al / "m_local.xf").write_bytes(body)
    lines = (al / "alignment.json").read_text().split("\n")
    prefix = '{"tomoalign_run": '
    run = json.loads(lines[0][len(prefix):-1])
    run["local_file"] = "m_local.xf"
    run["files"]["m_local.xf"] = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    lines[0] = prefix + json.dumps(run) + ","
    (al / "alignment.json").write_text("\n".join(lines))
    assert read_alignment_dir(al).local_file == "m_local.xf"
    (al / "m_local.xf").write_bytes(body.replace(b"this", b"that"))  # same size, another run's
    with pytest.raises(FileFormatError, match="does not belong to the run"):
        read_alignment_dir(al)


def test_mrc_headers_that_cannot_be_used(tmp_path):
    import struct

    from napari_tomoalign.io.mrc import open_tilt_series, write_mrc

    p = tmp_path / "s.mrc"
    write_mrc(p, np.zeros((3, 8, 8), dtype=np.float32), 5.0)
    raw = bytearray(p.read_bytes())
    raw[12:16] = struct.pack("<i", 101)
    (tmp_path / "m101.mrc").write_bytes(raw)
    with pytest.raises(FileFormatError, match="mode 101 is IMOD's packed 4-bit format.*newstack -mode 0"):
        open_tilt_series(tmp_path / "m101.mrc")
    raw = bytearray(p.read_bytes())
    raw[40:44] = struct.pack("<f", float("inf"))  # cell size x: an infinite pixel size
    (tmp_path / "inf.mrc").write_bytes(raw)
    with pytest.raises(FileFormatError, match="pixel size .* not a usable number"):
        open_tilt_series(tmp_path / "inf.mrc")


@pytest.mark.parametrize("workers", ["-1", "0", "1000000000", "two"])
def test_batch_workers_out_of_range(series, tmp_path, workers):
    run = run_cli(["batch", series["csv"].parent, "--output", tmp_path / "o", "--workers", workers])
    _quick(run, "--workers")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["../escaped", "/tmp/tomoalign-abs-series", ".."])
def test_batch_series_names_stay_in_the_output_folder(series, tmp_path, name):
    table = tmp_path / "series.csv"
    table.write_text(f"name,markers,tilt_angles\n{name},{series['csv']},{series['tlt']}\n")
    run = run_cli(["batch", table, "--output", tmp_path / "box" / "o", "--workers", "1"])
    _quick(run, "not a plain file name")
    assert not (tmp_path / "box" / "escaped").exists() and not os.path.exists("/tmp/tomoalign-abs-series")


@pytest.mark.parametrize("kind", ["fifo", "sparse"])
def test_batch_tables_that_never_end(tmp_path, kind):
    table = tmp_path / "series.csv"
    if kind == "fifo":
        os.mkfifo(table)
    else:
        with open(table, "wb") as f:
            f.truncate(5 * 2**30)  # no newline in 5 GiB of holes
    run = run_cli(["batch", table, "--output", tmp_path / "o", "--workers", "1"])
    _quick(run, "FIFO" if kind == "fifo" else "too large")


def test_a_sibling_mdoc_of_several_mb_is_refused_at_once(tmp_path):
    import time

    from napari_tomoalign.io.tilt_sources import read_mdoc_tilts

    p = tmp_path / "s.mrc.mdoc"
    p.write_text("PixelSpacing = 1.5\n\n" + "".join(f"[ZValue = {z}]\nTiltAngle = {z % 120 - 60}\n" + "Note = x\n" * 40
                                                    for z in range(12_000)))
    assert p.stat().st_size > 4 * 2**20
    t0 = time.perf_counter()
    with pytest.raises(FileFormatError, match="too large for a SerialEM .mdoc"):
        read_mdoc_tilts(p)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("text", ["view,marker,x,y\n", "view,marker,x,y\r\n", "view,marker,x,y\n\n  \n"])
def test_a_csv_with_only_a_header_says_so_in_one_line(series, tmp_path, text):
    (tmp_path / "m.csv").write_text(text)
    run = run_cli(["align", tmp_path / "m.csv", "--tilt-angles", series["tlt"], "--image-size", 96, 80, "--output",
                   tmp_path / "o"])
    _quick(run, "no marker rows after the header")


def test_batch_with_a_scheduler_that_never_answers(series, tmp_path):
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))  # loopback only: accepts, then says nothing
    srv.listen(8)
    held = []

    def accept():
        try:
            while True:
                held.append(srv.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        run = run_cli(["batch", series["csv"].parent, "--output", tmp_path / "o", "--scheduler",
                       f"tcp://127.0.0.1:{srv.getsockname()[1]}"], timeout=120)
    finally:
        srv.close()
        for c in held:
            c.close()
    _quick(run, "did not answer in 10 s")
    assert not (tmp_path / "o").exists()  # the output folder the batch made is removed again


WEIRD = [None, True, -1, 1e308, float("inf"), "x", "../x", [], [[[]]], {}, {"a": [1, {"b": None}]}, [1e400, "nan"]]


def test_a_tampered_run_stamp_is_refused_never_a_traceback(series, tmp_path):
    """Every field of alignment.json's run stamp set to every kind of wrong value: a result or one
    FileFormatError, never another exception (a tampered alignment.json)."""
    from napari_tomoalign.io.alignment import read_alignment_dir

    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    lines = (al / "alignment.json").read_text().split("\n")
    prefix = '{"tomoalign_run": '
    run = json.loads(lines[0][len(prefix):-1])
    for key in [*run, "local_file", "prexg"]:
        for value in WEIRD:
            bad = {**run, key: value}
            text = json.dumps(bad).replace("Infinity", "1e400")
            (al / "alignment.json").write_text("\n".join([prefix + text + ","] + lines[1:]))
            try:
                read_alignment_dir(al)
            except FileFormatError:
                pass
    deep = prefix + "[" * 100_000 + "]" * 100_000 + ","
    (al / "alignment.json").write_text("\n".join([deep] + lines[1:]))
    with pytest.raises(FileFormatError):
        read_alignment_dir(al)


def test_the_python_convert_never_replaces_what_it_read(series, tmp_path):
    from napari_tomoalign.io.convert import convert

    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    before = (al / "alignment.json").read_bytes()
    with pytest.raises(OverwriteError, match="inputs"):
        convert(al, "cdp", al / "alignment.json", overwrite=True)
    assert (al / "alignment.json").read_bytes() == before
    assert convert(al, "cdp", tmp_path / "a.json")[0].is_file()  # another name is fine


def test_a_read_only_folder_is_named_as_the_output_not_our_temporary_file(tmp_path, monkeypatch):
    """Session 11's nit: a read-only output folder's error named '.c.rec.PID.XXXX.tmp', a file the user never asked
    for (root ignores permissions, so the refusal is made as the file system makes it)."""
    import errno
    import tempfile

    from napari_tomoalign.io.atomic import atomic_path

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".c.rec.1.abcd.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as e:
        with atomic_path(tmp_path / "c.rec"):
            pass
    assert e.value.filename == str(tmp_path / "c.rec") and e.value.errno == errno.EROFS


def test_an_output_in_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """New user's nit (session 13): `track --output` on a read-only mount tracked for 8 s, then refused."""
    from napari_tomoalign.io import atomic

    box = tmp_path / "ro"
    box.mkdir()
    box.chmod(0o555)
    if os.geteuid() == 0:  # root writes through permissions (not through a read-only mount): the check asks access(2)
        real = os.access
        monkeypatch.setattr(atomic.os, "access", lambda p, m: False if Path(p) == box else real(p, m))
    try:
        for target in (box / "t.fid", box / "new" / "deeper" / "t.fid"):  # the nearest folder that exists is judged
            with pytest.raises(OverwriteError, match=f"cannot write in {box} .a read-only file system, or no permission"):
                check_writable(target, True)
        assert check_writable(tmp_path / "new" / "t.fid", False) == tmp_path / "new" / "t.fid"
    finally:
        box.chmod(0o755)
