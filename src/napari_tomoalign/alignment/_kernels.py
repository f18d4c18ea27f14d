"""Compiled per-observation loops of the Levenberg–Marquardt solver (numba).

Each kernel makes one pass over the observations (sorted by marker) and accumulates what `lm`
needs: the cost, the per-view and per-marker blocks of the normal equations, the per-observation
view-marker coupling blocks ``E``, and the Schur products. The numpy versions formed several
``(n_obs, 2, 5)`` temporaries per iteration; at 1.4 M observations that memory traffic dominated.

Work is split over markers into chunks; per-view sums are kept per chunk and added at the end, so
no two threads write the same memory. The model and its derivatives are those of `model.py`
(``jacobian_blocks`` is the reference the tests compare against).
"""

from __future__ import annotations

import numba
import numpy as np

_CHUNKS = 16


@numba.njit(cache=True, nogil=True, inline="always")
def _predict(vp, xyz, j, m):  # pragma: no cover - compiled
    th, al, s, dx, dy = vp[j, 0], vp[j, 1], vp[j, 2], vp[j, 3], vp[j, 4]
    x, y, z = xyz[m, 0], xyz[m, 1], xyz[m, 2]
    ct, st = np.cos(th), np.sin(th)
    ca, sa = np.cos(al), np.sin(al)
    u = x * ct + z * st
    return s * (ca * u - sa * y) + dx, s * (sa * u + ca * y) + dy, ct, st, ca, sa, u, s, x, z, y


@numba.njit(parallel=True, cache=True, nogil=True)
def cost(vp, xyz, view_index, marker_index, xy, weights):  # pragma: no cover - compiled
    """Half the weighted sum of squared residuals."""
    n = view_index.shape[0]
    total = 0.0
    for i in numba.prange(n):
        px, py, _, _, _, _, _, _, _, _, _ = _predict(vp, xyz, view_index[i], marker_index[i])
        rx = px - xy[i, 0]
        ry = py - xy[i, 1]
        total += weights[i] * (rx * rx + ry * ry)
    return 0.5 * total


@numba.njit(parallel=True, cache=True, nogil=True)
def linearise(vp, xyz, view_index, marker_index, xy, weights, free, marker_starts, n_markers, bounds, n_views):
    """The normal-equation pieces at one point (weighted); see the module docstring.

    Returns ``cost, b_view (n_views, 5, 5), g_view (n_views, 5), C (n_m, 3, 3), g_m (n_m, 3),
    E (n_obs, 5, 3)``. ``free`` ``(n_views, 5)`` zeroes the derivatives of fixed parameters.
    """  # pragma: no cover - compiled
    n = view_index.shape[0]
    n_chunks = bounds.shape[0] - 1
    bv = np.zeros((n_chunks, n_views, 5, 5))
    gv = np.zeros((n_chunks, n_views, 5))
    cost_part = np.zeros(n_chunks)
    C = np.zeros((n_markers, 3, 3))
    gm = np.zeros((n_markers, 3))
    E = np.empty((n, 5, 3))
    for k in numba.prange(n_chunks):
        jv = np.empty((2, 5))
        jm = np.empty((2, 3))
        r = np.empty(2)
        for m in range(bounds[k], bounds[k + 1]):
            first = marker_starts[m]
            last = marker_starts[m + 1]
            for i in range(first, last):
                j = view_index[i]
                px, py, ct, st, ca, sa, u, s, x, z, y = _predict(vp, xyz, j, m)
                sw = np.sqrt(weights[i])
                r[0] = (px - xy[i, 0]) * sw
                r[1] = (py - xy[i, 1]) * sw
                cost_part[k] += 0.5 * (r[0] * r[0] + r[1] * r[1])
                du = -x * st + z * ct
                # d/d tilt, rotation, magnification, dx, dy
                jv[0, 0] = s * ca * du
                jv[1, 0] = s * sa * du
                jv[0, 1] = s * (-sa * u - ca * y)
                jv[1, 1] = s * (ca * u - sa * y)
                jv[0, 2] = ca * u - sa * y
                jv[1, 2] = sa * u + ca * y
                jv[0, 3] = 1.0
                jv[1, 3] = 0.0
                jv[0, 4] = 0.0
                jv[1, 4] = 1.0
                for p in range(5):
                    f = sw if free[j, p] else 0.0
                    jv[0, p] *= f
                    jv[1, p] *= f
                # d/d x, y, z
                jm[0, 0] = s * ca * ct * sw
                jm[1, 0] = s * sa * ct * sw
                jm[0, 1] = -s * sa * sw
                jm[1, 1] = s * ca * sw
                jm[0, 2] = s * ca * st * sw
                jm[1, 2] = s * sa * st * sw
                for p in range(5):
                    gv[k, j, p] += jv[0, p] * r[0] + jv[1, p] * r[1]
                    for q in range(p, 5):
                        bv[k, j, p, q] += jv[0, p] * jv[0, q] + jv[1, p] * jv[1, q]
                    for q in range(3):
                        E[i, p, q] = jv[0, p] * jm[0, q] + jv[1, p] * jm[1, q]
                for p in range(3):
                    gm[m, p] += jm[0, p] * r[0] + jm[1, p] * r[1]
                    for q in range(p, 3):
                        C[m, p, q] += jm[0, p] * jm[0, q] + jm[1, p] * jm[1, q]
    b_view = np.zeros((n_views, 5, 5))
    g_view = np.zeros((n_views, 5))
    for k in range(n_chunks):
        b_view += bv[k]
        g_view += gv[k]
    for j in range(n_views):
        for p in range(5):
            for q in range(p + 1, 5):
                b_view[j, q, p] = b_view[j, p, q]
    for m in range(n_markers):
        for p in range(3):
            for q in range(p + 1, 3):
                C[m, q, p] = C[m, p, q]
    return cost_part.sum(), b_view, g_view, C, gm, E


