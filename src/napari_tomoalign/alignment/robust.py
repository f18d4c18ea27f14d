"""Robust weights for iteratively reweighted fitting: Tukey's bisquare on locally normalised residuals.

Each observation's residual length ``r`` is normalised within its group of neighbouring views (in
tilt order) as ``u = (r - median) / MADN``, where MADN is the median absolute deviation from the
median, divided by 0.6745 (so that it estimates a standard deviation). Groups are formed so that a
noisy high-tilt view is judged against its neighbours, not against the clean views near zero tilt,
and each holds at least ``min_group_obs`` residuals so that the median and MADN are stable.

The weight is Tukey's bisquare, ``(1 - (u / c)^2)^2`` for ``0 < u < c``, 1 at or below the median
and 0 from ``c`` on, with ``c = 4.685 * scale``. With tracks weighting, the statistic is each
marker's RMS residual, normalised over the markers, and the weight applies to the whole track.

`stages.StageRunner` runs the rounds (`next_weights`, then a refit) for every settings
(`options.ModelSettings`: how many rounds, the floor, the group sizes and the tuning). IMOD's preset (an
align.com's ``RobustFitting 1``): groups of at least 100 points (``MinWeightGroupSizes``), a marker left
with fewer than 4 weights above 0.02 gets 0.02 added to all its weights, at most 30 rounds. IMOD also
smooths each view's median residual over neighbouring views and splits the field into rings before
normalising; these weights do not, so the flagged points and ``Final F`` are close to IMOD's, not equal.
The default model's preset: groups of at least 40 points, no floor, at most 15 rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .options import ModelSettings

TUKEY_C = 4.685
MADN_FACTOR = 0.6745
MIN_WEIGHTED = 4  # IMOD: a marker with fewer weights above the floor gets the floor added to all of them
SETTLED = 0.01  # the rounds stop when no weight changes by more than this


def tukey_bisquare(u: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    """Tukey's bisquare weight of normalised residuals ``u`` (one-sided: ``u <= 0`` weighs 1)."""
    u = np.asarray(u, dtype=float)
    t = np.clip(u / c, 0.0, 1.0)
    return (1.0 - t * t) ** 2


def tilt_groups(
    obs_view: NDArray[np.intp], tilt_angles_deg: NDArray[np.float64], group_views: int = 1, min_group_obs: int = 40
) -> NDArray[np.intp]:
    """``(n_views,)`` group label per view: runs of neighbouring views (by tilt) with enough residuals.

    A run holds at least ``group_views`` views and ``min_group_obs`` observations; a short last run
    joins the one before it.
    """
    n_views = len(tilt_angles_deg)
    counts = np.bincount(obs_view, minlength=n_views)
    order = np.argsort(tilt_angles_deg, kind="stable")
    labels = np.empty(n_views, dtype=np.intp)
    group, in_group, n_obs = 0, 0, 0
    for v in order:
        labels[v] = group
        in_group += 1
        n_obs += counts[v]
        if in_group >= max(1, group_views) and n_obs >= min_group_obs:
            group, in_group, n_obs = group + 1, 0, 0
    if in_group and group > 0:  # a short tail joins its neighbour
        labels[labels == group] = group - 1
    return labels


def normalise(values: NDArray[np.float64], groups: NDArray[np.intp]) -> NDArray[np.float64]:
    """``(values - median) / MADN`` within each group (MADN floored so ties do not divide by zero)."""
    values = np.asarray(values, dtype=float)
    _, inv = np.unique(groups, return_inverse=True)
    inv = inv.reshape(-1)
    med = _medians(values, inv)[inv]
    madn = _medians(np.abs(values - med), inv) / MADN_FACTOR
    floor = 1e-6 * np.maximum(_medians(np.abs(values), inv), 1e-12)
    return (values - med) / np.maximum(madn, floor)[inv]


def _medians(x: NDArray[np.float64], inv: NDArray[np.intp]) -> NDArray[np.float64]:
    """The median of ``x`` in each group ``0 .. inv.max()`` (every group non-empty), as `np.median` gives it:
    one sort by (group, value), then the middle one or two values of each group."""
    xs = x[np.lexsort((x, inv))]
    counts = np.bincount(inv)
    starts = np.cumsum(counts) - counts
    return 0.5 * (xs[starts + (counts - 1) // 2] + xs[starts + counts // 2])


def robust_weights(
    residuals: NDArray[np.float64],
    obs_view: NDArray[np.intp],
    obs_marker: NDArray[np.intp],
    groups_of_views: NDArray[np.intp],
    scale: float = 1.0,
    tracks: bool = False,
) -> NDArray[np.float64]:
    """``(n_obs,)`` Tukey weights for ``(n_obs, 2)`` residuals (see the module docstring)."""
    r = np.hypot(residuals[:, 0], residuals[:, 1])
    c = TUKEY_C * scale
    if not tracks:
        return tukey_bisquare(normalise(r, groups_of_views[obs_view]), c)
    n_markers = int(obs_marker.max()) + 1 if obs_marker.size else 0
    count = np.bincount(obs_marker, minlength=n_markers).astype(float)
    rms = np.sqrt(np.bincount(obs_marker, r * r, minlength=n_markers) / np.maximum(count, 1.0))
    present = count > 0
    w_marker = np.ones(n_markers)
    w_marker[present] = tukey_bisquare(normalise(rms[present], np.zeros(int(present.sum()), np.intp)), c)
    return w_marker[obs_marker]


def floor_sparse_markers(w: NDArray[np.float64], marker_index: NDArray[np.intp], floor: float = 0.02
                         ) -> NDArray[np.float64]:
    """IMOD's rule: a marker with fewer than 4 weights above ``floor`` gets ``floor`` added to all of them."""
    strong = np.bincount(marker_index, w > floor, minlength=int(marker_index.max(initial=-1)) + 1)
    return w + np.where(strong[marker_index] < MIN_WEIGHTED, floor, 0.0)


def next_weights(residuals: NDArray[np.float64], view: NDArray[np.intp], marker_index: NDArray[np.intp],
                 groups_of_views: NDArray[np.intp], settings: ModelSettings) -> NDArray[np.float64]:
    """``(n_obs,)`` one round's weights of the ``(n_obs, 2)`` ``residuals`` (1 where NaN: a point not fitted),
    with the settings' tuning and, where it has one, IMOD's floor (`floor_sparse_markers`)."""
    ok = np.all(np.isfinite(residuals), axis=1)
    new = np.ones(len(view))
    new[ok] = robust_weights(residuals[ok], view[ok], marker_index[ok], groups_of_views, settings.robust_scale,
                             settings.robust_tracks)
    if settings.robust_floor > 0:
        new = floor_sparse_markers(new, marker_index, settings.robust_floor)
    return new
