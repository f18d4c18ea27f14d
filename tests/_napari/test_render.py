"""A shown viewer: over a 2.02 nm stack, the markers are drawn on the beads, as hollow rings."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402


def canvas_position(viewer, world_yx, shape):
    """Screen (row, col) of world (y, x) points in a 2-D view of a canvas of ``shape``."""
    centre = np.asarray(viewer.scene.camera.center[-2:])
    return (np.asarray(world_yx) - centre) * viewer.scene.camera.zoom + np.asarray(shape[:2]) / 2.0


def test_markers_are_drawn_on_the_beads_of_a_scaled_stack(make_napari_viewer, qtbot, imod_data, tmp_path):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    viewer = make_napari_viewer(show=True)
    [image] = viewer.open(str(st), plugin="napari-tomoalign")
    [markers] = viewer.open(str(fid), plugin="napari-tomoalign")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        view = 30
        viewer.dims.set_point(0, view)
        viewer.reset_view()
        markers.text.visible = False
        in_view = np.round(markers.data[:, 0]) == view
        world = np.asarray([markers.data_to_world(p) for p in markers.data[in_view]])[:, 1:]

        def shot_of(layer):
            for ly in viewer.layers:
                ly.visible = ly is layer
            shot = viewer.screenshot(canvas_only=True, flash=False)
            rows, cols = canvas_position(viewer, world, shot.shape).T
            return shot[..., :3].astype(float).sum(axis=2), np.round(rows).astype(int), np.round(cols).astype(int)

        lum, r, c = shot_of(image)
        inside = (r >= 8) & (r < lum.shape[0] - 8) & (c >= 8) & (c < lum.shape[1] - 8)
        assert inside.sum() > 10
        # The stack alone: every marker position is on a dark bead, darker than the background.
        assert np.median(lum[r[inside], c[inside]]) < 0.6 * np.median(lum)
        # The markers alone: a bright ring around each position, and the bead's own pixel left clear.
        lum, r, c = shot_of(markers)
        half = max(2, int(round(6 * 2.02 * viewer.scene.camera.zoom)))
        ring = [lum[a - half - 1 : a + half + 2, b - half - 1 : b + half + 2].max() for a, b in zip(r[inside], c[inside])]
        assert np.min(ring) > 150
        assert np.median(lum[r[inside], c[inside]]) < 60
    finally:
        widget.teardown()
