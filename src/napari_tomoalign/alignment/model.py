"""The projection model of fiducial alignment: IMOD's full model, of which the default model is a preset.

Per view ``j`` the parameters are, in the column order ``FULL_VIEW_PARAMS``: tilt ``theta`` (radians, about
y), in-plane rotation ``alpha`` (radians), magnification ``s``, shift ``dx, dy`` (pixels), X-stretch ``e``
(IMOD's dmag), skew ``sigma``, X-tilt ``phi`` and compression ``k``; the beam tilt ``b`` is one value for
the series. Per marker ``i`` they are its 3-D position ``(x, y, z)`` in pixels. With
``D = [[(s+e) cos sigma, 0, 0], [(s+e) sin sigma, s, 0], [0, 0, s k]]``::

    A_j = R(alpha) Pi(b) Y(theta) Xr(-b) Xr(phi) D          (2 x 3)
    p_ij = A_j [x_i, y_i, z_i] + [dx_j, dy_j]               (centred pixels)

``Y`` turns about y, ``Xr`` about x, ``Pi(b)`` is the first two rows of ``Xr(b)`` and ``R`` the in-plane
rotation (`../shared/docs/imod-full-model.md`, section 1.2, from IMOD's ``funct.f90``). The default model is
the preset ``e = sigma = phi = b = 0``, ``k = 1``: with ``u = x cos(theta) + z sin(theta)``,
``p = s R(alpha) [u, y] + [dx, dy]``; its five columns (``VIEW_PARAMS``) are the first five, and
`default_full_params` turns them into the nine. The image centre is added by the callers that work in
image coordinates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

VIEW_PARAMS = ("tilt", "rotation", "magnification", "shift_x", "shift_y")
TILT, ROT, MAG, DX, DY = range(5)

FULL_VIEW_PARAMS = ("tilt", "rotation", "magnification", "shift_x", "shift_y", "x_stretch", "skew", "x_tilt",
                    "compression")
DMAG, SKEW, XTILT, COMP = 5, 6, 7, 8
N_FULL = len(FULL_VIEW_PARAMS)
MATRIX_PARAMS = (TILT, ROT, MAG, DMAG, SKEW, XTILT, COMP)  # the parameters that enter A_j
IDENTITY_VIEW = (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # A_j the untilted projection, no shift


def with_identity_views(params: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """A copy of ``(n_views, 9)`` parameters whose undetermined (not finite) rows are `IDENTITY_VIEW`, so that
    the matrix algebra stays finite, and which rows those are (callers do not use them)."""
    p = np.array(params, dtype=float)
    bad = ~np.all(np.isfinite(p), axis=1)
    p[bad] = IDENTITY_VIEW
    return p, bad


def default_full_params(view_params: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, 9)`` full parameters equal to the default model's ``(n_views, 5)`` ones (nine are kept)."""
    p = np.asarray(view_params, dtype=float)
    if p.shape[1] == N_FULL:
        return p
    out = np.zeros((len(p), N_FULL))
    out[:, :5] = p
    out[:, COMP] = 1.0
    return out


def _turn(a: NDArray[np.float64], n: int, i: int, j: int, derivative: bool = False) -> NDArray[np.float64]:
    """``(len(a), n, n)``: the turn by ``a`` in the plane of axes ``i`` and ``j`` (``i`` towards ``j``), or with
    ``derivative`` its derivative by ``a``: the turn by ``a + pi / 2`` in that plane and 0 elsewhere."""
    a = np.asarray(a, dtype=float) + (np.pi / 2 if derivative else 0.0)
    out = np.zeros((len(a), n, n)) if derivative else np.tile(np.eye(n), (len(a), 1, 1))
    out[:, i, i], out[:, i, j], out[:, j, i], out[:, j, j] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return out


def _rx(a: NDArray[np.float64], derivative: bool = False) -> NDArray[np.float64]:
    return _turn(a, 3, 1, 2, derivative)  # about x


def _ry(a: NDArray[np.float64], derivative: bool = False) -> NDArray[np.float64]:
    return _turn(a, 3, 2, 0, derivative)  # about y


def _r2(a: NDArray[np.float64], derivative: bool = False) -> NDArray[np.float64]:
    return _turn(a, 2, 0, 1, derivative)  # in the image plane


def _distortion(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], dict[int, NDArray[np.float64]]]:
    """``D`` per view and its derivatives by magnification, X-stretch, skew and compression."""
    s, e, sg, k = p[:, MAG], p[:, DMAG], p[:, SKEW], p[:, COMP]
    n = len(p)
    cs, sn = np.cos(sg), np.sin(sg)
    d = np.zeros((n, 3, 3))
    d[:, 0, 0], d[:, 1, 0], d[:, 1, 1], d[:, 2, 2] = (s + e) * cs, (s + e) * sn, s, s * k
    dd = {kind: np.zeros((n, 3, 3)) for kind in (MAG, DMAG, SKEW, COMP)}
    dd[MAG][:, 0, 0], dd[MAG][:, 1, 0], dd[MAG][:, 1, 1], dd[MAG][:, 2, 2] = cs, sn, 1.0, k
    dd[DMAG][:, 0, 0], dd[DMAG][:, 1, 0] = cs, sn
    dd[SKEW][:, 0, 0], dd[SKEW][:, 1, 0] = -(s + e) * sn, (s + e) * cs
    dd[COMP][:, 2, 2] = s
    return d, dd


