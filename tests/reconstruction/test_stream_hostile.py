"""`reconstruct`'s streamed reads on a hostile stack: a NaN region names the view as `run` does (from 1), and a
stack truncated while it is read is one clear line (exit 2, nothing written), never numpy's reshape error."""
import os
import shutil

import mrcfile
import numpy as np
import pytest
from support.hostile import small_series, temp_files

from napari_tomoalign.cli import main
from napari_tomoalign.io.checked_stack import StackTruncated
from napari_tomoalign.reconstruction import stream
from napari_tomoalign.reconstruction.stream import RawStack, WarpedRows


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return small_series(tmp_path_factory.mktemp("series"))


def _copy(series, tmp_path, name):
    stack = tmp_path / name
    shutil.copy(series["stack"], stack)
    return stack


def test_a_nan_region_in_view_5_is_named_view_5(series, tmp_path, capsys):
    stack = _copy(series, tmp_path, "nan.mrc")
    with mrcfile.open(stack, "r+") as m:
        m.data[4, 30:50, 40:60] = np.nan
    out = tmp_path / "o.mrc"
    rc = main(["reconstruct", str(stack), "--alignment", str(series["al"]), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "view 5 of the stack nan.mrc holds NaN or infinite pixels" in err, err
    assert "section" not in err and err.rstrip().endswith("or leave the view out")  # --exclude-views
    assert not out.exists() and temp_files(tmp_path) == []
    # tracking has no way to leave a view out: it says only what can be done (new user's finding, session 13)
    rc = main(["track", str(stack), "--tilt-angles", str(series["tlt"]), "--bead-diameter-px", "8", "--output",
               str(tmp_path / "t.fid")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "view 5 of the tilt series holds NaN" in err
    assert err.rstrip().endswith("replace them, for example with the view's mean (tracking cannot leave a view out)")


def test_an_infinite_view_is_refused_before_any_slab(series, tmp_path):
    stack = _copy(series, tmp_path, "inf.mrc")
    with mrcfile.open(stack, "r+") as m:
        m.data[20, 0, 0] = np.inf
    raw = RawStack(stack)
    with pytest.raises(ValueError, match="view 21 of the stack inf.mrc"):
        WarpedRows(raw, np.tile(np.eye(2, 3), (21, 1, 1)), np.arange(21))


def test_raw_rows_of_a_file_that_shrank_name_the_view(series, tmp_path):
    stack = _copy(series, tmp_path, "cut.mrc")
    raw = RawStack(stack)  # opened while whole
    os.truncate(stack, 1024 + 10 * 80 * 96 * 4 + 100)  # views 1-10 and a little of view 11 left
    assert raw.rows(9, 0, 80).shape == (80, 96)
    with pytest.raises(StackTruncated, match=r"cut.mrc: the file was truncated while it was read \(view 11 of the"
                                             r" stack, numbered from 1\)"):
        raw.rows(10, 0, 80)


def test_reconstruct_of_a_stack_truncated_while_it_is_read(series, tmp_path, capsys, monkeypatch):
    stack = _copy(series, tmp_path, "beads.mrc")
    read = RawStack.rows
    calls = []

    def rows_then_cut(self, view, first, stop):  # another program truncates the file after the 6th read
        calls.append(view)
        if len(calls) == 6:
            os.truncate(self.path, 2000)
        return read(self, view, first, stop)

    monkeypatch.setattr(stream.RawStack, "rows", rows_then_cut)
    out = tmp_path / "o.mrc"
    rc = main(["reconstruct", str(stack), "--alignment", str(series["al"]), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "beads.mrc: the file was truncated while it was read (view 6 of the stack" in err
    assert "reshape" not in err
    assert not out.exists() and temp_files(tmp_path) == []
