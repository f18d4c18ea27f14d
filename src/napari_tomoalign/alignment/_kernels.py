"""Compiled per-observation loops of the solver (numba), for every settings (`_kernels_numpy` is the numpy twin).

The model (`model`) has nine parameters per view and one beam tilt. The solver's unknowns
``q`` reach them through *slots* (`full_layout`): view ``j`` has up to ``S`` slots, slot ``s`` adds
``w[j, s] q[col[j, s]]`` to the view's raw parameter ``raw[j, s]`` (0-8 in the order of
``model.FULL_VIEW_PARAMS``, 9 for the beam tilt, -1 for an unused slot). A view of a linear group
thus has two slots for one variable kind, and a shared (block, one-for-all, beam-tilt) unknown appears
in the slots of several views.

The per-view matrices ``A_j`` ``(n_views, 2, 3)`` and their derivatives ``dA_j`` ``(n_views, 10, 2, 3)``
by each raw parameter are computed once per linearisation in numpy (`model.view_matrices`); the
loops here only apply them to the markers. The view-marker coupling blocks ``E_i = J_view^T J_marker``
are not stored but recomputed where needed: they cost a few multiply-adds per slot, while storing them
would take ``24 S`` bytes per observation (at 1.4 M observations this runs as fast as the former
default-model loops that stored them, with less memory).

Work is split over markers into chunks (`_lm.chunk_bounds`); per-view sums are kept per chunk.
"""

from __future__ import annotations

import numba
import numpy as np

SHIFT_X, SHIFT_Y = 3, 4  # raw parameter numbers of the shifts: their derivative is a unit vector


@numba.njit(cache=True, nogil=True, inline="always")
def _predict(amat, shifts, xyz, j, m):  # pragma: no cover - compiled
    x, y, z = xyz[m, 0], xyz[m, 1], xyz[m, 2]
    px = amat[j, 0, 0] * x + amat[j, 0, 1] * y + amat[j, 0, 2] * z + shifts[j, 0]
    py = amat[j, 1, 0] * x + amat[j, 1, 1] * y + amat[j, 1, 2] * z + shifts[j, 1]
    return px, py


@numba.njit(cache=True, nogil=True, inline="always")
def _jacobian(amat, dmat, xyz, j, m, sw, slot_raw, slot_w, jv, jm):  # pragma: no cover - compiled
    """Fill ``jv`` ``(2, S)`` (by slot, weighted) and ``jm`` ``(2, 3)`` (by marker) for one observation."""
    x, y, z = xyz[m, 0], xyz[m, 1], xyz[m, 2]
    for s in range(slot_raw.shape[1]):
        p = slot_raw[j, s]
        w = slot_w[j, s] * sw
        if p < 0:
            jv[0, s] = 0.0
            jv[1, s] = 0.0
        elif p == SHIFT_X:
            jv[0, s] = w
            jv[1, s] = 0.0
        elif p == SHIFT_Y:
            jv[0, s] = 0.0
            jv[1, s] = w
        else:
            jv[0, s] = w * (dmat[j, p, 0, 0] * x + dmat[j, p, 0, 1] * y + dmat[j, p, 0, 2] * z)
            jv[1, s] = w * (dmat[j, p, 1, 0] * x + dmat[j, p, 1, 1] * y + dmat[j, p, 1, 2] * z)
    for q in range(3):
        jm[0, q] = amat[j, 0, q] * sw
        jm[1, q] = amat[j, 1, q] * sw


@numba.njit(parallel=True, cache=True, nogil=True)
def cost(amat, shifts, xyz, view_index, marker_index, xy, weights):  # pragma: no cover - compiled
    """Half the weighted sum of squared residuals."""
    total = 0.0
    for i in numba.prange(view_index.shape[0]):
        px, py = _predict(amat, shifts, xyz, view_index[i], marker_index[i])
        rx = px - xy[i, 0]
        ry = py - xy[i, 1]
        total += weights[i] * (rx * rx + ry * ry)
    return 0.5 * total


