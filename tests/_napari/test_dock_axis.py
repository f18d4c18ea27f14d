"""The dock takes the tilt axis' branch from SerialEM's .mdoc beside the stack, as the command line does (session
11's finding 21: without an axis, a -96 deg series was solved on the 84 deg branch, the tomogram's mirror image)."""

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.io.mrc import write_mrc  # noqa: E402

MDOC = "PixelSpacing = 8\nImageSize = 64 48\n\n[T =     Tilt axis angle = -96.0, binning = 1  spot = 8  camera = 0]\n\n"


@pytest.mark.parametrize("with_mdoc", [True, False])
def test_the_mdoc_axis_is_taken_once_while_the_axis_is_estimated(make_napari_viewer, tmp_path, with_mdoc):
    write_mrc(tmp_path / "ts.st", np.zeros((5, 48, 64), np.float32), 8.0, tilt_angles_deg=np.linspace(-60, 60, 5))
    if with_mdoc:
        (tmp_path / "ts.st.mdoc").write_text(MDOC)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    assert isinstance(widget, AlignWidget)
    first_look()
    viewer.open(str(tmp_path / "ts.st"), plugin="napari-tomoalign")
    o = widget.options
    if not with_mdoc:
        assert o.axis_mode.value == "estimate"
        widget.teardown()
        return
    assert o.axis_mode.value == "estimate near the angle" and o.axis_angle.value == pytest.approx(-96.0)
    assert "SerialEM's angle in ts.st.mdoc" in widget.status.text()
    o.axis_mode.value = "estimate"  # the user's choice stands: the stack is not looked at again
    widget.inputs.refresh()
    assert o.axis_mode.value == "estimate"
    widget.teardown()
