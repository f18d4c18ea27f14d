"""Values of the views a full-model fit leaves out (IMOD's ``ExcludeList``, or views without markers).

tiltalign keeps an excluded view's variables mapped: the view takes the values of the groups (block
mapping) or anchors (linear mapping) it belongs to, solved from the views that have data. So every view
gets a tilt, rotation, magnification, stretch and skew, and every per-view file has a finite line for
it. `fill_left_out_views` gives them:

- a variable shared with fitted views takes its solved value (a block group's value applies to all its
  views; a linear ramp is evaluated at the view);
- an unknown that only left-out views use (a per-view rotation, a group made only of excluded views)
  has no data: its increment from the start value is interpolated over view number from the fitted
  views' increments (held constant beyond the first and last fitted view), as tiltalign's linear
  mappings interpolate;
- the shifts, which are per view, are interpolated the same way.

Views are 0-based here; `conventions.format_views` writes them 1-based, as IMOD prints them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from ..conventions import format_views
from .full_layout import PARAM_OF_KIND
from .grouping import Mapping
from .model import DX, DY


def _design(m: Mapping) -> NDArray[np.float64]:
    """``(n_views, n_vars)`` the weight of each unknown in each view's increment."""
    out = np.zeros((m.n_views, m.n_vars))
    for var, w in ((m.var_a, m.w_a), (m.var_b, m.w_b)):
        rows = np.flatnonzero(var >= 0)
        np.add.at(out, (rows, var[rows]), w[rows])
    return out


def mapped_unknowns(m: Mapping, increments: NDArray[np.float64], fitted: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``(n_vars,)`` the unknowns of mapping ``m`` that reproduce the fitted views' ``increments``
    (from the start values); unknowns no fitted view uses get the increment interpolated at their anchor
    view."""
    a = _design(m)
    rows = a[fitted]
    seen = np.any(rows != 0.0, axis=0)
    q = np.zeros(m.n_vars)
    if seen.any():
        q[seen] = np.linalg.lstsq(rows[:, seen], increments[fitted], rcond=None)[0]
    idx = np.flatnonzero(fitted)
    if (~seen).any():
        q[~seen] = np.interp(m.anchor_view[~seen], idx, increments[idx])
    return q


def fill_left_out_views(params: NDArray[np.float64], start: NDArray[np.float64], mappings: dict[str, Mapping],
                        fitted: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``(n_views, 9)`` ``params`` with the rows of views not ``fitted`` replaced by their mapped values
    (module docstring). ``start`` holds the start values the unknowns are increments from (a kind missing
    from ``mappings`` is held there); the rows of fitted views are returned unchanged."""
    out = np.array(params, dtype=float)
    fitted = np.asarray(fitted, dtype=bool)
    left_out = ~fitted
    if not left_out.any() or not fitted.any():
        return out
    idx = np.flatnonzero(fitted)
    for kind, p in PARAM_OF_KIND.items():
        m = mappings.get(kind)
        if m is None or m.n_vars == 0:  # held at the start value
            out[left_out, p] = start[left_out, p]
            continue
        q = mapped_unknowns(m, out[:, p] - start[:, p], fitted)
        out[left_out, p] = start[left_out, p] + m.values(q)[left_out]
    for p in (DX, DY):
        out[left_out, p] = np.interp(np.flatnonzero(left_out), idx, out[idx, p])
    return out


def left_out_notes(seen: NDArray[np.bool_], fitted: NDArray[np.bool_], excluded_views: Iterable[int], source: str,
                   mapped: bool) -> list[str]:
    """Warnings naming the views left out of a fit (1-based, as IMOD numbers them): excluded (by ``source``,
    ``--exclude-views`` or ``ExcludeList``), with too few markers, or not ``seen`` (no markers at all). Their
    transforms are undetermined, or with ``mapped`` (an align.com's settings) they take their mapped values."""
    excluded = np.zeros(len(fitted), dtype=bool)
    excluded[list(excluded_views)] = True
    then = "" if mapped else " (transform undetermined)"
    out = []
    if excluded.any():
        one = int(excluded.sum()) == 1
        its, lines, are = ("its", "line is", "it") if one else ("their", "lines are", "them")
        placeholder = "" if mapped else (f": {its} .xf {lines} the identity and {its} .tlt {lines} the given angle"
                                         f"{'' if one else 's'}, placeholder{'' if one else 's'} to leave out downstream"
                                         f" (newstack -exclude, tilt's EXCLUDELIST; reconstruct leaves {are} out)")
        out.append(f"view{'' if one else 's'} {format_views(np.flatnonzero(excluded))} excluded ({source}): not in the"
                   f" fit{placeholder}")
    if (lost := ~fitted & seen & ~excluded).any():
        out.append(f"{int(lost.sum())} view(s) have too few markers to determine their parameters and were"
                   f" left out{then}: views {format_views(np.flatnonzero(lost))}")
    if (empty := ~seen & ~excluded).any():
        none, left = np.flatnonzero(empty), np.flatnonzero(excluded)
        slip = len(left) == len(none) and np.array_equal(left + 1, none)  # 0-based numbers given where 1-based are
        out.append(f"{int(empty.sum())} view(s) have no markers at all{then}: views {format_views(none)}" + (
            f"; views are numbered from 1, as IMOD does: did you mean --exclude-views {format_views(none)}?" if slip
            else f"; leave them out with --exclude-views {format_views(none)}" if not mapped else ""))
    if mapped and not fitted.all():
        out.append(f"views {format_views(np.flatnonzero(~fitted))} take the values of the groups they are mapped to;"
                   " where no fitted view shares a variable (and for the shifts) the values are interpolated from the"
                   " nearest fitted views: check these views before using them")
    return out
