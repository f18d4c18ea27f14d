"""Levenberg–Marquardt over the mapped unknowns of the projection model, with the marker blocks eliminated.

The normal equations have the structure ``[[B, E], [E^T, C]]`` where ``C`` is block-diagonal with
one 3 x 3 block per marker. Each iteration eliminates ``C`` (a Schur complement) and factors only
the system of the view unknowns (`full_layout.UnknownLayout`: every settings, the default model's and IMOD's
full model's), by Woodbury, a dense BLAS update or marker-by-marker accumulation (`reduction`), then
recovers the marker steps block by block. No dense Jacobian is ever formed: every product is
accumulated from per-observation blocks by the kernels `kernels_for` picks: the compiled loops (`_kernels`)
or plain numpy (`_kernels_numpy`), by size (`compute.uses_compiled`). The dense algebra likewise: numpy.linalg
for small systems, scipy's LAPACK/BLAS once large or already loaded (`cholesky_solve`, `syrk_update`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from ..compute import uses_compiled
from ..errors import Cancelled
from .full_layout import BEAM, UnknownLayout
from .model import COMP, MAG, ROT, TILT, project, view_matrices


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
        self.kern = kernels_for(len(self.view_index))  # compiled or plain-numpy loops
        self.chunks = chunk_bounds(self.n_markers)
        self.max_obs_per_marker = int(counts.max(initial=0))
        self.pair_work = float(np.sum(counts.astype(float) ** 2))  # sum over markers of k_m^2

    def __len__(self) -> int:
        return len(self.view_index)

    def residuals(self, params: NDArray[np.float64], xyz: NDArray[np.float64], beam_tilt: float = 0.0
                  ) -> NDArray[np.float64]:
        """``(n_obs, 2)`` predicted minus observed positions, unweighted, for ``(n_views, 9)`` parameters."""
        return project(params, xyz, self.view_index, self.marker_index, beam_tilt) - self.xy


@dataclass
class LMReport:
    """What one Levenberg–Marquardt run did."""

    iterations: int
    cost: float
    converged: bool
    message: str


def chunk_bounds(n_markers: int, chunks: int = 16) -> NDArray[np.int64]:
    """Marker ranges of the compiled loops' parallel chunks (per-view sums are kept per chunk)."""
    return np.linspace(0, n_markers, max(1, min(chunks, n_markers)) + 1).astype(np.int64)


DENSE_F_BYTES = 256 * 2**20  # the dense F (n_q x 3 n_m) is formed only below this size
BLAS_ADVANTAGE = 8.0  # a BLAS rank-k update does this many times the flops per second of the scatter kernel
NUMPY_MAX_DENSE = 400  # dense systems up to this size are factored by numpy.linalg unless scipy.linalg is loaded


def kernels_for(n_obs: int) -> ModuleType:
    """The kernel module to use for a problem with ``n_obs`` observations."""
    if uses_compiled(n_obs):
        from . import _kernels

        return _kernels
    from . import _kernels_numpy

    return _kernels_numpy


def _scipy_for(n: int) -> bool:
    return n > NUMPY_MAX_DENSE or "scipy.linalg" in sys.modules


