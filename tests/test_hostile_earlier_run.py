"""A forced run into the folder of an earlier run (new user's findings 3 and 8): the earlier run's files are kept
as NAME~ before the first step (`io.earlier_run`, and ``backup=True`` of the alignment folder's writes) and put
back when the run fails or is stopped (`tracking.outputs`), so a folder never holds files of two runs; etomo's
own files replaced by ``align --force`` stay as backups, as IMOD keeps them."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.hostile import small_series

from napari_tomoalign.cli import main


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_align_force_keeps_the_files_it_replaces_as_backups(tmp_path):
    s = small_series(tmp_path / "s")
    al = s["al"]
    before = {p.name: _digest(p) for p in al.iterdir()}
    assert main(["align", str(s["csv"]), "--tilt-angles", str(s["tlt"]), "--image-size", "96", "80", "--output",
                 str(al), "--quiet", "--force", "--tilt-axis", "80"]) == 0
    for name, digest in before.items():
        assert _digest(al / f"{name}~") == digest, name  # each replaced file kept, byte for byte
    assert _digest(al / "alignment.json") != before["alignment.json"]  # a new run stamp beside them


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from support.beads import write_cryo_series

    return write_cryo_series(tmp_path_factory.mktemp("run"), "s")[0]


def test_a_forced_run_stopped_half_way_leaves_no_file_of_the_earlier_run_under_its_names(stack, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "napari_tomoalign.cli", "run", str(stack), "--bead-diameter-nm", "10",
            "--output", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    first = subprocess.run(args + ["--beads", "8"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(args + ["--beads", "6", "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr  # the first run's files are now the backups NAME~
    earlier = {p.relative_to(out).as_posix(): _digest(p) for p in out.rglob("*") if p.is_file()}
    assert {"s.ali", "s_bin2.rec", "s.fid", "alignment/alignment.json", "s.fid~", "alignment/alignment.json~"} <= set(
        earlier)
    assert not [n for n in earlier if n.endswith("~~")]  # a finished run keeps one level of backups, as IMOD
    start = time.time()
    proc = subprocess.Popen(args + ["--beads", "5", "--force"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:  # stopped once the new markers are written: the aligned stack and the tomogram are still to come
        while proc.poll() is None and not ((out / "s.fid").exists() and (out / "s.fid").stat().st_mtime >= start):
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and not list(out.rglob("*.tmp"))
    # The stopped run put every earlier file back and removed its own: the folder is the earlier run's, whole,
    # its backups NAME~ too (new user's finding, session 10: they were lost)
    after = {p.relative_to(out).as_posix(): _digest(p) for p in out.rglob("*") if p.is_file()}
    assert after == earlier
