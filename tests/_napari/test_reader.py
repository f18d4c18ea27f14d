"""The napari reader: layer data for marker files, None for anything else, never an exception."""

import numpy as np
import pytest

from napari_tomoalign._napari.reader import napari_get_reader
from napari_tomoalign.io.imod import read_resid


def test_reads_fid_as_points_with_marker_feature(imod_data):
    reader = napari_get_reader(str(imod_data / "BBa.fid"))
    assert callable(reader)
    [(data, kwargs, kind)] = reader(str(imod_data / "BBa.fid"))
    assert kind == "points" and data.shape == (1525, 3)
    view, xy, _ = read_resid(imod_data / "BBa.resid")
    np.testing.assert_array_equal(data[:, 0], view)
    np.testing.assert_allclose(data[:, [2, 1]], xy, atol=0.005 + 1e-9)  # (view, y, x)
    assert set(kwargs["features"]["marker"]) == set(range(1, 26))
    assert kwargs["face_color"].shape == (1525, 4)


@pytest.mark.parametrize("name,content", [
    ("a.fid", b"not a model"), ("b.csv", b"time,value\n1,2\n"), ("c.txt", b"view,marker,x,y\n"),
    ("d.csv", b"\xff\xfe\x00"),
])
def test_returns_none_for_foreign_files(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    assert napari_get_reader(str(tmp_path / name)) is None


def test_returns_none_for_odd_paths(tmp_path):
    assert napari_get_reader(str(tmp_path / "missing.fid")) is None
    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) is None


def _stack(path, n=5, ispg=None):
    from napari_tomoalign.io.mrc import write_mrc

    write_mrc(path, np.zeros((n, 8, 8), np.float32), 20.2)
    if ispg is not None:
        import mrcfile

        with mrcfile.open(path, "r+") as m:
            m.header.ispg = ispg
    return path


def test_raw_stack_takes_rawtlt_first_and_aligned_stack_takes_tlt(tmp_path):
    from napari_tomoalign.io.tilt_sources import sibling_tilt_file

    for stem in ("ts", "ts_ali"):
        (tmp_path / f"{stem}.rawtlt").write_text("\n".join(["-10", "-5", "0", "5", "10"]))
        (tmp_path / f"{stem}.tlt").write_text("\n".join(["-11", "-6", "0", "6", "11"]))
    st, ali = _stack(tmp_path / "ts.st"), _stack(tmp_path / "ts_ali.ali")
    assert sibling_tilt_file(st).name == "ts.rawtlt" and sibling_tilt_file(ali).name == "ts_ali.tlt"
    [(_, kw, _)] = napari_get_reader(str(st))(str(st))
    assert kw["metadata"]["tilt_source"].endswith("ts.rawtlt") and kw["metadata"]["tilt_angles_deg"][0] == -10
    [(_, kw, _)] = napari_get_reader(str(ali))(str(ali))
    assert kw["metadata"]["tilt_source"].endswith("ts_ali.tlt") and kw["metadata"]["tilt_angles_deg"][0] == -11


def test_volumes_open_with_their_voxel_size_on_every_axis(tmp_path, monkeypatch):
    told = []
    monkeypatch.setattr("napari_tomoalign._napari.reader._notify", lambda *a, **k: told.append(a))
    for path in (_stack(tmp_path / "tomo.rec", n=12), _stack(tmp_path / "vol.mrc", n=12, ispg=1)):
        [(data, kwargs, kind)] = napari_get_reader(str(path))(str(path))
        assert kind == "image" and data.shape == (12, 8, 8)
        assert kwargs["scale"] == pytest.approx((2.02, 2.02, 2.02))
        assert kwargs["metadata"]["volume"] and "tilt_angles_deg" not in kwargs["metadata"]
    assert told == []  # no warning about tilt angles: a volume has none


def test_a_tilt_series_marked_as_a_volume_by_its_writer_is_still_a_tilt_series(tmp_path):
    # mrcfile's set_data marks every 3-D MRC a volume (ISPG 1); a .st, a .preali, or an .mrc with its
    # tilt angles beside it are tilt series all the same.
    (tmp_path / "b.rawtlt").write_text("\n".join(["-10", "-5", "0", "5", "10"]))
    for path in (_stack(tmp_path / "a.st", ispg=1), _stack(tmp_path / "a.preali", ispg=1),
                 _stack(tmp_path / "b.mrc", ispg=1)):
        [(data, kwargs, _)] = napari_get_reader(str(path))(str(path))
        assert "volume" not in kwargs["metadata"], path.name
        assert kwargs["scale"] == pytest.approx((1.0, 2.02, 2.02)), path.name


def test_marker_file_picks_up_its_sibling_angles(imod_data):
    [(_, kwargs, _)] = napari_get_reader(str(imod_data / "BBa.fid"))(str(imod_data / "BBa.fid"))
    assert kwargs["metadata"]["tilt_source"].endswith("BBa.rawtlt")
    assert len(kwargs["metadata"]["tilt_angles_deg"]) == 61
    assert kwargs["symbol"] == "ring"  # hollow rings: the bead stays visible under each click


def test_offers_to_read_napari_points_csv_with_a_marker_column(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("index,axis-0,axis-1,axis-2,marker\n0,1,20,10,1\n")
    assert callable(napari_get_reader(str(path)))
    (tmp_path / "other.csv").write_text("index,axis-0,axis-1,axis-2\n0,1,20,10\n")
    assert napari_get_reader(str(tmp_path / "other.csv")) is None


def test_a_marker_file_takes_the_pixel_size_of_its_stack(tmp_path, imod_data):
    import shutil

    shutil.copy(imod_data / "BBa.fid", tmp_path / "BBa.fid")
    [(_, kwargs, _)] = napari_get_reader(str(tmp_path / "BBa.fid"))(str(tmp_path / "BBa.fid"))
    assert "scale" not in kwargs  # no stack beside it: pixels
    from napari_tomoalign.io.mrc import write_mrc

    write_mrc(tmp_path / "BBa.preali", np.zeros((61, 512, 512), np.int8), 20.2)
    [(_, kwargs, _)] = napari_get_reader(str(tmp_path / "BBa.fid"))(str(tmp_path / "BBa.fid"))
    assert kwargs["scale"] == pytest.approx((1.0, 2.02, 2.02))


def test_a_huge_view_is_read_subsampled_for_its_contrast(tmp_path):
    """New user's finding (session 9): a 46000² header made the reader hold a whole view (9.8 GB resident)."""
    import subprocess
    import sys

    import mrcfile

    p = tmp_path / "huge.st"
    with mrcfile.new_mmap(p, shape=(3, 16384, 16384), mrc_mode=2) as m:  # 3.2 GB, sparse: nothing written
        m.data[1, ::512, ::512] = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    # The peak of this process alone: VmHWM starts afresh at exec, where ru_maxrss keeps the forking parent's.
    code = ("import sys; from napari_tomoalign._napari.reader import napari_get_reader as g; "
            "[(d, kw, k)] = g(sys.argv[1])(sys.argv[1]); "
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]; "
            "print(kw['contrast_limits'][1], int(hwm) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    high, peak_mb = (float(v) for v in out.stdout.split())
    assert high > 0  # the subsampled view was read (its bright samples set the upper limit)
    assert peak_mb < 400, f"{peak_mb} MB resident for one 16384² view's contrast"
