"""Round trips of every file format, and clear errors for bad files."""

import numpy as np
import pytest

from napari_tomoalign.io import FileFormatError, MarkerTable, read_markers, read_tilt_angles, write_markers_csv
from napari_tomoalign.io.atomic import OverwriteError, atomic_open
from napari_tomoalign.io.imod import read_fid_xyz, read_resid, read_xf, write_fid_xyz, write_resid, write_xf
from napari_tomoalign.io.tilts import write_tilt_angles


def test_csv_round_trip(tmp_path):
    t = MarkerTable(np.array([0, 1, 2]), np.array([4, 4, 9]), np.array([[1.25, 2.5], [3.0, 4.0], [5.5, 6.125]]))
    write_markers_csv(tmp_path / "m.csv", t)
    back = read_markers(tmp_path / "m.csv")
    np.testing.assert_array_equal(back.view, t.view)
    np.testing.assert_array_equal(back.marker, t.marker)
    np.testing.assert_allclose(back.xy, t.xy)


def test_csv_extra_columns_and_order(tmp_path):
    (tmp_path / "m.csv").write_text("x,note,y,marker,view\n1.5,a,2.5,3,0\n4,b,5,3,1\n")
    t = read_markers(tmp_path / "m.csv")
    np.testing.assert_allclose(t.xy, [[1.5, 2.5], [4, 5]])
    np.testing.assert_array_equal(t.view, [0, 1])


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("view,marker,x\n0,1,2\n", "lacks column"),
    ("view,marker,x,y\n0,1,a,2\n", "line 2: expected numbers"),
    ("view,marker,x,y\n0.5,1,1,2\n", "whole number"),
    ("view,marker,x,y\n0,1,nan,2\n", "NaN"),
    ("view,marker,x,y\n", "no marker rows"),
])
def test_bad_csv(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(FileFormatError, match=message):
        read_markers(tmp_path / "m.csv")


def test_tilt_round_trip_and_errors(tmp_path, imod_data):
    t = read_tilt_angles(imod_data / "BBa.rawtlt")
    assert len(t) == 61 and t[0] == 65.0
    write_tilt_angles(tmp_path / "x.tlt", t)
    np.testing.assert_allclose(read_tilt_angles(tmp_path / "x.tlt"), t)
    (tmp_path / "bad.tlt").write_text("1\nabc\n")
    with pytest.raises(FileFormatError, match="line 2"):
        read_tilt_angles(tmp_path / "bad.tlt")
    (tmp_path / "big.tlt").write_text("95\n")
    with pytest.raises(FileFormatError, match="outside"):
        read_tilt_angles(tmp_path / "big.tlt")
    with pytest.raises(FileFormatError, match="no such"):
        read_tilt_angles(tmp_path / "missing.tlt")
    (tmp_path / "bin.tlt").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(FileFormatError, match="binary"):
        read_tilt_angles(tmp_path / "bin.tlt")


def test_imod_text_files_round_trip(tmp_path, imod_data):
    xf = read_xf(imod_data / "same-model-a" / "out.tltxf")
    write_xf(tmp_path / "a.xf", xf)
    np.testing.assert_allclose(read_xf(tmp_path / "a.xf"), xf, atol=1e-7)
    assert (tmp_path / "a.xf").read_text().splitlines()[0] == (
        imod_data / "same-model-a" / "out.tltxf").read_text().splitlines()[0]
    ids, xyz = read_fid_xyz(imod_data / "same-model-a" / "outfid.xyz")
    write_fid_xyz(tmp_path / "f.xyz", ids, xyz, (512, 512), 20.2)
    ids2, xyz2 = read_fid_xyz(tmp_path / "f.xyz")
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_allclose(xyz2, xyz, atol=0.005 + 1e-9)
    assert (tmp_path / "f.xyz").read_text().splitlines()[0] == (
        imod_data / "same-model-a" / "outfid.xyz").read_text().splitlines()[0]
    v, pts, res = read_resid(imod_data / "same-model-a" / "out.resid")
    write_resid(tmp_path / "r.resid", v, pts, res)
    assert (tmp_path / "r.resid").read_text() == (imod_data / "same-model-a" / "out.resid").read_text()


def test_writers_never_overwrite_and_leave_no_temp(tmp_path):
    target = tmp_path / "keep.xf"
    target.write_text("user data\n")
    with pytest.raises(OverwriteError, match="already exists"):
        write_xf(target, np.zeros((1, 2, 3)))
    assert target.read_text() == "user data\n"
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "new.txt") as f:
            f.write("half")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.xf"]


