"""Files that are not what they claim (issue 15, classes 1, 2 and 8): a FIFO, /dev/zero behind a symlink,
crafted IMOD chunks, a BOM, napari's own CSV. Each gets an answer in under 2 s, well under 256 MB above
the baseline, exit 2 with one line, and no temporary file left."""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest
from support.hostile import baseline_mib, one_line_error, run_cli, small_series, temp_files

from napari_tomoalign.io import FileFormatError, MarkerTable, read_markers, read_tilt_angles
from napari_tomoalign.io.imod_model import read_imod_model, write_imod_model
from napari_tomoalign.io.tilt_sources import read_mdoc_tilts

BUDGET_MIB = 256


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return small_series(tmp_path_factory.mktemp("series"))


@pytest.fixture(scope="module")
def baseline():
    return baseline_mib()


def _check_hostile(run, baseline, message):
    err = one_line_error(run)
    assert message in err, err
    assert run.seconds < 2.0 + 1.5, run.seconds  # the interpreter's start-up is in this figure
    assert run.peak_mib - baseline < BUDGET_MIB, (run.peak_mib, baseline)


@pytest.mark.parametrize("which", ["csv", "tlt", "fid"])
def test_fifo_inputs_are_refused_at_once(tmp_path, series, baseline, which):
    fifo = tmp_path / f"pipe.{which}"
    os.mkfifo(fifo)
    markers = fifo if which in ("csv", "fid") else series["csv"]
    tilts = fifo if which == "tlt" else series["tlt"]
    run = run_cli(["align", markers, "--tilt-angles", tilts, "--image-size", 96, 80, "--output", tmp_path / "o"],
                  timeout=20)
    _check_hostile(run, baseline, "FIFO")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
@pytest.mark.parametrize("which", ["csv", "tlt", "fid"])
def test_endless_devices_behind_symlinks_are_refused(tmp_path, series, baseline, device, which):
    link = tmp_path / f"link.{which}"
    link.symlink_to(device)
    markers = link if which in ("csv", "fid") else series["csv"]
    tilts = link if which == "tlt" else series["tlt"]
    run = run_cli(["align", markers, "--tilt-angles", tilts, "--image-size", 96, 80, "--output", tmp_path / "o"],
                  timeout=20)
    _check_hostile(run, baseline, "character device")


def test_readers_refuse_a_directory_and_a_fifo_in_process(tmp_path):
    os.mkfifo(tmp_path / "p.tlt")
    with pytest.raises(FileFormatError, match="FIFO"):
        read_tilt_angles(tmp_path / "p.tlt")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(FileFormatError, match="directory"):
        read_markers(tmp_path / "d.csv")
    os.mkfifo(tmp_path / "p.mdoc")
    with pytest.raises(FileFormatError, match="FIFO"):
        read_mdoc_tilts(tmp_path / "p.mdoc")


def _model(tmp_path, name="m.fid"):
    table = MarkerTable(np.array([0, 1, 2, 0, 1, 2]), np.array([1, 1, 1, 2, 2, 2]),
                        np.array([[10.0, 20], [11, 21], [12, 22], [40, 30], [41, 31], [42, 32]]), (64, 48))
    write_imod_model(tmp_path / name, table, n_views=21)  # made on the 21-view series of the tests
    return tmp_path / name, bytearray((tmp_path / name).read_bytes())


def _end_of_chunks(blob: bytes) -> int:
    return blob.rindex(b"IEOF")


def test_a_contour_header_hidden_in_a_size_chunk_is_never_parsed(tmp_path, baseline):
    path, blob = _model(tmp_path)
    # A SIZE chunk whose body looks like a CONT header claiming 2**31 - 1 points, then padding: 19,767 bytes.
    hidden = b"CONT" + struct.pack(">iIii", 2**31 - 1, 0, 0, 0)
    body = hidden + bytes(19767 - len(blob) - 8 - len(hidden))
    end = _end_of_chunks(blob)
    crafted = bytes(blob[:end]) + b"SIZE" + struct.pack(">I", len(body)) + body + bytes(blob[end:])
    assert len(crafted) == 19767
    path.write_bytes(crafted)
    t = read_imod_model(path)  # the chunk is skipped by its length, as IMOD does
    assert len(t) == 6 and t.image_size == (64, 48)
    run = run_cli(["align", path, "--tilt-angles", tmp_path / "none.tlt", "--output", tmp_path / "o"])
    _check_hostile(run, baseline, "no such tilt-angle file")


def test_a_contour_claiming_more_points_than_the_file_holds(tmp_path):
    path, blob = _model(tmp_path)
    at = blob.index(b"CONT") + 4
    blob[at : at + 4] = struct.pack(">i", 2**31 - 1)
    path.write_bytes(bytes(blob))
    with pytest.raises(FileFormatError, match="runs past the end"):
        read_imod_model(path)


def test_a_million_empty_contours_are_quick_and_small(tmp_path):
    path, blob = _model(tmp_path)
    end = _end_of_chunks(blob)
    empty = b"CONT" + bytes(16)
    path.write_bytes(bytes(blob[:end]) + empty * 1_000_000 + bytes(blob[end:]))
    assert path.stat().st_size > 20_000_000
    read_imod_model(path)  # compile and cache the walk first
    t0 = time.perf_counter()
    t = read_imod_model(path)
    assert time.perf_counter() - t0 < 2.0
    assert len(t) == 6 and set(t.marker.tolist()) == {1, 2}


def test_header_without_image_size_says_so_not_csv(tmp_path, series, capsys):
    from napari_tomoalign.cli import main

    path, blob = _model(tmp_path)
    blob[136:144] = struct.pack(">ii", 0, -5)
    path.write_bytes(bytes(blob))
    rc = main(["align", str(path), "--tilt-angles", str(series["tlt"]), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "header gives no image size" in err and "CSV" not in err


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    (tmp_path / "m.csv").write_bytes("\ufeffview,marker,x,y\r\n0,1,2.5,3\r\n1,1,4,5\r\n".encode())
    t = read_markers(tmp_path / "m.csv")
    np.testing.assert_allclose(t.xy, [[2.5, 3], [4, 5]])


def test_napari_points_csv_reads(tmp_path):
    (tmp_path / "p.csv").write_text("index,axis-0,axis-1,axis-2,marker\n0,0.0,20.5,10.25,3\n1,1.0,21.0,11.0,3\n"
                                    "2,1.0,40.0,30.0,7\n")
    t = read_markers(tmp_path / "p.csv")
    np.testing.assert_array_equal(t.view, [0, 1, 1])
    np.testing.assert_array_equal(t.marker, [3, 3, 7])
    np.testing.assert_allclose(t.xy, [[10.25, 20.5], [11, 21], [30, 40]])  # x = axis-2, y = axis-1


@pytest.mark.parametrize("ident", ["9007199254740993", "9007199254740992", "-9007199254740993", "1e300"])
def test_marker_ids_beyond_2_53_in_csv_are_refused(tmp_path, ident):
    (tmp_path / "m.csv").write_text(f"view,marker,x,y\n0,{ident},1,2\n1,1,3,4\n")
    with pytest.raises(FileFormatError, match="line 2: marker id is out of range"):
        read_markers(tmp_path / "m.csv")


def test_no_temp_files_anywhere(series):
    assert temp_files(series["al"].parent) == []