@numba.njit(parallel=True, cache=True, nogil=True)
def linearise(amat, dmat, shifts, xyz, view_index, xy, weights, slot_raw, slot_w, marker_starts, bounds):
    """Cost, per-view slot blocks ``b (n_views, S, S)`` and ``g (n_views, S)``, and the marker blocks
    ``C (n_m, 3, 3)`` and ``g_m (n_m, 3)`` of the weighted normal equations."""  # pragma: no cover
    n_views, n_s = slot_raw.shape
    n_m = marker_starts.shape[0] - 1
    n_chunks = bounds.shape[0] - 1
    bv = np.zeros((n_chunks, n_views, n_s, n_s))
    gv = np.zeros((n_chunks, n_views, n_s))
    cost_part = np.zeros(n_chunks)
    C = np.zeros((n_m, 3, 3))
    gm = np.zeros((n_m, 3))
    for k in numba.prange(n_chunks):
        jv = np.empty((2, n_s))
        jm = np.empty((2, 3))
        for m in range(bounds[k], bounds[k + 1]):
            for i in range(marker_starts[m], marker_starts[m + 1]):
                j = view_index[i]
                sw = np.sqrt(weights[i])
                px, py = _predict(amat, shifts, xyz, j, m)
                r0 = (px - xy[i, 0]) * sw
                r1 = (py - xy[i, 1]) * sw
                cost_part[k] += 0.5 * (r0 * r0 + r1 * r1)
                _jacobian(amat, dmat, xyz, j, m, sw, slot_raw, slot_w, jv, jm)
                for p in range(n_s):
                    if slot_raw[j, p] < 0:
                        continue
                    gv[k, j, p] += jv[0, p] * r0 + jv[1, p] * r1
                    for q in range(p, n_s):
                        bv[k, j, p, q] += jv[0, p] * jv[0, q] + jv[1, p] * jv[1, q]
                for p in range(3):
                    gm[m, p] += jm[0, p] * r0 + jm[1, p] * r1
                    for q in range(p, 3):
                        C[m, p, q] += jm[0, p] * jm[0, q] + jm[1, p] * jm[1, q]
    b = np.zeros((n_views, n_s, n_s))
    g = np.zeros((n_views, n_s))
    for k in range(n_chunks):
        b += bv[k]
        g += gv[k]
    for j in range(n_views):
        for p in range(n_s):
            for q in range(p + 1, n_s):
                b[j, q, p] = b[j, p, q]
    for m in range(n_m):
        for p in range(3):
            for q in range(p + 1, 3):
                C[m, q, p] = C[m, p, q]
    return cost_part.sum(), b, g, C, gm


@numba.njit(cache=True, nogil=True, inline="always")
def _coupling(jv, jm, linv, m, slot_raw, j, g):  # pragma: no cover - compiled
    """``g (S, 3) = E_i L_m^-T`` with ``E_i = jv^T jm``; rows of unused slots are left alone."""
    for s in range(slot_raw.shape[1]):
        if slot_raw[j, s] < 0:
            continue
        e0 = jv[0, s] * jm[0, 0] + jv[1, s] * jm[1, 0]
        e1 = jv[0, s] * jm[0, 1] + jv[1, s] * jm[1, 1]
        e2 = jv[0, s] * jm[0, 2] + jv[1, s] * jm[1, 2]
        g[s, 0] = e0 * linv[m, 0, 0]
        g[s, 1] = e0 * linv[m, 1, 0] + e1 * linv[m, 1, 1]
        g[s, 2] = e0 * linv[m, 2, 0] + e1 * linv[m, 2, 1] + e2 * linv[m, 2, 2]


@numba.njit(parallel=True, cache=True, nogil=True)
def schur_columns(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, slot_col, marker_starts, linv, n_q):
    """Dense ``F`` ``(n_q, 3 n_m)`` with ``F F^T = E C^-1 E^T`` (``linv = L^-1``, ``C = L L^T``)."""  # pragma: no cover
    n_m = marker_starts.shape[0] - 1
    n_s = slot_raw.shape[1]
    F = np.zeros((n_q, 3 * n_m))
    for m in numba.prange(n_m):
        jv = np.empty((2, n_s))
        jm = np.empty((2, 3))
        g = np.empty((n_s, 3))
        for i in range(marker_starts[m], marker_starts[m + 1]):
            j = view_index[i]
            _jacobian(amat, dmat, xyz, j, m, np.sqrt(weights[i]), slot_raw, slot_w, jv, jm)
            _coupling(jv, jm, linv, m, slot_raw, j, g)
            for s in range(n_s):
                row = slot_col[j, s]
                if row < 0 or slot_raw[j, s] < 0:
                    continue
                for q in range(3):
                    F[row, 3 * m + q] += g[s, q]
    return F


