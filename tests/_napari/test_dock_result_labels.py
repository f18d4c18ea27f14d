"""The result layers' ids contrast with the image they are drawn over (the aligned stack for the aligned markers)."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look

from napari_tomoalign._napari.dock.results import ALIGNED, ALIGNED_MARKERS  # noqa: E402

LUMA = np.array([0.2126, 0.7152, 0.0722])


def test_aligned_marker_ids_contrast_with_the_aligned_stack(qtbot, make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tomoalign", "beads")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    try:
        assert widget.start_alignment() is not None, widget.status.text()
        qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
        ali, pts = viewer.layers[ALIGNED], viewer.layers[ALIGNED_MARKERS]
        lo, hi = ali.contrast_limits
        ink = np.asarray(pts.text.color.array)[:, :3] @ LUMA
        r = float(np.median(pts.size))
        v = pts.data[:, 0].astype(int)
        dy, dx = np.meshgrid(np.linspace(0.4 * r, 1.3 * r, 4), np.linspace(-2.0 * r, -0.6 * r, 4), indexing="ij")
        rows = np.clip(np.round(pts.data[:, 1:2] + dy.ravel()), 0, ali.data.shape[1] - 1).astype(int)
        cols = np.clip(np.round(pts.data[:, 2:3] + dx.ravel()), 0, ali.data.shape[2] - 1).astype(int)
        shown = np.clip((np.median(np.asarray(ali.data)[v[:, None], rows, cols], axis=1) - lo) / (hi - lo), 0, 1)  # gray
        light, dark = shown >= 0.65, shown <= 0.45  # the box where each id is drawn, as napari shows it
        assert light.sum() > 10 and dark.sum() > 10
        assert np.all(ink[light] <= 0.3) and np.all(ink[dark] >= 0.8)  # dark ids on light, light on dark
    finally:
        widget.teardown()
