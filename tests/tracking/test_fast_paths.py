"""The tracker's compiled fast paths give the same numbers as the plain code they replaced (issue 24's faster
tracker): the plane model's normal equations, the search's summed-area tables, the patch gather, the
strength histogram's density and the second pass's local contrasts."""

import types

import numpy as np
import pytest

from napari_tomoalign.tracking import _profile_fit as pf
from napari_tomoalign.tracking._measure import _integral_images
from napari_tomoalign.tracking._profile import BeadProfile
from napari_tomoalign.tracking._refine import _local_contrast
from napari_tomoalign.tracking._views import extract_patches
from napari_tomoalign.tracking.strength_dip import _kde


@pytest.mark.parametrize("full", [True, False])
def test_the_plane_models_normal_equations_equal_the_general_loops(full):
    rng = np.random.default_rng(3)
    table = BeadProfile.ideal(6.0).values
    for trial in range(20):
        img = rng.normal(100.0, 5.0, (17, 17)).astype(np.float32)
        if trial % 3 == 0:
            img[rng.random((17, 17)) < 0.05] = np.nan  # outside the image
        x0, y0 = 8.0 + rng.normal(0, 1.5, 2)
        th = rng.normal(0.0, 1.0, 4) * np.array([-30.0, 100.0, 0.5, 0.5])
        n = 6 if full else 4
        a1, b1, a2, b2 = np.zeros((9, 9)), np.zeros(9), np.zeros((9, 9)), np.zeros(9)
        out1 = pf._accumulate(img, x0, y0, x0 + 0.3, y0 - 0.2, 5.0, th, table, 0.05, 4, 0.0, full, a1, b1)
        out2 = pf._accumulate_plane(img, x0, y0, x0 + 0.3, y0 - 0.2, 5.0, th, table, 0.05, full, a2, b2)
        assert out1 == out2
        assert np.array_equal(a1[:n, :n], a2[:n, :n]) and np.array_equal(b1[:n], b2[:n])


def test_summed_area_tables_equal_numpys_cumsums():
    rng = np.random.default_rng(4)
    p = (rng.random((50, 23, 23)) * 2000 - 500).astype(np.float32)
    c1 = np.cumsum(np.cumsum(np.pad(p, ((0, 0), (1, 0), (1, 0))), 1), 2, dtype=np.float64)
    c2 = np.cumsum(np.cumsum(np.pad(p.astype(np.float64) ** 2, ((0, 0), (1, 0), (1, 0))), 1), 2)
    t1, t2 = _integral_images(p)
    assert np.array_equal(c1, t1) and np.array_equal(c2, t2)


def test_the_compiled_patch_gather_equals_the_fancy_index():
    rng = np.random.default_rng(5)
    img = rng.random((300, 200)).astype(np.float32)
    origins = rng.integers(-20, 220, (80, 2))
    for outside in (None, np.nan):
        fast, inside = extract_patches(img, origins, 21, outside=outside)  # float32: compiled
        slow, inside2 = extract_patches(img.astype(np.float64), origins, 21, outside=outside)  # numpy's index
        assert fast.dtype == np.float32 and np.array_equal(fast, slow, equal_nan=True)
        assert np.array_equal(inside, inside2)


def test_the_blocked_kernel_density_equals_one_matrix():
    rng = np.random.default_rng(6)
    grid = np.linspace(-0.2, 1.5, 341)
    for n in (5, 400, 70000):
        x = np.clip(rng.normal(0.5, 0.4, n), -0.5, 1.5)
        for h in (0.2, 0.035):
            whole = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(axis=1) / (n * h * np.sqrt(2 * np.pi))
            assert np.array_equal(_kde(x, grid, h), whole)


def test_local_contrasts_equal_the_per_bead_medians():
    rng = np.random.default_rng(7)
    nv, nb = 21, 60
    c = rng.normal(1.0, 0.3, (nv, nb))
    c[rng.random((nv, nb)) < 0.5] = np.nan
    c[:, :3] = np.nan
    c[0, 5] = np.inf
    tr = types.SimpleNamespace(tilts=np.linspace(-60, 60, nv), contrast=c, n_beads=nb, mean_contrast=rng.random(nb))
    for j in (0, 10, 20):
        near = np.argsort(np.abs(tr.tilts - tr.tilts[j]), kind="stable")[1:5]
        want = np.full(nb, np.nan)
        for b in range(nb):
            local, whole = c[near, b][np.isfinite(c[near, b])], c[:, b][np.isfinite(c[:, b])]
            if local.size or whole.size:
                want[b] = np.median(local if local.size else whole)
        want = np.where(np.isfinite(want), want, tr.mean_contrast)
        assert np.array_equal(_local_contrast(tr, j), want)


