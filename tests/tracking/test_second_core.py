"""The tracking's work on the second core and the work it no longer does leave every number as it was (issue 24's
``run`` time): the profile fit split between two threads, the per-bead medians in one pass, the second pass's
last refit made only when read."""

import threading

import numpy as np
import pytest

from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.tracking import _spread
from napari_tomoalign.tracking._profile import BeadProfile, fit_profile
from napari_tomoalign.tracking.pipeline import track_beads
from napari_tomoalign.tracking.result import column_medians


def test_column_medians_are_numpys_medians_of_the_finite_values():
    rng = np.random.default_rng(1)
    for trial in range(400):
        a = rng.normal(size=(rng.integers(0, 9), rng.integers(1, 12))) * 10.0 ** rng.uniform(-4, 4)
        a[rng.random(a.shape) < 0.4] = np.nan
        if trial % 5 == 0 and a.size:
            a[0, 0] = np.inf if trial % 2 else -np.inf
        for empty in (np.nan, 0.0):
            want = [np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else empty for c in a.T]
            assert np.array_equal(column_medians(a, empty), np.array(want), equal_nan=True)


def test_the_profile_fit_split_between_two_threads_is_the_one_threads(monkeypatch):
    rng = np.random.default_rng(2)
    profile = BeadProfile.ideal(6.0)
    k, size = 41, 17
    g = np.arange(size) - 8.0
    start = rng.uniform(-1.5, 1.5, (k, 2))
    r = np.hypot(g[None, None, :] - start[:, 0, None, None], g[None, :, None] - start[:, 1, None, None])
    patches = (100.0 - 30.0 * profile(r)[0] + rng.normal(0, 3.0, (k, size, size))).astype(np.float32)
    one = fit_profile(patches, start + 8.0 + 0.4, profile, 5.5, iterations=8)
    seen = []
    work = _spread.split
    monkeypatch.setattr(_spread, "split", lambda w, n: work(lambda lo, hi: seen.append(
        (threading.current_thread().name, lo, hi)) or w(lo, hi), n))
    import napari_tomoalign.tracking._profile as prof

    monkeypatch.setattr(prof, "split", _spread.split)
    with _spread.second_core():
        two = fit_profile(patches, start + 8.0 + 0.4, profile, 5.5, iterations=8)
    assert sorted((lo, hi) for _, lo, hi in seen) == [(0, 16), (16, 41)]  # at a multiple of 8
    assert any(name.startswith("tracking-half") for name, _, _ in seen)
    for name in ("xy", "amplitude", "background", "rms", "elongation", "converged"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name


def test_tracking_on_two_cores_and_without_the_second_passs_last_refit_is_unchanged(monkeypatch):
    """`track_beads` with no thread cap (the profile fits on two cores, the second pass's last refit made only
    if read) against one thread with that refit made at once: the same points and the same alignment."""
    from napari_tomoalign.tracking.tracker import BeadTracker

    s = make_bead_series("plastic", 256, 15, seed=4)
    two = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px)
    made = []
    monkeypatch.setattr(BeadTracker, "defer_refit", lambda self, robust, final: made.append(1) or self.refit(
        robust, final))
    one = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, threads=1)
    assert made == [1]
    assert np.array_equal(one.markers.xy, two.markers.xy) and np.array_equal(one.markers.view, two.markers.view)
    assert np.array_equal(one.alignment.xyz_px, two.alignment.xyz_px, equal_nan=True)
    assert np.array_equal(one.alignment.residuals_px, two.alignment.residuals_px, equal_nan=True)
    assert np.array_equal(one.quality.contrast, two.quality.contrast, equal_nan=True)


def test_a_deferred_refit_is_made_when_read_from_the_points_of_then():
    """`BeadTracker.defer_refit` keeps the points of the moment: points moved afterwards (the polish) do not
    enter the model read later, which equals a refit made at once."""
    s = make_bead_series("plastic", 256, 9, seed=5)
    result = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px, threads=1)
    assert result.alignment is not None
    from napari_tomoalign.tracking._views import ViewReader
    from napari_tomoalign.tracking.blank_views import outward_order
    from napari_tomoalign.tracking.pipeline import learned_profile
    from napari_tomoalign.tracking.tracker import BeadTracker

    seed = result.seed_view
    xy = result.markers.xy[result.markers.view == seed]
    reader = ViewReader(s.images)
    profile = learned_profile(reader.view(seed), xy, s.bead_diameter_px, True)
    trackers = []
    for _ in range(2):
        tr = BeadTracker(reader, np.asarray(s.tilt_angles_deg), result.coarse, profile, xy, seed)
        tr.run(outward_order(np.asarray(s.tilt_angles_deg), seed))
        trackers.append(tr)
    now, later = trackers
    want = now.refit(robust=True, final=True)
    later.defer_refit(robust=True, final=True)
    later.pos[:, :, 0] += 0.25  # moved after the deferral: not in the model
    got = later.model
    assert want is not None and got is not None
    assert np.array_equal(want.xyz_px, got.xyz_px, equal_nan=True)
    assert np.array_equal(want.residuals_px, got.residuals_px, equal_nan=True)
    with pytest.raises(AssertionError):
        assert np.array_equal(later.refit(robust=True, final=True, cold=True).xyz_px, want.xyz_px, equal_nan=True)


