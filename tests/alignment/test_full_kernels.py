"""The solver's kernels, compiled and plain numpy, against the numpy reference (`jacobian_blocks_full`) and
against finite differences, through a layout with linear, block and per-view mappings and a free beam tilt."""

import numpy as np
import pytest
from support.model_reference import jacobian_blocks_full

from napari_tomoalign.alignment import _kernels, _kernels_numpy
from napari_tomoalign.alignment._lm import Observations, full_cost, matrices
from napari_tomoalign.alignment.full_layout import BEAM, build_layout
from napari_tomoalign.alignment.grouping import block_mapping, linear_mapping, per_view_mapping, tilt_groups_imod
from napari_tomoalign.alignment.model import COMP, DMAG, MAG, ROT, SKEW, TILT, XTILT, project


def _problem(seed=0, n_views=13, n_markers=9):
    rng = np.random.default_rng(seed)
    tilts = np.linspace(-60, 60, n_views)
    base = np.zeros((n_views, 9))
    base[:, TILT] = np.radians(tilts)
    base[:, ROT] = np.radians(-12.0) + rng.normal(0, 0.01, n_views)
    base[:, MAG] = rng.normal(1, 0.01, n_views)
    base[:, 3:5] = rng.normal(0, 3, (n_views, 2))
    base[:, DMAG] = rng.normal(0, 0.01, n_views)
    base[:, SKEW] = rng.normal(0, 0.02, n_views)
    base[:, XTILT] = rng.normal(0, 0.02, n_views)
    base[:, COMP] = rng.normal(1, 0.02, n_views)
    groups = tilt_groups_imod(tilts, 3, 1.0)
    mappings = {"tilt": linear_mapping(groups, n_views, reference_view=6), "rotation": per_view_mapping(n_views),
                "magnification": per_view_mapping(n_views, [6]),
                "x_stretch": block_mapping(np.arange(n_views) // 4, reference_view=6),
                "skew": linear_mapping(groups, n_views, reference_view=2), "x_tilt": per_view_mapping(n_views, [6]),
                "compression": block_mapping(np.arange(n_views) // 5, reference_view=6)}
    included = np.ones(n_views, bool)
    lay = build_layout(mappings, base, 0.01, True, included, [(6, 3), (6, 4), (0, 3)])
    vi, mi = np.meshgrid(np.arange(n_views), np.arange(n_markers), indexing="ij")
    keep = rng.random(vi.size) > 0.15
    vi, mi = vi.ravel()[keep], mi.ravel()[keep]
    xyz = rng.normal(0, 150, (n_markers, 3))
    obs = Observations(vi, mi, rng.normal(0, 150, (len(vi), 2)), n_views, n_markers, rng.uniform(0.5, 2, len(vi)))
    q = rng.normal(0, 0.01, lay.n_q)
    return obs, lay, q, xyz


def _numpy_blocks(obs, lay, q, xyz):
    """Dense J (n_obs, 2, n_q) and J_m (n_obs, 2, 3), weighted, from the numpy reference."""
    params, beam = lay.params(q)
    jv, jm, jb = jacobian_blocks_full(params, xyz, obs.view_index, obs.marker_index, beam)
    raw = np.concatenate([jv, jb[:, :, None]], axis=2)  # (n_obs, 2, 10)
    J = np.zeros((len(obs), 2, lay.n_q))
    for i, j in enumerate(obs.view_index):
        for s in range(lay.slot_raw.shape[1]):
            if lay.slot_raw[j, s] >= 0 and lay.slot_col[j, s] >= 0:
                J[i, :, lay.slot_col[j, s]] += lay.slot_w[j, s] * raw[i, :, lay.slot_raw[j, s]]
    sw = np.sqrt(obs.weights)[:, None, None]
    return J * sw, jm * sw


KERNELS = pytest.mark.parametrize("kern", [_kernels, _kernels_numpy], ids=["compiled", "numpy"])


@KERNELS
def test_linearise_matches_the_numpy_reference(kern):
    obs, lay, q, xyz = _problem()
    a, d, shifts = matrices(lay, q)
    cost, b, g, C, gm = kern.linearise(a, d, shifts, xyz, obs.view_index, obs.xy, obs.weights, lay.slot_raw,
                                       lay.slot_w, obs.marker_bounds, obs.chunks)
    J, Jm = _numpy_blocks(obs, lay, q, xyz)
    params, beam = lay.params(q)
    r = (project(params, xyz, obs.view_index, obs.marker_index, beam) - obs.xy) * np.sqrt(obs.weights)[:, None]
    assert cost == pytest.approx(0.5 * np.sum(r * r), rel=1e-12)
    np.testing.assert_allclose(lay.scatter_square(b), np.einsum("nip,niq->pq", J, J), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(lay.scatter_vector(g), np.einsum("nip,ni->p", J, r), rtol=1e-9, atol=1e-6)
    Cn = np.zeros((obs.n_markers, 3, 3))
    np.add.at(Cn, obs.marker_index, np.einsum("nip,niq->npq", Jm, Jm))
    np.testing.assert_allclose(C, Cn, rtol=1e-10)
    gmn = np.zeros((obs.n_markers, 3))
    np.add.at(gmn, obs.marker_index, np.einsum("nip,ni->np", Jm, r))
    np.testing.assert_allclose(gm, gmn, rtol=1e-9, atol=1e-8)


@KERNELS
def test_gradient_matches_finite_differences_of_the_cost(kern):
    obs, lay, q, xyz = _problem(seed=3)
    a, d, shifts = matrices(lay, q)
    _, _, g, _, gm = kern.linearise(a, d, shifts, xyz, obs.view_index, obs.xy, obs.weights, lay.slot_raw,
                                    lay.slot_w, obs.marker_bounds, obs.chunks)
    grad = lay.scatter_vector(g)
    h = 1e-6
    num = np.array([(full_cost(obs, lay, q + h * e, xyz) - full_cost(obs, lay, q - h * e, xyz)) / (2 * h)
                    for e in np.eye(lay.n_q)])
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-4 * np.abs(num).max())
    assert np.any(lay.kind_of_column == BEAM) and np.any(lay.slot_w[(lay.slot_w > 0) & (lay.slot_w < 1)])
    k = 4
    dm = np.zeros_like(xyz)
    dm[k, 2] = h
    num_m = (full_cost(obs, lay, q, xyz + dm) - full_cost(obs, lay, q, xyz - dm)) / (2 * h)
    assert gm[k, 2] == pytest.approx(num_m, rel=1e-5)


@KERNELS
def test_schur_products_match_dense_algebra(kern):
    obs, lay, q, xyz = _problem(seed=5)
    a, d, _ = matrices(lay, q)
    J, Jm = _numpy_blocks(obs, lay, q, xyz)
    C = np.zeros((obs.n_markers, 3, 3))
    np.add.at(C, obs.marker_index, np.einsum("nip,niq->npq", Jm, Jm))
    linv = np.linalg.inv(np.linalg.cholesky(C))
    E = np.zeros((lay.n_q, obs.n_markers, 3))  # E[q, m, :] = sum over m's observations of J^T Jm
    for i, m in enumerate(obs.marker_index):
        E[:, m, :] += J[i].T @ Jm[i]
    want = np.einsum("qmi,mij,pmj->qp", E, np.linalg.inv(C), E)
    args = (a, d, xyz, obs.view_index, obs.weights, lay.slot_raw, lay.slot_w)
    F = kern.schur_columns(*args, lay.slot_col, obs.marker_bounds, linv, lay.n_q)
    np.testing.assert_allclose(F @ F.T, want, rtol=1e-8, atol=1e-6 * np.abs(want).max())
    bounds = np.array([0, 4, obs.n_markers], dtype=np.int64)
    S = kern.schur_reduced(*args, lay.slot_col, obs.marker_bounds, linv, lay.n_q, bounds, obs.max_obs_per_marker)
    np.testing.assert_allclose(np.triu(S), np.triu(want), rtol=1e-8, atol=1e-6 * np.abs(want).max())
    t = np.random.default_rng(1).normal(size=(obs.n_markers, 3))
    et = kern.view_sums_of_e_times(*args, obs.marker_bounds, t, obs.chunks)
    np.testing.assert_allclose(lay.scatter_vector(et), np.einsum("qmi,mi->q", E, t), rtol=1e-9, atol=1e-7)
    dq = np.random.default_rng(2).normal(size=lay.n_q)
    etd = kern.marker_sums_of_et_times(*args, obs.marker_bounds, lay.per_slot(dq))
    np.testing.assert_allclose(etd, np.einsum("qmi,q->mi", E, dq), rtol=1e-9, atol=1e-7)
