import numpy as np
import pytest
from support.model_reference import jacobian_blocks_full

from napari_tomoalign.alignment.model import default_full_params, project


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
    jv, jm, _ = jacobian_blocks_full(default_full_params(vp), xyz, vi, mi)  # the default model's columns: 0-4
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


def test_projection_follows_the_documented_model():
    vp = np.array([[np.radians(30.0), np.radians(90.0), 2.0, 5.0, -3.0]])
    xyz = np.array([[10.0, 4.0, 6.0]])
    u = 10 * np.cos(np.radians(30)) + 6 * np.sin(np.radians(30))
    # R(90 deg) [u, v] = [-v, u]
    np.testing.assert_allclose(project(vp, xyz, np.array([0]), np.array([0]))[0], [2 * -4.0 + 5.0, 2 * u - 3.0])
