"""Levenberg–Marquardt over the full model's mapped unknowns, with the marker blocks eliminated.

The same scheme as `_lm` (normal equations ``[[B, E], [E^T, C]]``, ``C`` block-diagonal per marker,
eliminated by a Schur complement), with the view unknowns of `full_layout` and the loops of
`_kernels_full`. With the marker positions held fixed there is no ``C``: the system is ``B`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _backend, _kernels_full
from ._lm import LMReport, Observations, damped_least_squares
from .full_layout import BEAM, UnknownLayout
from .full_model import MATRIX_PARAMS, view_matrices

DENSE_F_BYTES = 256 * 2**20
BLAS_ADVANTAGE = 8.0
kern: Any = _kernels_full  # numba dispatchers: their call signatures are not typed


def matrices(layout: UnknownLayout, q: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray]:
    """``A`` ``(n_views, 2, 3)``, ``dA`` ``(n_views, 10, 2, 3)`` and shifts ``(n_views, 2)`` at ``q``."""
    params, beam = layout.params(q)
    a, deriv = view_matrices(params, beam)
    d = np.zeros((len(params), BEAM + 1, 2, 3))
    for p in MATRIX_PARAMS:
        d[:, p] = deriv[p]
    d[:, BEAM] = deriv["beam_tilt"]
    return np.ascontiguousarray(a), d, np.ascontiguousarray(params[:, 3:5])


def full_cost(obs: Observations, layout: UnknownLayout, q: NDArray[np.float64], xyz: NDArray[np.float64]) -> float:
    """Half the weighted sum of squared residuals."""
    a, _, shifts = matrices(layout, q)
    return float(kern.cost(a, shifts, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights))


class _Linearisation:
    """The normal-equation blocks at one point, ready to be solved for any damping."""

    def __init__(self, obs: Observations, layout: UnknownLayout, q: NDArray[np.float64],
                 xyz: NDArray[np.float64], fix_xyz: bool) -> None:
        self.obs, self.layout, self.fix_xyz, self.xyz = obs, layout, fix_xyz, xyz
        self.a, self.d, shifts = matrices(layout, q)
        self.cost, b, g, self.C, self.g_m = kern.linearise(
            self.a, self.d, shifts, xyz, obs.view_index, obs.xy, obs.weights, layout.slot_raw, layout.slot_w,
            obs.marker_bounds, obs.chunks)
        self.g_q = layout.scatter_vector(g)
        self.B = layout.scatter_square(b)
        top = max(1.0, float(np.max(np.diag(self.B), initial=0.0)))
        self.diag_q = np.maximum(np.diag(self.B).copy(), 1e-12 * top)
        dc = np.diagonal(self.C, axis1=1, axis2=2)
        self.diag_m = np.maximum(dc, 1e-12 * max(1.0, float(np.max(dc, initial=0.0))))

    def _args(self) -> tuple:
        o, lay = self.obs, self.layout
        return self.a, self.d, self.xyz, o.view_index, o.weights, lay.slot_raw, lay.slot_w

    def gradient_norm(self) -> float:
        gm = 0.0 if self.fix_xyz else float(np.max(np.abs(self.g_m), initial=0.0))
        return max(float(np.max(np.abs(self.g_q), initial=0.0)), gm)

    def _reduced(self, lam: float, linv: NDArray[np.float64]) -> NDArray[np.float64]:
        """``B + lam D - E C^-1 E^T`` (upper triangle at least)."""
        obs, lay, n_q = self.obs, self.layout, self.layout.n_q
        damped = self.B + np.diag(lam * self.diag_q)
        n_s = lay.slot_raw.shape[1]
        dense_bytes = 8.0 * n_q * 3 * obs.n_markers
        dense_flops = float(n_q) ** 2 * 3 * obs.n_markers
        if dense_bytes > DENSE_F_BYTES or dense_flops > BLAS_ADVANTAGE * 1.5 * n_s ** 2 * obs.pair_work:
            parts = max(1, min(len(obs.chunks) - 1, int(64 * 2**20 // (8 * n_q * n_q))))
            bounds = np.linspace(0, obs.n_markers, parts + 1).astype(np.int64)
            ecet = kern.schur_reduced(*self._args(), lay.slot_col, obs.marker_bounds, linv, n_q, bounds,
                                      max(1, obs.max_obs_per_marker))
            return damped - ecet
        F = kern.schur_columns(*self._args(), lay.slot_col, obs.marker_bounds, linv, n_q)
        return _backend.syrk_update(F, damped)

    def solve(self, lam: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None:
        """The damped step ``(dq, dxyz, predicted_reduction)``, or None if not definite."""
        obs, lay = self.obs, self.layout
        if self.fix_xyz:
            dq = _backend.cholesky_solve(self.B + np.diag(lam * self.diag_q), -self.g_q) if lay.n_q else np.zeros(0)
            if dq is None or not np.all(np.isfinite(dq)):
                return None
            g_dot = float(self.g_q @ dq)
            return dq, np.zeros_like(self.xyz), 0.5 * (lam * float(np.sum(self.diag_q * dq * dq)) - g_dot)
        cd = self.C.copy()
        idx = np.arange(3)
        cd[:, idx, idx] += lam * self.diag_m
        try:
            linv = np.linalg.inv(np.linalg.cholesky(cd))
        except np.linalg.LinAlgError:
            return None
        cinv = np.einsum("mki,mkj->mij", linv, linv)
        t = np.einsum("mij,mj->mi", cinv, self.g_m)
        et = kern.view_sums_of_e_times(*self._args(), obs.marker_bounds, t, obs.chunks)
        rhs = -self.g_q + lay.scatter_vector(et)
        dq = _backend.cholesky_solve(self._reduced(lam, linv), rhs) if lay.n_q else np.zeros(0)
        if dq is None or not np.all(np.isfinite(dq)):
            return None
        sum_etd = kern.marker_sums_of_et_times(*self._args(), obs.marker_bounds, lay.per_slot(dq))
        dm = np.einsum("mij,mj->mi", cinv, -self.g_m - sum_etd)
        g_dot = float(self.g_q @ dq + np.sum(self.g_m * dm))
        d_dot = float(np.sum(self.diag_q * dq * dq) + np.sum(self.diag_m * dm * dm))
        return dq, dm, 0.5 * (lam * d_dot - g_dot)


def levenberg_marquardt_full(
    obs: Observations,
    layout: UnknownLayout,
    q: NDArray[np.float64],
    xyz: NDArray[np.float64],
    *,
    fix_xyz: bool = False,
    max_iterations: int = 1000,
    ftol: float = 1e-14,
    xtol: float = 1e-12,
    gtol: float = 1e-12,
    initial_damping: float = 1e-4,
    progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], LMReport]:
    """Minimise the weighted squared residuals over the unknowns ``q`` and (unless fixed) the markers.

    Returns the solved ``q`` ``(n_q,)``, ``xyz`` ``(n_markers, 3)`` and a report.
    """
    base = float(np.sum(layout.base ** 2))
    return damped_least_squares(
        (q, xyz), lambda st: _Linearisation(obs, layout, st[0], st[1], fix_xyz),
        lambda st, dq, dm: (st[0] + dq, st[1] + dm), lambda st: full_cost(obs, layout, st[0], st[1]),
        lambda st: float(np.sum(st[1] * st[1]) + np.sum(st[0] * st[0])) + base,
        max_iterations=max_iterations, ftol=ftol, xtol=xtol, gtol=gtol, initial_damping=initial_damping,
        progress=progress, should_stop=should_stop)
