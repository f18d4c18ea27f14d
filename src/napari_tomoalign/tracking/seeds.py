"""Choosing the seed beads: a target number spread over the field and over both surfaces of the section
(after IMOD's ``pickbestseed``).

Clustered or elongated beads (clumps) and beads near the borders are left out unless there are too
few others. When the beads' heights are known (from short tracks), they are split into the section's
two surfaces where the heights are clearly bimodal, and each surface gets half of the target. Within a
surface, beads are taken one at a time, each the one farthest from those already taken, weighted by
its quality, so that the seeds cover the field evenly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

MIN_BEADS = 6


def default_border_px(image_size: tuple[int, int], bead_diameter_px: float) -> float:
    """The seeds' border: the whole bead and the ring its background is measured on inside the view (half
    a diameter plus 3 px). IMOD's ``BordersInXandY`` (32 px per 1024 of the larger side) left out beads that
    stay in the field in most views; the tracker follows a bead that leaves the field while it is inside.
    ``image_size`` is kept for callers that size a border by the view."""
    del image_size
    return float(bead_diameter_px) / 2.0 + 3.0


def surfaces(z: NDArray[np.float64]) -> NDArray[np.intp]:
    """``(n,)`` 0 (lower) or 1 (upper) surface from a two-means split of the heights; all 0 when the heights
    are not clearly bimodal (the gap between the groups is under five times the spread within them)."""
    z = np.asarray(z, dtype=float)
    if len(z) < 4 or not np.all(np.isfinite(z)):
        return np.zeros(len(z), dtype=np.intp)
    lo, hi = float(z.min()), float(z.max())
    label = np.zeros(len(z), dtype=np.intp)
    for _ in range(20):
        new = (np.abs(z - hi) < np.abs(z - lo)).astype(np.intp)
        if new.min() == new.max():
            return np.zeros(len(z), dtype=np.intp)
        if np.array_equal(new, label):
            break
        label = new
        lo, hi = float(z[label == 0].mean()), float(z[label == 1].mean())
    spread = np.sqrt((np.sum((z[label == 0] - lo) ** 2) + np.sum((z[label == 1] - hi) ** 2)) / max(len(z) - 2, 1))
    return label if hi - lo > 5.0 * max(spread, 1e-9) else np.zeros(len(z), dtype=np.intp)


def _spread(xy: NDArray[np.float64], quality: NDArray[np.float64], k: int, centre: NDArray[np.float64]) -> list[int]:
    """Greedy farthest-point choice of ``k`` rows, each distance weighted by quality (0..1]."""
    if k <= 0 or len(xy) == 0:
        return []
    first = int(np.argmax(quality / (1.0 + np.hypot(*(xy - centre).T) / max(float(np.ptp(xy)), 1.0))))
    chosen = [first]
    dist = np.hypot(*(xy - xy[first]).T)
    while len(chosen) < min(k, len(xy)):
        score = dist * quality
        score[chosen] = -1.0
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        dist = np.minimum(dist, np.hypot(*(xy - xy[nxt]).T))
    return chosen


def pick_seeds(
    xy: ArrayLike,
    n_beads: int | None,
    image_size: tuple[int, int],
    *,
    bead_diameter_px: float,
    avoid: ArrayLike | None = None,
    z_px: ArrayLike | None = None,
    quality: ArrayLike | None = None,
    border_px: float | None = None,
    min_beads: int = MIN_BEADS,
) -> NDArray[np.intp]:
    """Indices of the chosen seeds among candidates ``xy`` ``(n, 2)``.

    Parameters
    ----------
    n_beads
        Target number of seeds; None takes every bead that is not avoided or at a border.
    image_size
        ``(width, height)`` of the view.
    avoid
        ``(n,)`` True for clumps (clustered or elongated candidates).
    z_px
        ``(n,)`` heights of the beads, to balance the two surfaces; None when unknown.
    quality
        ``(n,)`` quality in (0, 1] (1 best), used to prefer beads; default all 1.
    border_px
        Width of the border to avoid; default `default_border_px`.
    min_beads
        Clumps and border beads are added (best first) when fewer than this many others remain.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    avoid_a = np.zeros(n, bool) if avoid is None else np.asarray(avoid, dtype=bool)
    q = np.ones(n) if quality is None else np.clip(np.nan_to_num(np.asarray(quality, float), nan=0.01), 0.01, 1.0)
    border = default_border_px(image_size, bead_diameter_px) if border_px is None else float(border_px)
    w, h = image_size
    at_border = (xy[:, 0] < border) | (xy[:, 1] < border) | (xy[:, 0] > w - 1 - border) | (xy[:, 1] > h - 1 - border)
    target = n if n_beads is None else min(int(n_beads), n)
    pool = np.flatnonzero(~avoid_a & ~at_border)
    need = max(min(min_beads, n), target if n_beads is not None else 0)
    for extra in (~avoid_a & at_border, avoid_a & ~at_border, avoid_a & at_border):
        if len(pool) >= need:
            break
        more = np.flatnonzero(extra)
        more = more[np.argsort(-q[more], kind="stable")][: need - len(pool)]
        pool = np.concatenate([pool, more])
    if n_beads is None or len(pool) <= target:
        return np.sort(pool)
    centre = (np.array([w, h], dtype=float) - 1.0) / 2.0
    side = surfaces(np.asarray(z_px, float)[pool]) if z_px is not None else np.zeros(len(pool), np.intp)
    groups = [pool[side == s] for s in (0, 1) if np.any(side == s)]
    quota = [target // len(groups) + (1 if k < target % len(groups) else 0) for k in range(len(groups))]
    if len(groups) == 2:  # a thin surface gives what it cannot use to the other
        short = [max(0, quota[k] - len(groups[k])) for k in range(2)]
        quota = [min(quota[0], len(groups[0])) + short[1], min(quota[1], len(groups[1])) + short[0]]
    chosen = [g[_spread(xy[g], q[g], k, centre)] for g, k in zip(groups, quota)]
    return np.sort(np.concatenate(chosen)).astype(np.intp)