def cholesky_solve(S: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Solve a symmetric positive-definite system (upper triangle read), or None if not definite."""
    if _scipy_for(len(S)):
        import scipy.linalg

        try:
            cf = scipy.linalg.cho_factor(S, lower=False, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        return scipy.linalg.cho_solve(cf, rhs, check_finite=False)
    upper = np.triu(S)
    full = upper + np.triu(upper, 1).T
    try:
        np.linalg.cholesky(full)  # the definiteness test; the solve below is the same size of work
        return np.asarray(np.linalg.solve(full, rhs), dtype=np.float64)
    except np.linalg.LinAlgError:
        return None


def syrk_update(F: NDArray[np.float64], C: NDArray[np.float64]) -> NDArray[np.float64]:
    """``C - F F^T`` with at least the upper triangle filled (what `cholesky_solve` reads)."""
    if _scipy_for(len(C)):
        import scipy.linalg

        return scipy.linalg.blas.dsyrk(-1.0, F, beta=1.0, c=C, lower=0)
    return C - F @ F.T


def matrices(layout: UnknownLayout, q: NDArray[np.float64], derivatives: bool = True) -> tuple[
        NDArray, NDArray, NDArray]:
    """``A`` ``(n_views, 2, 3)``, ``dA`` ``(n_views, 10, 2, 3)`` (empty without ``derivatives``) and shifts
    ``(n_views, 2)`` at ``q``."""
    params, beam = layout.params(q)
    if layout.default_preset and beam == 0.0 and not np.any(params[:, 5:8]) and np.all(params[:, COMP] == 1.0):
        return _default_matrices(params, derivatives)
    a, d = view_matrices(params, beam, derivatives)
    return np.ascontiguousarray(a), d, np.ascontiguousarray(params[:, 3:5])


def _default_matrices(params: NDArray[np.float64], derivatives: bool) -> tuple[NDArray, NDArray, NDArray]:
    """`matrices` of the default model's preset (only tilt, rotation and magnification mapped; X-stretch,
    skew, X-tilt and beam tilt 0, compression 1): ``A = s R(alpha) [[cos, 0, sin], [0, 1, 0]]`` in closed form."""
    th, al, s = params[:, TILT], params[:, ROT], params[:, MAG]
    ct, st, ca, sa = np.cos(th), np.sin(th), np.cos(al), np.sin(al)
    n = len(params)
    y = np.zeros((n, 2, 3))  # the tilt's first two rows
    y[:, 0, 0], y[:, 0, 2], y[:, 1, 1] = ct, st, 1.0
    r = np.empty((n, 2, 2))
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1] = ca, -sa, sa, ca
    ry = r @ y
    a = s[:, None, None] * ry
    shifts = np.ascontiguousarray(params[:, 3:5])
    if not derivatives:
        return a, np.zeros((0, BEAM + 1, 2, 3)), shifts
    d = np.zeros((n, BEAM + 1, 2, 3))
    dy = np.zeros((n, 2, 3))
    dy[:, 0, 0], dy[:, 0, 2] = -st, ct
    dr = np.empty((n, 2, 2))
    dr[:, 0, 0], dr[:, 0, 1], dr[:, 1, 0], dr[:, 1, 1] = -sa, -ca, ca, -sa
    d[:, TILT] = s[:, None, None] * (r @ dy)
    d[:, ROT] = s[:, None, None] * (dr @ y)
    d[:, MAG] = ry
    return a, d, shifts


def full_cost(obs: Observations, layout: UnknownLayout, q: NDArray[np.float64], xyz: NDArray[np.float64]) -> float:
    """Half the weighted sum of squared residuals."""
    a, _, shifts = matrices(layout, q, derivatives=False)
    return float(obs.kern.cost(a, shifts, xyz, obs.view_index, obs.marker_index, obs.xy, obs.weights))


def reduction(n_q: int, n_markers: int, pair_work: float, n_slots: int, view_blocks: bool) -> str:
    """How `_Linearisation` forms the reduced view system: ``"woodbury"`` (few markers, ``B`` block-diagonal
    by view), ``"dense"`` (form ``F`` and let BLAS do ``B - F F^T``) or ``"sparse"`` (accumulate ``F_m F_m^T``
    marker by marker; memory ``n_q^2``, work ``(S k_m)^2`` per marker seen in ``k_m`` views)."""
    if view_blocks and 3 * n_markers < n_q:
        return "woodbury"
    dense_bytes = 8.0 * n_q * 3 * n_markers
    dense_flops = float(n_q) ** 2 * 3 * n_markers
    if dense_bytes > DENSE_F_BYTES or dense_flops > BLAS_ADVANTAGE * 1.5 * n_slots ** 2 * pair_work:
        return "sparse"
    return "dense"


class _Linearisation:
    """The normal-equation blocks at one point, ready to be solved for any damping.

    ``[[B, E], [E^T, C]]`` with ``C`` block-diagonal per marker: each solve eliminates ``C`` (a Schur
    complement), factors the view system and recovers the marker steps block by block. With the marker
    positions held fixed there is no ``C``: the system is ``B`` alone.
    """

    def __init__(self, obs: Observations, layout: UnknownLayout, q: NDArray[np.float64],
                 xyz: NDArray[np.float64], fix_xyz: bool) -> None:
        self.obs, self.layout, self.fix_xyz, self.xyz = obs, layout, fix_xyz, xyz
        self.a, self.d, shifts = matrices(layout, q)
        self.cost, self.b, g, self.C, self.g_m = obs.kern.linearise(
            self.a, self.d, shifts, xyz, obs.view_index, obs.xy, obs.weights, layout.slot_raw, layout.slot_w,
            obs.marker_bounds, obs.chunks)
        self.g_q = layout.scatter_vector(g)
        self.cols = np.where(layout.slot_raw >= 0, layout.slot_col, -1)
        used = self.cols[self.cols >= 0]
        self.view_blocks = bool(layout.n_q) and bool(np.all(np.bincount(used, minlength=layout.n_q) == 1))
        diag = layout.scatter_vector(np.diagonal(self.b, axis1=1, axis2=2))
        self.diag_q = np.maximum(diag, 1e-12 * max(1.0, float(np.max(diag, initial=0.0))))
        dc = np.diagonal(self.C, axis1=1, axis2=2)
        self.diag_m = np.maximum(dc, 1e-12 * max(1.0, float(np.max(dc, initial=0.0))))

    @cached_property
    def B(self) -> NDArray[np.float64]:
        """The dense ``(n_q, n_q)`` view block (the Woodbury path never forms it)."""
        return self.layout.scatter_square(self.b)

    def _args(self) -> tuple:
        o, lay = self.obs, self.layout
        return self.a, self.d, self.xyz, o.view_index, o.weights, lay.slot_raw, lay.slot_w

    def gradient_norm(self) -> float:
        gm = 0.0 if self.fix_xyz else float(np.max(np.abs(self.g_m), initial=0.0))
        return max(float(np.max(np.abs(self.g_q), initial=0.0)), gm)

    @cached_property
    def _blocks(self) -> tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.bool_], NDArray[np.float64]]:
        """For `_woodbury`: which slots have a column, their columns (0 where none), which slot pairs, and
        ``B``'s per-view blocks on those pairs."""
        ok = self.cols >= 0
        pair = ok[:, :, None] & ok[:, None, :]
        return ok, np.where(ok, self.cols, 0), pair, np.where(pair, self.b, 0.0)

    def _woodbury(self, lam: float, F: NDArray[np.float64], rhs: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Solve ``(B + lam D - F F^T) x = rhs`` when ``B`` is block-diagonal by view: with few markers ``F``
        has fewer columns than ``B`` rows, so the system to factor is the small ``I - F^T B^-1 F``."""
        cols = self.cols
        ok, safe, pair, b = self._blocks
        blocks = b.copy()
        idx = np.arange(cols.shape[1])
        blocks[:, idx, idx] += np.where(ok, lam * self.diag_q[safe], 1.0)
        try:
            binv = np.linalg.inv(blocks) * pair  # 0 on unused slots, so their gathered rows count for nothing
        except np.linalg.LinAlgError:
            return None
        x = np.column_stack([F, rhs])
        yb = binv @ x[safe]  # B^-1 [F | rhs] view block by view block
        y = np.zeros_like(x)
        y[cols[ok]] = yb[ok]
        ft_y = F.T @ y
        k = F.shape[1]
        w = cholesky_solve(np.eye(k) - ft_y[:, :k], ft_y[:, k])
        return None if w is None else y[:, k] + y[:, :k] @ w

    def _reduced(self, lam: float, linv: NDArray[np.float64]) -> NDArray[np.float64]:
        """``B + lam D - E C^-1 E^T`` (upper triangle at least), densely or marker by marker."""
        obs, lay, n_q = self.obs, self.layout, self.layout.n_q
        damped = self.B + np.diag(lam * self.diag_q)
        if reduction(n_q, obs.n_markers, obs.pair_work, lay.slot_raw.shape[1], False) == "sparse":
            parts = max(1, min(len(obs.chunks) - 1, int(64 * 2**20 // (8 * n_q * n_q))))
            bounds = np.linspace(0, obs.n_markers, parts + 1).astype(np.int64)
            return damped - obs.kern.schur_reduced(*self._args(), lay.slot_col, obs.marker_bounds, linv, n_q, bounds,
                                                   max(1, obs.max_obs_per_marker))
        F = obs.kern.schur_columns(*self._args(), lay.slot_col, obs.marker_bounds, linv, n_q)
        return syrk_update(F, damped)

    def _reduced_solve(self, lam: float, linv: NDArray[np.float64], rhs: NDArray[np.float64]
                       ) -> NDArray[np.float64] | None:
        """Solve ``(B + lam D - E C^-1 E^T) dq = rhs``, the view system with the markers eliminated."""
        obs, lay, n_q = self.obs, self.layout, self.layout.n_q
        if reduction(n_q, obs.n_markers, obs.pair_work, lay.slot_raw.shape[1], self.view_blocks) == "woodbury":
            F = obs.kern.schur_columns(*self._args(), lay.slot_col, obs.marker_bounds, linv, n_q)
            return self._woodbury(lam, F, rhs)
        return cholesky_solve(self._reduced(lam, linv), rhs)

    def solve(self, lam: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None:
        """The damped step ``(dq, dxyz, predicted_reduction)``, or None if not definite."""
        obs, lay = self.obs, self.layout
        if self.fix_xyz:
            dq = cholesky_solve(self.B + np.diag(lam * self.diag_q), -self.g_q) if lay.n_q else np.zeros(0)
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
        et = obs.kern.view_sums_of_e_times(*self._args(), obs.marker_bounds, t, obs.chunks)
        rhs = -self.g_q + lay.scatter_vector(et)
        dq = self._reduced_solve(lam, linv, rhs) if lay.n_q else np.zeros(0)
        if dq is None or not np.all(np.isfinite(dq)):
            return None
        sum_etd = obs.kern.marker_sums_of_et_times(*self._args(), obs.marker_bounds, lay.per_slot(dq))
        dm = np.einsum("mij,mj->mi", cinv, -self.g_m - sum_etd)
        g_dot = float(self.g_q @ dq + np.sum(self.g_m * dm))
        d_dot = float(np.sum(self.diag_q * dq * dq) + np.sum(self.diag_m * dm * dm))
        return dq, dm, 0.5 * (lam * d_dot - g_dot)


def levenberg_marquardt(
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
    """Minimise the weighted squared residuals over the unknowns ``q`` of ``layout`` and (unless fixed) the
    markers. Returns the solved ``q`` ``(n_q,)``, ``xyz`` ``(n_markers, 3)`` and a report.

    The iteration: damped steps from the normal equations at the current point (`_Linearisation`), accepted
    when the cost falls (the damping then eased by the gain ratio, Nielsen's rule), else damped harder;
    it stops on a small relative decrease, step (against the size of the unknowns) or gradient."""
    base = float(np.sum(layout.base ** 2))
    lin = _Linearisation(obs, layout, q, xyz, fix_xyz)
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
        new_q, new_xyz = q + dq, xyz + dm
        new_cost = full_cost(obs, layout, new_q, new_xyz)
        step_size = float(np.sqrt(np.sum(dq * dq) + np.sum(dm * dm)))
        size = float(np.sqrt(np.sum(xyz * xyz) + np.sum(q * q) + base))
        if np.isfinite(new_cost) and new_cost < lin.cost:
            rho = (lin.cost - new_cost) / predicted if predicted > 0 else 0.0
            reduction = lin.cost - new_cost
            q, xyz = new_q, new_xyz
            iterations += 1
            if progress is not None:
                progress(iterations, new_cost)
            if reduction <= ftol * new_cost or step_size <= xtol * (size + xtol):
                converged, message = True, "cost stopped decreasing"
                lin.cost = new_cost
                break
            lin = _Linearisation(obs, layout, q, xyz, fix_xyz)
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
    return q, xyz, LMReport(iterations, lin.cost, converged, message)
