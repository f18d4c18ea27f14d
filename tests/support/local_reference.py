"""A small dense fit of IMOD's full model with mapped variables: the test suite's reference of a local patch fit.

`alignment.local` solves its patches with the solver (markers eliminated by Schur); this module fits the
same problem in a few lines of numpy and scipy, so that a test can check the two against each other (they
agree to 1e-12 px on IMOD's tutorial patches). It is a test helper, not part of the package.

The unknowns are the mapped increments of each variable kind (`grouping.Mapping`, added to the start
parameters) and, when asked, the marker positions. The per-view shifts are not unknowns: as in IMOD's
``funct.f90`` each view's shift is the least-squares optimum ``d_j = mean(o_ij) - A_j mean(X_i)`` over
that view's points, so the residual of observation ``(i, j)`` is

    r_ij = A_j (X_i - Xbar_j) - (o_ij - obar_j)

with ``Xbar_j``, ``obar_j`` the means over the markers seen in view ``j``. The residual does not
change when every marker moves by the same amount, so with free markers the last marker is minus the
sum of the others (IMOD's centroid gauge). A patch has tens of markers and at most a few hundred
unknowns, so the Jacobian is formed densely and solved by MINPACK's Levenberg-Marquardt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from napari_tomoalign.alignment.grouping import Mapping
from napari_tomoalign.alignment.model import COMP, DMAG, MAG, ROT, SKEW, TILT, XTILT, view_matrices
from napari_tomoalign.alignment.transforms import with_optimal_shifts
from napari_tomoalign.errors import AlignmentError

COLUMN = {"rotation": ROT, "tilt": TILT, "magnification": MAG, "x_stretch": DMAG, "skew": SKEW,
          "x_tilt": XTILT, "compression": COMP}


@dataclass(frozen=True)
class MappedFit:
    """The result of `fit_mapped`.

    Attributes
    ----------
    view_params
        ``(n_views, 9)`` full-model parameters (``model.FULL_VIEW_PARAMS`` order, radians), with
        each view's optimal shift in columns ``DX, DY``; views without a point keep their start values.
    xyz_px
        ``(n_markers, 3)`` marker positions (the start positions when they were held).
    residuals_px
        ``(n_obs, 2)`` predicted minus observed positions.
    n_unknowns
        Geometric unknowns plus free marker coordinates.
    """

    view_params: NDArray[np.float64]
    xyz_px: NDArray[np.float64]
    residuals_px: NDArray[np.float64]
    n_unknowns: int
    n_evaluations: int

    @property
    def rms_residual_px(self) -> float:
        return float(np.sqrt(np.mean(np.sum(self.residuals_px**2, axis=1))))

    @property
    def mean_residual_px(self) -> float:
        return float(np.mean(np.hypot(*self.residuals_px.T)))


def _weight_matrix(m: Mapping) -> NDArray[np.float64]:
    """``(n_views, n_vars)``: how much each unknown of a mapping moves each view's value."""
    w = np.zeros((m.n_views, m.n_vars))
    views = np.arange(m.n_views)
    for var, wt in ((m.var_a, m.w_a), (m.var_b, m.w_b)):
        ok = var >= 0
        np.add.at(w, (views[ok], var[ok]), wt[ok])
    return w


