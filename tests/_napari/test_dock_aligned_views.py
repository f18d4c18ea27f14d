"""The dock's aligned stack is warped view by view when shown, never kept whole (session 14's new user: 2 GB resident
after one Align of a 0.5 GB stack, one more GB per Align), and saved from the layer it is the same ``.ali`` as
``tomoalign aligned-stack`` writes from the saved alignment."""

import mrcfile
import napari
import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock.results import ALIGNED  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign._napari.writer import write_image_mrc  # noqa: E402
from napari_tomoalign.io.mrc import write_mrc  # noqa: E402
from napari_tomoalign.reconstruction.aligned_views import KEPT_VIEWS, AlignedViews  # noqa: E402
from napari_tomoalign.reconstruction.warp import aligned_stack  # noqa: E402
from napari_tomoalign.workflows import aligned_stack_to_file  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


def test_aligned_views_warped_when_shown_and_saved_as_the_cli_writes_them(qtbot, make_napari_viewer, imod_data,
                                                                           tmp_path, monkeypatch):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    with mrcfile.open(st) as m:  # a camera's integer stack: the saved aligned stack keeps its mode
        write_mrc(st, np.rint(m.data).astype(np.int16), 20.2, overwrite=True)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    [image] = viewer.open(str(st), plugin="napari-tomoalign")
    viewer.open(str(fid), plugin="napari-tomoalign")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        for name in ("first", "second"):  # two alignments kept for Compare: neither holds an aligned stack
            widget.options.result_name.value = name
            assert widget.start_alignment() is not None
            qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
            assert widget.status.text().startswith("done"), widget.status.text()
        assert all(r.aligned is None for r in widget.runs.results.values())
        last = widget.runs.last
        layer = viewer.layers[ALIGNED]
        assert isinstance(layer.data, AlignedViews) and layer.data.stack is image.data  # no copy of the series
        assert layer.data.shape == (61, 512, 512) and layer.data.dtype == np.float32
        widget.results.frame.value = "aligned stack"
        for k in (0, 30, 60, 29, 31, 5):
            viewer.dims.set_current_step(0, k)
            qtbot.wait(10)
        assert len(layer.data._kept) <= KEPT_VIEWS  # a few views kept for a slider going back and forth
        whole = aligned_stack(image.data, last.transforms, out_shape=(512, 512))
        np.testing.assert_array_equal(layer.data[30], whole[30])
        np.testing.assert_array_equal(layer.data[-1, 100:140, ::7], whole[-1, 100:140, ::7])
        # Saved from the layer (File > Save Selected Layer) as `tomoalign aligned-stack` writes it from the folder.
        folder = tmp_path / "saved"
        folder.mkdir()
        widget.saving.save_dir.value = folder
        assert widget.saving.save_alignment()
        ali = tmp_path / "dock.ali"
        written = layer.save(str(ali), plugin="napari-tomoalign")  # as File > Save Selected Layer does
        assert [str(p) for p in written] == [str(ali), str(ali.with_suffix(".tlt"))]
        assert len(layer.data._kept) <= KEPT_VIEWS  # written view by view, none kept
        cli = aligned_stack_to_file(st, folder, tmp_path / "cli.ali").path
        with mrcfile.open(ali) as a, mrcfile.open(cli) as b:
            assert a.data.dtype == np.int16 and a.data.shape == (61, 512, 512)
            # the same grey levels but where the .xf's printed decimals (the command line reads them) tip a rounding
            diff = np.abs(a.data.astype(int) - b.data)
            assert diff.max() <= 1 and np.count_nonzero(diff) < 1e-4 * diff.size
            assert float(a.voxel_size.x) == pytest.approx(float(b.voxel_size.x)) == pytest.approx(20.2)
        np.testing.assert_allclose(np.loadtxt(ali.with_suffix(".tlt")), last.alignment.tilt_angles_deg, atol=0.01)
        write_image_mrc(str(ali), layer.data, {"metadata": layer.metadata})  # never overwritten silently
        assert (tmp_path / "dock.ali~").exists()
    finally:
        widget.teardown()


def test_ids_are_toned_by_the_aligned_views_without_warping_them():
    """The ids' ink reads the aligned stack where each is drawn; over `AlignedViews` the pixels come from the raw views
    through the warp's own map, equal to the warped stack's (outside the view: its mean; undetermined view: its mean)."""
    from scipy import ndimage

    from napari_tomoalign._napari.dock.labels import under_aligned_labels, under_labels

    rng = np.random.default_rng(0)
    stack = (ndimage.gaussian_filter(rng.normal(size=(3, 64, 80)), (0, 3, 3)) * 3000).astype(np.int16)
    xf = np.zeros((3, 2, 3))
    for k, a in enumerate([0.1, 0.5, 1.4]):
        xf[k, :, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        xf[k, :, 2] = [3 * k, -2 * k]
    xf[2] = np.nan
    views = AlignedViews(stack, xf, (70, 60))
    view = np.array([0, 1, 1, 2, 0])
    yx = np.array([[30, 30], [20, 40], [50, 10], [35, 35], [3, 55]], float)  # the last one's box leaves the view
    np.testing.assert_allclose(under_aligned_labels(views, view, yx, 4), under_labels(np.asarray(views), view, yx, 4),
                               rtol=1e-5, atol=0.05)
    assert not views._kept  # no view was warped
