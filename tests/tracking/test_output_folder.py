"""``track`` refuses an output folder that cannot be written before the tracking (new user's finding, session 13:
it tracked for seconds first where access(2) let the folder through: root on a folder that refuses files)."""

import os
import tempfile
from pathlib import Path

import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.tracking.outputs import check_output_folder


def _refusing_folder(tmp_path) -> Path:
    """A folder in which no file can be made: /sys for root (whom permissions do not stop), else one chmod 555."""
    if os.geteuid() == 0:
        try:
            os.close(tempfile.mkstemp(dir="/sys")[0])
        except OSError:
            return Path("/sys")
        pytest.skip("/sys takes files here")
    box = tmp_path / "ro"
    box.mkdir()
    box.chmod(0o555)
    return box


def test_a_folder_that_refuses_files_is_refused_before_the_tracking(tmp_path, capsys):
    from support.beads import write_cryo_series

    stack = write_cryo_series(tmp_path, "b")[0]
    box = _refusing_folder(tmp_path)
    for target in (box / "b.fid", box / "new" / "deeper" / "b.fid"):
        rc = main(["track", str(stack), "--bead-diameter-px", "5", "--output", str(target)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and str(box) in err[0], err
        assert "bead" not in err[0] and not target.parent.exists() or target.parent == box
    from napari_tomoalign.tracking.jobs import track_to_file

    heard = []
    with pytest.raises(OSError) as e:
        track_to_file(stack, box / "b.fid", bead_diameter_px=5.0, progress=lambda *a: heard.append(a))
    assert e.value.filename == str(box) and not heard  # refused before any stage of the tracking


def test_a_folder_that_takes_files_keeps_nothing_of_the_check(tmp_path):
    check_output_folder(tmp_path / "a.fid")
    check_output_folder(tmp_path / "new" / "deeper" / "a.fid")  # judged by the nearest folder that exists
    assert list(tmp_path.iterdir()) == []
