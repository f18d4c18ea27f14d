"""Checks at the entry of the public image functions (WBP, aligned stack, tracking).

A NaN or infinite pixel spreads through a warp, a filter or a back-projection into every voxel it
touches, and the result looks like data; so each view is checked before any work, one view at a time (a
memory map is read once, never copied whole), and the error names the view as a person counts it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import view_number

FLOAT32_MAX = float(np.finfo(np.float32).max)
LEAVE_OUT = "replace them (for example with the view's mean) or leave the view out"
# tracking (`run`, `track`, the dock's Track) has no way to leave a view out: it says only what can be done
REPLACE = "replace them, for example with the view's mean (tracking cannot leave a view out)"


def check_finite_views(stack: NDArray, views: ArrayLike | None = None, *, what: str = "image",
                       remedy: str = LEAVE_OUT) -> None:
    """Raise ValueError naming the first view (numbered from 1) of ``stack`` that holds NaN or inf.

    A pixel beyond float32's range counts too: the views are filtered and warped in float32, where it
    becomes infinite. ``views``: the 0-based views to check (the ones that will be used); all by default.
    """
    if views is None and getattr(stack, "checked_finite", False):  # a stack file's views, checked a moment ago
        return
    index = range(int(np.shape(stack)[0])) if views is None else np.asarray(views, dtype=np.intp).ravel()
    for j in index:
        view = np.asarray(stack[int(j)])
        if view.dtype.kind not in "fc":  # integer pixels always fit
            return
        check_finite_view(view, int(j), what=what, remedy=remedy)
    if views is None and hasattr(stack, "checked_finite"):  # `io.checked_stack.CheckedStack`: read once, not twice
        stack.checked_finite = True


def check_finite_view(view: NDArray, j: int, *, what: str = "image", remedy: str = LEAVE_OUT) -> None:
    """Raise ValueError if the pixels of view ``j`` (0-based; named from 1) hold NaN, inf or beyond float32's
    range: `check_finite_views` for a view read by the caller (a streamed stack)."""
    if view.dtype.kind not in "fc":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(view, dtype=np.float64)  # one pass; only a doubtful view is looked at closer
        if np.isfinite(total) and abs(total) <= FLOAT32_MAX or np.all(np.abs(view) <= FLOAT32_MAX):
            return
    raise ValueError(f"view {view_number(int(j))} of the {what} holds NaN or infinite pixels (or beyond"
                     f" float32's range); {remedy}")


def check_tilts_below_90(tilts_deg: NDArray[np.float64], views: NDArray[np.intp]) -> None:
    """Raise ValueError naming the first of ``views`` whose tilt is at or beyond +-90 degrees."""
    bad = views[np.abs(tilts_deg[views]) >= 90]
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"view {view_number(j)} has a tilt of {tilts_deg[j]:g} deg; a back-projection needs tilts"
                         " strictly between -90 and 90 degrees (leave that view out with use_view)")


__all__ = ["check_finite_view", "check_finite_views", "check_tilts_below_90"]
