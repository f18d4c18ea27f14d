"""The dock narrows the canvas: a view the user has not moved is fitted again to what is left beside the dock
(the whole stack and its markers visible); a view the user zoomed or panned stays as it was."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402


def visible_world(viewer) -> tuple[np.ndarray, np.ndarray]:
    """The (y, x) world rectangle the canvas shows: its low and high corners."""
    camera = viewer.scene.camera
    half = np.asarray(viewer.canvas.size, dtype=float) / (2 * camera.zoom)
    centre = np.asarray(camera.center[-2:], dtype=float)
    return centre - half, centre + half


def open_in_window(make_napari_viewer, qtbot, size):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    qtbot.wait(50)  # the window has its size before the user opens a file, as on a screen
    viewer.open_sample("napari-tomoalign", "beads")
    qtbot.wait(20)
    return viewer


def add_dock(viewer, qtbot):
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    qtbot.wait(100)  # the window lays the dock out; the canvas narrows
    return widget


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_an_unmoved_view_is_fitted_beside_the_dock(make_napari_viewer, qtbot, size):
    viewer = open_in_window(make_napari_viewer, qtbot, size)
    width_before = viewer.canvas.size[1]
    widget = add_dock(viewer, qtbot)
    try:
        assert viewer.canvas.size[1] < width_before  # the dock took its width from the canvas
        assert widget.refit.refits >= 1
        low, high = visible_world(viewer)
        extent = np.asarray(viewer.layers.extent.world)[:, -2:]  # the stack and its markers, (y, x)
        assert np.all(low <= extent[0]) and np.all(extent[1] <= high), (low, high, extent)
        camera = viewer.scene.camera
        points = viewer.layers["sample markers"] if "sample markers" in viewer.layers else None
        if points is not None:  # every marker inside the canvas
            xy = points.data[:, -2:]
            assert np.all(xy >= low) and np.all(xy <= high)
        zoom = camera.zoom
        camera.zoom = zoom * 2  # the user zooms: a later resize of the window leaves that alone
        qtbot.wait(1700)
        viewer.window.resize(size[0] - 100, size[1])
        qtbot.wait(100)
        assert camera.zoom == pytest.approx(zoom * 2)
    finally:
        widget.teardown()


def test_a_zoomed_view_is_left_alone(make_napari_viewer, qtbot):
    viewer = open_in_window(make_napari_viewer, qtbot, (1280, 800))
    camera = viewer.scene.camera
    camera.zoom = camera.zoom * 3
    camera.center = (camera.center[0], camera.center[1] + 40.0, camera.center[2] - 30.0)
    before = (tuple(camera.center), camera.zoom)
    widget = add_dock(viewer, qtbot)
    try:
        assert not widget.refit.armed and widget.refit.refits == 0
        assert tuple(camera.center) == pytest.approx(before[0]) and camera.zoom == pytest.approx(before[1])
    finally:
        widget.teardown()