@numba.njit(parallel=True, cache=True, nogil=True)
def schur_columns(E, linv, view_index, marker_starts, columns, n_q):
    """Dense ``F`` ``(n_q, 3 n_m)`` with ``F F^T = E C^-1 E^T`` (``C = L L^T``, ``linv = L^-1``).

    Each observation adds ``E_i L_m^-T`` at the rows of its view's free parameters and the three
    columns of its marker. Markers own their columns, so threads split by marker never collide.
    """  # pragma: no cover - compiled
    n_m = marker_starts.shape[0] - 1
    F = np.zeros((n_q, 3 * n_m))
    for m in numba.prange(n_m):
        for i in range(marker_starts[m], marker_starts[m + 1]):
            j = view_index[i]
            for p in range(5):
                row = columns[j, p]
                if row < 0:
                    continue
                for q in range(3):
                    acc = 0.0
                    for t in range(q + 1):  # linv is lower triangular: (L^-T)[t, q] = linv[q, t]
                        acc += E[i, p, t] * linv[m, q, t]
                    F[row, 3 * m + q] += acc  # columns shared by several views (one, group) add up
    return F


@numba.njit(parallel=True, cache=True, nogil=True)
def schur_reduced(E, linv, view_index, marker_starts, columns, n_q, bounds, max_obs):
    """``E C^-1 E^T`` ``(n_q, n_q)`` accumulated marker by marker, upper triangle only.

    Marker ``m`` adds ``F_m F_m^T`` with ``F_m`` the ``E_i L_m^-T`` of its observations, so memory is
    ``n_q^2`` per part (``bounds`` gives each part's markers) and work ``(5 k_m)^2`` per marker seen in
    ``k_m`` views: what sparse (patch-tracking) input needs, where the dense ``F`` would not fit.
    """  # pragma: no cover - compiled
    n_parts = bounds.shape[0] - 1
    parts = np.zeros((n_parts, n_q, n_q))
    for k in numba.prange(n_parts):
        g = np.empty((5 * max_obs, 3))
        rows = np.empty(5 * max_obs, dtype=np.int64)
        s = parts[k]
        for m in range(bounds[k], bounds[k + 1]):
            n = 0
            for i in range(marker_starts[m], marker_starts[m + 1]):
                j = view_index[i]
                for p in range(5):
                    r = columns[j, p]
                    if r < 0:
                        continue
                    rows[n] = r
                    for q in range(3):
                        acc = 0.0
                        for t in range(q + 1):
                            acc += E[i, p, t] * linv[m, q, t]
                        g[n, q] = acc
                    n += 1
            for a in range(n):
                ra = rows[a]
                a0, a1, a2 = g[a, 0], g[a, 1], g[a, 2]
                s[ra, ra] += a0 * a0 + a1 * a1 + a2 * a2
                for b in range(a + 1, n):
                    rb = rows[b]
                    v = a0 * g[b, 0] + a1 * g[b, 1] + a2 * g[b, 2]
                    if ra < rb:
                        s[ra, rb] += v
                    elif rb < ra:
                        s[rb, ra] += v
                    else:  # two parameters sharing one column (one, group): both orders land here
                        s[ra, ra] += 2.0 * v
    out = parts[0].copy()
    for k in range(1, n_parts):
        out += parts[k]
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def view_sums_of_e_times(E, t, view_index, marker_starts, bounds, n_views):
    """``(n_views, 5)``: for each view, the sum over its observations of ``E_i t_m``."""  # pragma: no cover
    n_chunks = bounds.shape[0] - 1
    part = np.zeros((n_chunks, n_views, 5))
    for k in numba.prange(n_chunks):
        for m in range(bounds[k], bounds[k + 1]):
            for i in range(marker_starts[m], marker_starts[m + 1]):
                j = view_index[i]
                for p in range(5):
                    part[k, j, p] += E[i, p, 0] * t[m, 0] + E[i, p, 1] * t[m, 1] + E[i, p, 2] * t[m, 2]
    out = np.zeros((n_views, 5))
    for k in range(n_chunks):
        out += part[k]
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def marker_sums_of_et_times(E, dv, view_index, marker_starts):
    """``(n_m, 3)``: for each marker, the sum over its observations of ``E_i^T dv_view``."""  # pragma: no cover
    n_m = marker_starts.shape[0] - 1
    out = np.zeros((n_m, 3))
    for m in numba.prange(n_m):
        for i in range(marker_starts[m], marker_starts[m + 1]):
            j = view_index[i]
            for q in range(3):
                out[m, q] += (E[i, 0, q] * dv[j, 0] + E[i, 1, q] * dv[j, 1] + E[i, 2, q] * dv[j, 2]
                              + E[i, 3, q] * dv[j, 3] + E[i, 4, q] * dv[j, 4])
    return out


def chunk_bounds(n_markers: int, chunks: int = _CHUNKS) -> np.ndarray:
    """Marker ranges of the parallel chunks."""
    return np.linspace(0, n_markers, max(1, min(chunks, n_markers)) + 1).astype(np.int64)
