"""The plain-numpy kernels give the compiled kernels' results (to rounding) on dense and sparse problems,
with held parameters, shared columns (one / group), X-stretch blocks and weights; and a solve through either
gives the same alignment, for the default settings and for an align.com's."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, compute, simulate_markers
from napari_tomoalign.alignment import _kernels, _kernels_numpy, _lm
from napari_tomoalign.alignment._lm import Observations, matrices
from napari_tomoalign.alignment.full_layout import build_layout
from napari_tomoalign.alignment.grouping import block_mapping, per_view_mapping

RTOL, ATOL = 1e-10, 1e-9


def _problem(seed, n_views, n_markers, visible, shared):
    """Random full parameters, sparse or dense visibility, per-view rotation/tilt/magnification (or one shared
    rotation), X-stretch in blocks and weights: the layout the solver builds for such settings."""
    rng = np.random.default_rng(seed)
    base = np.zeros((n_views, 9))
    base[:, 0] = rng.uniform(-1, 1, n_views)
    base[:, 1] = rng.uniform(-3, 3, n_views)
    base[:, 2] = rng.uniform(0.9, 1.1, n_views)
    base[:, 3:5] = rng.normal(0, 5, (n_views, 2))
    base[:, 5] = rng.normal(0, 0.01, n_views)
    base[:, 8] = 1.0
    xyz = rng.normal(0, 300, (n_markers, 3))
    seen = rng.random((n_views, n_markers)) < visible
    seen[0, :] = True  # every marker has an observation
    vi, mi = np.nonzero(seen)
    obs = Observations(vi, mi, rng.normal(0, 300, (len(vi), 2)), n_views, n_markers, rng.uniform(0.5, 2, len(vi)))
    ref = n_views // 2
    mappings = {"rotation": block_mapping(np.zeros(n_views, np.intp)) if shared else per_view_mapping(n_views),
                "tilt": per_view_mapping(n_views, [ref]), "magnification": per_view_mapping(n_views, [ref]),
                "x_stretch": block_mapping(np.arange(n_views) // 3, reference_view=ref)}
    lay = build_layout(mappings, base, 0.0, False, np.ones(n_views, bool), [(ref, 3), (ref, 4), (0, 3)])
    return obs, lay, rng.normal(0, 0.01, lay.n_q), xyz


CASES = [(0, 9, 6, 0.8, False), (1, 41, 120, 0.15, False), (2, 23, 30, 0.9, True), (3, 61, 25, 1.0, False)]


@pytest.mark.parametrize("case", CASES)
def test_numpy_kernels_equal_the_compiled_ones(case):
    obs, lay, q, xyz = _problem(*case)
    a, d, shifts = matrices(lay, q)
    lin = (a, d, shifts, xyz, obs.view_index, obs.xy, obs.weights, lay.slot_raw, lay.slot_w, obs.marker_bounds,
           obs.chunks)
    want, got = _kernels.linearise(*lin), _kernels_numpy.linearise(*lin)
    assert got[0] == pytest.approx(want[0], rel=RTOL)
    for x, y in zip(want[1:], got[1:]):
        np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(x).max())))
    cost_args = (a, shifts, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights)
    assert _kernels_numpy.cost(*cost_args) == pytest.approx(_kernels.cost(*cost_args), rel=RTOL)
    rng = np.random.default_rng(case[0])
    linv = np.linalg.inv(np.linalg.cholesky(want[3] + np.eye(3) * 1e-3))
    args = (a, d, xyz, obs.view_index, obs.weights, lay.slot_raw, lay.slot_w)
    mb, n_q = obs.marker_bounds, lay.n_q
    f_c = _kernels.schur_columns(*args, lay.slot_col, mb, linv, n_q)
    np.testing.assert_allclose(_kernels_numpy.schur_columns(*args, lay.slot_col, mb, linv, n_q), f_c, rtol=RTOL,
                               atol=ATOL * max(1.0, float(np.abs(f_c).max())))
    max_obs = int(np.max(np.diff(mb)))
    s_c = _kernels.schur_reduced(*args, lay.slot_col, mb, linv, n_q, obs.chunks, max_obs)
    s_n = _kernels_numpy.schur_reduced(*args, lay.slot_col, mb, linv, n_q, obs.chunks, max_obs)
    np.testing.assert_allclose(s_n, s_c, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(s_c).max())))
    np.testing.assert_allclose(np.triu(f_c @ f_c.T), s_c, rtol=1e-9, atol=1e-9 * float(np.abs(s_c).max()))
    t = rng.normal(size=(obs.n_markers, 3))
    dv = lay.per_slot(rng.normal(size=n_q))
    np.testing.assert_allclose(_kernels_numpy.view_sums_of_e_times(*args, mb, t, obs.chunks),
                               _kernels.view_sums_of_e_times(*args, mb, t, obs.chunks), rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(_kernels_numpy.marker_sums_of_et_times(*args, mb, dv),
                               _kernels.marker_sums_of_et_times(*args, mb, dv), rtol=RTOL, atol=1e-7)


def test_schur_reduced_in_several_blocks_of_markers(monkeypatch):
    obs, lay, q, xyz = _problem(4, 31, 200, 0.1, False)
    a, d, shifts = matrices(lay, q)
    C = _kernels_numpy.linearise(a, d, shifts, xyz, obs.view_index, obs.xy, obs.weights, lay.slot_raw, lay.slot_w,
                                 obs.marker_bounds, obs.chunks)[3]
    linv = np.linalg.inv(np.linalg.cholesky(C + np.eye(3)))
    args = (a, d, xyz, obs.view_index, obs.weights, lay.slot_raw, lay.slot_w, lay.slot_col, obs.marker_bounds, linv,
            lay.n_q, None, 0)
    whole = _kernels_numpy.schur_reduced(*args)
    monkeypatch.setattr(_kernels_numpy, "_SCHUR_BLOCK_BYTES", 8 * 3 * lay.n_q * 7)  # blocks of 7 markers
    blocks = _kernels_numpy.schur_reduced(*args)
    np.testing.assert_allclose(blocks, whole, rtol=1e-11, atol=1e-11 * float(np.abs(whole).max()))


def test_imods_settings_solve_through_numpy_as_through_the_compiled_loops(imod_data, monkeypatch):
    """Fast start for IMOD's settings: a small align.com solve needs no numba, and gives the same answer."""
    from napari_tomoalign import read_markers, read_tilt_angles
    from napari_tomoalign.alignment.solver import align_markers_imod

    m, tilts = read_markers(imod_data / "BBa.fid"), read_tilt_angles(imod_data / "BBa.rawtlt")
    monkeypatch.setattr(_lm, "kernels_for", lambda n_obs: _kernels)
    compiled = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com")
    monkeypatch.setattr(_lm, "kernels_for", lambda n_obs: _kernels_numpy)
    plain = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com")
    assert plain.rms_residual_px == pytest.approx(compiled.rms_residual_px, rel=1e-9)
    np.testing.assert_allclose(plain.full_params, compiled.full_params, atol=1e-8)


