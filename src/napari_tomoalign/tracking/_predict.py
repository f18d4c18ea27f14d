"""Predicting where each bead lies in the next view.

With a partial alignment (our solver on what is tracked so far) a bead's 3-D position is projected
through the new view's parameters, extrapolated from its neighbour toward the seed view: the same tilt
error, rotation and magnification, and the neighbour's shift moved by the coarse alignment's change.
Beads the model does not hold yet are carried from their last position by the coarse alignment.

The prediction is then corrected by a fit to the beads already found in the view (beadtrack's
``anchor`` step): a shift from up to 3 beads, a rotation too from 4 or 5, and a scale too from more.
The beads that agree are found first, from shift and two-bead similarity hypotheses, so that a large
jump of the view, its own change of magnification or a few wrong finds do not pull the fit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..alignment.model import DX, DY, TILT, predict_all
from ..alignment.result import Alignment
from .coarse import CoarseAlignment


def model_view_params(al: Alignment, j: int, n: int, coarse: CoarseAlignment) -> NDArray[np.float64] | None:
    """``(5,)`` parameters of view ``j`` in the alignment's model: its own when it was fitted, else
    extrapolated from view ``n`` (or the fitted view nearest in tilt when ``n`` was not fitted either)."""
    def params(v):
        return np.array([np.radians(al.tilt_angles_deg[v]), np.radians(al.rotation_deg[v]), al.magnification[v],
                         al.shifts_px[v, 0], al.shifts_px[v, 1]])

    if al.view_determined[j]:
        return params(j)
    if not al.view_determined[n]:  # the neighbour is not in the fit yet: the fitted view nearest in tilt
        fitted = np.flatnonzero(al.view_determined)
        if len(fitted) == 0:
            return None
        n = int(fitted[np.argmin(np.abs(al.nominal_tilt_angles_deg[fitted] - al.nominal_tilt_angles_deg[j]))])
    vp = params(n)
    vp[TILT] = np.radians(al.nominal_tilt_angles_deg[j] + al.tilt_angles_deg[n] - al.nominal_tilt_angles_deg[n])
    ref = al.reference_view
    d_ref = al.shifts_px[ref] if al.view_determined[ref] else np.zeros(2)
    delta = (coarse.matrix(j) - coarse.matrix(n)) @ d_ref + coarse.shifts_px[j] - coarse.shifts_px[n]
    vp[[DX, DY]] += delta
    return vp


def predict(al: Alignment | None, j: int, n: int, coarse: CoarseAlignment, last_xy: NDArray[np.float64],
            last_view: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``(n_beads, 2)`` predicted positions in view ``j`` and ``(n_beads,)`` True where the model made them.

    ``last_xy`` ``(n_beads, 2)`` and ``last_view`` ``(n_beads,)`` are each bead's latest position and its
    view (-1 and NaN for none); bead ``b`` is marker ``b + 1`` of the alignment.
    """
    nb = len(last_xy)
    out = np.full((nb, 2), np.nan)
    from_model = np.zeros(nb, dtype=bool)
    vp = model_view_params(al, j, n, coarse) if al is not None else None
    if al is not None and vp is not None:
        idx = al.marker_ids - 1
        ok = (idx >= 0) & (idx < nb) & al.marker_included
        xy = predict_all(vp[None, :], al.xyz_px[ok])[0] + al.image_centre
        out[idx[ok]] = xy
        from_model[idx[ok]] = True
    rest = ~from_model & (last_view >= 0)
    for v in np.unique(last_view[rest]):
        sel = rest & (last_view == v)
        out[sel] = coarse.map(last_xy[sel], int(v), j)
    return out, from_model


def _hypotheses(pred: NDArray[np.float64], found: NDArray[np.float64], centre: NDArray[np.float64]):
    """Candidate maps ``z -> w z + t`` (complex, about ``centre``): one shift per bead and one similarity
    (scale within 3 %) per pair of beads."""
    p = (pred - centre) @ np.array([1.0, 1j])
    f = (found - centre) @ np.array([1.0, 1j])
    w = [np.ones(len(p), complex)]
    t = [f - p]
    i, j = np.triu_indices(len(p), 1)
    far = np.abs(p[j] - p[i]) > 1e-6
    i, j = i[far], j[far]
    with np.errstate(divide="ignore", invalid="ignore"):  # two beads found at one place give no similarity
        wij = (f[j] - f[i]) / (p[j] - p[i])
        wij = wij / np.abs(wij) * np.clip(np.abs(wij), 0.97, 1.03)
    ok = np.isfinite(wij)
    i, j, wij = i[ok], j[ok], wij[ok]
    w.append(wij)
    t.append(f[i] - wij * p[i])
    return np.concatenate(w), np.concatenate(t), p, f


