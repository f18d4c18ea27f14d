"""``track`` and ``run --exclude-views`` (new user s14, finding 19: a materials series' ruined high-tilt view, a grid bar
or charging, is excluded in the tracking too, as beadtrack's SkipViews): the same list and reader as ``align`` and
``reconstruct`` (numbered from 1), the view not tracked, not fitted, not back-projected."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from support.beads import write_cryo_series

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.simulation.lamella import end_to_end_error

RUINED = 3  # 0-based: view 4 (-42 deg) of 21


@pytest.fixture(scope="module")
def ruined(tmp_path_factory):
    """The small cryo series, clean and with view 4 crossed by a dark grid bar (not blank: its pixels still vary)."""
    folder = tmp_path_factory.mktemp("ruined")
    s = make_bead_series("cryo", 256, 21, seed=1)
    images = s.images.copy()
    images[RUINED, :, 60:140] *= 0.05
    path, _ = write_cryo_series(folder, "bar", images=images)
    clean, _ = write_cryo_series(folder, "clean")
    return path, clean, s


def test_run_leaves_an_excluded_view_out_of_tracking_fit_and_tomogram(ruined, tmp_path, capsys):
    path, clean, s = ruined
    out = tmp_path / "r"
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--exclude-views", "4", "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "note: view 4 (-42.0 deg) left out (--exclude-views)" in said
    table = read_markers(out / "bar.fid")
    assert RUINED not in set(np.asarray(table.view).tolist())
    xf, tlt = read_xf(out / "alignment" / "bar.xf"), np.loadtxt(out / "alignment" / "bar.tlt")
    views = np.array(sorted(set(range(21)) - {RUINED}))
    inside = s.visible.all(axis=0)
    err = end_to_end_error(xf, tlt, (256, 256), s.true_xy[:, inside], views=views)
    assert err < 0.25, err  # the clean series over all views: about 0.2 px
    # the ruined view took no part: the tomogram is the clean stack's with the same alignment and view 4 left out
    assert main(["reconstruct", str(clean), "--alignment", str(out / "alignment"), "--bin", "2", "--exclude-views", "4",
                 "--output", str(tmp_path / "clean.rec"), "--quiet"]) == 0
    with mrcfile.open(out / "bar_bin2.rec") as a, mrcfile.open(tmp_path / "clean.rec") as b:
        assert a.data.shape == b.data.shape
        assert np.array_equal(a.data, b.data)


def test_track_skips_an_excluded_view(ruined, tmp_path, capsys):
    path, _, _ = ruined
    out = tmp_path / "m.csv"
    assert main(["track", str(path), "--bead-diameter-nm", "10", "--exclude-views", "4,21", "--output", str(out)]) == 0
    assert "views 4 (-42.0 deg), 21 (60.0 deg) left out" in capsys.readouterr().out
    seen = set(np.asarray(read_markers(out).view).tolist())
    assert {RUINED, 20}.isdisjoint(seen) and len(seen) == 19


@pytest.mark.parametrize("args, said", [(["--exclude-views", "22"], "give one from 1 to 21"),
                                        (["--exclude-views", "0"], "give view numbers from 1"),
                                        (["--exclude-views", "11", "--seed-view", "11"], "is one of --exclude-views"),
                                        (["--exclude-views", "1-20"], "leaves 1 of 21 views")])
def test_bad_exclusions_are_refused_in_one_line_before_any_work(ruined, tmp_path, capsys, args, said):
    path, _, _ = ruined
    for command, out in (("track", tmp_path / "m.csv"), ("run", tmp_path / "r")):
        assert main([command, str(path), "--bead-diameter-nm", "10", "--output", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err and not out.exists(), err


def test_exclude_views_with_patches_is_refused(ruined, tmp_path, capsys):
    path, _, _ = ruined
    assert main(["run", str(path), "--patches", "--exclude-views", "4", "--output", str(tmp_path / "r")]) == 2
    assert "give --exclude-views to 'tomoalign align'" in capsys.readouterr().err
