"""The solver's per-observation loops in plain numpy: the same functions and results as `_kernels`.

For a small problem (a few thousand observations) these run as fast as the compiled loops, and they
save the process from importing numba and loading its cached machine code (0.2-0.4 s), which is most
of a small alignment's wall time as a command. `_backend` chooses between the two by size.

Every function takes the arguments of its namesake in `_kernels` (observations sorted by marker,
``marker_starts`` the ``(n_m + 1,)`` offsets of each marker's observations) and returns the same
arrays, to rounding. Per-view sums use ``np.bincount``; per-marker sums use ``np.add.reduceat``,
since each marker's observations are contiguous. ``bounds`` (the compiled loops' thread chunks) is
accepted and not needed. Work is laid out as one contiguous row of ``n_obs`` values per matrix entry
(``(5, 3, n_obs)`` and so on): at a few thousand observations numpy's per-call cost dominates, and
contiguous rows keep every call short. ``E`` is returned as an ``(n_obs, 5, 3)`` view of that layout.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_CHUNKS = 16
_SCHUR_BLOCK_BYTES = 16 * 2**20  # the dense F of one block of markers in `schur_reduced`


def _packing(k: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The ``(p, q)`` pairs with ``p <= q`` of a symmetric ``k x k`` block, and each full entry's pair."""
    up = np.triu_indices(k)
    index = np.empty((k, k), dtype=np.intp)
    index[up] = np.arange(len(up[0]))
    index.T[up] = np.arange(len(up[0]))
    return np.array(up), index


_UP5, _FULL5 = _packing(5)
_UP3, _FULL3 = _packing(3)


def _per_view(rows: NDArray[np.float64], view_index: NDArray[np.intp], n_views: int) -> NDArray[np.float64]:
    """Sum ``(..., n_obs)`` values into ``(n_views, ...)`` by view."""
    shape = rows.shape[:-1]
    k = int(np.prod(shape))
    flat = (np.arange(k)[:, None] * n_views + view_index).ravel()
    sums = np.bincount(flat, weights=rows.reshape(-1), minlength=n_views * k).reshape(k, n_views)
    return np.ascontiguousarray(sums.T).reshape((n_views, *shape))


