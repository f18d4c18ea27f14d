"""A shown viewer: the markers are drawn where they should be on screen."""

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402


def canvas_position(viewer, world_yx, shape):
    """Screen (row, col) of a world (y, x) point in a 2-D view of a canvas of ``shape``."""
    centre = np.asarray(viewer.camera.center[-2:])
    return (np.asarray(world_yx) - centre) * viewer.camera.zoom + np.asarray(shape[:2]) / 2.0


def test_markers_are_drawn_where_they_are(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.start_alignment()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    assert widget.status.value.startswith("done")
    markers = viewer.layers["sample markers"]
    view = 20
    viewer.dims.set_point(0, view)
    for ly in viewer.layers:
        ly.visible = ly is markers
    markers.text.visible = False
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4
    lum = shot[..., :3].astype(float).sum(axis=2)
    in_view = np.round(markers.data[:, 0]) == view
    world = np.asarray([markers.data_to_world(p) for p in markers.data[in_view]])[:, 1:]
    rows, cols = canvas_position(viewer, world, shot.shape).T
    r, c = np.round(rows).astype(int), np.round(cols).astype(int)
    inside = (r >= 0) & (r < shot.shape[0]) & (c >= 0) & (c < shot.shape[1])
    assert inside.sum() > 10
    assert np.all(lum[r[inside], c[inside]] > 150)  # a coloured marker face at every marker
    # Far from every marker the canvas is background.
    yy, xx = np.mgrid[0 : shot.shape[0] : 7, 0 : shot.shape[1] : 7]
    dist = np.min(np.hypot(yy[..., None] - rows, xx[..., None] - cols), axis=-1)
    assert np.median(lum[yy[dist > 40], xx[dist > 40]]) < 60
