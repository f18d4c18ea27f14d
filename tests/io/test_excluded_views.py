"""Views excluded from an alignment survive the RELION and portal hand-overs: `tomoalign align --exclude-views
1-3,41` on a 41-view series, converted to RELION / the portal JSON and back to IMOD, gives 41 lines again, the used
views' transforms as they were and the excluded views at their nominal tilts (RELION records the count; the portal
needs --n-views or --stack), and one warning saying how to restore the count when it cannot be known."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io import MarkerTable, write_markers_csv
from napari_tomoalign.io.alignment_input import read_alignment_for_stack
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.tilts import read_tilt_angles, write_tilt_angles
from napari_tomoalign.simulation.markers import simulate_markers

starfile = pytest.importorskip("starfile")
pytest.importorskip("cryoet_alignment")

EXCLUDED = [0, 1, 2, 40]  # --exclude-views 1-3,41


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """An alignment folder of a simulated 41-view series (-60..60 by 3) with views 1-3 and 41 excluded, and the raw
    stack's header (41 views of 512 x 512, 0.8 nm) with its .rawtlt beside it."""
    d = tmp_path_factory.mktemp("ex")
    s = simulate_markers(n_views=41, n_markers=20, image_size=(512, 512), seed=3)
    write_markers_csv(d / "cryo.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size, "simulated"))
    write_tilt_angles(d / "cryo.rawtlt", s.nominal_tilt_angles_deg)
    mrcfile.new_mmap(d / "cryo.st", shape=(41, 512, 512), mrc_mode=0).close()  # only the header is read
    with mrcfile.open(d / "cryo.st", "r+") as m:
        m.voxel_size = 8.0
    assert main(["align", str(d / "cryo.csv"), "--tilt-angles", str(d / "cryo.rawtlt"), "--image-size", "512", "512",
                 "--exclude-views", "1-3,41", "--magnification", "fixed", "--pixel-size-nm", "0.8", "--output",
                 str(d / "al"), "--quiet"]) == 0
    return d, s.nominal_tilt_angles_deg


def _back(d, source, name, *extra, capsys):
    """``convert SOURCE --to imod`` with ``extra``: the .xf, the .tlt and the warnings said."""
    capsys.readouterr()
    assert main(["convert", str(source), "--to", "imod", "--output", str(d / name), "--name", "cryo", *extra]) == 0
    err = capsys.readouterr().err
    return read_xf(d / name / "cryo.xf"), read_tilt_angles(d / name / "cryo.tlt"), err


def _same_used_views(d, xf, tilts):
    ours, our_tilts = read_xf(d / "al" / "cryo.xf"), read_tilt_angles(d / "al" / "cryo.tlt")
    used = np.setdiff1d(np.arange(41), EXCLUDED)
    np.testing.assert_allclose(xf[used], ours[used], atol=1.5e-3)  # the .xf's own 3 decimals
    np.testing.assert_allclose(tilts[used], our_tilts[used], atol=0.006)  # the .tlt's 2 decimals
    np.testing.assert_array_equal(xf[EXCLUDED], np.tile([[1.0, 0, 0], [0, 1.0, 0]], (4, 1, 1)))  # IMOD's "not fitted"


def test_relion_records_the_count_and_gives_the_excluded_views_their_nominal_tilts(aligned, tmp_path, capsys):
    d, nominal = aligned
    assert main(["convert", str(d / "al"), "--to", "relion", "--output", str(tmp_path / "rel"), "--quiet"]) == 0
    xf, tilts, err = _back(tmp_path, tmp_path / "rel", "imod", capsys=capsys)
    assert xf.shape == (41, 2, 3) and tilts.size == 41 and err == ""
    _same_used_views(d, xf, tilts)
    np.testing.assert_allclose(tilts[EXCLUDED], nominal[EXCLUDED], atol=1e-9)  # -60, -57, -54, 60
    star = tmp_path / "rel" / "tomograms.star"  # a RELION star from elsewhere: no rlnTomoFrameCount
    starfile.write({"global": starfile.read(star).drop(columns="rlnTomoFrameCount")}, star, overwrite=True)
    xf, tilts, err = _back(tmp_path, star, "short", capsys=capsys)
    assert tilts.size == 40 and len(err.strip().splitlines()) == 1
    assert "lists only the views used (37, up to view 40); views after 40 that were left out, if any, cannot be known:" \
           " give --n-views N or --stack STACK to restore them" in err
    np.testing.assert_allclose(tilts[:3], nominal[:3])  # the leading gap: on the recorded nominal tilts' step
    for extra in (["--n-views", "41"], ["--stack", str(d / "cryo.st")]):
        xf, tilts, err = _back(tmp_path, star, "whole", *extra, "--force", capsys=capsys)
        assert tilts.size == 41 and err == ""
        _same_used_views(d, xf, tilts)
        np.testing.assert_allclose(tilts[EXCLUDED], nominal[EXCLUDED], atol=1e-9)


def test_the_portal_json_needs_the_count_and_the_stack_gives_the_nominal_tilts(aligned, tmp_path, capsys):
    d, nominal = aligned
    assert main(["convert", str(d / "al"), "--to", "cdp", "--output", str(tmp_path / "ex.json"), "--quiet"]) == 0
    src = tmp_path / "ex.json"
    xf, tilts, err = _back(tmp_path, src, "none", capsys=capsys)  # IMOD's files need no image size
    assert tilts.size == 40 and "give --n-views N or --stack STACK to restore them" in err
    xf, tilts, err = _back(tmp_path, src, "stack", "--stack", str(d / "cryo.st"), capsys=capsys)
    assert tilts.size == 41 and err == ""  # the stack's .rawtlt: the nominal tilts themselves
    _same_used_views(d, xf, tilts)
    np.testing.assert_allclose(tilts[EXCLUDED], nominal[EXCLUDED], atol=1e-9)
    xf, tilts, err = _back(tmp_path, src, "count", "--n-views", "41", capsys=capsys)
    assert tilts.size == 41 and "the tilts of views 1-3,41 (left out) are not recorded; written as estimates" in err
    _same_used_views(d, xf, tilts)
    np.testing.assert_allclose(tilts[EXCLUDED], nominal[EXCLUDED], atol=0.5)  # on the solved tilts' step


def test_a_count_the_file_contradicts_is_refused(aligned, tmp_path, capsys):
    d, _ = aligned
    assert main(["convert", str(d / "al"), "--to", "cdp", "--output", str(tmp_path / "ex.json"), "--quiet"]) == 0
    for extra, said in ((["--n-views", "39"], "lists view 40 but the stack has 39 views"),
                        (["--n-views", "40", "--stack", str(d / "cryo.st")], "has 41 views, not the --n-views 40 given")):
        assert main(["convert", str(tmp_path / "ex.json"), "--to", "imod", "--output", str(tmp_path / "x"),
                     "--image-size", "512", "512", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err
    assert main(["convert", str(d / "al"), "--to", "imod", "--n-views", "45", "--output", str(tmp_path / "y")]) == 2
    assert "records 41 views but the stack has 45" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_reconstruct_reads_a_portal_json_for_the_stacks_views(aligned, tmp_path):
    d, nominal = aligned
    assert main(["convert", str(d / "al"), "--to", "cdp", "--output", str(tmp_path / "ex.json"), "--quiet"]) == 0
    saved = read_alignment_for_stack(tmp_path / "ex.json", d / "cryo.st")
    assert saved.view_determined.size == 41 and not saved.view_determined[EXCLUDED].any()
    np.testing.assert_allclose(saved.tilt_angles_deg[EXCLUDED], nominal[EXCLUDED])
    assert saved.provenance == ("note: ex.json is a CryoET Data Portal alignment, read for the 41 views of cryo.st (37"
                                " fitted; views 1-3,41 left out, at their tilts in cryo.rawtlt); the image size and"
                                " pixel size it lacks from cryo.st's header")
    import shutil

    from napari_tomoalign.io.view_count import ViewsNotRecorded

    bare = shutil.copy(d / "cryo.st", tmp_path / "bare.st")  # no tilt file beside it
    with pytest.warns(ViewsNotRecorded, match=r"views 1-3,41 \(left out\) are not recorded; written as estimates on"
                                              r" the others' step of 3.0. deg: give a .rawtlt or .mdoc beside bare.st"):
        saved = read_alignment_for_stack(tmp_path / "ex.json", bare)
    np.testing.assert_allclose(saved.tilt_angles_deg[EXCLUDED], nominal[EXCLUDED], atol=0.5)


def test_views_without_markers_are_told_how_to_leave_them_out_and_a_slip_of_one_is_named():
    """A view with no markers: the warning says --exclude-views; excluded view N with view N + 1 empty (numbers from
    0 given where IMOD's from 1 are, s15 new user) asks whether N + 1 was meant."""
    import numpy as np

    from napari_tomoalign.alignment.excluded_views import left_out_notes

    seen = np.ones(41, dtype=bool)
    seen[20] = False  # IMOD's view 21
    said = left_out_notes(seen, seen.copy(), [], "--exclude-views", False)
    assert said == ["1 view(s) have no markers at all (transform undetermined): views 21; leave them out with"
                    " --exclude-views 21"]
    fitted = seen.copy()
    fitted[19] = False
    said = left_out_notes(seen | (np.arange(41) == 19), fitted, [19], "--exclude-views", False)
    assert said[-1].endswith("views are numbered from 1, as IMOD does: did you mean --exclude-views 21?"), said


def test_one_excluded_view_is_named_in_the_singular():
    """"view 21 excluded ...: its .xf line is the identity", not "views 21 ...: their .xf lines" (s16 CLI helper)."""
    import numpy as np

    from napari_tomoalign.alignment.excluded_views import left_out_notes

    seen = np.ones(41, dtype=bool)
    fitted = seen.copy()
    fitted[20] = False
    one = left_out_notes(seen, fitted, [20], "--exclude-views", False)[0]
    assert one.startswith("view 21 excluded (--exclude-views)") and "its .xf line is the identity" in one
    fitted[21] = False
    two = left_out_notes(seen, fitted, [20, 21], "--exclude-views", False)[0]
    assert two.startswith("views 21-22 excluded") and "their .xf lines are the identity" in two
