"""Transforms, Z factors and the aligned frame of IMOD's full model, for global and local solutions.

A view with full-model matrix ``A`` (`model.view_matrices`), shift ``d``, tilt ``theta`` and
X-tilt ``phi`` maps a raw centred image point ``p`` to the aligned frame by ``F p + D`` with
(`../shared/docs/imod-full-model.md`, section 1.5)::

    T = [[cos theta, sin phi sin theta], [0, cos phi]],   F = T a^-1,   a = A[:, :2]
    D = -F d - T f_xy - c f_z,                            c = F A[:, 2]

``f`` is the *frame offset*: where the aligned frame's origin (tilt axis in x and z, centre row in y)
lies in the centroid-centred marker frame. A specimen point ``X`` (centroid-centred) then lands at
``T (X - f)_xy + c (X - f)_z``: the tomogram position ``X - f`` projected with the view's angles, whose
z coefficient ``c`` is the standard ``(cos phi sin theta, -sin phi)`` plus IMOD's Z factors. This
module's transforms match `transforms.imod_transforms` for the default model. The parameters have any beam tilt
folded in (`model.without_beam_tilt`, as `Alignment.full_params`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .model import COMP, DX, DY, TILT, XTILT, view_matrices


def _t_matrix(params: NDArray[np.float64]) -> NDArray[np.float64]:
    th, ph = params[:, TILT], params[:, XTILT]
    t = np.zeros((len(params), 2, 2))
    t[:, 0, 0], t[:, 0, 1], t[:, 1, 1] = np.cos(th), np.sin(ph) * np.sin(th), np.cos(ph)
    return t


def _standard_z(params: NDArray[np.float64]) -> NDArray[np.float64]:
    th, ph = params[:, TILT], params[:, XTILT]
    return np.stack([np.cos(ph) * np.sin(th), -np.sin(ph)], axis=1)


def linear_parts(params: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``F`` ``(n_views, 2, 2)`` and the z coefficient ``c`` ``(n_views, 2)`` of each view."""
    p = np.asarray(params, dtype=float)
    a, _ = view_matrices(p, derivatives=False)
    f = _t_matrix(p) @ np.linalg.inv(a[:, :, :2])
    return f, np.einsum("nij,nj->ni", f, a[:, :, 2])


def view_transforms(params: NDArray[np.float64], frame_px: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, 2, 3)`` raw-to-aligned transforms ``[F | D]`` about the image centre (module docstring)."""
    p = np.asarray(params, dtype=float)
    f, c = linear_parts(p)
    fr = np.asarray(frame_px, dtype=float)
    d = np.einsum("nij,nj->ni", f, p[:, [DX, DY]])
    shift = -d - np.einsum("nij,j->ni", _t_matrix(p), fr[:2]) - c * fr[2]
    return np.concatenate([f, shift[:, :, None]], axis=2)


def frame_from_transforms(params: NDArray[np.float64], transforms: NDArray[np.float64]) -> NDArray[np.float64]:
    """The frame offset ``f`` ``(3,)`` that best explains given transforms' translations (least squares).

    Views whose transform or parameters are not finite are left out.
    """
    p = np.asarray(params, dtype=float)
    xf = np.asarray(transforms, dtype=float)
    ok = np.all(np.isfinite(p), axis=1) & np.all(np.isfinite(xf.reshape(len(xf), -1)), axis=1)
    f, c = linear_parts(p[ok])
    rhs = -xf[ok, :, 2] - np.einsum("nij,nj->ni", f, p[ok][:, [DX, DY]])
    design = np.concatenate([_t_matrix(p[ok]), c[:, :, None]], axis=2).reshape(-1, 3)
    return np.linalg.lstsq(design, rhs.ravel(), rcond=None)[0]


def z_factors(params: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, 2)`` IMOD's Z factors (xzfac, yzfac): the z coefficient beyond the standard one, per unit
    of compression."""
    p = np.asarray(params, dtype=float)
    _, c = linear_parts(p)
    return c / p[:, COMP, None] - _standard_z(p)


def compose_refinement(global_xf: NDArray[np.float64], local_xf: NDArray[np.float64]) -> NDArray[np.float64]:
    """``G . L^-1`` per view: from locally aligned to globally aligned coordinates (``(n, 2, 3)`` each)."""
    g = np.asarray(global_xf, dtype=float)
    lo = np.asarray(local_xf, dtype=float)
    a = g[:, :, :2] @ np.linalg.inv(lo[:, :, :2])
    d = g[:, :, 2] - np.einsum("nij,nj->ni", a, lo[:, :, 2])
    return np.concatenate([a, d[:, :, None]], axis=2)


def with_optimal_shifts(params: NDArray[np.float64], xyz_px: NDArray[np.float64], view_index: NDArray[np.intp],
                        marker_index: NDArray[np.intp], obs_xy_px: NDArray[np.float64]
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``params`` with each seen view's least-squares shift, and the ``(n_obs, 2)`` residuals."""
    params = np.array(params, dtype=float)
    a, _ = view_matrices(params, derivatives=False)
    pred_c = np.einsum("nij,nj->ni", a[view_index], np.asarray(xyz_px, float)[marker_index])
    count = np.bincount(view_index, minlength=len(params)).astype(float)
    shift = np.stack([np.bincount(view_index, obs_xy_px[:, k] - pred_c[:, k], minlength=len(params))
                      for k in range(2)], axis=1) / np.maximum(count, 1.0)[:, None]
    seen = count > 0
    params[seen, DX], params[seen, DY] = shift[seen, 0], shift[seen, 1]
    return params, pred_c + shift[view_index] - obs_xy_px
