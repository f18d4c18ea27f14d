"""The plain-numpy kernels give the compiled kernels' results (to rounding) on dense and sparse problems,
with fixed parameters, shared columns (one / group) and weights; and a solve through either gives the
same alignment."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.alignment import _backend, _kernels, _kernels_numpy
from napari_tomoalign.alignment._lm import Observations

RTOL, ATOL = 1e-10, 1e-9


def _problem(seed, n_views, n_markers, visible, shared):
    rng = np.random.default_rng(seed)
    vp = np.column_stack([rng.uniform(-1, 1, n_views), rng.uniform(-3, 3, n_views), rng.uniform(0.9, 1.1, n_views),
                          rng.normal(0, 5, n_views), rng.normal(0, 5, n_views)])
    xyz = rng.normal(0, 300, (n_markers, 3))
    seen = rng.random((n_views, n_markers)) < visible
    seen[0, :] = True  # every marker has an observation
    vi, mi = np.nonzero(seen)
    xy = rng.normal(0, 300, (len(vi), 2))
    obs = Observations(vi, mi, xy, n_views, n_markers, rng.uniform(0.5, 2, len(vi)))
    columns = -np.ones((n_views, 5), dtype=np.intp)
    free = rng.random((n_views, 5)) < 0.85
    if shared:  # rotation as "one": every view's rotation in the same column
        free[:, 1] = False
    columns[free] = np.arange(int(free.sum()))
    n_q = int(free.sum())
    if shared:
        columns[:, 1] = n_q
        n_q += 1
    return obs, vp, xyz, columns, n_q


def _linearised(kern, obs, vp, xyz, columns):
    return kern.linearise(vp, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights, columns >= 0,
                          obs.marker_bounds, obs.n_markers, _kernels.chunk_bounds(obs.n_markers), obs.n_views)


CASES = [(0, 9, 6, 0.8, False), (1, 41, 120, 0.15, False), (2, 23, 30, 0.9, True), (3, 61, 25, 1.0, False)]


@pytest.mark.parametrize("case", CASES)
def test_numpy_kernels_equal_the_compiled_ones(case):
    obs, vp, xyz, columns, n_q = _problem(*case)
    a = _linearised(_kernels, obs, vp, xyz, columns)
    b = _linearised(_kernels_numpy, obs, vp, xyz, columns)
    assert a[0] == pytest.approx(b[0], rel=RTOL)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL)
    args = (obs.view_index, obs.marker_index, obs.xy, obs.weights)
    assert _kernels_numpy.cost(vp, xyz, *args) == pytest.approx(_kernels.cost(vp, xyz, *args), rel=RTOL)

    E, C = a[5], a[3]
    rng = np.random.default_rng(case[0])
    linv = np.linalg.inv(np.linalg.cholesky(C + np.eye(3) * 1e-3))
    bounds = _kernels.chunk_bounds(obs.n_markers)
    mb = obs.marker_bounds
    f_c = _kernels.schur_columns(E, linv, obs.view_index, mb, columns, n_q)
    f_n = _kernels_numpy.schur_columns(E, linv, obs.view_index, mb, columns, n_q)
    np.testing.assert_allclose(f_n, f_c, rtol=RTOL, atol=ATOL)
    max_obs = int(np.max(np.diff(mb)))
    s_c = _kernels.schur_reduced(E, linv, obs.view_index, mb, columns, n_q, bounds, max_obs)
    s_n = _kernels_numpy.schur_reduced(E, linv, obs.view_index, mb, columns, n_q, bounds, max_obs)
    np.testing.assert_allclose(s_n, s_c, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(s_c).max())))
    np.testing.assert_allclose(np.triu(f_c @ f_c.T), s_c, rtol=1e-9, atol=1e-9 * float(np.abs(s_c).max()))
    t = rng.normal(size=(obs.n_markers, 3))
    dv = rng.normal(size=(obs.n_views, 5))
    np.testing.assert_allclose(_kernels_numpy.view_sums_of_e_times(E, t, obs.view_index, mb, bounds, obs.n_views),
                               _kernels.view_sums_of_e_times(E, t, obs.view_index, mb, bounds, obs.n_views),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_kernels_numpy.marker_sums_of_et_times(E, dv, obs.view_index, mb),
                               _kernels.marker_sums_of_et_times(E, dv, obs.view_index, mb), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(_kernels_numpy.chunk_bounds(obs.n_markers), bounds)


def test_schur_reduced_in_several_blocks_of_markers(monkeypatch):
    obs, vp, xyz, columns, n_q = _problem(4, 31, 200, 0.1, False)
    E, C = _linearised(_kernels, obs, vp, xyz, columns)[5], _linearised(_kernels, obs, vp, xyz, columns)[3]
    linv = np.linalg.inv(np.linalg.cholesky(C + np.eye(3)))
    mb = obs.marker_bounds
    whole = _kernels_numpy.schur_reduced(E, linv, obs.view_index, mb, columns, n_q, None, 0)
    monkeypatch.setattr(_kernels_numpy, "_SCHUR_BLOCK_BYTES", 8 * 3 * n_q * 7)  # blocks of 7 markers
    blocks = _kernels_numpy.schur_reduced(E, linv, obs.view_index, mb, columns, n_q, None, 0)
    np.testing.assert_allclose(blocks, whole, rtol=1e-11, atol=1e-11 * float(np.abs(whole).max()))


@pytest.mark.parametrize("mode", ["view", "one"])
def test_a_solve_through_numpy_equals_the_compiled_solve(monkeypatch, mode):
    sim = simulate_markers(n_views=41, n_markers=20, noise_px=0.4, dropout=0.1, seed=5,
                           mag_error=0.005 if mode == "view" else 0.0)
    opts = AlignmentOptions(magnification=mode, tilt_axis_deg=85.0)
    monkeypatch.setattr(_backend, "kernels_for", lambda n_obs: _kernels)
    compiled = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, opts)
    monkeypatch.setattr(_backend, "kernels_for", lambda n_obs: _kernels_numpy)
    plain = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size, opts)
    assert plain.rms_residual_px == pytest.approx(compiled.rms_residual_px, rel=1e-9)
    np.testing.assert_allclose(plain.tilt_angles_deg, compiled.tilt_angles_deg, atol=1e-7)
    np.testing.assert_allclose(plain.xyz_px, compiled.xyz_px, atol=1e-6)
    true_tilts = sim.true_tilt_angles_deg
    assert np.max(np.abs(plain.tilt_angles_deg - true_tilts)) < 0.5  # and both are near the truth


def test_the_backend_picks_numpy_for_small_problems_and_numba_for_large():
    assert _backend.kernels_for(1000) is _kernels_numpy
    assert _backend.kernels_for(_backend.NUMPY_MAX_OBSERVATIONS + 1) is _kernels


def test_numpy_dense_algebra_equals_scipy():
    import scipy.linalg

    rng = np.random.default_rng(8)
    for n in (5, 40, 150):
        a = rng.normal(size=(n, n + 3))
        spd = a @ a.T + n * np.eye(n)
        upper = np.triu(spd)  # what the solver hands over: the upper triangle only
        rhs = rng.normal(size=n)
        x = _backend.cholesky_solve(upper, rhs)
        np.testing.assert_allclose(spd @ x, rhs, atol=1e-10)
        f = rng.normal(size=(n, 7))
        c = spd.copy()
        got = np.triu(_backend.syrk_update(f, c))
        want = np.triu(scipy.linalg.blas.dsyrk(-1.0, f, beta=1.0, c=spd.copy(), lower=0))
        np.testing.assert_allclose(got, want, atol=1e-10)
    assert _backend.cholesky_solve(-np.eye(4), np.ones(4)) is None  # not positive definite


def test_asking_for_the_compiled_loops_holds_for_one_thread_only():
    import threading

    from napari_tomoalign.alignment._backend import compiled_kernels, uses_compiled

    seen = {}
    with compiled_kernels():
        assert uses_compiled(10)
        t = threading.Thread(target=lambda: seen.setdefault("other", uses_compiled(10)))
        t.start()
        t.join()
    assert seen["other"] is False and not uses_compiled(10)
