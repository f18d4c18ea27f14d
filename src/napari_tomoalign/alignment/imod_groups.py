"""tiltalign's automatic groups over the whole series: non-default ranges and separate groups.

`grouping.tilt_groups_imod` groups one range of views. Over a series, IMOD (``map_vars.f90``,
``makeMapList``) first cuts the ranges given by ``<Var>NondefaultGroup start,end,size`` out of ``1..N``;
each piece, default or not, is grouped on its own with its own group size. Inside a piece the views of
no ``SeparateGroup`` are grouped first, then the views of each separate group among themselves (a
negative size in a non-default range keeps the separate views with the others there). Groups of
different pieces or subsets, or whose views lie more than ``G + 1`` apart, are not numbered
consecutively, and a linear mapping never interpolates between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .grouping import tilt_groups_imod


def _pieces(n_views: int, nondefault: Sequence[tuple[int, int, float]], default_size: float) -> list[
        tuple[list[int], float, bool]]:
    """``(views, group size, segregate separate views)`` for each piece of ``0..n-1``, in view order."""
    cuts = sorted((s, e, size) for s, e, size in nondefault)
    pieces: list[tuple[list[int], float, bool]] = []
    at = 0
    for s, e, size in cuts:
        if at < s:
            pieces.append((list(range(at, s)), default_size, True))
        pieces.append((list(range(s, e + 1)), abs(size), size > 0))
        at = e + 1
    if at < n_views:
        pieces.append((list(range(at, n_views)), default_size, True))
    return pieces


def automap_groups(
    tilts_deg: NDArray[np.float64],
    default_size: float,
    power: float,
    points_per_view: NDArray[np.intp] | None = None,
    nondefault: Sequence[tuple[int, int, float]] = (),
    separate: Sequence[Sequence[int]] = (),
) -> tuple[list[list[int]], list[bool]]:
    """IMOD's groups of 0-based views over the series, and whether each group continues the previous one.

    Parameters
    ----------
    tilts_deg
        ``(n_views,)`` tilts (nominal + offset) that set the group sizes.
    default_size, power
        The default group size and the exponent of ``cos(tilt)`` (`grouping.tilt_groups_imod`).
    points_per_view
        ``(n_views,)`` points per view; sparse views do not count towards group sizes.
    nondefault
        ``(first, last, size)`` 0-based inclusive ranges with their own group size (negative: do not
        segregate the separate views in that range).
    separate
        Lists of 0-based views grouped only among themselves.

    Returns
    -------
    groups
        Lists of views, in the order IMOD numbers them.
    linked
        ``len(groups) - 1`` flags: group ``m + 1`` continues group ``m`` (consecutive numbers).
    """
    n = len(tilts_deg)
    sep_sets = [sorted(set(int(v) for v in g)) for g in separate]
    in_sep = {v for g in sep_sets for v in g}
    groups: list[list[int]] = []
    linked: list[bool] = []
    for views, size, segregate in _pieces(n, nondefault, default_size):
        subsets = [[v for v in views if v not in in_sep]] if segregate else [views]
        if segregate:
            subsets += [[v for v in views if v in set(g)] for g in sep_sets]
        for subset in subsets:
            made = tilt_groups_imod(tilts_deg, size, power, points_per_view, subset) if subset else []
            for k, g in enumerate(made):
                if groups:
                    linked.append(k > 0 and g[0] - groups[-1][-1] <= size + 1)
                groups.append(g)
    return groups, linked


def parse_nondefault(values: Sequence[str], n_views: int) -> list[tuple[int, int, float]]:
    """``<Var>NondefaultGroup`` entries (``start,end,size``, 1-based) as 0-based ranges; overlaps refused."""
    out: list[tuple[int, int, float]] = []
    for text in values:
        parts = text.replace(",", " ").split()
        try:
            start, end, size = int(parts[0]), int(parts[1]), float(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"non-default group {text!r} is not 'first,last,size'") from None
        if not (1 <= start <= end <= n_views) or size == 0:
            raise ValueError(f"non-default group {text!r} needs 1 <= first <= last <= {n_views} and a size")
        out.append((start - 1, end - 1, size))
    spans = sorted(out)
    for (_, e0, _), (s1, _, _) in zip(spans, spans[1:]):
        if s1 <= e0:
            raise ValueError(f"non-default groups overlap at view {s1 + 1}; give disjoint ranges")
    return out