def correction(pred: NDArray[np.float64], found: NDArray[np.float64], centre: NDArray[np.float64],
               tolerance: float) -> tuple[NDArray[np.float64], int]:
    """``(2, 3)`` map ``x -> A (x - c) + c + t`` taking predictions to found positions, and how many beads
    support it. Hypotheses (a shift per bead, a similarity per pair) are scored by the beads they bring
    within ``tolerance``; the best set is refitted: a shift from up to 3 beads, with a rotation from 4 or 5,
    with a scale too from 6 or more. A view's own change of magnification or rotation, a jump or a few
    wrong finds do not pull it."""
    xf = np.zeros((2, 3))
    xf[:, :2] = np.eye(2)
    if len(pred) == 0:
        return xf, 0
    w, t, p, f = _hypotheses(pred, found, centre)
    resid = np.abs(w[:, None] * p[None, :] + t[:, None] - f[None, :])
    inliers = resid <= tolerance
    score = inliers.sum(axis=1) - 1e-3 * np.where(inliers, resid, 0.0).sum(axis=1) / max(tolerance, 1e-9)
    agree = inliers[int(np.argmax(score))]
    m = int(agree.sum())
    pa, fa = pred[agree] - centre, found[agree] - centre
    if m < 4:
        xf[:, 2] = np.median(fa - pa, axis=0)
        return xf, m
    pm, fm = pa.mean(axis=0), fa.mean(axis=0)
    p0, f0 = pa - pm, fa - fm
    a = np.sum(p0 * f0)
    b = np.sum(p0[:, 0] * f0[:, 1] - p0[:, 1] * f0[:, 0])
    phi = np.arctan2(b, a)
    scale = float(np.clip(np.hypot(a, b) / max(np.sum(p0 * p0), 1e-12), 0.97, 1.03)) if m >= 6 else 1.0
    rot = scale * np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    xf[:, :2] = rot
    xf[:, 2] = fm - rot @ pm
    return xf, m


def apply(xf: NDArray[np.float64], xy: NDArray[np.float64], centre: NDArray[np.float64]) -> NDArray[np.float64]:
    return (xy - centre) @ xf[:, :2].T + xf[:, 2] + centre


def spread_pick(xy: NDArray[np.float64], priority: NDArray[np.float64], k: int, min_dist: float) -> NDArray[np.intp]:
    """Up to ``k`` indices, best ``priority`` first, no two closer than ``min_dist`` (relaxed if too few)."""
    order = np.argsort(-priority, kind="stable")
    for dist in (min_dist, min_dist / 2, 0.0):
        chosen: list[int] = []
        for i in order:
            if all(np.hypot(*(xy[i] - xy[c])) >= dist for c in chosen):
                chosen.append(int(i))
                if len(chosen) == k:
                    return np.array(chosen, dtype=np.intp)
        if len(chosen) >= min(k, len(order)):
            break
    return np.array(chosen, dtype=np.intp)


def constellation_shift(response: NDArray[np.float32], pred: NDArray[np.float64],
                        max_shift: float) -> NDArray[np.float64] | None:
    """The shift ``(2,)`` that best moves the predicted bead pattern ``pred`` ``(k, 2)`` onto a bead map
    ``response`` (a matched-filter image, beads positive): the peak of their cross-correlation within
    ``max_shift``. None for fewer than 3 beads. Each bead's response is clipped at the 99.9th percentile so
    that no clump or edge dominates."""
    import scipy.fft as sfft

    from ._fourier import fft_workers, subpixel_peak

    if len(pred) < 3:
        return None
    rows, cols = response.shape
    r = np.clip(response, 0.0, float(np.percentile(response, 99.9)))
    deltas = np.zeros((rows, cols), dtype=np.float32)
    ij = np.floor(pred + 0.5).astype(np.intp)
    np.add.at(deltas, (ij[:, 1] % rows, ij[:, 0] % cols), 1.0)
    w = fft_workers()
    cc = sfft.irfft2(sfft.rfft2(r, workers=w) * np.conj(sfft.rfft2(deltas, workers=w)), s=(rows, cols), workers=w)
    cc = np.fft.fftshift(cc)
    cy, cx = rows // 2, cols // 2
    lim = int(min(max_shift, cy - 2, cx - 2))
    win = cc[cy - lim : cy + lim + 1, cx - lim : cx + lim + 1]
    iy, ix = (int(i) for i in np.unravel_index(int(np.argmax(win)), win.shape))
    sx, sy = subpixel_peak(win, iy, ix)
    return np.array([sx - lim, sy - lim])
