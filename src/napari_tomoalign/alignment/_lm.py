"""Levenberg–Marquardt over the projection model, with the marker blocks eliminated.

The normal equations have the structure ``[[B, E], [E^T, C]]`` where ``C`` is block-diagonal with
one 3 x 3 block per marker. Each iteration eliminates ``C`` (a Schur complement) and factors only
the small dense system of the view unknowns, then recovers the marker steps block by block. No
dense Jacobian is ever formed: every product is accumulated from per-observation blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, cast

import numpy as np
from numpy.typing import NDArray

from ..errors import Cancelled
from . import _backend
from .model import project


@dataclass
class Observations:
    """Marker observations prepared for the solver, sorted by marker.

    Attributes
    ----------
    view_index, marker_index
        ``(n_obs,)`` solver-internal view and marker numbers of each observation.
    xy
        ``(n_obs, 2)`` observed positions relative to the image centre, in pixels.
    weights
        ``(n_obs,)`` least-squares weight of each observation.
    """

    view_index: NDArray[np.intp]
    marker_index: NDArray[np.intp]
    xy: NDArray[np.float64]
    n_views: int
    n_markers: int
    weights: NDArray[np.float64]

    def __post_init__(self) -> None:
        order = np.lexsort((self.view_index, self.marker_index))
        self.order = order  # sorted position -> position in the arrays given
        self.view_index = np.asarray(self.view_index, dtype=np.intp)[order]
        self.marker_index = np.asarray(self.marker_index, dtype=np.intp)[order]
        self.xy = np.asarray(self.xy, dtype=float)[order]
        self.weights = np.asarray(self.weights, dtype=float)[order]
        counts = np.bincount(self.marker_index, minlength=self.n_markers)
        if np.any(counts == 0):
            raise ValueError("every marker passed to the solver needs at least one observation")
        self.marker_bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.kern = _backend.kernels_for(len(self.view_index))  # compiled or plain-numpy loops
        self.chunks = self.kern.chunk_bounds(self.n_markers)
        self.max_obs_per_marker = int(counts.max(initial=0))
        self.pair_work = float(np.sum(counts.astype(float) ** 2))  # sum over markers of k_m^2

    def __len__(self) -> int:
        return len(self.view_index)

    def residuals(self, view_params: NDArray[np.float64], xyz: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(n_obs, 2)`` predicted minus observed positions, unweighted."""
        return project(view_params, xyz, self.view_index, self.marker_index) - self.xy

    def cost(self, view_params: NDArray[np.float64], xyz: NDArray[np.float64]) -> float:
        """Half the weighted sum of squared residuals."""
        return float(self.kern.cost(view_params, xyz, self.view_index, self.marker_index, self.xy, self.weights))


@dataclass
class LMReport:
    """What one Levenberg–Marquardt run did."""

    iterations: int
    cost: float
    converged: bool
    message: str
    wall_time_s: float


def _scatter_square(values: NDArray[np.float64], cols: NDArray[np.intp], n_q: int) -> NDArray[np.float64]:
    """Add ``(n_views, 5, 5)`` per-view blocks into an ``(n_q, n_q)`` matrix at ``cols``."""
    rows = np.broadcast_to(cols[:, :, None], values.shape)
    colz = np.broadcast_to(cols[:, None, :], values.shape)
    ok = (rows >= 0) & (colz >= 0)
    flat = rows[ok] * n_q + colz[ok]
    # with weights, bincount returns float64 (numpy's stub says an integer array)
    return cast("NDArray[np.float64]", np.bincount(flat, weights=values[ok], minlength=n_q * n_q)).reshape(n_q, n_q)


def _scatter_vector(values: NDArray[np.float64], cols: NDArray[np.intp], n_q: int) -> NDArray[np.float64]:
    """Add ``(n_views, 5)`` per-view values into an ``(n_q,)`` vector at ``cols``."""
    ok = cols >= 0
    return cast("NDArray[np.float64]", np.bincount(cols[ok], weights=values[ok], minlength=n_q))  # float64: weights


DENSE_F_BYTES = 256 * 2**20  # the dense F (n_q x 3 n_m) is formed only below this size
BLAS_ADVANTAGE = 8.0  # a BLAS rank-k update does this many times the flops per second of the scatter kernel