def test_model_reader_refuses_other_files(tmp_path):
    (tmp_path / "x.fid").write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(FileFormatError, match="not an IMOD model"):
        read_markers(tmp_path / "x.fid")
    (tmp_path / "y.fid").write_bytes(b"IMODV1.2" + bytes(50))
    with pytest.raises(FileFormatError, match="damaged or truncated"):
        read_markers(tmp_path / "y.fid")
    with pytest.raises(FileFormatError, match="unknown marker file type"):
        read_markers(tmp_path / "z.txt")


def test_truncated_real_model(tmp_path, imod_data):
    data = (imod_data / "BBa.fid").read_bytes()
    (tmp_path / "t.fid").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError):
        read_markers(tmp_path / "t.fid")


def test_a_stop_request_keeps_every_later_write_from_committing_until_cleared(tmp_path):
    import signal

    from napari_tomoalign.io.atomic import StopRequested, atomic_path, clear_stop, request_stop

    target = tmp_path / "out.txt"
    target.write_text("previous")
    try:
        with pytest.raises(StopRequested):
            request_stop(signal.SIGTERM)  # as the CLI's handler does; the raise may be lost in a C callback
        with pytest.raises(StopRequested):
            with atomic_path(target, overwrite=True) as tmp:
                tmp.write_text("new")
        assert target.read_text() == "previous" and not list(tmp_path.glob(".*.tmp"))
    finally:
        clear_stop()
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def _read_or_error(path):
    try:
        t = read_markers(path)
    except FileFormatError as exc:
        return str(exc)
    return t.view.tolist(), t.marker.tolist(), t.xy.tolist(), t.image_size


def test_python_and_compiled_model_walks_agree_on_real_and_damaged_models(tmp_path, imod_data, monkeypatch):
    """Small models are walked in Python (no numba at start-up), large ones by the compiled pass: both
    read the same points and find the same damage at the same byte."""
    from napari_tomoalign.io import imod_model

    blob = (imod_data / "BBa.fid").read_bytes()
    rng = np.random.default_rng(3)
    variants = {"whole": blob, "cut_header": blob[:200], "cut_mid": blob[: len(blob) // 2],
                "cut_end": blob[:-3], "no_ieof": blob[:-4]}
    for k in range(12):  # single damaged bytes in chunk headers and points
        b = bytearray(blob)
        b[int(rng.integers(240, len(blob)))] = int(rng.integers(0, 256))
        variants[f"flip{k}"] = bytes(b)
    cont = blob.index(b"CONT")
    b = bytearray(blob)
    b[cont + 4 : cont + 8] = (-5).to_bytes(4, "big", signed=True)  # a negative point count
    variants["negative"] = bytes(b)
    for name, data in variants.items():
        path = tmp_path / f"{name}.fid"
        path.write_bytes(data)
        monkeypatch.setattr(imod_model, "COMPILED_WALK_BYTES", 10**9)
        python = _read_or_error(path)
        monkeypatch.setattr(imod_model, "COMPILED_WALK_BYTES", 0)
        compiled = _read_or_error(path)
        assert python == compiled, name
    assert isinstance(_read_or_error(tmp_path / "whole.fid"), tuple)
    assert "negative count" in _read_or_error(tmp_path / "negative.fid")