class _Problem:
    """Residuals and Jacobian of one mapped fit (module docstring)."""

    def __init__(self, view_idx, marker_idx, obs_xy, params0, xyz0, mappings, free_xyz, beam_tilt):
        self.v, self.m = view_idx, marker_idx
        self.n_views, self.n_markers = len(params0), len(xyz0)
        self.params0, self.xyz0, self.beam_tilt = params0, xyz0, beam_tilt
        self.kinds = [(COLUMN[k], _weight_matrix(mp)) for k, mp in mappings.items() if mp.n_vars]
        self.n_geo = sum(w.shape[1] for _, w in self.kinds)
        self.free_xyz = free_xyz
        count = np.bincount(view_idx, minlength=self.n_views).astype(float)
        self.count = count
        presence = np.zeros((self.n_views, self.n_markers))
        presence[view_idx, marker_idx] = 1.0
        self.share = presence / np.maximum(count, 1.0)[:, None]  # (views, markers): 1/n_j where seen
        self.obs_c = obs_xy - self._view_mean(obs_xy)

    def _view_mean(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        sums = np.stack([np.bincount(self.v, values[:, k], minlength=self.n_views) for k in range(values.shape[1])], 1)
        return (sums / np.maximum(self.count, 1.0)[:, None])[self.v]

    def unpack(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        params = self.params0.copy()
        k = 0
        for col, w in self.kinds:
            params[:, col] += w @ x[k : k + w.shape[1]]
            k += w.shape[1]
        if not self.free_xyz:
            return params, self.xyz0
        y = x[k:].reshape(-1, 3)
        return params, np.vstack([y, -y.sum(axis=0, keepdims=True)])

    def x0(self) -> NDArray[np.float64]:
        x = np.zeros(self.n_geo)
        if self.free_xyz:
            xyz = self.xyz0 - self.xyz0.mean(axis=0)
            x = np.concatenate([x, xyz[:-1].ravel()])
        return x

    def residuals(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        params, xyz = self.unpack(x)
        a, _ = view_matrices(params, self.beam_tilt)
        xc = xyz[self.m] - self._view_mean(xyz[self.m])
        return (np.einsum("nij,nj->ni", a[self.v], xc) - self.obs_c).ravel()

    def jacobian(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        params, xyz = self.unpack(x)
        a, deriv = view_matrices(params, self.beam_tilt)
        xc = xyz[self.m] - self._view_mean(xyz[self.m])
        n_obs = len(self.v)
        blocks = []
        for col, w in self.kinds:
            g = np.einsum("nij,nj->ni", deriv[self.v, col], xc)  # (n_obs, 2)
            blocks.append((g[:, :, None] * w[self.v][:, None, :]).reshape(2 * n_obs, -1))
        if self.free_xyz:
            jx = np.zeros((n_obs, 2, self.n_markers, 3))
            jx[np.arange(n_obs), :, self.m, :] += a[self.v]
            jx -= a[self.v][:, :, None, :] * self.share[self.v][:, None, :, None]
            jx = jx[:, :, :-1, :] - jx[:, :, -1:, :]  # the last marker is minus the sum of the others
            blocks.append(jx.reshape(2 * n_obs, -1))
        return np.hstack(blocks) if blocks else np.zeros((2 * n_obs, 0))


def fit_mapped(
    view_index: NDArray[np.intp],
    marker_index: NDArray[np.intp],
    obs_xy_px: NDArray[np.float64],
    start_params: NDArray[np.float64],
    start_xyz_px: NDArray[np.float64],
    mappings: dict[str, Mapping],
    *,
    free_xyz: bool,
    max_evaluations: int = 2000,
) -> MappedFit:
    """Fit the mapped increments (and optionally the markers) to centred observations.

    Parameters
    ----------
    view_index, marker_index
        ``(n_obs,)`` 0-based view and marker of each observation.
    obs_xy_px
        ``(n_obs, 2)`` observed positions relative to the image centre.
    start_params
        ``(n_views, 9)`` start values (`model.FULL_VIEW_PARAMS`); the shifts are ignored.
    start_xyz_px
        ``(n_markers, 3)`` start (or held) marker positions.
    mappings
        Variable kind (`COLUMN` keys) to its mapping over the ``n_views`` views.
    free_xyz
        Solve the marker positions too (centroid gauge) rather than hold them.
    """
    v = np.asarray(view_index, dtype=np.intp)
    m = np.asarray(marker_index, dtype=np.intp)
    p0 = np.asarray(start_params, dtype=float).copy()
    xyz0 = np.asarray(start_xyz_px, dtype=float)
    for kind, mp in mappings.items():
        if kind not in COLUMN:
            raise AlignmentError(f"unknown variable kind {kind!r}; use one of {sorted(COLUMN)}")
        if mp.n_views != len(p0):
            raise AlignmentError(f"the {kind} mapping covers {mp.n_views} views, not {len(p0)}")
    prob = _Problem(v, m, np.asarray(obs_xy_px, dtype=float), p0, xyz0, mappings, free_xyz, 0.0)
    x0 = prob.x0()
    if 2 * len(v) < x0.size:
        raise AlignmentError(f"{len(v)} points cannot determine {x0.size} unknowns; use fewer local variables")
    if x0.size:
        sol = least_squares(prob.residuals, x0, jac=prob.jacobian, method="lm", x_scale="jac",
                            xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=max_evaluations)
        x, nfev = sol.x, int(sol.nfev)
    else:
        x, nfev = x0, 0
    params, xyz = prob.unpack(x)
    params, resid = with_optimal_shifts(params, xyz, v, m, obs_xy_px)
    return MappedFit(params, xyz, resid, int(x0.size), nfev)
