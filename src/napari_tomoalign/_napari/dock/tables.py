"""The tables of step 5, as IMOD's ``align.log`` has them: no napari, magicgui or Qt here.

- The per-view solution: rotation, tilt, tilt change (solved minus nominal), magnification, X-stretch (IMOD's
  dmag), skew and the view's mean residual, one row per view, views numbered from 1.
- The points whose residual lies more than 3 standard deviations above the mean residual (tiltalign's
  ``ResidualReportCriterion 3.0``), with their view, marker, residual and how many SDs above the mean.
"""

from __future__ import annotations

import numpy as np

from ...alignment.full_layout import PARAM_OF_KIND
from ...alignment.result import Alignment
from ...conventions import view_number

SOLUTION_COLUMNS = ("view", "rot", "tilt", "dtilt", "mag", "dmag", "skew", "resid")
SOLUTION_TIPS = ("view, numbered from 1", "rotation (deg)", "solved tilt angle (deg)",
                 "tilt change: solved minus nominal (deg)", "magnification", "X-stretch (IMOD's dmag)",
                 "skew (deg)", "mean residual of the view (px)")
SOLUTION_DECIMALS = (0, 1, 1, 2, 3, 3, 1, 2)
BIG_COLUMNS = ("view", "marker", "resid", "SDs", "dx", "dy")
BIG_TIPS = ("view, numbered from 1", "marker id", "residual (px)", "standard deviations above the mean residual",
            "residual in x (px)", "residual in y (px)")
BIG_DECIMALS = (0, 0, 3, 2, 2, 2)
REPORT_SD = 3.0  # tiltalign's ResidualReportCriterion


def solution_rows(al: Alignment) -> list[tuple[float, ...]]:
    """One row per view: `SOLUTION_COLUMNS` (NaN for the values of a view left out of the fit)."""
    _, mean = al.per_view_residual_px()
    n = al.n_views
    stretch, skew = np.zeros(n), np.zeros(n)
    if al.full_params is not None:
        stretch = np.asarray(al.full_params[:, PARAM_OF_KIND["x_stretch"]], dtype=float)
        skew = np.degrees(np.asarray(al.full_params[:, PARAM_OF_KIND["skew"]], dtype=float))
    rows = []
    for j in range(n):
        change = al.tilt_angles_deg[j] - al.nominal_tilt_angles_deg[j]
        values: tuple[float, ...] = (al.rotation_deg[j], al.tilt_angles_deg[j], change, al.magnification[j],
                                     stretch[j], skew[j], mean[j])
        if not al.view_determined[j]:
            values = tuple(np.nan for _ in values)
        rows.append((float(view_number(j)), *(float(v) for v in values)))
    return rows


def big_residuals(al: Alignment, criterion: float = REPORT_SD) -> list[tuple[int, int, float, float, float, float]]:
    """``(view index, marker id, residual, SDs above the mean, dx, dy)`` of every point in the fit whose residual
    is more than ``criterion`` SDs above the mean residual, largest first."""
    used = np.flatnonzero(al.obs_used)
    if used.size < 2:
        return []
    d = al.residuals_px[used]
    r = np.hypot(d[:, 0], d[:, 1])
    mean, sd = float(r.mean()), float(r.std())
    if sd <= 0:
        return []
    n_sd = (r - mean) / sd
    pick = np.flatnonzero(n_sd > criterion)
    pick = pick[np.argsort(-r[pick])]
    ids = al.marker_ids[al.obs_marker[used]]
    return [(int(al.obs_view[used[k]]), int(ids[k]), float(r[k]), float(n_sd[k]), float(d[k, 0]), float(d[k, 1]))
            for k in pick]
