"""The solver's per-observation loops in plain numpy: the same functions and results as `_kernels`.

For a small problem (a few thousand observations) these run as fast as the compiled loops, and they
save the process from importing numba and loading its cached machine code (0.2-0.4 s), which is most
of a small alignment's wall time as a command. `_lm.kernels_for` chooses between the two by size (`compute.uses_compiled`).

Every function takes the arguments of its namesake in `_kernels` (observations sorted by marker,
``marker_starts`` the ``(n_m + 1,)`` offsets of each marker's observations; the per-view matrices ``A``
and their derivatives ``dA`` by raw parameter; the slots of `full_layout.UnknownLayout`) and returns the same
arrays, to rounding. Per-view sums use ``np.bincount``; per-marker sums use ``np.add.reduceat``, since
each marker's observations are contiguous. ``bounds`` (the compiled loops' thread chunks) is accepted
and not needed. Work is laid out as one contiguous row of ``n_obs`` values per matrix entry
(``(S, 2, n_obs)`` and so on): at a few thousand observations numpy's per-call cost dominates, and
contiguous rows keep every call short.
"""

from __future__ import annotations

import threading
from functools import cache

import numpy as np
from numpy.typing import NDArray

_SCHUR_BLOCK_BYTES = 16 * 2**20  # the dense F of one block of markers in `schur_reduced`
SHIFT_X, SHIFT_Y = 3, 4  # raw parameter numbers of the shifts: their derivative is a unit vector


@cache
def _packing(k: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The ``(p, q)`` pairs with ``p <= q`` of a symmetric ``k x k`` block, and each full entry's pair."""
    up = np.triu_indices(k)
    index = np.empty((k, k), dtype=np.intp)
    index[up] = np.arange(len(up[0]))
    index.T[up] = np.arange(len(up[0]))
    return np.array(up), index


_UP3, _FULL3 = _packing(3)
_UP4, _FULL4 = _packing(4)


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


_last = threading.local()  # per thread: the arguments and the products of the last linearisation


def _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts) -> dict:
    """What every kernel of one linearisation needs: ``marker_of``, the weighted derivatives ``jv`` ``(S, 2, n)``
    by slot (0 for unused slots) and ``jm`` ``(2, 3, n)``, and the couplings ``e = jv^T jm`` ``(S, 3, n)``.

    The kernels of one linearisation pass the same arrays: the last state is reused when every argument is
    the same object (the cache holds them, so none can be freed and another take its place)."""
    args = (amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)
    ids = tuple(map(id, args))
    last = getattr(_last, "value", None)
    if last is not None and last[0] == ids:  # last[1] holds the arrays, so no id can have been reused
        return last[2]
    marker_of = _marker_of(marker_starts)
    x = xyz.T.take(marker_of, axis=1)
    per_view, jv, jm = _compute_jacobians(amat, dmat, x, view_index, weights, slot_raw, slot_w)
    state = {"marker_of": marker_of, "x": x, "per_view": per_view, "jv": jv, "jm": jm,
             "e": jv[:, 0, None] * jm[0][None] + jv[:, 1, None] * jm[1][None]}
    _last.value = (ids, args, state)
    return state


def _compute_jacobians(amat, dmat, x, view_index, weights, slot_raw, slot_w):
    """Each view's slot derivatives as ``(n_views, S, 2, 4)`` matrices on ``[x, y, z, 1]`` (a shift's
    derivative is the unit column; unused slots 0), and from them ``jv`` ``(S, 2, n)`` and ``jm`` ``(2, 3, n)``
    gathered per observation as contiguous rows."""
    n_views, n_s = slot_raw.shape
    per_view = np.zeros((n_views, n_s, 2, 4))
    used = slot_raw >= 0
    rows, slots = np.nonzero(used & (slot_raw != SHIFT_X) & (slot_raw != SHIFT_Y))
    per_view[rows, slots, :, :3] = dmat[rows, slot_raw[rows, slots]]
    per_view[:, :, 0, 3] = slot_raw == SHIFT_X
    per_view[:, :, 1, 3] = slot_raw == SHIFT_Y
    per_view *= np.where(used, slot_w, 0.0)[:, :, None, None]  # unused slots weigh 0
    sw = np.sqrt(weights)
    g = per_view.transpose(1, 2, 3, 0).take(view_index, axis=-1)  # (S, 2, 4, n)
    jv = (g[:, :, 0] * x[0] + g[:, :, 1] * x[1] + g[:, :, 2] * x[2] + g[:, :, 3]) * sw
    jm = amat.transpose(1, 2, 0).take(view_index, axis=-1) * sw
    return per_view, jv, jm


def cost(amat, shifts, xyz, view_index, marker_index, xy, weights) -> float:
    """Half the weighted sum of squared residuals."""
    a, x = amat.transpose(1, 2, 0).take(view_index, axis=-1), xyz.T.take(marker_index, axis=1)
    r = a[:, 0] * x[0] + a[:, 1] * x[1] + a[:, 2] * x[2] + shifts.T.take(view_index, axis=1) - xy.T
    return 0.5 * float(np.dot(weights, r[0] * r[0] + r[1] * r[1]))


