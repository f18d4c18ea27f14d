"""The IMOD model writer packs the same bytes imodmodel writes for the same markers (imodmodel, the library
made for the job, is the reference here; the writer itself does without its pydantic objects and pandas)."""

import numpy as np
import pytest

from napari_tomoalign.io.imod_model import read_imod_model, write_imod_model
from napari_tomoalign.io.table import IMOD_PIXEL_OFFSET, MarkerTable


def _imodmodel_bytes(path, table, image_size=None, n_views=None):
    """The model as imodmodel writes it (the writer of session 8, kept as the reference)."""
    imodmodel = pytest.importorskip("imodmodel")
    from imodmodel.models import Contour, Object

    ids = np.asarray(table.marker, dtype=np.int64)
    order = np.lexsort((table.view, ids))
    xyz = np.column_stack([table.xy + IMOD_PIXEL_OFFSET, np.asarray(table.view, dtype=float)])[order]
    ids = ids[order]
    starts = np.searchsorted(ids, np.arange(1, ids.max() + 2))
    obj = Object()
    for k in range(int(ids.max())):
        obj.contours.append(Contour(points=xyz[starts[k] : starts[k + 1]]))
    obj.header.flags.scattered = False
    obj.header.flags.open = True
    obj.update_sizes()
    model = imodmodel.ImodModel()
    model.objects.append(obj)
    model.update_sizes()
    size = image_size or table.image_size
    if size is not None:
        model.header.xmax, model.header.ymax = int(size[0]), int(size[1])
    model.header.zmax = int(n_views if n_views is not None else table.n_views or np.max(table.view) + 1)
    model.to_file(path)
    return path.read_bytes()


def _tracked_like(seed, n_markers, n_views, gaps):
    """Markers as a tracking writes them: ids with unused numbers, views missing, positions of 4096² views."""
    rng = np.random.default_rng(seed)
    view, marker = np.meshgrid(np.arange(n_views), rng.choice(np.arange(1, 3 * n_markers), n_markers, replace=False))
    keep = rng.random(view.shape) > gaps
    xy = rng.uniform(-0.5, 4095.5, (int(keep.sum()), 2))
    order = rng.permutation(len(xy))  # any row order
    return MarkerTable(view[keep][order], marker[keep][order], xy[order], (4096, 3838), None, n_views)


@pytest.mark.parametrize("seed,n_markers,n_views,gaps", [(0, 1, 1, 0.0), (1, 40, 41, 0.1), (2, 300, 121, 0.3)])
def test_the_written_model_is_imodmodels_byte_for_byte(tmp_path, seed, n_markers, n_views, gaps):
    table = _tracked_like(seed, n_markers, n_views, gaps)
    write_imod_model(tmp_path / "ours.fid", table, n_views=n_views)
    assert (tmp_path / "ours.fid").read_bytes() == _imodmodel_bytes(tmp_path / "ref.fid", table, n_views=n_views)
    back = read_imod_model(tmp_path / "ours.fid")
    assert back.image_size == (4096, 3838) and back.n_views == n_views
    o = np.lexsort((table.view, table.marker))
    np.testing.assert_array_equal(back.marker, table.marker[o])
    np.testing.assert_array_equal(back.view, table.view[o])
    np.testing.assert_allclose(back.xy, table.xy[o], atol=3e-4)  # float32 in the file


def test_no_image_size_and_the_view_count_from_the_table_or_the_views(tmp_path):
    xy = np.array([[1.25, 2.5], [3.0, 4.0], [5.5, 6.125], [7.0, 8.0]])
    for n_views in (None, 7):
        table = MarkerTable(np.array([0, 1, 0, 4]), np.array([2, 2, 5, 5]), xy, None, None, n_views)
        write_imod_model(tmp_path / f"ours{n_views}.fid", table)
        assert (tmp_path / f"ours{n_views}.fid").read_bytes() == _imodmodel_bytes(tmp_path / f"ref{n_views}.fid",
                                                                                   table)
    table = MarkerTable(np.array([0, 1]), np.array([1, 1]), xy[:2], (100, 200), None, None)
    write_imod_model(tmp_path / "given.fid", table, image_size=(640, 480), n_views=9)
    assert (tmp_path / "given.fid").read_bytes() == _imodmodel_bytes(tmp_path / "given_ref.fid", table, (640, 480), 9)
