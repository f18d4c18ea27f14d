"""The dock's tomogram status line says which kernel back-projected the preview tomogram, as ``tomoalign reconstruct``
says it (`reconstruction.kernel_choice`): IMOD's full model of aligna.com names its kernel; the default model's plain
kernel says nothing."""

import pytest

pytest.importorskip("napari")

from support.gui import first_look, write_bead_stack  # noqa: E402
from support.paths import DATA  # noqa: E402

from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402

WAIT_MS = 600_000


def test_the_tomogram_line_names_the_full_models_kernel(qtbot, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    st, fid = write_bead_stack(tmp_path, DATA / "BBa.fid", DATA / "BBa.rawtlt", 2.02)
    viewer.open(str(st), plugin="napari-tomoalign")
    viewer.open(str(fid), plugin="napari-tomoalign")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    first_look()
    try:
        widget.options.more.value = True
        widget.options.imod_com.value = str(DATA / "aligna.com")
        assert widget.start_alignment() is not None, widget.status.text()
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        run = widget.runs.last
        assert run.kernel is not None and run.kernel.model == "full model" and run.kernel.kernel in ("one-row", "exact")
        widget.show_tomogram()
        text = widget.status.text()
        assert text.startswith("tomogram of 'all markers, full model (aligna.com)' in step 6")
        assert text.endswith(f"; {run.kernel.line()}") and "full model (Z factors): " in text
        widget.options.more.value = False
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        assert widget.runs.last.kernel.kernel == "plain"
        widget.show_tomogram()
        assert "kernel" not in widget.status.text()  # nothing chosen: the plain kernel is exact
    finally:
        widget.teardown()