def linearise(amat, dmat, shifts, xyz, view_index, xy, weights, slot_raw, slot_w, marker_starts, bounds):
    """Cost, per-view slot blocks ``b (n_views, S, S)`` and ``g (n_views, S)``, and the marker blocks
    ``C (n_m, 3, 3)`` and ``g_m (n_m, 3)`` of the weighted normal equations, as `_kernels.linearise`."""
    st = _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)
    x, jm, per_view = st["x"], st["jm"], st["per_view"]  # jm is A times the weight's root
    sw = np.sqrt(weights)
    r = jm[:, 0] * x[0] + jm[:, 1] * x[1] + jm[:, 2] * x[2] + (shifts.T.take(view_index, axis=1) - xy.T) * sw
    total = 0.5 * float(np.sum(r * r))
    # jv = G_v x4 sqrt(w) with x4 = [x, y, z, 1], so b_v = G_v (sum w x4 x4^T) G_v^T and g_v = G_v (sum sqrt(w) x4 r)
    x4 = np.concatenate([x, np.ones((1, len(view_index)))])
    moments = np.concatenate([x4[_UP4[0]] * x4[_UP4[1]] * weights, (r[:, None] * (x4 * sw)).reshape(8, -1)])
    sums = _per_view(moments, view_index, len(slot_raw))
    n_views, n_s = slot_raw.shape
    gv = per_view.reshape(n_views, n_s, 8)
    gm = (per_view @ sums[:, None, :10][..., _FULL4]).reshape(n_views, n_s, 8)  # G_v M_v
    b = gm @ gv.transpose(0, 2, 1)
    g = (gv @ sums[:, 10:, None])[..., 0]
    per_marker = np.empty((9, len(view_index)))  # the 6 distinct entries of each 3 x 3 block and the gradient
    np.add(jm[0, _UP3[0]] * jm[0, _UP3[1]], jm[1, _UP3[0]] * jm[1, _UP3[1]], out=per_marker[:6])
    np.add(jm[0] * r[0], jm[1] * r[1], out=per_marker[6:])
    m_sums = _per_marker(per_marker, marker_starts)
    return total, b, g, m_sums[:, _FULL3], m_sums[:, 6:]


def _coupling(e, linv, marker_of):
    """``(S, 3, n)``: each observation's ``E_i L_m^-T`` from ``E_i`` ``e`` (``linv`` lower triangular)."""
    lt = linv.transpose(1, 2, 0).take(marker_of, axis=-1)
    return np.stack([e[:, 0] * lt[0, 0],
                     e[:, 0] * lt[1, 0] + e[:, 1] * lt[1, 1],
                     e[:, 0] * lt[2, 0] + e[:, 1] * lt[2, 1] + e[:, 2] * lt[2, 2]], axis=1)


def _dense_index(columns, view_index, marker_of, first_marker, n_m):
    """Where each entry of ``G = E L^-T`` ``(S, 3, n)`` lands in the dense ``(n_q, 3 n_m)`` F of markers
    ``first_marker ...``: the mask of used slots and the flat positions (``columns``: -1 for unused slots)."""
    rows = columns.T.take(view_index, axis=1)  # (S, n)
    flat = rows[:, None, :] * (3 * n_m) + 3 * (marker_of - first_marker) + np.arange(3)[:, None]
    ok = np.broadcast_to((rows >= 0)[:, None, :], flat.shape)
    return ok, flat[ok]


def schur_columns(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, slot_col, marker_starts, linv, n_q):
    """Dense ``F`` ``(n_q, 3 n_m)`` with ``F F^T = E C^-1 E^T`` (``linv = L^-1``, ``C = L L^T``)."""
    st = _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)
    n_m = len(marker_starts) - 1
    if st.get("dense_for") is not slot_col:  # fixed for one linearisation
        st.update(dense_for=slot_col, dense=_dense_index(np.where(slot_raw >= 0, slot_col, -1), view_index,
                                                         st["marker_of"], 0, n_m))
    ok, flat = st["dense"]
    F = np.bincount(flat, weights=_coupling(st["e"], linv, st["marker_of"])[ok], minlength=n_q * 3 * n_m)
    return F.reshape(n_q, 3 * n_m)


def schur_reduced(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, slot_col, marker_starts, linv, n_q,
                  bounds, max_obs):
    """``E C^-1 E^T`` ``(n_q, n_q)``, upper triangle only, as `_kernels.schur_reduced`; formed from the dense
    ``F`` of blocks of markers, so memory stays bounded whatever the count."""
    n_m = len(marker_starts) - 1
    st = _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)
    marker_of, e = st["marker_of"], st["e"]
    columns = np.where(slot_raw >= 0, slot_col, -1)
    per_block = max(1, int(_SCHUR_BLOCK_BYTES // (8 * 3 * max(1, n_q))))
    out = np.zeros((n_q, n_q))
    for first in range(0, n_m, per_block):
        last = min(n_m, first + per_block)
        lo, hi = int(marker_starts[first]), int(marker_starts[last])
        g = _coupling(e[:, :, lo:hi], linv, marker_of[lo:hi])
        ok, flat = _dense_index(columns, view_index[lo:hi], marker_of[lo:hi], first, last - first)
        F = np.bincount(flat, weights=g[ok], minlength=n_q * 3 * (last - first)).reshape(n_q, -1)
        out += F @ F.T
    return np.triu(out)


def view_sums_of_e_times(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts, t, bounds):
    """``(n_views, S)``: for each view and slot, the sum over its observations of ``E_i t_m``."""
    st = _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)
    e, tm = st["e"], t.T.take(st["marker_of"], axis=1)
    return _per_view(e[:, 0] * tm[0] + e[:, 1] * tm[1] + e[:, 2] * tm[2], view_index, len(slot_raw))


def marker_sums_of_et_times(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts, dv):
    """``(n_m, 3)``: for each marker, the sum over its observations of ``E_i^T dv_view`` (``dv`` by slot)."""
    e = _state(amat, dmat, xyz, view_index, weights, slot_raw, slot_w, marker_starts)["e"]
    d = dv.T.take(view_index, axis=1)  # (S, n)
    return _per_marker(np.einsum("sqn,sn->qn", e, d), marker_starts)
