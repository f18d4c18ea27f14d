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


def test_the_next_stack_takes_its_own_mdoc_axis_not_the_last_ones(make_napari_viewer, tmp_path):
    """New user's finding V (session 12): the second series of a session kept the first one's .mdoc axis (84) though
    its own .mdoc says -96: aligned on 84, the mirror. An angle the dock set is replaced; one the user typed stays."""
    for name, axis in (("a", "84.0"), ("b", "-96.0"), ("c", None), ("d", "84.0")):
        write_mrc(tmp_path / f"{name}.st", np.zeros((5, 48, 64), np.float32), 8.0,
                  tilt_angles_deg=np.linspace(-60, 60, 5))
        if axis is not None:
            (tmp_path / f"{name}.st.mdoc").write_text(MDOC.replace("-96.0", axis))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    o = widget.options
    viewer.open(str(tmp_path / "a.st"), plugin="napari-tomoalign")
    assert o.axis_angle.value == pytest.approx(84.0)
    viewer.open(str(tmp_path / "b.st"), plugin="napari-tomoalign")
    widget.inputs.image.value = viewer.layers["b.st"]
    assert o.axis_mode.value == "estimate near the angle" and o.axis_angle.value == pytest.approx(-96.0)
    assert "SerialEM's angle in b.st.mdoc" in widget.status.text()
    viewer.open(str(tmp_path / "c.st"), plugin="napari-tomoalign")
    widget.inputs.image.value = viewer.layers["c.st"]
    assert o.axis_mode.value == "estimate" and "no .mdoc beside c.st" in widget.status.text()
    o.axis_mode.value, o.axis_angle.value = "estimate near the angle", 80.0  # the user's own angle: kept
    viewer.open(str(tmp_path / "d.st"), plugin="napari-tomoalign")
    widget.inputs.image.value = viewer.layers["d.st"]
    assert o.axis_angle.value == pytest.approx(80.0)
    widget.teardown()


def test_the_next_stack_does_not_keep_the_last_ones_markers(make_napari_viewer, tmp_path):
    """New user's finding X (session 12): with the next series chosen, the markers box still held the last series'
    tracked layer; Align fitted them with the new angles and Save named them after the new stack."""
    for name in ("a", "b"):
        write_mrc(tmp_path / f"{name}.st", np.zeros((5, 48, 64), np.float32), 8.0,
                  tilt_angles_deg=np.linspace(-60, 60, 5))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    viewer.open(str(tmp_path / "a.st"), plugin="napari-tomoalign")
    inputs = widget.inputs
    inputs.image.value = viewer.layers["a.st"]
    inputs.new_markers_layer()
    made_on_a = inputs.markers.value
    assert made_on_a is not None
    viewer.open(str(tmp_path / "b.st"), plugin="napari-tomoalign")
    inputs.image.value = viewer.layers["b.st"]
    assert inputs.markers.value is None and "markers: none yet for b.st" in widget.status.text()
    inputs.image.value = viewer.layers["a.st"]  # back to a: its own layer again
    assert inputs.markers.value is made_on_a
    widget.teardown()


def test_the_dock_warns_of_the_hand_as_the_command_line(qtbot):
    """New user's findings T and P (session 12): the dock said nothing of the mirror for an axis near +-90 deg that
    nobody gave, nor for one typed 90 deg off (x and y swapped), which picked the hand by a tie."""
    from napari_tomoalign._napari.dock.options import OptionsSection

    o = OptionsSection()
    o.axis_mode.value = "estimate"
    assert "cannot tell it from -96.0 deg" in o.axis_warnings(84.0)[0] and o.axis_warnings(-12.5) == []
    o.axis_mode.value, o.axis_angle.value = "estimate near the angle", -6.0
    said = o.axis_warnings(-96.0)
    assert said and "x and y swapped" in said[0] and said[0].endswith("set 'tilt axis' to estimate near the"
                                                                      " microscope's angle")
    o.axis_angle.value = 84.0
    assert o.axis_warnings(84.1) == []