@pytest.mark.parametrize("k", [16, 23, 57])
def test_the_template_search_and_the_prewhitened_fit_split_between_two_threads_are_the_one_threads(k):
    """`measure_beads` and `Whitener.refine` split at a multiple of 8 beads (pocketfft's vector groups): every
    number the same as on one thread."""
    from napari_tomoalign.tracking._measure import measure_beads
    from napari_tomoalign.tracking._whiten import make_whitener

    s = make_bead_series("plastic", 256, 3, seed=6)
    img = s.images[1].astype(np.float32)
    profile = BeadProfile.ideal(s.bead_diameter_px)
    rng = np.random.default_rng(k)
    xy = rng.uniform(20, 236, (k, 2))
    templates = np.repeat(profile.image(15)[None].astype(np.float32), k, axis=0)
    templates += rng.normal(0, 0.05, templates.shape).astype(np.float32)
    search = rng.uniform(3.0, 8.0, k)
    whitener = make_whitener(img, xy, xy, profile, dark=True, hot=1e9)
    assert whitener is not None
    one = measure_beads(img, xy, templates, profile, search, -1.0, 1e9)
    w1 = whitener.refine(img, xy, 1e9)
    with _spread.second_core():
        two = measure_beads(img, xy, templates, profile, search, -1.0, 1e9)
        w2 = whitener.refine(img, xy, 1e9)
    for name in ("xy", "contrast", "rms", "elongation", "score", "ok", "level"):
        assert np.array_equal(getattr(one, name), getattr(two, name), equal_nan=True), name
    assert np.array_equal(w1, w2)


def test_a_view_read_ahead_on_the_second_core_is_the_view_read_then():
    from napari_tomoalign.tracking._views import ViewReader

    s = make_bead_series("plastic", 128, 5, seed=7)
    plain, ahead = ViewReader(s.images, clamp=True), ViewReader(s.images, clamp=True)
    ahead.prefetch(2)
    assert not ahead._ahead  # no second core: nothing read ahead
    with _spread.second_core():
        for j in (2, 3, 1):
            ahead.prefetch(j)
        got = [ahead.view(j) for j in (2, 3, 1, 2)]
    want = [plain.view(j) for j in (2, 3, 1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert ahead.sd == plain.sd and ahead.hot == plain.hot


def test_neighbours_subtracted_in_one_pass_equal_the_loop_over_pairs():
    """`fit_crowded`'s neighbour subtraction (`_measure._subtract_neighbours`) against the loop it replaced."""
    from napari_tomoalign.tracking._measure import _subtract_neighbours

    profile = BeadProfile.ideal(7.0)
    rng = np.random.default_rng(8)
    for k in (1, 2, 3, 7, 12):
        pos = rng.uniform(30, 60, (k, 2))
        amp = rng.normal(-40.0, 10.0, k)
        amp[rng.random(k) < 0.2] = 0.0
        size = 17
        origins = np.floor(pos + 0.5).astype(np.intp) - size // 2
        patches = rng.normal(100.0, 5.0, (k, size, size)).astype(np.float32)
        want = patches.copy()
        g = np.arange(size, dtype=float)
        for a in range(k):
            for b in np.flatnonzero(np.hypot(*(pos - pos[a]).T) < size):
                if b != a and amp[b] != 0.0:
                    r = np.hypot(g[None, :] + origins[a, 0] - pos[b, 0], g[:, None] + origins[a, 1] - pos[b, 1])
                    want[a] -= np.float32(amp[b]) * profile(r)[0].astype(np.float32)
        _subtract_neighbours(patches, origins, pos, amp, profile)
        assert np.array_equal(patches, want)


def test_the_bead_search_on_two_cores_finds_the_candidates_of_one():
    from napari_tomoalign.tracking.beads import find_beads

    s = make_bead_series("plastic", 384, 3, seed=9)
    view = s.images[1].astype(np.float32)
    one = find_beads(view.copy(), s.bead_diameter_px)
    with _spread.second_core():
        two = find_beads(view.copy(), s.bead_diameter_px)
    assert len(one.xy) >= 2 * _spread.LEAST
    for name in ("xy", "strength", "above", "elongation"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name


def test_the_helper_thread_runs_its_compiled_loops_and_ffts_on_one_thread():
    import numba

    from napari_tomoalign.tracking._fourier import fft_workers

    with _spread.second_core():
        assert _spread.beside(lambda: (fft_workers(), numba.get_num_threads())).result() == (1, 1)
    assert _spread.beside(lambda: None) is None  # outside: nothing beside
