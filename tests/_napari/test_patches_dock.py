"""The dock's step 2 without gold under Xvfb: *no beads (patch tracking)* swaps the bead controls for the
patch options, Track fills an ordinary, light markers layer of contours that Align solves, and the legend
reports patches and contours used and dropped."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look

from napari_tomoalign._napari.dock.patches import GOLD, PATCHES  # noqa: E402
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.simulation.lamella import make_lamella_series  # noqa: E402

WAIT_MS = 600_000


def test_patch_tracking_in_the_dock_fills_a_markers_layer_that_aligns(qtbot, make_napari_viewer):
    s = make_lamella_series("easy", 256, seed=2, thickness_nm=20.0)
    viewer = make_napari_viewer()
    image = viewer.add_image(s.images, name="lamella.st", scale=(1.0, 1.0, 1.0),
                             metadata={"pixel_size_nm": 1.0, "tilt_angles_deg": s.tilt_angles_deg,
                                       "tilt_source": "lamella.rawtlt"})
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        beads = widget.beads
        assert beads.patches.source.value == GOLD and not beads.patches.options.native.isVisibleTo(widget)
        beads.patches.source.value = PATCHES
        assert beads.patches.options.native.isVisibleTo(widget)
        assert not beads.find_button.native.isVisibleTo(widget)
        assert beads.runner.align_button.text == "Track patches"
        started = beads.track()
        assert started is not None, widget.status.text()
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        layer = widget.inputs.markers.value
        assert layer is not None and layer.name == "lamella.st patches"
        assert len(np.unique(layer.features["marker"])) >= 60 and layer.opacity < 1.0
        assert "patches of 48 px laid" in beads.legend.value and "contours" in widget.status.text()
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        assert widget.options.robust.value and widget.runs.last is not None
        assert widget.runs.last.alignment.rms_residual_px < 1.0
        # no '?' rings for patch contours: each is a marker only within its own run of views
        qtbot.waitUntil(lambda: any(ly.name.startswith("residuals") for ly in viewer.layers), timeout=WAIT_MS)
        assert "predicted markers" not in viewer.layers or len(viewer.layers["predicted markers"].data) == 0
        beads.patches.source.value = GOLD  # and back: the bead controls return
        # (the bead step itself folded when Align started, so ask whether the row is shown, not the step)
        assert not beads.find_button.native.isHidden() and beads.runner.align_button.text == "Track"
    finally:
        widget.teardown()
    del image
