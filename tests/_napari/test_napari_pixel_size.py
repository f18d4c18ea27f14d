"""One coordinate rule at any pixel size: marker files hold pixels of their stack, the dock gives the
markers the stack's scale and computes in pixels, so the fit does not depend on the pixel size."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock.results import PREDICTED  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.io.markers import read_markers  # noqa: E402

CLI_RMS_PX = 0.3720  # `tomoalign align BBa.fid --tilt-angles BBa.rawtlt --tilt-axis -12.5`


@pytest.mark.parametrize("pixel_nm", [0.27, 1.0, 2.02])
def test_bba_markers_over_a_scaled_stack_fit_as_the_cli_does(qtbot, make_napari_viewer, imod_data, tmp_path,
                                                              pixel_nm):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", pixel_nm)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(st), plugin="napari-tomoalign")
    [markers] = viewer.open(str(fid), plugin="napari-tomoalign")
    assert tuple(image.scale) == pytest.approx((1.0, pixel_nm, pixel_nm))
    assert image.metadata["tilt_source"].endswith("BBa.rawtlt")
    assert markers.metadata["tilt_source"].endswith("BBa.rawtlt")  # the model picks up its sibling angles
    pixels = markers.data.copy()
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        # Paired with the stack, the markers take its scale; their data (pixels) are untouched.
        assert tuple(markers.scale) == pytest.approx(tuple(image.scale))
        np.testing.assert_array_equal(markers.data, pixels)
        # So the markers sit on the beads in world coordinates: the stack is dark under each point.
        world = np.array([markers.data_to_world(p) for p in markers.data[:200]])
        idx = np.round([image.world_to_data(w) for w in world]).astype(int)
        assert np.median(np.asarray(image.data)[idx[:, 0], idx[:, 1], idx[:, 2]]) < 60
        widget.options.axis_mode.value = "estimate near the angle"
        widget.options.axis_angle.value = -12.5
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
        al = widget.runs.last.alignment
        assert al.rms_residual_px == pytest.approx(CLI_RMS_PX, abs=5e-4), widget.status.text()
        assert al.pixel_size_nm == pytest.approx(pixel_nm)
        assert "BBa.rawtlt" in widget.status.text()
        assert tuple(viewer.layers[PREDICTED].scale) == pytest.approx(tuple(image.scale))
    finally:
        widget.teardown()


def test_new_clicks_on_a_scaled_stack_are_saved_in_pixels(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((5, 64, 80), np.float32), name="stack", scale=(1.0, 2.02, 2.02),
                             metadata={"tilt_angles_deg": np.linspace(-60, 60, 5), "tilt_source": "test"})
    widget = AlignWidget(viewer)
    first_look()
    try:
        layer = widget.inputs.new_markers_layer()
        assert tuple(layer.scale) == pytest.approx(tuple(image.scale))
        # A click lands at a world position (nm); napari keeps it in the layer's data coordinates.
        for world in ([2.0, 20.2, 40.4], [3.0, 22.22, 42.42]):
            layer.add(layer.world_to_data(world))
        np.testing.assert_allclose(layer.data[:, 1:], [[10.0, 20.0], [11.0, 21.0]])
        assert [s.value for s in layer.symbol] == ["ring", "ring"]  # hollow: the bead stays visible
        assert list(layer.features["marker"]) == [1, 1]
        path = widget.saving.save_markers(tmp_path / "clicked.fid")
        table = read_markers(path[0])
        np.testing.assert_allclose(table.xy, [[20.0, 10.0], [21.0, 11.0]], atol=1e-4)
        assert table.image_size == (80, 64)
    finally:
        widget.teardown()
