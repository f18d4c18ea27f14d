"""The Align step's "more variables": IMOD's full model from an align.com, in a real viewer under Xvfb."""


import pytest

pytest.importorskip("napari")

from support.gui import first_look
from support.paths import DATA

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000


@pytest.fixture
def bba_dock(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(DATA / "BBa.fid"), plugin="napari-tomoalign")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    assert isinstance(widget, AlignWidget)
    widget.inputs.markers.value = layers[0]
    yield viewer, widget
    widget.teardown()


def test_the_simple_model_stays_in_front(bba_dock):
    _, widget = bba_dock
    o = widget.options
    assert not o.more.value and o.imod_com.native.isHidden() and o.rotation.enabled
    o.more.value = True
    assert not o.imod_com.native.isHidden() and not o.rotation.enabled and not o.tilt.enabled  # the com decides
    o.more.value = False
    assert o.imod_com.native.isHidden() and o.rotation.enabled


def test_align_with_aligna_com_solves_imods_full_model(qtbot, bba_dock):
    _, widget = bba_dock
    o = widget.options
    o.more.value = True
    assert widget.start_alignment() is None  # no file chosen yet: one line, nothing run
    assert "choose the align.com" in widget.status.text()
    o.imod_com.value = str(DATA / "aligna.com")
    worker = widget.start_alignment()
    assert worker is not None, widget.status.text()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    al = widget.runs.last.alignment
    assert al.full_params is not None and al.rms_residual_px <= 0.3606  # IMOD's aligna.log: 0.360595
    assert "X-stretch" in widget.report.value
    assert widget.runs.last.name == "all markers, full model (aligna.com)"  # beside the default's, for Compare
    o.more.value = False
    qtbot.waitUntil(lambda: widget.start_alignment() is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    names = widget.comparison.compare_a.choices
    assert "all markers" in names and "all markers, full model (aligna.com)" in names