def _reduced_by_marker(n_q: int, n_markers: int, pair_work: float, view_blocks: bool) -> str:
    """How `_Linearisation.solve` forms the reduced view system: ``"woodbury"`` (few markers,
    block-diagonal ``B``), ``"dense"`` (form ``F`` and let BLAS do ``B - F F^T``) or ``"sparse"``
    (accumulate ``F_m F_m^T`` marker by marker; memory ``n_q^2``, work ``(5 k_m)^2`` per marker)."""
    if view_blocks and 3 * n_markers < n_q:
        return "woodbury"
    dense_bytes = 8.0 * n_q * 3 * n_markers
    dense_flops = float(n_q) ** 2 * 3 * n_markers
    sparse_flops = 37.5 * pair_work  # (5 k)^2 / 2 pairs of rows, 3 multiply-adds each
    if dense_bytes > DENSE_F_BYTES or dense_flops > BLAS_ADVANTAGE * sparse_flops:
        return "sparse"
    return "dense"


def _cholesky_solve(S: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Solve a symmetric positive-definite system, or None if it is not positive definite."""
    return _backend.cholesky_solve(S, rhs)


class _Linearisation:
    """The normal-equation blocks at one point, ready to be solved for any damping."""

    def __init__(
        self,
        obs: Observations,
        view_params: NDArray[np.float64],
        xyz: NDArray[np.float64],
        columns: NDArray[np.intp],
        n_q: int,
    ) -> None:
        self.obs, self.columns, self.n_q = obs, columns, n_q
        used = columns[columns >= 0]
        self.view_blocks = bool(n_q) and np.all(np.bincount(used, minlength=n_q) == 1)
        free = columns >= 0
        self.cost, b_view, g_view, self.C, self.g_m, self.E = obs.kern.linearise(
            view_params, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights, free, obs.marker_bounds,
            obs.n_markers, obs.chunks, obs.n_views,
        )
        self.g_q = _scatter_vector(g_view, columns, n_q)
        self.b_view = b_view
        # a view's parameters never share a column with each other, so B's diagonal is the blocks' diagonals
        diag = _scatter_vector(np.diagonal(b_view, axis1=1, axis2=2), columns, n_q)
        self.diag_q = np.maximum(diag, 1e-12 * max(1.0, float(np.max(diag, initial=0))))
        dc = np.diagonal(self.C, axis1=1, axis2=2)
        self.diag_m = np.maximum(dc, 1e-12 * max(1.0, float(np.max(dc, initial=0))))

    @cached_property
    def B(self) -> NDArray[np.float64]:
        """The dense ``(n_q, n_q)`` view block of the normal equations (the Woodbury path never forms it)."""
        return _scatter_square(self.b_view, self.columns, self.n_q)

    def _solve_low_rank(
        self, lam: float, Fq: NDArray[np.float64], rhs: NDArray[np.float64]
    ) -> NDArray[np.float64] | None:
        """Solve ``(B - F F^T) x = rhs`` by Woodbury when ``B`` is block-diagonal by view.

        With few markers, ``F`` has fewer columns than ``B`` has rows, so the system to factor
        is the small ``I - F^T B^-1 F`` instead of the view system itself.
        """
        cols = self.columns
        ok = cols >= 0
        safe = np.where(ok, cols, 0)
        blocks = np.where(ok[:, :, None] & ok[:, None, :], self.b_view, 0.0)  # B's blocks: one column each
        idx = np.arange(5)
        blocks[:, idx, idx] += np.where(ok, lam * self.diag_q[safe], 1.0)
        try:
            binv = np.linalg.inv(blocks)
        except np.linalg.LinAlgError:
            return None
        binv *= (ok[:, :, None] & ok[:, None, :])

        def apply_binv(x: NDArray[np.float64]) -> NDArray[np.float64]:
            xb = np.where(ok[..., None], x[safe], 0.0) if x.ndim == 2 else np.where(ok, x[safe], 0.0)
            yb = binv @ xb if x.ndim == 2 else np.einsum("vij,vj->vi", binv, xb)
            y = np.zeros_like(x)
            y[cols[ok]] = yb[ok]
            return y

        bf = apply_binv(Fq)
        br = apply_binv(rhs)
        k = np.eye(Fq.shape[1]) - Fq.T @ bf
        w = _cholesky_solve(k, Fq.T @ br)
        if w is None:
            return None
        return br + bf @ w

    def _reduced_solve(
        self, lam: float, Linv: NDArray[np.float64], rhs: NDArray[np.float64]
    ) -> NDArray[np.float64] | None:
        """Solve ``(B + lam D - E C^-1 E^T) dq = rhs``, the view system with the markers eliminated."""
        obs, n_q = self.obs, self.n_q
        how = _reduced_by_marker(n_q, obs.n_markers, obs.pair_work, bool(self.view_blocks))
        if how == "sparse":
            parts = max(1, min(len(obs.chunks) - 1, int(64 * 2**20 // (8 * n_q * n_q))))
            ecet = obs.kern.schur_reduced(self.E, Linv, obs.view_index, obs.marker_bounds, self.columns, n_q,
                                          obs.kern.chunk_bounds(obs.n_markers, parts), max(1, obs.max_obs_per_marker))
            # Only the upper triangle is filled, and only the upper triangle is read by the factorisation.
            return _cholesky_solve(self.B + np.diag(lam * self.diag_q) - ecet, rhs)
        Fq = obs.kern.schur_columns(self.E, Linv, obs.view_index, obs.marker_bounds, self.columns, n_q)
        if how == "woodbury":
            return self._solve_low_rank(lam, Fq, rhs)
        # S = B + lam D - F F^T; the rank-k update fills the upper triangle, which is all
        # the Cholesky factorisation reads.
        S = _backend.syrk_update(Fq, self.B + np.diag(lam * self.diag_q))
        return _cholesky_solve(S, rhs)

    def gradient_norm(self) -> float:
        return float(max(np.max(np.abs(self.g_q), initial=0.0), np.max(np.abs(self.g_m), initial=0.0)))

    def solve(self, lam: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None:
        """The damped step ``(delta_q, delta_xyz, predicted_reduction)``, or None if not definite."""
        obs, n_q = self.obs, self.n_q
        Cd = self.C.copy()
        idx = np.arange(3)
        Cd[:, idx, idx] += lam * self.diag_m
        try:
            L = np.linalg.cholesky(Cd)
        except np.linalg.LinAlgError:
            return None
        Linv = np.linalg.inv(L)  # lower triangular, (n_m, 3, 3)
        Cinv = np.einsum("mki,mkj->mij", Linv, Linv)
        t = np.einsum("mij,mj->mi", Cinv, self.g_m)  # C^-1 g_m
        et = obs.kern.view_sums_of_e_times(self.E, t, obs.view_index, obs.marker_bounds, obs.chunks, obs.n_views)
        rhs = -self.g_q + _scatter_vector(et, self.columns, n_q)
        dq = self._reduced_solve(lam, Linv, rhs) if n_q else np.zeros(0)
        if dq is None or not np.all(np.isfinite(dq)):
            return None
        dv = np.where(self.columns >= 0, dq[np.maximum(self.columns, 0)] if n_q else 0.0, 0.0)
        sum_etd = obs.kern.marker_sums_of_et_times(self.E, dv, obs.view_index, obs.marker_bounds)
        dm = np.einsum("mij,mj->mi", Cinv, -self.g_m - sum_etd)
        g_dot = float(self.g_q @ dq + np.sum(self.g_m * dm))
        d_dot = float(np.sum(self.diag_q * dq * dq) + np.sum(self.diag_m * dm * dm))
        predicted = 0.5 * (lam * d_dot - g_dot)
        return dq, dm, predicted


def apply_step(
    view_params: NDArray[np.float64],
    xyz: NDArray[np.float64],
    columns: NDArray[np.intp],
    dq: NDArray[np.float64],
    dm: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """New parameter arrays after a step (the inputs are left alone)."""
    vp = view_params.copy()
    if len(dq):
        ok = columns >= 0
        vp[ok] += dq[columns[ok]]
    return vp, xyz + dm


def levenberg_marquardt(
    obs: Observations,
    view_params: NDArray[np.float64],
    xyz: NDArray[np.float64],
    columns: NDArray[np.intp],
    n_q: int,
    *,
    max_iterations: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
    gtol: float = 1e-12,
    initial_damping: float = 1e-4,
    progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], LMReport]:
    """Minimise the weighted squared residuals over the free view columns and all markers.

    Parameters
    ----------
    obs
        The observations.
    view_params
        ``(n_views, 5)`` starting per-view parameters.
    xyz
        ``(n_markers, 3)`` starting marker positions.
    columns
        ``(n_views, 5)`` unknown-vector column of each view parameter, -1 where fixed.
    n_q
        Number of view unknowns.

    Returns
    -------
    The solved ``view_params``, ``xyz`` and a report.
    """
    def step(state: State, dq: NDArray[np.float64], dm: NDArray[np.float64]) -> State:
        return apply_step(state[0], state[1], columns, dq, dm)

    return damped_least_squares(
        (view_params, xyz), lambda st: _Linearisation(obs, st[0], st[1], columns, n_q), step,
        lambda st: obs.cost(st[0], st[1]), lambda st: float(np.sum(st[1] * st[1]) + np.sum(st[0] * st[0])),
        max_iterations=max_iterations, ftol=ftol, xtol=xtol, gtol=gtol, initial_damping=initial_damping,
        progress=progress, should_stop=should_stop)


State = tuple[NDArray[np.float64], NDArray[np.float64]]  # (view parameters or unknowns, marker positions)


class Linearised(Protocol):
    """The normal equations at one point (`_Linearisation` here, its full-model twin in `_lm_full`)."""

    cost: float

    def gradient_norm(self) -> float: ...

    def solve(self, lam: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None: ...


def damped_least_squares(
    state: State,
    linearise: Callable[[State], Linearised],
    step: Callable[[State, NDArray[np.float64], NDArray[np.float64]], State],
    cost: Callable[[State], float],
    squared_size: Callable[[State], float],
    *,
    max_iterations: int,
    ftol: float,
    xtol: float,
    gtol: float,
    initial_damping: float,
    progress: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], LMReport]:
    """The Levenberg–Marquardt iteration both models share: damped steps from ``linearise(state)``,
    accepted when ``cost`` falls (damping then eased by the gain ratio, Nielsen's rule), else damped
    harder; stops on a small relative decrease, step (against ``sqrt(squared_size)``) or gradient."""
    t0 = time.perf_counter()
    lin = linearise(state)
    lam, nu = initial_damping, 2.0
    iterations, converged, message = 0, False, "maximum iterations reached"
    if lin.gradient_norm() <= gtol * max(1.0, lin.cost):
        converged, message = True, "gradient is zero at the start"
    while not converged and iterations < max_iterations:
        if should_stop is not None and should_stop():
            raise Cancelled("alignment cancelled")
        found = lin.solve(lam)
        if found is None:
            lam, nu = lam * nu, nu * 2
            if lam > 1e16:
                message = "the normal equations stayed singular under damping"
                break
            continue
        dq, dm, predicted = found
        new_state = step(state, dq, dm)
        new_cost = cost(new_state)
        step_size = float(np.sqrt(np.sum(dq * dq) + np.sum(dm * dm)))
        size = float(np.sqrt(squared_size(state)))
        if np.isfinite(new_cost) and new_cost < lin.cost:
            rho = (lin.cost - new_cost) / predicted if predicted > 0 else 0.0
            reduction = lin.cost - new_cost
            state = new_state
            iterations += 1
            if progress is not None:
                progress(iterations, new_cost)
            if reduction <= ftol * new_cost or step_size <= xtol * (size + xtol):
                converged, message = True, "cost stopped decreasing"
                lin.cost = new_cost
                break
            lin = linearise(state)
            if lin.gradient_norm() <= gtol * max(1.0, lin.cost):
                converged, message = True, "gradient vanished"
                break
            lam = max(lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 1e-15)
            nu = 2.0
        else:
            if predicted <= ftol * lin.cost or step_size <= xtol * (size + xtol):
                converged, message = True, "no further decrease possible"
                break
            lam, nu = lam * nu, nu * 2
    return state[0], state[1], LMReport(iterations, lin.cost, converged, message, time.perf_counter() - t0)
