"""IMOD's full projection model: it reduces to the default model, and its Jacobian blocks match finite
differences for every parameter, the marker position and the beam tilt."""

import numpy as np
from support.model_reference import jacobian_blocks_full

from napari_tomoalign.alignment.model import (
    COMP,
    DMAG,
    N_FULL,
    SKEW,
    XTILT,
    default_full_params,
    project,
    without_beam_tilt,
)


def _problem(seed=0, n_views=7, n_markers=5):
    rng = np.random.default_rng(seed)
    vp = np.column_stack([np.radians(np.linspace(-60, 60, n_views)), rng.normal(0.2, 0.05, n_views),
                          rng.normal(1.0, 0.01, n_views), rng.normal(0, 5, n_views), rng.normal(0, 5, n_views)])
    xyz = rng.normal(0, 200, (n_markers, 3))
    vi, mi = np.meshgrid(np.arange(n_views), np.arange(n_markers), indexing="ij")
    return vp, xyz, vi.ravel(), mi.ravel()


def test_reduces_to_the_default_model():
    vp, xyz, vi, mi = _problem()
    # the default model in closed form: u = x cos(theta) + z sin(theta), p = s R(alpha) [u, y] + [dx, dy]
    th, al, s, dx, dy = vp[vi].T
    x, y, z = xyz[mi].T
    u = x * np.cos(th) + z * np.sin(th)
    closed = np.column_stack([s * (np.cos(al) * u - np.sin(al) * y) + dx, s * (np.sin(al) * u + np.cos(al) * y) + dy])
    np.testing.assert_allclose(project(default_full_params(vp), xyz, vi, mi), closed, atol=1e-9)
    np.testing.assert_allclose(project(vp, xyz, vi, mi), closed, atol=1e-9)  # five columns are the default model


def test_jacobian_blocks_match_finite_differences():
    vp, xyz, vi, mi = _problem(seed=1)
    full = default_full_params(vp)
    rng = np.random.default_rng(2)
    full[:, DMAG] = rng.normal(0, 0.01, len(full))
    full[:, SKEW] = rng.normal(0, 0.02, len(full))
    full[:, XTILT] = rng.normal(0, 0.02, len(full))
    full[:, COMP] = rng.normal(1, 0.02, len(full))
    beam = 0.015
    jv, jm, jb = jacobian_blocks_full(full, xyz, vi, mi, beam)
    h = 1e-6
    for k in range(N_FULL):
        up, down = full.copy(), full.copy()
        up[:, k] += h
        down[:, k] -= h
        num = (project(up, xyz, vi, mi, beam) - project(down, xyz, vi, mi, beam)) / (2 * h)
        np.testing.assert_allclose(jv[:, :, k], num, atol=1e-5 * max(1.0, np.abs(num).max()), err_msg=str(k))
    for k in range(3):
        up, down = xyz.copy(), xyz.copy()
        up[:, k] += h
        down[:, k] -= h
        num = (project(full, up, vi, mi, beam) - project(full, down, vi, mi, beam)) / (2 * h)
        np.testing.assert_allclose(jm[:, :, k], num, atol=1e-6)
    num = (project(full, xyz, vi, mi, beam + h) - project(full, xyz, vi, mi, beam - h)) / (2 * h)
    np.testing.assert_allclose(jb, num, atol=1e-5 * np.abs(num).max())


def test_beam_tilt_folds_into_tilt_x_tilt_and_rotation():
    vp, xyz, vi, mi = _problem(seed=4)
    full = default_full_params(vp)
    rng = np.random.default_rng(5)
    full[:, DMAG] = rng.normal(0, 0.01, len(full))
    full[:, SKEW] = rng.normal(0, 0.02, len(full))
    full[:, XTILT] = rng.normal(0, 0.02, len(full))
    beam = np.radians(1.5)
    folded = without_beam_tilt(full, beam)
    np.testing.assert_allclose(project(folded, xyz, vi, mi), project(full, xyz, vi, mi, beam), atol=1e-9)
    assert np.abs(folded[:, XTILT] - full[:, XTILT]).max() > 1e-3  # the beam tilt moved into the angles
    np.testing.assert_array_equal(without_beam_tilt(full, 0.0), full)
