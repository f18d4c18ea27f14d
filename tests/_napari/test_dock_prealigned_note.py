"""The dock says what the command line says after ``align`` (`jobs.align.prealigned_note`): etomo's fiducial model
was placed on the ``.preali``, so an Align of it shown on the raw ``.st`` is that stack's alignment (the dock takes no
``.prexg``); shown on the ``.preali`` itself, nothing is said."""

import napari
import pytest

pytest.importorskip("napari")

from support.gui import dock_on, write_bead_stack  # noqa: E402

from napari_tomoalign._napari.dock import aligning  # noqa: E402

WAIT_MS = 600_000  # the first worker of a fresh clone compiles every kernel


def no_second_viewer(*_, **__):
    raise AssertionError("the dock must never open a second napari viewer")


@pytest.mark.parametrize("suffix, said", [(".st", True), (".preali", False)])
def test_etomos_model_on_the_raw_stack_is_said(suffix, said, qtbot, make_napari_viewer, imod_data, tmp_path,
                                               monkeypatch):
    st, fid = write_bead_stack(tmp_path, imod_data / "BBa.fid", imod_data / "BBa.rawtlt", 2.02)
    stack = st.rename(st.with_suffix(suffix))
    warned: list[str] = []
    monkeypatch.setattr(aligning, "show_warning", warned.append)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", no_second_viewer)
    widget, _ = dock_on(viewer, stack, fid)
    try:
        assert widget.start_alignment() is not None
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        notes = [w for w in warned if "placed on the .preali" in w]
        if said:
            assert notes == ["BBa.fid was placed on the .preali (etomo's fiducial model): this alignment, its aligned"
                             " stack and its tomogram are for that stack, not for BBa.st; open the .preali as the tilt"
                             " series, or align with tomoalign align --prexg FILE for the raw stack"]
        else:
            assert notes == []
    finally:
        widget.teardown()
