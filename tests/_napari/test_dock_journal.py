"""Marker edits survive a crash: a napari session (a child process) edits the markers of a stack with
napari's own Points tools and the dock's triage, and is killed; re-opening the same stack offers the
markers back, with their undo history."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("napari")

from support.gui import first_look

from napari_tomoalign._napari.dock.journal import (  # noqa: E402
    Journal,
    encode,
    journal_path,
    pending,
    read_journal,
    state_of,
)
from napari_tomoalign._napari.widget import AlignWidget  # noqa: E402
from napari_tomoalign.io.markers import MarkerTable, write_imod_model  # noqa: E402
from napari_tomoalign.io.mrc import write_mrc  # noqa: E402

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import napari
    from napari_tomoalign._napari.widget import AlignWidget

    stack, fid, expected = sys.argv[1:4]
    viewer = napari.Viewer(show=False)
    viewer.open(stack, plugin="napari-tomoalign")
    [markers] = viewer.open(fid, plugin="napari-tomoalign")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    from qtpy.QtWidgets import QApplication; QApplication.processEvents()
    widget.open_now()                       # whatever of its opening the event loop has not done yet
    widget.panel.current_marker.value = 9
    markers.add([2.0, 40.0, 41.0])          # a click with napari's Points tool: marker 9 in view 3
    data = markers.data.copy()
    data[0, 1:] += [1.5, -2.0]              # a point dragged
    markers.data = data
    markers.selected_data = {1}
    widget.triage.delete_selected()         # the dock's own edit
    np.save(expected, markers.data)
    np.save(expected.replace(".npy", "_ids.npy"), markers.features["marker"].to_numpy())
    print("edited", flush=True)
    time.sleep(600)                         # killed here, nothing saved
""")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(1)
    stack = tmp_path / "cell.st"
    write_mrc(stack, rng.normal(size=(5, 96, 96)).astype(np.float32), 8.0)
    (tmp_path / "cell.rawtlt").write_text("\n".join(str(a) for a in np.linspace(-60, 60, 5)) + "\n")
    view, marker = np.repeat(np.arange(5), 3), np.tile([1, 2, 3], 5)
    table = MarkerTable(view, marker, rng.uniform(10, 80, size=(15, 2)), (96, 96))
    write_imod_model(tmp_path / "cell.fid", table)
    return stack, tmp_path / "cell.fid"


def test_a_killed_session_is_offered_back_with_its_undo_history(qtbot, make_napari_viewer, files, tmp_path,
                                                                monkeypatch):
    stack, fid = files
    journals = tmp_path / "journals"
    monkeypatch.setenv("TOMOALIGN_JOURNAL_DIR", str(journals))
    expected = tmp_path / "expected.npy"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(stack), str(fid), str(expected)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = child.stdout.readline()
        assert line.strip() == "edited", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)  # no clean-up, no atexit: as a crash
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    want, want_ids = np.load(expected), np.load(str(expected).replace(".npy", "_ids.npy"))

    viewer = make_napari_viewer()
    viewer.open(str(stack), plugin="napari-tomoalign")
    [markers] = viewer.open(str(fid), plugin="napari-tomoalign")
    opened = markers.data.copy()
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    try:
        offer = widget.restorer.offer
        assert offer and len(offer[-1].data) == len(want) and widget.restorer.restore_button.native.isVisibleTo(widget)
        assert "never saved" in widget.restorer.info.value and "Restore markers" in widget.status.text()
        layer = widget.restorer.restore()
        assert layer is markers  # the layer of that name, as it was
        np.testing.assert_allclose(markers.data, want)
        np.testing.assert_array_equal(markers.features["marker"].to_numpy(), want_ids)
        # Undo walks back through the killed session's edits: the delete, the drag, the click, then as opened.
        n_points = [len(markers.data)]
        for _ in range(3):
            widget.undo()
            n_points.append(len(markers.data))
        assert n_points == [len(opened), len(opened) + 1, len(opened) + 1, len(opened)]
        widget.undo()
        np.testing.assert_allclose(markers.data, opened)
        # Saving marks the journal saved: nothing is offered next time.
        assert widget.saving.save_markers(tmp_path / "saved.fid")
        assert pending(widget.restorer.key, None, journals) == []
    finally:
        widget.teardown()


