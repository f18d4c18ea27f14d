import numpy as np
import pytest

from napari_tomoalign.alignment.model import jacobian_blocks, predict_all, project, recentre


def _random_problem(seed=0, n_views=7, n_markers=5):
    rng = np.random.default_rng(seed)
    vp = np.column_stack([
        rng.uniform(-1, 1, n_views), rng.uniform(-3, 3, n_views), rng.uniform(0.9, 1.1, n_views),
        rng.normal(0, 10, n_views), rng.normal(0, 10, n_views),
    ])
    xyz = rng.normal(0, 100, (n_markers, 3))
    vi, mi = np.meshgrid(np.arange(n_views), np.arange(n_markers), indexing="ij")
    return vp, xyz, vi.ravel(), mi.ravel()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jacobian_matches_finite_differences(seed):
    vp, xyz, vi, mi = _random_problem(seed)
    jv, jm = jacobian_blocks(vp, xyz, vi, mi)
    h = 1e-6
    for k in range(5):
        d = np.zeros_like(vp)
        d[:, k] = h
        num = (project(vp + d, xyz, vi, mi) - project(vp - d, xyz, vi, mi)) / (2 * h)
        np.testing.assert_allclose(jv[:, :, k], num, rtol=1e-6, atol=1e-6)
    for k in range(3):
        d = np.zeros_like(xyz)
        d[:, k] = h
        num = (project(vp, xyz + d, vi, mi) - project(vp, xyz - d, vi, mi)) / (2 * h)
        np.testing.assert_allclose(jm[:, :, k], num, rtol=1e-6, atol=1e-6)


def test_recentre_keeps_every_prediction():
    vp, xyz, _, _ = _random_problem(3)
    before = predict_all(vp, xyz)
    recentre(vp, xyz, np.array([12.5, -7.0, 30.0]))
    np.testing.assert_allclose(predict_all(vp, xyz), before, atol=1e-9)


def test_projection_follows_the_documented_model():
    vp = np.array([[np.radians(30.0), np.radians(90.0), 2.0, 5.0, -3.0]])
    xyz = np.array([[10.0, 4.0, 6.0]])
    u = 10 * np.cos(np.radians(30)) + 6 * np.sin(np.radians(30))
    # R(90 deg) [u, v] = [-v, u]
    np.testing.assert_allclose(project(vp, xyz, np.array([0]), np.array([0]))[0], [2 * -4.0 + 5.0, 2 * u - 3.0])


def test_compiled_linearisation_matches_the_numpy_model():
    from napari_tomoalign.alignment import _kernels as kern
    from napari_tomoalign.alignment._lm import Observations

    rng = np.random.default_rng(11)
    n_views, n_markers = 7, 5
    vp = np.column_stack([rng.uniform(-1, 1, n_views), rng.uniform(-3, 3, n_views), rng.uniform(0.9, 1.1, n_views),
                          rng.normal(0, 5, n_views), rng.normal(0, 5, n_views)])
    xyz = rng.normal(0, 50, (n_markers, 3))
    vi, mi = np.nonzero(rng.random((n_views, n_markers)) < 0.8)
    obs = Observations(vi, mi, rng.normal(0, 50, (len(vi), 2)), n_views, n_markers, rng.uniform(0.5, 2, len(vi)))
    free = rng.random((n_views, 5)) < 0.7
    cost, b_view, g_view, C, g_m, E = kern.linearise(vp, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights,
                                                     free, obs.marker_bounds, n_markers, obs.chunks, n_views)
    jv, jm = jacobian_blocks(vp, xyz, obs.view_index, obs.marker_index)
    jv = jv * free[obs.view_index][:, None, :]
    sw = np.sqrt(obs.weights)
    r = (project(vp, xyz, obs.view_index, obs.marker_index) - obs.xy) * sw[:, None]
    jv, jm = jv * sw[:, None, None], jm * sw[:, None, None]
    assert cost == pytest.approx(0.5 * np.sum(r * r))
    np.testing.assert_allclose(E, np.einsum("nrp,nrq->npq", jv, jm), atol=1e-9)
    for j in range(n_views):
        sel = obs.view_index == j
        np.testing.assert_allclose(b_view[j], np.einsum("nrp,nrq->pq", jv[sel], jv[sel]), atol=1e-9)
        np.testing.assert_allclose(g_view[j], np.einsum("nrp,nr->p", jv[sel], r[sel]), atol=1e-9)
    for m in range(n_markers):
        sel = obs.marker_index == m
        np.testing.assert_allclose(C[m], np.einsum("nrp,nrq->pq", jm[sel], jm[sel]), atol=1e-9)
        np.testing.assert_allclose(g_m[m], np.einsum("nrp,nr->p", jm[sel], r[sel]), atol=1e-9)