def view_matrices(params: NDArray[np.float64], beam_tilt: float = 0.0, derivatives: bool = True) -> tuple[
        NDArray[np.float64], NDArray[np.float64]]:
    """``A_j`` ``(n_views, 2, 3)`` and (unless ``derivatives`` is False: empty) its derivatives ``(n_views, 10, 2,
    3)`` by each raw parameter: the columns of `FULL_VIEW_PARAMS` (the shifts' are 0), then the beam tilt."""
    p = np.asarray(params, dtype=float)
    n = len(p)
    b = np.full(n, float(beam_tilt))
    y, xp, r = _ry(p[:, TILT]), _rx(p[:, XTILT]), _r2(p[:, ROT])
    d, dd = _distortion(p)
    if beam_tilt == 0.0:  # Pi(0) is the first two rows of I, Xr(0) = I
        tail = xp @ d
        m = (y @ tail)[:, :2]
    else:
        tail = _rx(-b) @ xp @ d  # Xr(-b) Xr(phi) D
        m = _rx(b)[:, :2] @ y @ tail  # 2 x 3 before the in-plane rotation
    a = r @ m
    if not derivatives:
        return a, np.zeros((0, N_FULL + 1, 2, 3))
    pi, dpi = _rx(b)[:, :2], _rx(b, True)[:, :2]
    xb, dxb = _rx(-b), -_rx(-b, True)
    dy, dxp = _ry(p[:, TILT], True), _rx(p[:, XTILT], True)
    deriv = np.zeros((n, N_FULL + 1, 2, 3))
    deriv[:, ROT] = _r2(p[:, ROT], True) @ m
    deriv[:, TILT] = r @ pi @ dy @ tail
    deriv[:, XTILT] = r @ pi @ y @ xb @ dxp @ d
    deriv[:, N_FULL] = r @ (dpi @ y @ tail + pi @ y @ dxb @ xp @ d)  # the beam tilt
    front = r @ pi @ y @ xb @ xp
    for kind in (MAG, DMAG, SKEW, COMP):
        deriv[:, kind] = front @ dd[kind]
    return a, deriv


def without_beam_tilt(params: NDArray[np.float64], beam_tilt: float) -> NDArray[np.float64]:
    """``(n_views, 9)`` parameters with the beam tilt folded into the angles: the same projections with
    ``b = 0`` (IMOD converts so before writing ``.tlt``, ``.xtilt`` and the transforms).

    The turn ``Xr(b) Y(theta) Xr(-b) Xr(phi)`` equals ``Rz(gamma) Y(theta') Xr(phi')`` (a z-y-x Euler
    decomposition), and ``R(alpha) Rz(gamma)`` projects as ``R(alpha + gamma)``, so the new tilt,
    X-tilt and rotation are ``theta'``, ``phi'`` and ``alpha + gamma``; the distortion is unchanged.
    """
    p = np.array(params, dtype=float)
    if beam_tilt == 0.0:
        return p
    b = np.full(len(p), float(beam_tilt))
    m = _rx(b) @ _ry(p[:, TILT]) @ _rx(-b) @ _rx(p[:, XTILT])
    p[:, TILT] = -np.arcsin(np.clip(m[:, 2, 0], -1.0, 1.0))
    p[:, XTILT] = np.arctan2(m[:, 2, 1], m[:, 2, 2])
    p[:, ROT] += np.arctan2(m[:, 1, 0], m[:, 0, 0])
    return p


def project(view_params: NDArray[np.float64], xyz: NDArray[np.float64], view_index: NDArray[np.intp],
            marker_index: NDArray[np.intp], beam_tilt: float = 0.0) -> NDArray[np.float64]:
    """``(n_obs, 2)`` centred predictions of the given (view, marker) pairs for ``(n_views, 5)`` or
    ``(n_views, 9)`` parameters."""
    p = default_full_params(view_params)
    a, _ = view_matrices(p, beam_tilt, derivatives=False)
    return np.einsum("nij,nj->ni", a[view_index], np.asarray(xyz, float)[marker_index]) + p[view_index][:, [DX, DY]]


def predict_all(view_params: NDArray[np.float64], xyz: NDArray[np.float64], beam_tilt: float = 0.0
                ) -> NDArray[np.float64]:
    """``(n_views, n_markers, 2)`` every marker's centred position in every view for ``(n_views, 5)`` or
    ``(n_views, 9)`` parameters, one view at a time (so that no temporary is larger than one view's
    predictions); NaN rows of the parameters or of ``xyz`` give NaN."""
    p = default_full_params(view_params)
    a, _ = view_matrices(p, beam_tilt, derivatives=False)
    x = np.asarray(xyz, dtype=float)
    out = np.empty((len(p), len(x), 2))
    for j in range(len(p)):
        out[j] = x @ a[j].T + p[j, [DX, DY]]
    return out
