"""Closed-form estimate of the tilt-axis angle from marker tracks.

Along the tilt axis a marker's image coordinate does not change with tilt, apart from the shift
of its view. So for the right angle ``a`` the coordinate ``v = -sin(a) x + cos(a) y`` of every
observation is explained by one value per marker plus one per view. The misfit of that additive
model is a quadratic form in ``(cos a, -sin a)``; its smallest eigenvector gives the axis, with
no starting guess and no local minima. The answer is defined modulo 180 degrees: the two branches
fit equally well (the half-turn of the alignment model's gauge).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _additive_residuals(
    values: NDArray[np.float64], view_index: NDArray[np.intp], marker_index: NDArray[np.intp],
    n_views: int, n_markers: int,
) -> NDArray[np.float64]:
    """``values`` minus their least-squares fit by one term per marker plus one per view.

    ``values`` is ``(n_obs, k)``; the fit is done for each of the ``k`` columns.
    """
    nm = np.bincount(marker_index, minlength=n_markers).astype(float)
    nv = np.bincount(view_index, minlength=n_views).astype(float)
    a = np.bincount(view_index * n_markers + marker_index, minlength=n_views * n_markers)
    a = a.reshape(n_views, n_markers).astype(float)
    sm = np.stack([np.bincount(marker_index, values[:, k], n_markers) for k in range(values.shape[1])], 1)
    sv = np.stack([np.bincount(view_index, values[:, k], n_views) for k in range(values.shape[1])], 1)
    inv_nm = np.divide(1.0, nm, out=np.zeros_like(nm), where=nm > 0)
    reduced = np.diag(nv) - (a * inv_nm) @ a.T
    rhs = sv - (a * inv_nm) @ sm
    e = np.linalg.lstsq(reduced, rhs, rcond=None)[0]
    y = (sm - a.T @ e) * inv_nm[:, None]
    return values - y[marker_index] - e[view_index]


def estimate_tilt_axis(
    view_index: NDArray[np.intp],
    marker_index: NDArray[np.intp],
    xy_centred: NDArray[np.float64],
    n_views: int,
    n_markers: int,
) -> tuple[float, float]:
    """Estimate the tilt-axis angle.

    Parameters
    ----------
    view_index, marker_index
        ``(n_obs,)`` view and marker number of each observation.
    xy_centred
        ``(n_obs, 2)`` observed (x, y) positions relative to the image centre, in pixels.

    Returns
    -------
    axis_deg
        The angle of the tilt axis from the image's y axis, in degrees, in (-90, 90].
    ambiguity
        The ratio of the smallest to the largest misfit eigenvalue: near 0 when the axis is well
        determined, near 1 when the tilt range shows no motion across the axis.
    """
    res = _additive_residuals(xy_centred[:, ::-1].copy(), view_index, marker_index, n_views, n_markers)
    # columns of res: y then x; v = cos(a) y - sin(a) x, i.e. the vector (cos a, -sin a)
    gram = res.T @ res
    evals, evecs = np.linalg.eigh(gram)
    c, minus_s = evecs[:, 0]
    axis = float(np.degrees(np.arctan2(-minus_s, c)))
    axis = (axis + 90.0) % 180.0 - 90.0
    if axis == -90.0:
        axis = 90.0
    ambiguity = float(evals[0] / evals[1]) if evals[1] > 0 else 1.0
    return axis, ambiguity


def nearest_branch(axis_deg: float, towards_deg: float) -> float:
    """``axis_deg`` or ``axis_deg + 180``, whichever is nearer ``towards_deg``, in (-180, 180]."""
    candidates = [axis_deg, axis_deg + 180.0]
    best = min(candidates, key=lambda a: abs((a - towards_deg + 180.0) % 360.0 - 180.0))
    return wrap_degrees(best)


def wrap_degrees(angle_deg: float) -> float:
    """The same angle in (-180, 180]."""
    a = (angle_deg + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else float(a)
