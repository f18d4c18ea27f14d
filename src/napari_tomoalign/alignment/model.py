"""The projection model of fiducial alignment: predictions, residuals and Jacobian blocks.

Per view ``j`` the parameters are, in this column order (``VIEW_PARAMS``): tilt angle ``theta``
(radians, about y), in-plane rotation ``alpha`` (radians), magnification ``s`` and the shift
``(dx, dy)`` in pixels. Per marker ``i`` they are its 3-D position ``(x, y, z)`` in pixels. The
predicted position of marker ``i`` in view ``j``, relative to the image centre, is::

    u = x cos(theta) + z sin(theta),  v = y
    p = s R(alpha) [u, v] + [dx, dy]

The image centre is added by the callers that work in image coordinates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

VIEW_PARAMS = ("tilt", "rotation", "magnification", "shift_x", "shift_y")
TILT, ROT, MAG, DX, DY = range(5)


def project(
    view_params: NDArray[np.float64],
    xyz: NDArray[np.float64],
    view_index: NDArray[np.intp],
    marker_index: NDArray[np.intp],
) -> NDArray[np.float64]:
    """Predict the centred image positions of the given (view, marker) pairs.

    Parameters
    ----------
    view_params
        ``(n_views, 5)`` array of per-view parameters in ``VIEW_PARAMS`` order.
    xyz
        ``(n_markers, 3)`` array of marker positions (x, y, z) in pixels.
    view_index, marker_index
        ``(n_obs,)`` integer arrays naming the view and marker of each prediction.

    Returns
    -------
    ``(n_obs, 2)`` array of predicted (x, y) positions relative to the image centre.
    """
    p = view_params[view_index]
    m = xyz[marker_index]
    ct, st = np.cos(p[:, TILT]), np.sin(p[:, TILT])
    ca, sa = np.cos(p[:, ROT]), np.sin(p[:, ROT])
    s = p[:, MAG]
    u = m[:, 0] * ct + m[:, 2] * st
    v = m[:, 1]
    out = np.empty((len(view_index), 2))
    out[:, 0] = s * (ca * u - sa * v) + p[:, DX]
    out[:, 1] = s * (sa * u + ca * v) + p[:, DY]
    return out


def jacobian_blocks(
    view_params: NDArray[np.float64],
    xyz: NDArray[np.float64],
    view_index: NDArray[np.intp],
    marker_index: NDArray[np.intp],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The derivatives of each prediction with respect to its view and its marker.

    Returns
    -------
    jv
        ``(n_obs, 2, 5)`` array: d(x, y) / d(view parameters in ``VIEW_PARAMS`` order).
    jm
        ``(n_obs, 2, 3)`` array: d(x, y) / d(marker x, y, z).
    """
    p = view_params[view_index]
    m = xyz[marker_index]
    ct, st = np.cos(p[:, TILT]), np.sin(p[:, TILT])
    ca, sa = np.cos(p[:, ROT]), np.sin(p[:, ROT])
    s = p[:, MAG]
    u = m[:, 0] * ct + m[:, 2] * st
    v = m[:, 1]
    du = -m[:, 0] * st + m[:, 2] * ct  # d u / d theta
    n = len(view_index)
    jv = np.zeros((n, 2, 5))
    jv[:, 0, TILT] = s * ca * du
    jv[:, 1, TILT] = s * sa * du
    jv[:, 0, ROT] = s * (-sa * u - ca * v)
    jv[:, 1, ROT] = s * (ca * u - sa * v)
    jv[:, 0, MAG] = ca * u - sa * v
    jv[:, 1, MAG] = sa * u + ca * v
    jv[:, 0, DX] = 1.0
    jv[:, 1, DY] = 1.0
    jm = np.empty((n, 2, 3))
    jm[:, 0, 0] = s * ca * ct
    jm[:, 0, 1] = -s * sa
    jm[:, 0, 2] = s * ca * st
    jm[:, 1, 0] = s * sa * ct
    jm[:, 1, 1] = s * ca
    jm[:, 1, 2] = s * sa * st
    return jv, jm


def predict_all(view_params: NDArray[np.float64], xyz: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, n_markers, 2)`` array of every marker's centred position in every view.

    Built one view at a time, so that no temporary is larger than one view's predictions.
    """
    n_views, n_markers = len(view_params), len(xyz)
    out = np.empty((n_views, n_markers, 2))
    x, y, z = (np.asarray(xyz, dtype=float)[:, k] for k in range(3))
    for j, (th, al, s, dx, dy) in enumerate(np.asarray(view_params, dtype=float)[:, :5]):
        u = x * np.cos(th) + z * np.sin(th)
        ca, sa = np.cos(al), np.sin(al)
        out[j, :, 0] = s * (ca * u - sa * y) + dx
        out[j, :, 1] = s * (sa * u + ca * y) + dy
    return out


def recentre(view_params: NDArray[np.float64], xyz: NDArray[np.float64], offset: NDArray[np.float64]) -> None:
    """Move every marker by ``-offset`` and absorb the move in the shifts, in place.

    The predictions do not change: this is the translation gauge of the model.
    """
    t = np.asarray(offset, dtype=float)
    xyz -= t
    ct, st = np.cos(view_params[:, TILT]), np.sin(view_params[:, TILT])
    ca, sa = np.cos(view_params[:, ROT]), np.sin(view_params[:, ROT])
    s = view_params[:, MAG]
    u = t[0] * ct + t[2] * st
    v = t[1]
    view_params[:, DX] += s * (ca * u - sa * v)
    view_params[:, DY] += s * (sa * u + ca * v)