def test_journal_skips_a_record_cut_short_and_repeats_nothing(tmp_path):
    from napari.layers import Points

    layer = Points(np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 4.0]]), features={"marker": [1, 1]})
    journal = Journal(folder=tmp_path)
    journal.watch(layer, "layer:x")
    layer.add([2.0, 5.0, 6.0])
    assert journal.records == 2 and not journal.record()  # nothing changed: nothing written
    path = journal_path("layer:x", tmp_path)
    whole = read_journal(path)
    assert [len(s.data) for s in whole] == [2, 3]
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(encode(state_of(layer, set()))[:-7])
    assert len(read_journal(path)) == 2
    assert pending("layer:x", state_of(layer, set()), tmp_path) == []  # the markers as journalled: no offer
    journal.unwatch()


def test_the_next_series_saved_under_the_same_name_is_another_stack(tmp_path):
    """New user's finding S (session 12): the journal was keyed on the path alone, so the next session's TS_01.st
    in a reused folder was offered (and given) the last series' markers."""
    import os
    from types import SimpleNamespace

    from napari_tomoalign._napari.dock.journal import stack_key

    path = tmp_path / "TS_01.st"
    path.write_bytes(b"a" * 1024)
    layer = SimpleNamespace(source=SimpleNamespace(path=str(path)), name="TS_01")
    first = stack_key(layer)
    assert stack_key(layer) == first  # the same stack, opened again
    path.write_bytes(b"b" * 2048)
    os.utime(path, ns=(1, 1))
    assert stack_key(layer) != first and stack_key(layer).startswith(str(path.resolve()))


def test_the_offer_says_edited_only_for_markers_that_were_edited(tmp_path, monkeypatch):
    """New user s13: tracked markers never touched were offered back as "edited"."""
    from napari.layers import Points

    from napari_tomoalign._napari.dock.restore import offer_text

    monkeypatch.setenv("TOMOALIGN_JOURNAL_DIR", str(tmp_path))
    layer = Points(np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 4.0]]), features={"marker": [1, 1]},
                   metadata={"source": "tracked on cell.st"}, name="cell.st tracked")
    journal = Journal(folder=tmp_path)
    journal.watch(layer, "layer:cell")  # taken in as tracked: not an edit
    offer = pending("layer:cell", None, tmp_path)
    text = offer_text(offer)
    assert len(offer) == 1 and not offer[0].edited and offer[0].source == "tracked on cell.st"
    assert "(tracked on cell.st, " in text and "; not edited) were never saved (no undo history" in text
    assert " edited " not in text
    layer.add([2.0, 5.0, 6.0])  # now an edit
    offer = pending("layer:cell", None, tmp_path)
    text = offer_text(offer)
    assert [s.edited for s in offer] == [False, True]
    assert "3 marker points of 'cell.st tracked' edited " in text and "1 earlier state kept as undo history" in text
    journal.unwatch()


def test_the_saved_fid_opened_again_is_not_offered_back(tmp_path):
    """New user s13: with the saved .fid opened as the markers, step 1 still offered the same points back (the
    model holds them marker by marker, as float32)."""
    from napari.layers import Points

    from napari_tomoalign._napari.reader import napari_get_reader
    from napari_tomoalign.io.markers import MarkerTable, write_imod_model

    rng = np.random.default_rng(0)
    view, marker = np.repeat(np.arange(5), 4), np.tile([3, 7, 8, 20], 5)
    xy = rng.uniform(10.0, 500.0, (20, 2)) + 0.123456789
    tracked = Points(np.column_stack([view, xy[:, ::-1]]), features={"marker": marker}, name="s.st tracked")
    journal = Journal(folder=tmp_path)
    journal.watch(tracked, "layer:s")
    write_imod_model(tmp_path / "s.fid", MarkerTable(view, marker, xy, (512, 512)))
    [(data, kwargs, _)] = napari_get_reader(str(tmp_path / "s.fid"))(str(tmp_path / "s.fid"))
    opened = Points(data, features={"marker": kwargs["features"]["marker"]}, name="s")
    assert not np.array_equal(opened.data, tracked.data)  # another order, float32
    assert pending("layer:s", state_of(opened, set()), tmp_path) == []
    moved = opened.data.copy()
    moved[0, 1] += 0.5
    opened.data = moved
    assert pending("layer:s", state_of(opened, set()), tmp_path)  # a point moved: offered
    journal.unwatch()


def test_an_empty_markers_layer_is_not_offered_back(tmp_path):
    """New user s14: "0 marker points of ... were never saved" was offered back (a new, empty markers layer)."""
    from napari.layers import Points

    empty = Points(np.empty((0, 3)), features={"marker": np.empty(0, dtype=np.int64)}, name="s.st markers")
    journal = Journal(folder=tmp_path)
    journal.watch(empty, "layer:e")
    assert pending("layer:e", None, tmp_path) == []
