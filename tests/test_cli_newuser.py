"""The new user's smaller findings (round of session 6): a stale align.com RotationAngle (finding 6), output stems
(7), messages (12) and the version of a source checkout (15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.imod_com import check_rotation_angle

BB = Path(__file__).parent / "data" / "imod-tutorial-BB"


@pytest.mark.parametrize("found, ok", [(-12.0, True), (-30.0, True), (167.5, True), (84.0, False), (60.0, False)])
def test_an_align_com_rotation_angle_on_the_other_axis_branch_is_refused(found, ok):
    if ok:  # within 30 degrees, or half a turn away (the same axis, the other way up: the fit handles that)
        check_rotation_angle(BB / "aligna.com", found)
        return
    with pytest.raises(FileFormatError) as e:
        check_rotation_angle(BB / "aligna.com", found)
    text = str(e.value)
    assert "RotationAngle -12.5 deg" in text and f"set RotationAngle {found:.1f}" in text and "\n" not in text


def test_run_with_a_stale_align_com_exits_2_in_one_line(tmp_path):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("cryo", 256, 21, seed=1)
    write_mrc(tmp_path / "s.st", s.images, 8.0)
    write_tilt_angles(tmp_path / "s.rawtlt", s.tilt_angles_deg)
    com = tmp_path / "align.com"
    com.write_text((BB / "aligna.com").read_text())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    r = subprocess.run([sys.executable, "-m", "napari_tomoalign.cli", "run", str(tmp_path / "s.st"),
                        "--bead-diameter-nm", "10", "--imod-com", str(com), "--output", str(tmp_path / "out"),
                        "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "RotationAngle -12.5 deg" in r.stderr and "other axis branch" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing left behind


def test_outputs_take_the_series_name_as_imod_names_them(tmp_path):
    """align: NAME_markers.csv gives NAME.xf (not NAME_markers.xf); convert --to imod: the folder's recorded stem,
    not the folder's name (a folder called 'local' gave local.xf, which reads as a local-alignment file)."""
    from support.hostile import SIZE, small_series

    from napari_tomoalign.cli import main

    s = small_series(tmp_path / "s")
    csv = tmp_path / "BBx_markers.csv"
    csv.write_bytes(s["csv"].read_bytes())
    local = tmp_path / "local"
    assert main(["align", str(csv), "--tilt-angles", str(s["tlt"]), "--image-size", str(SIZE[0]), str(SIZE[1]),
                 "--output", str(local), "--quiet"]) == 0
    assert {"BBx.xf", "BBx.tlt", "BBxfid.xyz", "BBx.resid"} <= {p.name for p in local.iterdir()}
    assert main(["convert", str(local), "--to", "imod", "--output", str(tmp_path / "conv")]) == 0
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["BBx.resid", "BBx.tlt", "BBx.xf", "BBxfid.xyz"]


