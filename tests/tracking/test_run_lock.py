"""One output folder, one run at a time (session 11's finding 14): a second ``run`` into a folder another run is
writing is refused at once and leaves the first's files alone; a folder holding another series' run is refused
before the tracking, naming it."""

import subprocess
import sys
import time

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.atomic import BusyError
from napari_tomoalign.tracking.outputs import LOCK_NAME, run_lock

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("finished")
print("held", flush=True)
time.sleep(30)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from support.beads import write_cryo_series

    return write_cryo_series(tmp_path_factory.mktemp("lock"), "b")[0]


def test_a_second_run_into_a_folder_being_written_is_refused_and_removes_nothing(stack, tmp_path, capsys):
    out = tmp_path / "mx"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", _HOLD, str(out / LOCK_NAME), str(out / "a.ali")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        assert main(["run", str(stack), "--bead-diameter-nm", "10", "--output", str(out)]) == 2
        assert time.perf_counter() - t0 < 5.0  # refused before the tracking
        err = capsys.readouterr().err
        assert "being written by another tomoalign run; give this one another --output" in err
        assert (out / "a.ali").read_text() == "finished" and (out / LOCK_NAME).exists()  # the other's, untouched
    finally:
        other.kill()
        other.communicate()


def test_the_lock_is_reentrant_here_and_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with run_lock(out):
        with run_lock(out):
            assert (out / LOCK_NAME).exists()
    assert not out.exists()  # made for the run, left empty: removed
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(RuntimeError), run_lock(out):
        raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["keep"]
    assert not isinstance(BusyError("x"), RuntimeError)


def test_a_folder_holding_another_series_is_refused_before_the_tracking(stack, tmp_path, capsys):
    from support.paths import DATA as BB

    from napari_tomoalign import align_markers, read_markers, read_tilt_angles
    from napari_tomoalign.io.alignment import write_alignment

    m = read_markers(BB / "BBa.fid")
    al = align_markers(m.view, m.marker, m.xy, read_tilt_angles(BB / "BBa.rawtlt"), m.image_size, n_views=61)
    write_alignment(al, tmp_path / "seq" / "alignment", "BBa")
    before = sorted(p.name for p in (tmp_path / "seq" / "alignment").iterdir())
    t0 = time.perf_counter()
    assert main(["run", str(stack), "--bead-diameter-nm", "10", "--output", str(tmp_path / "seq")]) == 2
    assert time.perf_counter() - t0 < 5.0
    assert "seq holds the run of BBa (alignment/); give b.st another --output, or --force" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "seq" / "alignment").iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["alignment"]
    assert np.isfinite(al.rms_residual_px)
    # --force replaces it: that series' run files go aside as NAME~ with its alignment, not left beside the new run's
    # under their own names (new user's finding, session 13)
    for name in ("BBa.fid", "BBa.ali", "BBa_bin2.rec", "BBa_markers.csv", "notes.txt"):
        (tmp_path / "seq" / name).write_text("BBa's")
    assert main(["run", str(stack), "--bead-diameter-nm", "10", "--output", str(tmp_path / "seq"), "--force",
                 "--quiet"]) == 0
    names = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert {"BBa.fid~", "BBa.ali~", "BBa_bin2.rec~", "BBa_markers.csv~", "b.fid", "b.ali", "notes.txt"} <= set(names)
    assert not {"BBa.fid", "BBa.ali", "BBa_bin2.rec", "BBa_markers.csv"} & set(names)
    assert "BBa.xf~" in {p.name for p in (tmp_path / "seq" / "alignment").iterdir()}


def test_a_folder_left_by_a_killed_run_says_so(stack, tmp_path, capsys):
    """New user's finding (session 13): after SIGKILL (a time limit, the OOM killer) the run's lock file and some
    outputs stay; the next run said only "b.fid already exists", not that the folder holds an unfinished run."""
    out = tmp_path / "killed"
    out.mkdir()
    (out / LOCK_NAME).write_text("")  # nobody holds it: its run was killed
    (out / "b.fid").write_text("tracked before the kill")
    t0 = time.perf_counter()
    assert main(["run", str(stack), "--bead-diameter-nm", "10", "--output", str(out)]) == 2
    assert time.perf_counter() - t0 < 5.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b.fid already exists" in err
    assert f"{out} holds the files of a run that was killed before it ended; --force replaces them" in err
    assert (out / "b.fid").read_text() == "tracked before the kill"
