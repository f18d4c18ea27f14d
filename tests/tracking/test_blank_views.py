"""Blank views (a first exposure lost, a blanked beam, a shutter that stayed shut): left out of the tracking, which
carries on across them; at zero tilt the beads are found on the next lowest-tilt view; each said in a note;
``--seed-view`` (numbered from 1) chooses the view; a failure names the view. New users' findings: session 11's 26
("only 0 peaks were found; check the bead diameter" after the work, no way round) and session 12's A (two blank
views stopped the tracking: the tomogram was made from 22 of 41 views, exit 0)."""

from __future__ import annotations

import numpy as np
import pytest
from support.beads import write_cryo_series

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.simulation.lamella import end_to_end_error
from napari_tomoalign.tracking.blank_views import blank_note, choose_seed_view, find_blank_views


@pytest.fixture(scope="module")
def blank0(tmp_path_factory):
    """The small cryo series with its 0-degree view replaced by its mean (view 11 of 21, numbered from 1)."""
    s = make_bead_series("cryo", 256, 21, seed=1)
    images = s.images.copy()
    zero = int(np.argmin(np.abs(s.tilt_angles_deg)))
    images[zero] = images[zero].mean()
    path, _ = write_cryo_series(tmp_path_factory.mktemp("blank"), "blank0", images=images)
    return path, s, zero


def test_the_minimum_tilt_is_the_seed_unless_it_is_blank(blank0):
    _, s, zero = blank0
    assert find_blank_views(s.images, s.tilt_angles_deg) == []
    assert choose_seed_view(s.tilt_angles_deg) == zero
    images = s.images.copy()
    images[zero] = images[zero].mean()
    blank = find_blank_views(images, s.tilt_angles_deg)
    seed = choose_seed_view(s.tilt_angles_deg, blank)
    next_lowest = int(np.argsort(np.abs(s.tilt_angles_deg), kind="stable")[1])
    assert blank == [zero] and seed == next_lowest
    note = blank_note(blank, s.tilt_angles_deg, seed)
    assert f"view {zero + 1} (0.0 deg) is blank" in note and f"found on view {seed + 1} " in note
    assert choose_seed_view(s.tilt_angles_deg, blank, given=zero) == zero  # a view given is taken as it is


def test_flat_and_dark_views_are_blank_and_a_dim_high_tilt_view_is_not():
    s = make_bead_series("cryo", 256, 21, seed=1)  # counts, about 21 per pixel
    images = s.images.copy()
    images[3] = 22.0  # a constant written in its place
    images[16] = np.random.default_rng(0).poisson(1.0, images[16].shape)  # a dark frame of counts
    images[0] *= 0.5  # the highest tilt, half as bright as its neighbour: thick ice, not blank
    assert find_blank_views(images, s.tilt_angles_deg) == [3, 16]
    assert find_blank_views(images - 21.0, s.tilt_angles_deg) == [3]  # no longer counts: only flat is blank


def test_the_tracking_carries_on_across_two_blank_views_end_to_end(tmp_path, capsys):
    """Views 4 (-42 deg) and 17 (+36 deg) of 21 blank: every other view tracked and aligned as well as without."""
    s = make_bead_series("cryo", 256, 21, seed=1)
    images = s.images.copy()
    images[3] = images[3].mean()
    images[16] = np.random.default_rng(0).poisson(1.0, images[16].shape)
    path, _ = write_cryo_series(tmp_path, "two", images=images)
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--output", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert "note: views 4 (-42.0 deg), 17 (36.0 deg) are blank" in out
    assert "have no markers at all" not in out + err  # said once, as blank (new user's nit, session 13)
    table = read_markers(tmp_path / "r" / "two.fid")
    assert set(np.asarray(table.view).tolist()) == set(range(21)) - {3, 16}  # every other view, both ends too
    xf, tlt = read_xf(tmp_path / "r" / "alignment" / "two.xf"), np.loadtxt(tmp_path / "r" / "alignment" / "two.tlt")
    views = np.array(sorted(set(range(21)) - {3, 16}))
    inside = s.visible.all(axis=0)
    err = end_to_end_error(xf, tlt, (256, 256), s.true_xy[:, inside], views=views)
    assert err < 0.22, err  # 0.198 px; the same series without blank views: 0.199 px over the same views


def test_track_finds_the_beads_beside_a_blank_zero_tilt_view_and_says_so(blank0, tmp_path, capsys):
    path, s, zero = blank0
    out = tmp_path / "m.csv"
    assert main(["track", str(path), "--bead-diameter-nm", "10", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"note: view {zero + 1} (0.0 deg) is blank" in text
    table = read_markers(out)
    assert len(np.unique(table.marker)) >= 5
    assert zero not in set(np.asarray(table.view).tolist())  # nothing placed on the blank view


@pytest.mark.parametrize("args, said", [(["--seed-view", "11"], "in view 11 (0.0 deg), where the beads are found"),
                                        (["--seed-view", "0"], "--seed-view 0 is not a view of this 21-view series"),
                                        (["--seed-view", "22"], "give one from 1 to 21")])
def test_a_seed_view_given_is_taken_and_a_failure_names_it(blank0, tmp_path, capsys, args, said):
    path, _, _ = blank0
    out = tmp_path / "m.csv"
    assert main(["track", str(path), "--bead-diameter-nm", "10", "--output", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and not out.exists()


def test_seed_view_with_patches_is_refused_before_any_work(blank0, tmp_path, capsys):
    path, _, _ = blank0
    assert main(["run", str(path), "--patches", "--seed-view", "12", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "leave it out with --patches" in err and not (tmp_path / "r").exists()