@pytest.mark.parametrize("mode", ["view", "one"])
def test_a_solve_through_numpy_equals_the_compiled_solve(monkeypatch, mode):
    sim = simulate_markers(n_views=41, n_markers=20, noise_px=0.4, dropout=0.1, seed=5,
                           mag_error=0.005 if mode == "view" else 0.0)
    opts = AlignmentOptions(magnification=mode, tilt_axis_deg=85.0)
    monkeypatch.setattr(_lm, "kernels_for", lambda n_obs: _kernels)
    compiled = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, opts)
    monkeypatch.setattr(_lm, "kernels_for", lambda n_obs: _kernels_numpy)
    plain = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, opts)
    assert plain.rms_residual_px == pytest.approx(compiled.rms_residual_px, rel=1e-9)
    np.testing.assert_allclose(plain.tilt_angles_deg, compiled.tilt_angles_deg, atol=1e-7)
    np.testing.assert_allclose(plain.xyz_px, compiled.xyz_px, atol=1e-6)
    true_tilts = sim.true_tilt_angles_deg
    assert np.max(np.abs(plain.tilt_angles_deg - true_tilts)) < 0.5  # and both are near the truth


def test_the_solver_picks_numpy_for_small_problems_and_numba_for_large():
    assert _lm.kernels_for(1000) is _kernels_numpy
    assert _lm.kernels_for(compute.NUMPY_MAX_OBSERVATIONS + 1) is _kernels


def test_numpy_dense_algebra_equals_scipy():
    import scipy.linalg

    rng = np.random.default_rng(8)
    for n in (5, 40, 150):
        a = rng.normal(size=(n, n + 3))
        spd = a @ a.T + n * np.eye(n)
        upper = np.triu(spd)  # what the solver hands over: the upper triangle only
        rhs = rng.normal(size=n)
        x = _lm.cholesky_solve(upper, rhs)
        np.testing.assert_allclose(spd @ x, rhs, atol=1e-10)
        f = rng.normal(size=(n, 7))
        c = spd.copy()
        got = np.triu(_lm.syrk_update(f, c))
        want = np.triu(scipy.linalg.blas.dsyrk(-1.0, f, beta=1.0, c=spd.copy(), lower=0))
        np.testing.assert_allclose(got, want, atol=1e-10)
    assert _lm.cholesky_solve(-np.eye(4), np.ones(4)) is None  # not positive definite


def test_asking_for_the_compiled_loops_holds_for_one_thread_only():
    import threading

    from napari_tomoalign.compute import compiled_kernels, uses_compiled

    seen = {}
    with compiled_kernels():
        assert uses_compiled(10)
        t = threading.Thread(target=lambda: seen.setdefault("other", uses_compiled(10)))
        t.start()
        t.join()
    assert seen["other"] is False and not uses_compiled(10)