def test_messages_say_what_is_expected_not_pythons_words(tmp_path, capsys):
    from support.hostile import SIZE, small_series

    from napari_tomoalign.cli import main
    from napari_tomoalign.io.atomic import OverwriteError, check_writable

    s = small_series(tmp_path / "s")
    base = ["align", str(s["csv"]), "--tilt-angles", str(s["tlt"]), "--image-size", str(SIZE[0]), str(SIZE[1])]
    for extra, words in ((["--reference-view", "abc"], "--reference-view 'abc': not a number"),
                         (["--rotation", "views"], "--rotation 'views': give fixed, one, view or group:N")):
        assert main(base + extra + ["--output", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "could not convert" not in err, err
    from napari_tomoalign.messages import os_error_message  # raw OS errors (run --output onto a file; under /proc)

    assert "exists and is not a folder" in os_error_message(FileExistsError(17, "File exists", "cryo.st"))
    assert "check the path" in os_error_message(FileNotFoundError(2, "No such file or directory", "/proc/e21"))
    with pytest.raises(OverwriteError, match="overwrite=True in Python"):  # the API's own argument is named
        check_writable(s["tlt"], overwrite=False)


def test_a_source_tree_reports_its_fallback_version_and_commit():
    import re

    from napari_tomoalign._source_version import source_version

    v = source_version()
    assert v != "0+unknown" and re.fullmatch(r"\d+(\.\d+)*\+src(\.g[0-9a-f]{10})?", v), v
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            assert v.endswith(f"+src.g{head.stdout.strip()[:10]}")
    import napari_tomoalign
    from napari_tomoalign._source_version import in_checkout

    if in_checkout():  # an editable install reports the commit checked out now, not the one it was installed at
        assert napari_tomoalign.__version__ == v


def test_a_raw_st_given_a_preali_alignment_is_warned_even_quietly(tmp_path, capsys):
    """Finding 11: etomo's .fid without --prexg gives an .xf of the .preali; aligned-stack on the raw .st says so
    on stderr (one line, --quiet too). With --prexg, or for a .preali, nothing is said."""
    from napari_tomoalign.cli import main
    from napari_tomoalign.file_jobs import preali_note
    from napari_tomoalign.io.mrc import write_mrc

    for name in ("BBa.fid", "BBa.rawtlt", "BBa.prexg"):
        (tmp_path / name).write_bytes((BB / name).read_bytes())
    base = ["align", str(tmp_path / "BBa.fid"), "--tilt-angles", str(tmp_path / "BBa.rawtlt"), "--quiet"]
    assert main(base + ["--output", str(tmp_path / "pre")]) == 0
    assert main(base + ["--output", str(tmp_path / "raw"), "--prexg", str(tmp_path / "BBa.prexg")]) == 0
    capsys.readouterr()
    import numpy as np

    assert preali_note(tmp_path / "BBa.st", tmp_path / "pre") is None  # no stack: the job says so, not this note
    write_mrc(tmp_path / "BBa.st", np.zeros((41, 64, 64), np.float32), 20.2)
    assert preali_note(tmp_path / "BBa.st", tmp_path / "pre") is None  # another series (41 views): refused, no note
    write_mrc(tmp_path / "BBa.st", np.zeros((61, 64, 64), np.float32), 20.2, overwrite=True)  # 64 px: refused
    note = preali_note(tmp_path / "BBa.st", tmp_path / "pre")
    assert note is not None and "--prexg BBa.prexg" in note and "raw stack" in note
    assert preali_note(tmp_path / "BBa.st", tmp_path / "raw") is None
    assert preali_note(tmp_path / "BBa.preali", tmp_path / "pre") is None
    main(["aligned-stack", str(tmp_path / "BBa.st"), "--alignment", str(tmp_path / "pre"), "--output",
          str(tmp_path / "a.ali"), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"tomoalign: {note}"


@pytest.mark.parametrize("made_on, noted", [("BBa.st", False), ("BBa.mrc", False), ("BBa.preali", True)])
def test_a_model_tracked_here_names_its_stack_and_is_not_taken_for_a_preali_one(made_on, noted, tmp_path):
    """Session 11's finding 4: `tomoalign track` on the raw stack, then `align`, then `reconstruct` of that stack
    warned that the .xf maps a .preali. The tracked model is named after its stack (`imod_model.TRACKED_ON`)."""
    import numpy as np

    from napari_tomoalign.cli import main
    from napari_tomoalign.file_jobs import preali_note
    from napari_tomoalign.io.imod_model import TRACKED_ON, model_name, read_imod_model, write_imod_model
    from napari_tomoalign.io.mrc import write_mrc

    m = read_imod_model(BB / "BBa.fid")
    assert model_name(BB / "BBa.fid") == "IMOD-NewModel"  # etomo's own model: the note stays (test above)
    write_imod_model(tmp_path / "BBa.fid", m, n_views=61, name=TRACKED_ON + made_on)
    assert model_name(tmp_path / "BBa.fid") == TRACKED_ON + made_on
    assert main(["align", str(tmp_path / "BBa.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--quiet",
                 "--output", str(tmp_path / "al")]) == 0
    write_mrc(tmp_path / "BBa.st", np.zeros((61, 64, 64), np.float32), 20.2)
    assert (preali_note(tmp_path / "BBa.st", tmp_path / "al") is not None) == noted


def test_tracked_markers_are_named_after_their_stack(tmp_path):
    from napari_tomoalign.io.imod_model import TRACKED_ON, model_name
    from napari_tomoalign.simulation.beads import make_bead_series
    from napari_tomoalign.tracking import track_beads
    from napari_tomoalign.tracking.result import write_tracked_markers

    s = make_bead_series("cryo", 256, 21, seed=1)
    result = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px)
    write_tracked_markers(tmp_path / "a.fid", result, stack=tmp_path / "series.st")
    assert model_name(tmp_path / "a.fid") == TRACKED_ON + "series.st"
    assert model_name(tmp_path / "missing.fid") is None


def test_a_tracked_model_records_the_pixel_size_and_align_takes_it(tmp_path):
    """Session 11's finding 11: `track` wrote pixsize 1 (pixels), so `track` then `align` lost the pixel size (no nm
    figures; RELION and portal exports asked for it again). IMOD's pixsize in nm now; etomo's models keep none."""
    import json

    import numpy as np

    from napari_tomoalign.cli import main
    from napari_tomoalign.io.imod_model import read_imod_model, write_imod_model

    m = read_imod_model(BB / "BBa.fid")
    assert m.pixel_size_nm is None  # etomo's model: pixsize 1, units pixels
    write_imod_model(tmp_path / "a.fid", m, n_views=61, pixel_size_nm=2.02)
    assert read_imod_model(tmp_path / "a.fid").pixel_size_nm == 2.02
    assert main(["align", str(tmp_path / "a.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--quiet", "--output",
                 str(tmp_path / "al")]) == 0
    assert json.loads((tmp_path / "al" / "alignment.json").read_text())["pixel_size_nm"] == 2.02
    assert main(["align", str(tmp_path / "a.fid"), "--tilt-angles", str(BB / "BBa.rawtlt"), "--quiet", "--output",
                 str(tmp_path / "al2"), "--pixel-size-nm", "1.5"]) == 0  # the option still wins
    assert json.loads((tmp_path / "al2" / "alignment.json").read_text())["pixel_size_nm"] == 1.5
    assert np.isfinite(m.xy).all()
