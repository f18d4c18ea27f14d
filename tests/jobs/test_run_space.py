"""``run`` checks the disk before any work (new user's finding, session 13: a full disk was found after 9.7 s of
tracking): the bytes of its image files come from the stack's size and the outputs' modes, and a disk without room
for them is refused in one line with nothing written."""

import shutil

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.jobs import run_checks
from napari_tomoalign.jobs.run import RunJob


@pytest.fixture(scope="module")
def int16_stack(tmp_path_factory):
    """A 256 x 256 x 21 cryo-like bead series in int16 counts, as a camera writes it."""
    from support.beads import write_cryo_series

    d = tmp_path_factory.mktemp("space")
    path, s = write_cryo_series(d, "b")
    img = s.images.astype(np.float64)
    counts = np.rint(1000.0 + 300.0 * (img - img.mean()) / img.std()).astype(np.int16)
    write_mrc(path, counts, 8.0, overwrite=True)
    return path, s


def test_the_bytes_foreseen_are_the_files_written(int16_stack, tmp_path):
    """Known truth: the sizes of the files a real run writes, for the given thickness and the input's int16 mode
    (the .ali and the tomogram in int16), and for float32 asked of the aligned stack."""
    path, s = int16_stack
    out = tmp_path / "r"
    assert main(["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--thickness", "96", "--mode",
                 "float32", "--output", str(out), "--quiet"]) == 0
    job = RunJob(path, out, bead_diameter_px=s.bead_diameter_px, thickness=96, ali_mode="float32")
    foreseen = run_checks.image_bytes(job)
    assert foreseen == {name: (out / name).stat().st_size for name in ("b.ali", "b_bin2.rec")}
    assert foreseen["b.ali"] == 1024 + 21 * 256 * 256 * 4 and foreseen["b_bin2.rec"] == 1024 + 48 * 128 * 128 * 2
    # the default thickness is at least a quarter of the image: what is foreseen without one is no more than written
    assert run_checks.image_bytes(RunJob(path, out, bead_diameter_px=5.0))["b_bin2.rec"] == 1024 + 32 * 128 * 128 * 2
    erased = run_checks.image_bytes(RunJob(path, out, bead_diameter_px=5.0, erase_gold=True))
    assert erased["b_erased.mrc"] == 1024 + 21 * 256 * 256 * 2 and erased["b.ali"] == 1024 + 21 * 256 * 256 * 2


def test_a_disk_without_room_is_refused_before_any_work_with_nothing_written(int16_stack, tmp_path, monkeypatch, capsys):
    path, s = int16_stack
    out = tmp_path / "new" / "r"
    need = sum(run_checks.image_bytes(RunJob(path, out, bead_diameter_px=5.0)).values()) + run_checks.SMALL_FILES_BYTES
    real = shutil.disk_usage

    def nearly_full(p):  # the file system's answer for a disk with one byte too few free
        u = real(p)
        return type(u)(u.total, u.total - (need - 1), need - 1)

    monkeypatch.setattr(run_checks.shutil, "disk_usage", nearly_full)
    rc = main(["run", str(path), "--bead-diameter-px", f"{s.bead_diameter_px}", "--output", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"{out}: the run needs at least" in err[0] and "b.ali 2.8 MB" in err[0] and "free some space" in err[0]
    assert not (tmp_path / "new").exists()  # nothing written: not even the folder

    monkeypatch.setattr(run_checks.shutil, "disk_usage", lambda p: type(real(p))(need * 2, need, need))
    run_checks.check_disk_space(RunJob(path, out, bead_diameter_px=5.0))  # room enough: no refusal
