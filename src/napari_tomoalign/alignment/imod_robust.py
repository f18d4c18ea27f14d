"""Robust fitting with IMOD's full model (an align.com's ``RobustFitting 1``).

Iteratively reweighted refits as the default model's robust stage does them (`robust`): Tukey's
bisquare on residual lengths normalised within groups of neighbouring views (IMOD's
``MinWeightGroupSizes``: at least 100 points a group), ``K = 4.685 x KFactorScaling``, or one weight per
track with ``WeightWholeTracks``. As in IMOD, a marker left with fewer than 4 weights above 0.02 gets
0.02 added to all its weights, and the refits stop when no weight changes by more than 0.01. IMOD also
smooths each view's median residual over neighbouring views and splits the field into rings before
normalising; these weights do not, so the flagged points and ``Final F`` are close to IMOD's, not equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from .arrays import unique_inverse
from .robust import robust_weights, tilt_groups


class Fitted(Protocol):
    @property
    def residuals_px(self) -> NDArray[np.float64]: ...  # (n_obs, 2), NaN where a point was not fitted


S = TypeVar("S", bound=Fitted)
MIN_GROUP_POINTS = 100  # IMOD's MinWeightGroupSizes for the global fit
WEIGHT_FLOOR, MIN_WEIGHTED = 0.02, 4
MAX_ROUNDS = 30
SETTLED = 0.01


def floor_sparse_markers(w: NDArray[np.float64], marker_index: NDArray[np.intp]) -> NDArray[np.float64]:
    """IMOD's rule: a marker with fewer than 4 weights above 0.02 gets 0.02 added to all of them."""
    strong = np.bincount(marker_index, w > WEIGHT_FLOOR, minlength=int(marker_index.max(initial=-1)) + 1)
    return w + np.where(strong[marker_index] < MIN_WEIGHTED, WEIGHT_FLOOR, 0.0)


def reweighted(solve: Callable[[S, NDArray[np.float64]], S], first: S, view: NDArray[np.intp],
               markers: NDArray, tilts_deg: NDArray[np.float64], scale: float = 1.0,
               whole_tracks: bool = False) -> tuple[S, NDArray[np.float64], int]:
    """``(solution, robust weights (n_obs,), refits)``: refit with ``solve(start, weights)`` from ``first`` until
    the weights settle. Solutions carry ``residuals_px`` ``(n_obs, 2)`` (NaN where a point was not fitted)."""
    _, mi = unique_inverse(markers)
    groups = tilt_groups(view, tilts_deg, 1, MIN_GROUP_POINTS)
    sol, w = first, np.ones(len(view))
    for rounds in range(1, MAX_ROUNDS + 1):
        r = sol.residuals_px
        ok = np.all(np.isfinite(r), axis=1)
        new = np.ones(len(view))
        new[ok] = robust_weights(r[ok], view[ok], mi[ok], groups, scale, whole_tracks)
        new = floor_sparse_markers(new, mi)
        change = float(np.max(np.abs(new - w), initial=0.0))
        w = new
        sol = solve(sol, w)
        if change <= SETTLED:
            return sol, w, rounds
    return sol, w, MAX_ROUNDS
