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
