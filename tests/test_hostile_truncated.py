"""A stack truncated after it was opened (another program rewriting it): the views are read with checked file
reads (`io.checked_stack`), so the command ends with one line and exit 2, leaving no output and no temporary
file, where the memory map killed the process with SIGBUS. Run in a subprocess: a regression must not take
the test session down with it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from support.hostile import SIZE, small_series, temp_files

# Opens the stack as every job does, then cuts the file to its header and one view and a half, and runs the command.
_CHILD = r"""
import os, sys
import napari_tomoalign.io.mrc as mrc
original = mrc.open_tilt_series
def open_then_truncate(path, *a, **k):
    series = original(path, *a, **k)
    if os.path.samefile(path, sys.argv[1]):
        os.truncate(path, 1024 + int(1.5 * series.data[0].nbytes))
    return series
mrc.open_tilt_series = open_then_truncate
from napari_tomoalign.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def series(tmp_path):
    return small_series(tmp_path / "s")


def _run(stack, args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-c", _CHILD, str(stack), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("command", ["aligned-stack", "reconstruct"])
def test_a_stack_truncated_while_it_is_read_is_one_line_and_no_output(series, tmp_path, command):
    out = tmp_path / ("out.ali" if command == "aligned-stack" else "out.rec")
    r = _run(series["stack"], [command, str(series["stack"]), "--alignment", str(series["al"]), "--output", out])
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "Bus error" not in r.stderr, r.stderr
    assert "truncated" in r.stderr, r.stderr
    assert not out.exists() and not temp_files(tmp_path)


def test_views_read_from_the_checked_stack_equal_the_file(tmp_path):
    from napari_tomoalign.io.mrc import open_tilt_series, write_mrc

    a = np.random.default_rng(1).normal(size=(4, SIZE[1], SIZE[0])).astype(">f4")  # big-endian too
    write_mrc(tmp_path / "a.mrc", a.astype(np.float32), 5.0)
    d = open_tilt_series(tmp_path / "a.mrc", find_tilts=False).data
    assert np.array_equal(d[2], a[2]) and np.array_equal(d[-1, 5:30, 7:9], a[-1, 5:30, 7:9])
    assert np.array_equal(d[1, 3], a[1, 3]) and np.array_equal(d[:, 4], a[:, 4]) and np.array_equal(d, a)
    assert type(d[0]) is np.ndarray and type(d + 1) is np.ndarray and float(d.mean()) == pytest.approx(a.mean())
    with pytest.raises(IndexError):
        d[4]
    v = d[3]  # the last view read is kept (read-only) for the next index of the same view: no second read
    assert np.shares_memory(d[3], v) and not v.flags.writeable and np.array_equal(d[3, 10:20, 4], a[3, 10:20, 4])
