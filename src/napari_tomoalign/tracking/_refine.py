"""Pass 2 of tracking and the final clean-up, on a `tracker.BeadTracker` after pass 1.

- `fill_gaps`: a robust fit with every variable free; then, view by view, every gap of a bead that the
  model puts wholly inside the image (and clear of other beads) is searched in a small box at the
  model's position with relaxed contrast limits, and points far from the model are measured again
  there (beadtrack's second round with ``FillGaps``). A find is kept only if it lies within the
  model's scatter of its prediction.
- `polish`: every point re-fitted under the prewhitened background (`_whiten`), which removes most of
  the texture's pull on the centre.
- `clean_up`: the last robust fit; points the fit down-weights (Tukey weight below 0.5) whose residual
  is also large against the scatter of the others are dropped, and the fit is repeated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..errors import Cancelled
from ._measure import measure_beads
from ._whiten import Whitener
from .result import column_medians
from .tracker import BeadTracker

Progress = Callable[[str, int, int, str], None]


def _local_contrast(tr: BeadTracker, j: int, span: int = 4) -> NDArray[np.float64]:
    """Each bead's median contrast over the ``span`` views nearest ``j`` in tilt (its whole track if none)."""
    near = np.argsort(np.abs(tr.tilts - tr.tilts[j]), kind="stable")[1 : span + 1]
    c = np.where(np.isfinite(tr.contrast), tr.contrast, np.nan)
    # np.nanmedian's numbers (NaN for a bead with no value, replaced below), without its masked-array path for
    # small arrays (numpy.ma: imported, then 1 ms a call in a 1024^2 x 41 run's gap filling)
    local, whole = column_medians(c[near]), column_medians(c)
    out = np.where(np.isfinite(c[near]).any(axis=0), local, whole)
    return np.where(np.isfinite(out), out, tr.mean_contrast)


def residual_scatter(al: Alignment) -> float:
    """A robust standard deviation of the residual lengths (MADN about the median), floored."""
    r = np.hypot(*al.residuals_px[al.obs_used].T)
    med = float(np.median(r))
    return max(med + 1.4826 * float(np.median(np.abs(r - med))), 0.05)


def fill_gaps(tr: BeadTracker, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
              ) -> int:
    """Search the gaps at the model's positions and re-measure far points; returns points added."""
    al = tr.refit(robust=True, final=True)
    if al is None:
        return 0
    scale = residual_scatter(al)
    tol = max(1.0, 4.0 * scale)
    added = 0
    views = [int(v) for v in np.argsort(np.abs(tr.tilts), kind="stable") if int(v) not in tr.skip]
    for k, j in enumerate(views):
        if should_stop is not None and should_stop():
            raise Cancelled("tracking cancelled")
        if k + 1 < len(views):  # the next view read on the second core meanwhile, if there is one
            tr.reader.prefetch(views[k + 1])
        added += _fill_view(tr, j, tol)
        if progress is not None:
            progress("fill gaps", k + 1, len(views), f"second pass: view {j}")
    tr.defer_refit(robust=True, final=True)  # made only if read: `clean_up` starts from scratch
    return added


def _fill_view(tr: BeadTracker, j: int, tol: float) -> int:
    beads = np.arange(tr.n_beads)
    pred = tr.model_prediction(j, beads)
    inside = tr.inside(pred, tr.profile.radius_px + 1.0)
    crowded = tr.crowded(pred, inside)
    clear = inside & ~crowded
    have = np.isfinite(tr.pos[j, :, 0])
    tr.measure_crowded(j, pred, np.flatnonzero(inside & crowded & ~have))
    with np.errstate(invalid="ignore"):
        far = have & (np.hypot(*(tr.pos[j] - pred).T) > tol)
    todo = np.flatnonzero(clear & (~have | far))
    if len(todo) == 0:
        return 0
    m = measure_beads(tr.reader.view(j), pred[todo], tr.templates.get(todo), tr.profile, 2.5, tr.sign,
                      tr.reader.hot_level(j), relative=tr.relative)
    ok = tr.acceptable(m, todo, pred[todo], tol, relax=0.9, contrast=_local_contrast(tr, j)[todo])
    was_missing = ~have[todo]
    tr.pos[j, todo[far[todo] & ~ok]] = np.nan
    tr.store(j, todo, m, ok)
    return int((ok & was_missing).sum())


def clean_up(tr: BeadTracker, rounds: int = 3) -> Alignment | None:
    """Drop points the robust fit rejects with a large residual, refit; returns the final alignment. The fits
    whose weights decide what is dropped start from scratch (warm-started from the last final fit, they kept
    a few false points of clumps, ``--clumps track``); with ``rounds=0`` the one fit starts from the last."""
    al = tr.refit(robust=True, final=True, cold=rounds > 0)
    for _ in range(rounds):
        if al is None or al.robust_weights is None:
            return al
        r = np.hypot(*al.residuals_px.T)
        limit = max(1.0, 5.0 * residual_scatter(al))
        with np.errstate(invalid="ignore"):
            bad = al.obs_used & (al.robust_weights < 0.5) & (r > limit)
        if not bad.any():
            return al
        beads = al.marker_ids[al.obs_marker[bad]] - 1
        tr.pos[al.obs_view[bad], beads] = np.nan
        al = tr.refit(robust=True, final=True, cold=True)
    return al


def polish(tr: BeadTracker, whitener: Whitener | None, should_stop: Callable[[], bool] | None = None) -> None:
    """Every tracked point re-fitted under the prewhitened background (`_whiten`); beads within 1.5
    diameters of another tracked bead in a view keep their position there."""
    if whitener is None:
        return
    for j in range(tr.pos.shape[0]):
        if should_stop is not None and should_stop():
            raise Cancelled("tracking cancelled")
        if j + 1 < tr.pos.shape[0]:
            tr.reader.prefetch(j + 1)
        have = np.isfinite(tr.pos[j, :, 0])
        todo = np.flatnonzero(have & ~tr.crowded(np.where(have[:, None], tr.pos[j], 0.0), have))
        if len(todo):
            tr.pos[j, todo] = whitener.refine(tr.reader.view(j), tr.pos[j, todo], tr.reader.hot_level(j))
