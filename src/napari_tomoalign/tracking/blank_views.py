"""The views the tracking visits: blank ones left out, the view the beads are found on, the order of the rest.

A ruined view is not rare: the first exposure of a dose-symmetric series lost, a blanked beam, a shutter that
did not open. Its pixels barely vary (a constant written in its place), or it is dark (a camera's dark frame of
counting data). Such a view is found before the tracking (`find_blank_views`: each view against the views
nearest it in tilt), left out of the coarse alignment's chain and of the tracking, which carry on across it (as
IMOD's ``beadtrack`` with ``SkipViews``), and named in a note. The beads are found on the minimum-tilt view that
is not blank (`choose_seed_view`); a view the user names (``--seed-view``, numbered from 1; the dock's *find in
view*) is taken as it is. The others are tracked outward from it (`outward_order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import view_number

FLAT = 0.05  # a view whose pixels vary this little against its neighbours' is blank
DARK = 0.2  # a view of counts (its neighbours' pixels >= 0) this much darker than its neighbours is blank
NEIGHBOURS = 2  # on each side in tilt: the views a view is compared with
SAMPLE_ROWS = 64  # rows of each view read (every 4th pixel of them): a 4k view is not read whole


def view_level(view: NDArray) -> tuple[float, float, float]:
    """``(mean, spread, low)`` of a sample of a view's pixels (`SAMPLE_ROWS` rows spread over it, every 4th
    pixel): the spread is the 1-99 percentile range, ``low`` the 1st percentile."""
    rows = np.unique(np.linspace(0, view.shape[0] - 1, SAMPLE_ROWS).astype(int))
    values = np.asarray(view[rows, ::4], dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 0.0, 0.0
    lo, hi = np.percentile(values, [1.0, 99.0])
    return float(values.mean()), float(hi - lo), float(lo)


def find_blank_views(stack: NDArray, tilt_angles_deg: ArrayLike, views: Sequence[int] | None = None) -> list[int]:
    """The 0-based views that are blank: flat (spread under `FLAT` of the median of the `NEIGHBOURS` views on
    each side in tilt) or, for counts (those views' pixels all >= 0), dark (mean under `DARK` of theirs). Never
    more than a third of the series: so many is not blank views but a series unlike this rule's idea of one.
    ``views``: test only these (and read only them and their neighbours)."""
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    levels: dict[int, tuple[float, float, float]] = {}

    def level(v: int) -> tuple[float, float, float]:
        if v not in levels:
            levels[v] = view_level(np.asarray(stack[v]))
        return levels[v]

    order = [int(v) for v in np.argsort(tilts, kind="stable")]
    where = {v: p for p, v in enumerate(order)}
    blank = []
    for v in range(len(tilts)) if views is None else [int(v) for v in views]:
        p = where[v]
        near = np.array([level(w) for w in order[max(0, p - NEIGHBOURS) : p] + order[p + 1 : p + 1 + NEIGHBOURS]])
        if len(near) == 0:
            continue
        mean, spread, _ = np.median(near, axis=0)
        counts = bool(np.all(near[:, 2] >= 0.0)) and mean > 0.0
        if level(v)[1] < FLAT * spread or (counts and level(v)[0] < DARK * mean):
            blank.append(v)
    return sorted(blank) if len(blank) <= len(tilts) // 3 else []


def first_clear_view(stack: NDArray, tilt_angles_deg: ArrayLike) -> int:
    """The minimum-tilt view that is not blank, reading only the views it needs (a GUI's default view)."""
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    order = [int(v) for v in np.argsort(np.abs(tilts), kind="stable")]
    for v in order[: len(order) // 3 + 1]:  # more blank than a third: not blank views (`find_blank_views`)
        if not find_blank_views(stack, tilts, [v]):
            return v
    return order[0]


def choose_seed_view(tilt_angles_deg: ArrayLike, blank: list[int] | tuple[int, ...] = (),
                     given: int | None = None) -> int:
    """The 0-based view to find the beads on: ``given``, else the minimum tilt that is not ``blank``."""
    if given is not None:
        return int(given)
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    order = [int(v) for v in np.argsort(np.abs(tilts), kind="stable") if int(v) not in set(blank)]
    return order[0] if order else int(np.argmin(np.abs(tilts)))


def blank_note(blank: list[int] | tuple[int, ...], tilt_angles_deg: ArrayLike, seed: int) -> str | None:
    """The note that names the blank views left out, and the seed view when the minimum tilt was one of them."""
    if not blank:
        return None
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    named = ", ".join(f"{view_number(v)} ({tilts[v]:.1f} deg)" for v in blank)
    views, are = ("views", "are") if len(blank) > 1 else ("view", "is")
    moved = int(np.argmin(np.abs(tilts))) in blank
    return (f"note: {views} {named} {are} blank (flat, or dark beside {'their' if len(blank) > 1 else 'its'}"
            " neighbours): left out of the tracking, which carries on across, and so of the alignment and the"
            " tomogram" + (f"; the beads are found on view {view_number(seed)} ({tilts[seed]:.1f} deg), --seed-view"
                            " to choose another" if moved else ""))


def checked_exclusions(excluded: Sequence[int], n_views: int, seed: int | None) -> list[int]:
    """The 0-based views ``--exclude-views`` leaves out of the tracking (as ``beadtrack``'s ``SkipViews``), checked
    against an ``n_views`` series and the given seed view; a `UsageError` numbered from 1 otherwise."""
    from ..conventions import view_index
    from ..errors import UsageError

    out = sorted({view_index(view_number(v), n_views, what="--exclude-views") for v in excluded})
    if seed is not None and seed in out:
        raise UsageError(f"--seed-view {view_number(seed)} is one of --exclude-views: find the beads on a view that"
                         " is used")
    if n_views - len(out) < 2:
        raise UsageError(f"--exclude-views leaves {n_views - len(out)} of {n_views} views; at least two must stay")
    return out


def excluded_note(excluded: Sequence[int], tilt_angles_deg: ArrayLike) -> str | None:
    """The note that names the views ``--exclude-views`` left out of the tracking."""
    if not excluded:
        return None
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    named = ", ".join(f"{view_number(v)} ({tilts[v]:.1f} deg)" for v in excluded)
    numbers = ",".join(str(view_number(v)) for v in excluded)
    return (f"note: view{'s' if len(excluded) > 1 else ''} {named} left out (--exclude-views): not tracked; 'run'"
            f" leaves {'them' if len(excluded) > 1 else 'it'} out of the fit and the tomogram too, 'align' and"
            f" 'reconstruct' when given --exclude-views {numbers} as well")


def outward_order(tilts: NDArray[np.float64], seed_view: int, skip: Sequence[int] = ()) -> list[tuple[int, int]]:
    """``(view, neighbour toward the seed)`` pairs, alternating sides outward from ``seed_view``, ``skip`` left out."""
    order = np.array([v for v in np.argsort(tilts, kind="stable") if v == seed_view or int(v) not in set(skip)])
    pos = int(np.flatnonzero(order == seed_view)[0])
    up, down = list(order[pos:]), list(order[: pos + 1][::-1])
    pairs = []
    for k in range(1, max(len(up), len(down))):
        if k < len(up):
            pairs.append((int(up[k]), int(up[k - 1])))
        if k < len(down):
            pairs.append((int(down[k]), int(down[k - 1])))
    return pairs


def said_blank(result: Any, blank: list[int]) -> None:
    """The fit's warning that the blank views have no markers at all goes: the blank views' note said it, and why
    (new user's nit, session 13: the same views named twice, the second time as a problem)."""
    from ..conventions import format_views

    al = result.alignment
    if blank and al is not None and isinstance(al.warnings, list):
        tail = f"views {format_views(sorted(blank))}"
        al.warnings[:] = [w for w in al.warnings if not ("have no markers at all" in w and f": {tail}" in w
                                                         and w.split(f": {tail}", 1)[1][:1] in ("", ";"))]
