"""The default projection model of fiducial alignment: its parameters and predictions.

Per view ``j`` the parameters are, in this column order (``VIEW_PARAMS``): tilt angle ``theta``
(radians, about y), in-plane rotation ``alpha`` (radians), magnification ``s`` and the shift
``(dx, dy)`` in pixels. Per marker ``i`` they are its 3-D position ``(x, y, z)`` in pixels. The
predicted position of marker ``i`` in view ``j``, relative to the image centre, is::

    u = x cos(theta) + z sin(theta),  v = y
    p = s R(alpha) [u, v] + [dx, dy]

The image centre is added by the callers that work in image coordinates. It is the preset of IMOD's full
model (`full_model`) with X-stretch, skew, X-tilt and beam tilt 0 and compression 1; the solver works on
the full model (`full_model.default_full_params` turns these five columns into its nine).
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
