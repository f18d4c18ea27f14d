"""Hostile input, round 3 (issue 22): outputs through a symlinked sub-folder, a stale local file, bad pixel
sizes in `convert`, numbers in messages and an `.aln` header that promises rows it does not hold."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.hostile import small_series

from napari_tomoalign.cli import main


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return small_series(tmp_path_factory.mktemp("round3"))


def _linked(tmp_path: Path, out: str, sub: str, precious: str) -> tuple[Path, Path]:
    """``out/sub -> ../elsewhere`` with a precious file in ``elsewhere``."""
    o, elsewhere = tmp_path / out, tmp_path / "elsewhere"
    o.mkdir()
    elsewhere.mkdir()
    (elsewhere / precious).write_text("precious\n")
    (o / sub).symlink_to("../elsewhere")
    return o, elsewhere


def _untouched(elsewhere: Path, precious: str) -> None:
    assert sorted(p.name for p in elsewhere.iterdir()) == [precious]
    assert (elsewhere / precious).read_text() == "precious\n"


def test_relion_through_a_linked_tilt_series_folder_is_refused(tmp_path, series, capsys):
    o, elsewhere = _linked(tmp_path, "o", "tilt_series", "m.star")
    assert main(["convert", str(series["al"]), "--to", "relion", "--pixel-size-nm", "0.5", "--output", str(o),
                 "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tilt_series is a symbolic link" in err[0] and "outside the output folder" in err[0]
    _untouched(elsewhere, "m.star")
    assert sorted(p.name for p in o.iterdir()) == ["tilt_series"]


def test_run_through_a_linked_alignment_folder_is_refused(tmp_path, series, capsys):
    o, elsewhere = _linked(tmp_path, "o", "alignment", "alignment.json")
    assert main(["run", str(series["stack"]), "--tilt-angles", str(series["tlt"]), "--bead-diameter-px", "6",
                 "--output", str(o), "--force"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "alignment is a symbolic link to ../elsewhere" in err[0]
    _untouched(elsewhere, "alignment.json")
    assert sorted(p.name for p in o.iterdir()) == ["alignment"]


def test_a_link_that_stays_inside_the_output_folder_is_fine(tmp_path, series):
    o = tmp_path / "o"
    (o / "real").mkdir(parents=True)
    (o / "tilt_series").symlink_to("real")
    assert main(["convert", str(series["al"]), "--to", "relion", "--pixel-size-nm", "0.5", "--output", str(o)]) == 0
    assert (o / "real" / "m.star").is_file()


def test_batch_series_folder_linked_outside_fails_that_series(tmp_path, series):
    from napari_tomoalign.batch import process_series
    from napari_tomoalign.batch.series import SeriesSpec

    out, elsewhere = _linked(tmp_path, "out", "m", "alignment.json")
    spec = SeriesSpec("m", markers=series["csv"], tilt_angles=series["tlt"], image_size=(96, 80))
    row = process_series(spec, str(out), {}, (), force=True)
    assert row["status"] == "failed" and "out/m is a symbolic link" in row["error"]
    _untouched(elsewhere, "alignment.json")


def _align(s: dict, out: Path, *extra: str) -> None:
    assert main(["align", str(s["csv"]), "--tilt-angles", str(s["tlt"]), "--image-size", "96", "80", "--output",
                 str(out), "--quiet", *extra]) == 0


def _reconstruct(s: dict, al: Path, out: Path, *extra: str) -> int:
    return main(["reconstruct", str(s["stack"]), "--alignment", str(al), "--output", str(out), "--quiet", *extra])


def test_a_forced_align_without_local_moves_the_earlier_local_file_aside(tmp_path, series, capsys):
    loc = tmp_path / "loc"
    _align(series, loc, "--local")
    first = _digest(loc / "mlocal.xf")
    _align(series, loc, "--rotation", "one", "--force")
    names = sorted(p.name for p in loc.iterdir())
    assert "mlocal.xf" not in names and _digest(loc / "mlocal.xf~") == first  # every file of the earlier run aside
    assert all(f"{n}~" in names for n in names if not n.endswith("~"))
    capsys.readouterr()
    assert _reconstruct(series, loc, tmp_path / "o.mrc", "--local") == 2
    assert "no local alignment file" in capsys.readouterr().err
    # a stale *local.xf put back by hand: the stamp does not name it, so it is refused, not applied
    (loc / "mlocal.xf").write_bytes((loc / "mlocal.xf~").read_bytes())
    assert _reconstruct(series, loc, tmp_path / "o.mrc", "--local") == 2
    assert "mlocal.xf is not part of it" in capsys.readouterr().err
    assert not (tmp_path / "o.mrc").exists()


def test_an_explicit_local_file_of_another_run_is_refused(tmp_path, series, capsys):
    loc = tmp_path / "loc"
    _align(series, loc, "--local")
    (tmp_path / "old_local.xf").write_bytes((loc / "mlocal.xf").read_bytes())
    _align(series, loc, "--rotation", "one", "--local", "--force")
    capsys.readouterr()
    cases = [(series["al"], loc / "mlocal.xf", "not of"),  # the local file of another alignment folder
             (loc, loc / "mlocal.xf~", "does not list it"),  # the earlier run's, kept aside
             (loc, tmp_path / "old_local.xf", "has its own local file")]  # no stamp, and the alignment has its own
    for al, local, says in cases:
        assert _reconstruct(series, al, tmp_path / "o.mrc", "--local", str(local)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "o.mrc").exists()
    assert _reconstruct(series, loc, tmp_path / "own.mrc", "--local", str(loc / "mlocal.xf")) == 0


@pytest.mark.parametrize("pix", ["nan", "inf", "-1", "0"])
def test_convert_refuses_a_pixel_size_that_is_not_a_positive_number(tmp_path, series, pix, capsys):
    from napari_tomoalign.io.convert import convert
    from napari_tomoalign.io.errors import FileFormatError

    aln = tmp_path / "m.aln"
    assert main(["convert", str(series["al"]), "--to", "aretomo", "--output", str(aln), "--quiet"]) == 0
    capsys.readouterr()
    for source in (series["al"], aln):
        assert main(["convert", str(source), "--to", "relion", f"--pixel-size-nm={pix}", "--output",
                     str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "positive number of nanometres" in err[0], err
        with pytest.raises(FileFormatError, match="positive number of nanometres"):  # the API too
            convert(source, "relion", tmp_path / "o", pixel_size_nm=float(pix))
    assert not (tmp_path / "o").exists()


def test_batch_table_and_option_refuse_a_bad_pixel_size(tmp_path, series, capsys):
    table = tmp_path / "tab.csv"
    table.write_text(f"markers,tilt_angles,image_width,image_height,pixel_size_nm\n{series['csv']},{series['tlt']},"
                     "96,80,-0.5\n")
    assert main(["batch", str(table), "--output", str(tmp_path / "out")]) == 2
    assert "line 2: pixel_size_nm: the pixel size must be a positive number" in capsys.readouterr().err
    assert main(["batch", str(table), "--output", str(tmp_path / "out"), "--pixel-size-nm", "nan"]) == 2
    assert not (tmp_path / "out").exists()


def test_numbers_in_messages_are_plain(tmp_path, series, capsys):
    """A fid.xyz with Z = 1e12, re-stamped so that the stamp check passes: the message says 1e+12, no numpy repr."""
    import json
    import shutil

    al = tmp_path / "al"
    shutil.copytree(series["al"], al)
    xyz = al / "mfid.xyz"
    rows = xyz.read_text().split("\n")
    first = rows[0].split()
    rows[0] = " ".join([*first[:3], "1e12", *first[4:]])
    xyz.write_text("\n".join(rows))
    head, rest = (al / "alignment.json").read_text().split("\n", 1)
    key = '{"tomoalign_run": '
    assert head.startswith(key) and head.endswith(",")
    stamp = json.loads(head[len(key):-1])
    stamp["files"]["mfid.xyz"] = {"bytes": xyz.stat().st_size, "sha256": hashlib.sha256(xyz.read_bytes()).hexdigest()}
    (al / "alignment.json").write_text(key + json.dumps(stamp) + ",\n" + rest)
    assert main(["reconstruct", str(series["stack"]), "--alignment", str(al), "--output", str(tmp_path / "o.mrc")]) == 2
    err = capsys.readouterr().err
    assert "a marker Z of 1e+12 px is not usable" in err and "np." not in err


def test_aln_patch_count_must_match_its_lines(tmp_path, series, capsys):
    aln = tmp_path / "m.aln"
    assert main(["convert", str(series["al"]), "--to", "aretomo", "--output", str(aln), "--quiet"]) == 0
    text = aln.read_text()
    capsys.readouterr()
    for n, says in (("2000000000", "NumPatches 2000000000 is out of range"), ("3", "means 63 local alignment lines")):
        bad = tmp_path / f"p{n}.aln"
        bad.write_text(text.replace("NumPatches = 0", f"NumPatches = {n}"))
        assert main(["convert", str(bad), "--to", "cdp", "--output", str(tmp_path / "o.json")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "o.json").exists()


def test_a_batch_that_cannot_reach_its_scheduler_leaves_no_folder(tmp_path, series, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["batch", str(series["csv"].parent), "--output", str(tmp_path / "out" / "deeper"), "--scheduler",
                 f"tcp://127.0.0.1:{port}"]) == 2
    assert "cannot reach the scheduler" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # out/deeper made, and removed again
