"""Data as users bring it: an unbinned-like series tracked through the working binning, clumps tracked on
request, and a run that fails leaving nothing behind."""

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.simulation.beads import render_view, true_positions
from napari_tomoalign.simulation.unbinned import unbinned_scene
from napari_tomoalign.tracking import track_beads
from napari_tomoalign.tracking.binned import BinnedViews, to_binned, to_full, tomogram_binning, working_binning
from napari_tomoalign.tracking.outputs import removed_on_failure


def test_the_working_binning_brings_beads_to_8_to_16_px():
    assert working_binning(5.0, (512, 512)) == 1 and working_binning(12.5, (4096, 4096)) == 1
    assert working_binning(50.0, (4096, 4096)) == 6 and working_binning(80.0, (4096, 4096)) == 10
    assert working_binning(50.0, (768, 768)) == 4  # at least 192 binned pixels a side
    assert tomogram_binning((512, 512)) == 2 and tomogram_binning((4096, 4096)) == 4
    xy = np.array([[0.0, 0.0], [10.25, 3.5]])
    np.testing.assert_allclose(to_binned(to_full(xy, 4), 4), xy)
    assert to_full(np.array([0.0]), 4)[0] == 1.5  # binned pixel 0 averages full pixels 0..3


def test_binned_views_bin_one_view_at_a_time():
    stack = np.arange(2 * 8 * 8, dtype=np.int16).reshape(2, 8, 8)
    views = BinnedViews(stack, 4)
    assert views.shape == (2, 2, 2) and views.ndim == 3
    np.testing.assert_allclose(views[1], stack[1].reshape(2, 4, 2, 4).mean(axis=(1, 3)))


@pytest.fixture(scope="module")
def unbinned():
    """1024 x 1024 x 21 cryo-like at 0.2 nm/px, 10 nm gold of 50 px (the cryo preset at 256, 4 times finer)."""
    scene = unbinned_scene("cryo", 256, 4, 21, seed=4, beads_per_mpx=300.0, texture=0.02)
    images = np.stack([render_view(scene, j) for j in range(21)])
    xy, visible = true_positions(scene)
    return scene, images, xy, visible


def test_an_unbinned_series_is_tracked_through_the_working_binning(unbinned, capsys):
    from napari_tomoalign.cli import warn_quietly

    scene, images, xy, visible = unbinned
    r = track_beads(images, scene.nominal_tilt_deg, 50.0, tilt_axis_deg=scene.params["tilt_axis_deg"])
    assert any(w.startswith("note: tracked on a copy binned by 5") for w in r.warnings)
    assert r.markers.image_size == (1024, 1024)
    warn_quietly([w for w in r.warnings if w.startswith("note:")])  # --quiet: a note is not a warning
    assert capsys.readouterr().err == ""
    t = r.markers
    err = np.array([np.min(np.hypot(*(xy[v][visible[v]] - p).T)) for v, p in zip(t.view, t.xy)])
    assert np.mean(err > 8.0) <= 0.01 and np.median(err) < 3.0  # full-resolution pixels (0.2 nm)
    sv = r.seed_view
    inner = visible.all(axis=0) & (np.abs(xy[sv] - 511.5) < 430).all(axis=1) & (scene.clump < 0)
    tracked = {int(np.argmin(np.hypot(*(xy[t.view[t.marker == m][0]] - t.xy[t.marker == m][0]).T)))
               for m in np.unique(t.marker) if (t.marker == m).sum() >= 0.9 * 21}
    assert len(tracked & set(np.flatnonzero(inner))) >= 0.9 * inner.sum() >= 5
    assert r.alignment is not None and r.alignment.rms_residual_px < 2.5


def test_find_beads_as_tracked_gives_the_dock_the_beads_track_finds(unbinned):
    """New user's finding H (session 12): the dock's Find beads searched the unbinned view, where the counts hide
    most 50 px beads (49 of 137 at 4k); Track seeds from those rings. Found on the working binning, in
    full-resolution pixels, they are the beads the tracker starts from."""
    from napari_tomoalign.tracking.binned import find_beads_as_tracked

    scene, images, xy, visible = unbinned
    sv = int(np.argmin(np.abs(scene.nominal_tilt_deg)))
    found = find_beads_as_tracked(images[sv], 50.0)
    got = found.xy[found.above]
    inner = visible[sv] & (np.abs(xy[sv] - 511.5) < 430).all(axis=1) & (scene.clump < 0)
    near = np.min(np.hypot(*(xy[sv][inner][:, None, :] - got[None]).transpose(2, 0, 1)), axis=1)
    assert np.mean(near < 3.0) >= 0.9 and abs(found.bead_diameter_px / 50.0 - 1.0) < 0.2


def test_clumps_are_tracked_on_request():
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("plastic", 256, 31, seed=5, clumps=(2, 3, 2))
    clumped = np.flatnonzero((s.clump >= 0) & s.visible.all(axis=0))  # (one clump leaves the field)
    assert len(clumped) >= 4
    counts = {}
    for mode in ("skip", "track"):
        r = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, tilt_axis_deg=s.tilt_axis_deg, clumps=mode)
        t = r.markers
        d = np.hypot(*(t.xy[:, None, :] - s.true_xy[t.view]).transpose(2, 0, 1))
        nearest = np.argmin(d, axis=1)
        good = d[np.arange(len(t)), nearest] <= 2.0
        per_bead = np.bincount(nearest[good], minlength=s.true_xy.shape[1])
        counts[mode] = int((per_bead[clumped] >= 0.8 * s.visible[:, clumped].sum(axis=0)).sum())
        assert np.mean(~good) <= 0.01
    assert counts["skip"] == 0 and counts["track"] >= 0.8 * len(clumped)


def test_removed_on_failure_keeps_what_was_there(tmp_path):
    (tmp_path / "old.txt").write_text("kept")
    with pytest.raises(RuntimeError), removed_on_failure(tmp_path):
        (tmp_path / "new.txt").write_text("x")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "f").write_text("y")
        raise RuntimeError("a step failed")
    assert [p.name for p in tmp_path.iterdir()] == ["old.txt"]
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), removed_on_failure(fresh):
        fresh.mkdir()
        (fresh / "a").write_text("x")
        raise RuntimeError("failed")
    assert not fresh.exists()


def test_a_run_with_a_way_off_diameter_leaves_nothing(tmp_path, capsys):
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("cryo", 256, 21, seed=3)
    path = tmp_path / "c.st"
    write_mrc(path, s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (tmp_path / "c.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    out = tmp_path / "run"
    assert main(["run", str(path), "--bead-diameter-nm", "4", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --bead-diameter-nm 9." in err or "give --bead-diameter-nm 10." in err
    assert not out.exists()
