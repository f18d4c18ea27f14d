"""``run``'s aligned stack is written on a thread of its own while the tomogram is made (`jobs.run_images`): the
files are those of one thread (`test_run_beside.py`), and a failure on either side leaves neither file."""

import numpy as np
import pytest

from napari_tomoalign.errors import UsageError
from napari_tomoalign.jobs import images, run_images
from napari_tomoalign.jobs.run import RunJob, run_job


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    d = tmp_path_factory.mktemp("beside")
    s = make_bead_series("plastic", size=256, n_views=9, seed=3)
    write_mrc(d / "b.st", s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (d / "b.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    return d / "b.st", s.bead_diameter_px


def _two_threads():
    import numba

    if numba.get_num_threads() < 2:
        pytest.skip("one thread: the aligned stack is not written beside")


@pytest.mark.parametrize("side", ["aligned stack", "tomogram"])
def test_a_failure_beside_leaves_neither_the_aligned_stack_nor_the_tomogram(stack, tmp_path, monkeypatch, side):
    _two_threads()
    path, d_px = stack
    where = []

    def fails(*args, **kwargs):
        import threading

        where.append(threading.current_thread().name)
        raise UsageError(f"the {side} failed")

    if side == "aligned stack":
        monkeypatch.setattr(images, "check_finite_view", fails)
    else:
        monkeypatch.setattr(run_images, "_tomogram", fails)
    with pytest.raises(UsageError, match=f"the {side} failed"):
        run_job(RunJob(path, tmp_path / "out", bead_diameter_px=d_px))
    assert where and where[0].startswith("aligned-stack") == (side == "aligned stack")
    left = {p.name for p in (tmp_path / "out").iterdir()}
    assert "b.ali" not in left and "b_bin2.rec" not in left and not any(n.startswith(".") for n in left), left


def test_the_aligned_stack_is_written_beside_the_tomogram_with_the_same_bytes(stack, tmp_path, monkeypatch):
    _two_threads()
    path, d_px = stack
    names = []
    aligned = run_images.aligned_views

    def seen(*args, **kwargs):
        import threading

        names.append(threading.current_thread().name)
        return aligned(*args, **kwargs)

    monkeypatch.setattr(run_images, "aligned_views", seen)
    run_job(RunJob(path, tmp_path / "two", bead_diameter_px=d_px))
    run_job(RunJob(path, tmp_path / "one", bead_diameter_px=d_px), threads=1)
    assert names[0].startswith("aligned-stack") and not names[1].startswith("aligned-stack")
    for name in ("b.ali", "b_bin2.rec", "alignment/b.xf", "b.fid"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_a_run_with_numbas_workqueue_layer_keeps_to_one_thread_of_loops_at_a_time(stack, tmp_path):
    """numba's ``workqueue`` threading layer (where neither TBB nor OpenMP is installed) aborts the process when
    two threads launch parallel loops at once: then nothing runs beside (`tracking._spread.threadsafe_loops`), and
    the run ends well with the files of the default layer (before: killed by SIGABRT)."""
    import os
    import subprocess
    import sys

    path, d_px = stack
    run = ("import sys; from napari_tomoalign.cli import main; sys.exit(main(sys.argv[1:]))")
    outs = {}
    for layer in ("workqueue", "default"):
        outs[layer] = tmp_path / layer
        r = subprocess.run([sys.executable, "-c", run, "run", str(path), "--bead-diameter-px", f"{d_px}", "--output",
                            str(outs[layer]), "--quiet"], env={**os.environ, "NUMBA_THREADING_LAYER": layer},
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    for name in ("b.ali", "b_bin2.rec", "alignment/b.xf", "b.fid"):
        assert (outs["workqueue"] / name).read_bytes() == (outs["default"] / name).read_bytes(), name
