"""The solver's per-observation loops in plain numpy: the same functions and results as `_kernels`.

For a small problem (a few thousand observations) these run as fast as the compiled loops, and they
save the process from importing numba and loading its cached machine code (0.2-0.4 s), which is most
of a small alignment's wall time as a command. `_backend` chooses between the two by size.

Every function takes the arguments of its namesake in `_kernels` (observations sorted by marker,
``marker_starts`` the ``(n_m + 1,)`` offsets of each marker's observations) and returns the same
arrays, to rounding. Per-view sums use ``np.bincount``; per-marker sums use ``np.add.reduceat``,
since each marker's observations are contiguous. ``bounds`` (the compiled loops' thread chunks) is
accepted and not needed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_CHUNKS = 16
_SCHUR_BLOCK_BYTES = 16 * 2**20  # the dense F of one block of markers in `schur_reduced`
_TRIL = np.tril(np.ones((3, 3)))


def _per_view(values: NDArray[np.float64], view_index: NDArray[np.intp], n_views: int) -> NDArray[np.float64]:
    """Sum ``(n_obs, ...)`` values into ``(n_views, ...)`` by view."""
    shape = values.shape[1:]
    k = int(np.prod(shape))
    flat = (view_index[:, None] * k + np.arange(k)).ravel()
    sums = np.bincount(flat, weights=values.reshape(-1), minlength=n_views * k)
    return sums.reshape((n_views, *shape))


def _per_marker(values: NDArray[np.float64], marker_starts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sum ``(n_obs, ...)`` values into ``(n_m, ...)`` by marker (every marker has an observation)."""
    if values.shape[0] == 0:
        return np.zeros((len(marker_starts) - 1, *values.shape[1:]))
    return np.add.reduceat(values, marker_starts[:-1], axis=0)


def _marker_of(marker_starts: NDArray[np.int64]) -> NDArray[np.intp]:
    """``(n_obs,)`` marker number of each observation."""
    return np.repeat(np.arange(len(marker_starts) - 1), np.diff(marker_starts))


def _project(vp, xyz, view_index, marker_index):
    """Predicted positions and the trigonometry the derivatives reuse (the compiled `_predict`)."""
    v = vp[view_index]
    th, al, s = v[:, 0], v[:, 1], v[:, 2]
    p = xyz[marker_index]
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ct, st, ca, sa = np.cos(th), np.sin(th), np.cos(al), np.sin(al)
    u = x * ct + z * st
    px = s * (ca * u - sa * y) + v[:, 3]
    py = s * (sa * u + ca * y) + v[:, 4]
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
    jx, jy = np.empty((n, 5)), np.empty((n, 5))  # d(x, y)/d(tilt, rotation, magnification, dx, dy)
    jx[:, 0], jy[:, 0] = ca * sdu, sa * sdu
    jx[:, 1], jy[:, 1] = -s * ns, s * ms
    jx[:, 2], jy[:, 2] = ms, ns
    jx[:, 3], jy[:, 3] = 1.0, 0.0
    jx[:, 4], jy[:, 4] = 0.0, 1.0
    f = free[view_index] * sw[:, None]
    jx *= f
    jy *= f
    ssw = s * sw
    mx = np.stack([ssw * ca * ct, -ssw * sa, ssw * ca * st], axis=1)  # d x / d (x, y, z)
    my = np.stack([ssw * sa * ct, ssw * ca, ssw * sa * st], axis=1)  # d y / d (x, y, z)
    g_obs = jx * rx[:, None] + jy * ry[:, None]
    b_obs = jx[:, :, None] * jx[:, None, :] + jy[:, :, None] * jy[:, None, :]
    E = jx[:, :, None] * mx[:, None, :] + jy[:, :, None] * my[:, None, :]
    gm_obs = mx * rx[:, None] + my * ry[:, None]
    c_obs = mx[:, :, None] * mx[:, None, :] + my[:, :, None] * my[:, None, :]
    b_view = _per_view(b_obs, view_index, n_views)
    g_view = _per_view(g_obs, view_index, n_views)
    C = _per_marker(c_obs, marker_starts)
    g_m = _per_marker(gm_obs, marker_starts)
    return total, b_view, g_view, C, g_m, E


def _e_times_linv_t(E, linv, marker_of):
    """``(n_obs, 5, 3)``: each observation's ``E_i L_m^-T`` (``linv`` read as lower triangular)."""
    return np.matmul(E, np.swapaxes((linv * _TRIL)[marker_of], 1, 2))


def _columns_dense(G, view_index, marker_of, columns, n_q, first_marker, n_m):
    """Dense ``(n_q, 3 n_m)`` F of markers ``first_marker ...`` from their ``G = E L^-T`` blocks."""
    rows = columns[view_index]  # (n, 5)
    cols = 3 * (marker_of - first_marker)[:, None] + np.arange(3)  # (n, 3)
    ok = np.broadcast_to((rows >= 0)[:, :, None], G.shape)
    flat = rows[:, :, None] * (3 * n_m) + cols[:, None, :]
    F = np.bincount(flat[ok], weights=G[ok], minlength=n_q * 3 * n_m)
    return F.reshape(n_q, 3 * n_m)


def schur_columns(E, linv, view_index, marker_starts, columns, n_q):
    """Dense ``F`` ``(n_q, 3 n_m)`` with ``F F^T = E C^-1 E^T`` (``C = L L^T``, ``linv = L^-1``)."""
    marker_of = _marker_of(marker_starts)
    G = _e_times_linv_t(E, linv, marker_of)
    return _columns_dense(G, view_index, marker_of, columns, n_q, 0, len(marker_starts) - 1)


def schur_reduced(E, linv, view_index, marker_starts, columns, n_q, bounds, max_obs):
    """``E C^-1 E^T`` ``(n_q, n_q)``, upper triangle only, as `_kernels.schur_reduced`.

    Formed from the dense ``F`` of blocks of markers, so memory stays bounded whatever the count.
    """
    n_m = len(marker_starts) - 1
    per_block = max(1, int(_SCHUR_BLOCK_BYTES // (8 * 3 * max(1, n_q))))
    out = np.zeros((n_q, n_q))
    for first in range(0, n_m, per_block):
        last = min(n_m, first + per_block)
        lo, hi = int(marker_starts[first]), int(marker_starts[last])
        marker_of = _marker_of(marker_starts[first : last + 1] - lo) + first
        G = _e_times_linv_t(E[lo:hi], linv, marker_of)
        F = _columns_dense(G, view_index[lo:hi], marker_of, columns, n_q, first, last - first)
        out += F @ F.T
    return np.triu(out)


def view_sums_of_e_times(E, t, view_index, marker_starts, bounds, n_views):
    """``(n_views, 5)``: for each view, the sum over its observations of ``E_i t_m``."""
    per_obs = np.matmul(E, t[_marker_of(marker_starts)][:, :, None])[:, :, 0]
    return _per_view(per_obs, view_index, n_views)


def marker_sums_of_et_times(E, dv, view_index, marker_starts):
    """``(n_m, 3)``: for each marker, the sum over its observations of ``E_i^T dv_view``."""
    per_obs = np.matmul(dv[view_index][:, None, :], E)[:, 0, :]
    return _per_marker(per_obs, marker_starts)


def chunk_bounds(n_markers: int, chunks: int = _CHUNKS) -> np.ndarray:
    """Marker ranges of the parallel chunks (as `_kernels.chunk_bounds`; used here only for the signature)."""
    return np.linspace(0, n_markers, max(1, min(chunks, n_markers)) + 1).astype(np.int64)