def _per_marker(rows: NDArray[np.float64], marker_starts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sum ``(..., n_obs)`` values into ``(n_m, ...)`` by marker (every marker has an observation)."""
    shape = rows.shape[:-1]
    flat = rows.reshape(-1, rows.shape[-1])
    if flat.shape[1] == 0:
        return np.zeros((len(marker_starts) - 1, *shape))
    sums = np.add.reduceat(flat, marker_starts[:-1], axis=1)
    return np.ascontiguousarray(sums.T).reshape((len(marker_starts) - 1, *shape))


def _marker_of(marker_starts: NDArray[np.int64]) -> NDArray[np.intp]:
    """``(n_obs,)`` marker number of each observation."""
    return np.repeat(np.arange(len(marker_starts) - 1), np.diff(marker_starts))


def _rows(E: NDArray[np.float64]) -> NDArray[np.float64]:
    """``E`` ``(n_obs, 5, 3)`` as ``(5, 3, n_obs)`` (a view of what `linearise` made; a copy otherwise)."""
    return np.ascontiguousarray(E.transpose(1, 2, 0))


def _project(vp, xyz, view_index, marker_index):
    """Predicted positions and the trigonometry the derivatives reuse (the compiled `_predict`)."""
    th, al, s, dx, dy = vp.T[:, view_index]
    x, y, z = xyz.T[:, marker_index]
    ct, st, ca, sa = np.cos(th), np.sin(th), np.cos(al), np.sin(al)
    u = x * ct + z * st
    px = s * (ca * u - sa * y) + dx
    py = s * (sa * u + ca * y) + dy
    return px, py, ct, st, ca, sa, u, s, x, y, z


def cost(vp, xyz, view_index, marker_index, xy, weights) -> float:
    """Half the weighted sum of squared residuals."""
    px, py = _project(vp, xyz, view_index, marker_index)[:2]
    rx, ry = px - xy[:, 0], py - xy[:, 1]
    return 0.5 * float(np.dot(weights, rx * rx + ry * ry))


def linearise(vp, xyz, view_index, marker_index, xy, weights, free, marker_starts, n_markers, bounds, n_views):
    """The normal-equation pieces at one point (weighted), as `_kernels.linearise`.

    Returns ``cost, b_view (n_views, 5, 5), g_view (n_views, 5), C (n_m, 3, 3), g_m (n_m, 3),
    E (n_obs, 5, 3)``. ``free`` ``(n_views, 5)`` zeroes the derivatives of fixed parameters.
    """
    px, py, ct, st, ca, sa, u, s, x, y, z = _project(vp, xyz, view_index, marker_index)
    sw = np.sqrt(weights)
    rx, ry = (px - xy[:, 0]) * sw, (py - xy[:, 1]) * sw
    total = 0.5 * float(np.dot(rx, rx) + np.dot(ry, ry))
    n = len(view_index)
    sdu = s * (-x * st + z * ct)
    ms = ca * u - sa * y
    ns = sa * u + ca * y
    f = free.T[:, view_index] * sw  # (5, n): the weight, 0 for a fixed parameter
    jx, jy = np.zeros((5, n)), np.zeros((5, n))  # d(x, y)/d(tilt, rotation, magnification, dx, dy)
    jx[0], jy[0] = ca * sdu, sa * sdu
    jx[1], jy[1] = -s * ns, s * ms
    jx[2], jy[2] = ms, ns
    jx[3], jy[4] = 1.0, 1.0
    jx *= f
    jy *= f
    ssw = s * sw
    mx = np.stack([ssw * ca * ct, -ssw * sa, ssw * ca * st])  # d x / d (x, y, z), (3, n)
    my = np.stack([ssw * sa * ct, ssw * ca, ssw * sa * st])  # d y / d (x, y, z)
    e = jx[:, None] * mx[None] + jy[:, None] * my[None]  # (5, 3, n)
    # per view: the 15 distinct entries of each 5 x 5 block and the 5 of the gradient, in one pass
    per_view = np.empty((20, n))
    np.add(jx[_UP5[0]] * jx[_UP5[1]], jy[_UP5[0]] * jy[_UP5[1]], out=per_view[:15])
    np.add(jx * rx, jy * ry, out=per_view[15:])
    sums = _per_view(per_view, view_index, n_views)  # (n_views, 20)
    b_view = sums[:, _FULL5]  # (n_views, 5, 5), symmetric
    g_view = sums[:, 15:]
    per_marker = np.empty((9, n))  # the 6 distinct entries of each 3 x 3 block and the 3 of the gradient
    np.add(mx[_UP3[0]] * mx[_UP3[1]], my[_UP3[0]] * my[_UP3[1]], out=per_marker[:6])
    np.add(mx * rx, my * ry, out=per_marker[6:])
    m_sums = _per_marker(per_marker, marker_starts)  # (n_m, 9)
    C = m_sums[:, _FULL3]
    g_m = m_sums[:, 6:]
    return total, b_view, g_view, C, g_m, e.transpose(2, 0, 1)


def _e_times_linv_t(e_rows, linv, marker_of):
    """``(5, 3, n_obs)``: each observation's ``E_i L_m^-T`` (``linv`` read as lower triangular) from
    ``e_rows`` ``(5, 3, n_obs)``."""
    lt = linv.transpose(1, 2, 0)[:, :, marker_of]  # (q, t, n): L^-1[q, t] of each observation, t <= q read
    return np.stack([e_rows[:, 0] * lt[0, 0],
                     e_rows[:, 0] * lt[1, 0] + e_rows[:, 1] * lt[1, 1],
                     e_rows[:, 0] * lt[2, 0] + e_rows[:, 1] * lt[2, 1] + e_rows[:, 2] * lt[2, 2]], axis=1)


def _columns_dense(g_rows, view_index, marker_of, columns, n_q, first_marker, n_m):
    """Dense ``(n_q, 3 n_m)`` F of markers ``first_marker ...`` from their ``G = E L^-T`` ``(5, 3, n)``."""
    rows = columns.T[:, view_index]  # (5, n)
    cols = 3 * (marker_of - first_marker) + np.arange(3)[:, None]  # (3, n)
    flat = rows[:, None, :] * (3 * n_m) + cols[None]
    ok = np.broadcast_to((rows >= 0)[:, None, :], g_rows.shape)
    F = np.bincount(flat[ok], weights=g_rows[ok], minlength=n_q * 3 * n_m)
    return F.reshape(n_q, 3 * n_m)


def schur_columns(E, linv, view_index, marker_starts, columns, n_q):
    """Dense ``F`` ``(n_q, 3 n_m)`` with ``F F^T = E C^-1 E^T`` (``C = L L^T``, ``linv = L^-1``)."""
    marker_of = _marker_of(marker_starts)
    g = _e_times_linv_t(_rows(E), linv, marker_of)
    return _columns_dense(g, view_index, marker_of, columns, n_q, 0, len(marker_starts) - 1)


def schur_reduced(E, linv, view_index, marker_starts, columns, n_q, bounds, max_obs):
    """``E C^-1 E^T`` ``(n_q, n_q)``, upper triangle only, as `_kernels.schur_reduced`.

    Formed from the dense ``F`` of blocks of markers, so memory stays bounded whatever the count.
    """
    n_m = len(marker_starts) - 1
    per_block = max(1, int(_SCHUR_BLOCK_BYTES // (8 * 3 * max(1, n_q))))
    e_rows = _rows(E)
    out = np.zeros((n_q, n_q))
    for first in range(0, n_m, per_block):
        last = min(n_m, first + per_block)
        lo, hi = int(marker_starts[first]), int(marker_starts[last])
        marker_of = _marker_of(marker_starts[first : last + 1] - lo) + first
        g = _e_times_linv_t(e_rows[:, :, lo:hi], linv, marker_of)
        F = _columns_dense(g, view_index[lo:hi], marker_of, columns, n_q, first, last - first)
        out += F @ F.T
    return np.triu(out)


def view_sums_of_e_times(E, t, view_index, marker_starts, bounds, n_views):
    """``(n_views, 5)``: for each view, the sum over its observations of ``E_i t_m``."""
    e, tm = _rows(E), t.T[:, _marker_of(marker_starts)]  # (5, 3, n), (3, n)
    return _per_view(e[:, 0] * tm[0] + e[:, 1] * tm[1] + e[:, 2] * tm[2], view_index, n_views)


def marker_sums_of_et_times(E, dv, view_index, marker_starts):
    """``(n_m, 3)``: for each marker, the sum over its observations of ``E_i^T dv_view``."""
    e, d = _rows(E), dv.T[:, view_index]  # (5, 3, n), (5, n)
    per_obs = e[0] * d[0] + e[1] * d[1] + e[2] * d[2] + e[3] * d[3] + e[4] * d[4]  # (3, n)
    return _per_marker(per_obs, marker_starts)


def chunk_bounds(n_markers: int, chunks: int = _CHUNKS) -> np.ndarray:
    """Marker ranges of the parallel chunks (as `_kernels.chunk_bounds`; used here only for the signature)."""
    return np.linspace(0, n_markers, max(1, min(chunks, n_markers)) + 1).astype(np.int64)