@numba.njit(parallel=True, cache=True, nogil=True)
def schur_reduced(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, slot_col, marker_starts, linv, n_q,
                  bounds, max_obs):
    """``E C^-1 E^T`` ``(n_q, n_q)`` accumulated marker by marker, upper triangle only (for sparse
    input, where the dense ``F`` would not fit)."""  # pragma: no cover - compiled
    n_parts = bounds.shape[0] - 1
    n_s = slot_raw.shape[1]
    parts = np.zeros((n_parts, n_q, n_q))
    for k in numba.prange(n_parts):
        jv = np.empty((2, n_s))
        jm = np.empty((2, 3))
        g1 = np.empty((n_s, 3))
        g = np.empty((n_s * max_obs, 3))
        rows = np.empty(n_s * max_obs, dtype=np.int64)
        out = parts[k]
        for m in range(bounds[k], bounds[k + 1]):
            n = 0
            for i in range(marker_starts[m], marker_starts[m + 1]):
                j = view_index[i]
                _jacobian(amat, dmat, xyz, j, m, np.sqrt(weights[i]), slot_raw, slot_w, jv, jm)
                _coupling(jv, jm, linv, m, slot_raw, j, g1)
                for s in range(n_s):
                    if slot_col[j, s] < 0 or slot_raw[j, s] < 0:
                        continue
                    rows[n] = slot_col[j, s]
                    g[n, 0], g[n, 1], g[n, 2] = g1[s, 0], g1[s, 1], g1[s, 2]
                    n += 1
            for a in range(n):
                ra = rows[a]
                a0, a1, a2 = g[a, 0], g[a, 1], g[a, 2]
                out[ra, ra] += a0 * a0 + a1 * a1 + a2 * a2
                for b in range(a + 1, n):
                    rb = rows[b]
                    v = a0 * g[b, 0] + a1 * g[b, 1] + a2 * g[b, 2]
                    if ra < rb:
                        out[ra, rb] += v
                    elif rb < ra:
                        out[rb, ra] += v
                    else:
                        out[ra, ra] += 2.0 * v
    total = parts[0].copy()
    for k in range(1, n_parts):
        total += parts[k]
    return total


@numba.njit(parallel=True, cache=True, nogil=True)
def view_sums_of_e_times(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts, t, bounds):
    """``(n_views, S)``: for each view and slot, the sum over its observations of ``E_i t_m``."""  # pragma: no cover
    n_views, n_s = slot_raw.shape
    n_chunks = bounds.shape[0] - 1
    part = np.zeros((n_chunks, n_views, n_s))
    for k in numba.prange(n_chunks):
        jv = np.empty((2, n_s))
        jm = np.empty((2, 3))
        for m in range(bounds[k], bounds[k + 1]):
            for i in range(marker_starts[m], marker_starts[m + 1]):
                j = view_index[i]
                _jacobian(amat, dmat, xyz, j, m, np.sqrt(weights[i]), slot_raw, slot_w, jv, jm)
                u0 = jm[0, 0] * t[m, 0] + jm[0, 1] * t[m, 1] + jm[0, 2] * t[m, 2]
                u1 = jm[1, 0] * t[m, 0] + jm[1, 1] * t[m, 1] + jm[1, 2] * t[m, 2]
                for s in range(n_s):
                    part[k, j, s] += jv[0, s] * u0 + jv[1, s] * u1
    out = np.zeros((n_views, n_s))
    for k in range(n_chunks):
        out += part[k]
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def marker_sums_of_et_times(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts, dv):
    """``(n_m, 3)``: for each marker, the sum over its observations of ``E_i^T dv_view`` (``dv`` by slot)."""
    n_m = marker_starts.shape[0] - 1  # pragma: no cover - compiled
    n_s = slot_raw.shape[1]
    out = np.zeros((n_m, 3))
    for m in numba.prange(n_m):
        jv = np.empty((2, n_s))
        jm = np.empty((2, 3))
        for i in range(marker_starts[m], marker_starts[m + 1]):
            j = view_index[i]
            _jacobian(amat, dmat, xyz, j, m, np.sqrt(weights[i]), slot_raw, slot_w, jv, jm)
            u0 = 0.0
            u1 = 0.0
            for s in range(n_s):
                u0 += jv[0, s] * dv[j, s]
                u1 += jv[1, s] * dv[j, s]
            for q in range(3):
                out[m, q] += jm[0, q] * u0 + jm[1, q] * u1
    return out