def _same_candidates(a, b):
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in (
        "xy", "strength", "above", "clustered", "elongated", "elongation", "histogram")) and a.threshold == b.threshold


def test_a_reused_bead_search_gives_the_candidates_of_a_fresh_one(monkeypatch):
    """`find_beads(searches=)`: the second search of a view with other ``small_beads``/``uniform`` reuses the
    first's steps 1-4 and returns what a fresh search returns; another image or diameter searches again."""
    from napari_tomoalign.simulation.beads import make_bead_series
    from napari_tomoalign.tracking import beads

    made = []
    search = beads._candidates
    monkeypatch.setattr(beads, "_candidates", lambda *a: made.append(a[1]) or search(*a))
    s = make_bead_series("hard", 256, 3, seed=2)
    view, d = s.images[1], s.bead_diameter_px
    searches: dict = {}
    first = beads.find_beads(view, d, small_beads=False, searches=searches)
    again = beads.find_beads(view, d, uniform=False, searches=searches)
    assert made == [d]
    assert _same_candidates(first, beads.find_beads(view, d, small_beads=False))
    assert _same_candidates(again, beads.find_beads(view, d, uniform=False))
    made.clear()
    beads.find_beads(view, d * 1.01, searches=searches)
    other = view.copy()
    other[100, 100] += 1e-3  # one pixel
    searched = beads.find_beads(other, d, searches=searches)
    assert made == [d * 1.01, d] and len(searches) == 3
    assert _same_candidates(searched, beads.find_beads(other, d))


def test_the_diameter_check_measures_each_start_once_and_hands_its_search_to_the_tracker(monkeypatch):
    """A given diameter near the truth: the check's measures are made once each (the settled one confirmed
    from memory), the same diameter as measuring each again, and the tracker's seed-view search is the check's
    last."""
    from napari_tomoalign.simulation.beads import make_bead_series
    from napari_tomoalign.tracking import beads, diameter

    s = make_bead_series("plastic", 256, 5, seed=1)
    measured = []
    step = diameter._measure_step
    monkeypatch.setattr(diameter, "_measure_step", lambda img, d, *a: measured.append(d) or step(img, d, *a))
    searches: dict = {}
    got = diameter.diameter_to_track(s.images, s.tilt_angles_deg, 6.0, searches=searches)
    assert len(measured) == len(set(measured)) == 3  # 6 -> 5.09 -> 4.97, settled: 4.97 confirmed from memory
    measured.clear()
    estimate = diameter.estimate_bead_diameter
    monkeypatch.setattr(diameter, "estimate_bead_diameter", lambda *a, **k: estimate(*a, **{**k, "steps": None}))
    assert diameter.diameter_to_track(s.images, s.tilt_angles_deg, 6.0) == got  # no memory: every measure made
    assert len(measured) == 4 and len(set(measured)) == 3
    assert got == pytest.approx(s.bead_diameter_px, rel=0.08)
    made = []
    search = beads._candidates
    monkeypatch.setattr(beads, "_candidates", lambda *a: made.append(a[1]) or search(*a))
    seed_view = s.images[int(np.argmin(np.abs(s.tilt_angles_deg)))]
    assert _same_candidates(beads.find_beads(seed_view, got, searches=searches), beads.find_beads(seed_view, got))
    assert made == [got]  # the fresh search only


def test_the_coarse_alignment_made_beside_the_diameter_check_is_the_trackers_own(tmp_path, monkeypatch):
    """`track_to_file` with no cap on the threads makes the coarse alignment on a second core while the diameter
    is checked, and hands it to the tracker: the same markers, byte for byte, as with one thread (where the
    tracker makes it itself)."""
    import os

    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series
    from napari_tomoalign.tracking import jobs

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the coarse alignment is not made beside")
    s = make_bead_series("plastic", 256, 9, seed=3)
    write_mrc(tmp_path / "s.st", s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (tmp_path / "s.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    given = []
    track = jobs.track_beads
    monkeypatch.setattr(jobs, "track_beads", lambda *a, **k: given.append(k["coarse"]) or track(*a, **k))
    jobs.track_to_file(tmp_path / "s.st", tmp_path / "beside.fid", bead_diameter_px=s.bead_diameter_px)
    jobs.track_to_file(tmp_path / "s.st", tmp_path / "one.fid", bead_diameter_px=s.bead_diameter_px, threads=1)
    assert given[0] is not None and given[1] is None
    assert (tmp_path / "beside.fid").read_bytes() == (tmp_path / "one.fid").read_bytes()
