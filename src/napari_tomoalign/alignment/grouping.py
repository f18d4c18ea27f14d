"""IMOD's variable mappings: which unknown (or pair of unknowns) each view's value of a variable comes from.

A mapping gives, for every view ``v``, two unknowns ``a[v]``, ``b[v]`` (-1 for none) and weights, so that

    value_v = start_v + w_a[v] q[a[v]] + w_b[v] q[b[v]]

where ``q`` are the unknowns of this variable kind (increments from the start values). A fixed view has
no unknown; a view of a block group shares its group's unknown; a view of a linear group is interpolated
between two *anchor* views. This reproduces ``tiltalign``'s automapping (IMOD 4.8.2, ``map_vars.f90``):

- **Groups by tilt.** Over a range of views, view ``v`` has relative size ``g_v = N c_v / sum(c)`` with
  ``c_v = cos(min(|theta_v|, 80 deg))^p``; it weighs ``u_v = 1 / (g_v G)`` for the default group size
  ``G``; there are ``n = max(1, round(sum u))`` groups, and group ``m`` takes views while the running sum
  of ``u`` stays ``<= m sum(u) / n + 0.01``. So with ``p > 0`` groups shrink at high tilt.
- **Block:** one unknown per group; the reference group has none.
- **Linear:** unknowns sit at the first view of each group (and at the last view of a final group of 3
  or more views). A view between anchors ``f_m`` and ``f_{m+1}`` takes
  ``w V(f_m) + (1 - w) V(f_{m+1})`` with ``w = (f_{m+1} - v) / (f_{m+1} - f_m)``. The reference group's
  first view is held fixed; its group ramps from there, and the group before it ramps to it.
- **Over a series** (``makeMapList``, `automap_groups`): the ranges given by ``<Var>NondefaultGroup
  start,end,size`` are cut out of ``1..N``; each piece is grouped on its own with its own group size. Inside a
  piece the views of no ``SeparateGroup`` are grouped first, then the views of each separate group among
  themselves (a negative size in a non-default range keeps the separate views with the others there).
  Groups of different pieces or subsets, or whose views lie more than ``G + 1`` apart, are not numbered
  consecutively, and a linear mapping never interpolates between them.

Views here are 0-based.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .arrays import unique_inverse

MAX_TILT_FOR_SIZE_DEG = 80.0


@dataclass(frozen=True)
class Mapping:
    """Unknowns and weights per view (module docstring). ``anchor_view[k]`` is unknown ``k``'s view."""

    var_a: NDArray[np.intp]
    w_a: NDArray[np.float64]
    var_b: NDArray[np.intp]
    w_b: NDArray[np.float64]
    anchor_view: NDArray[np.intp]

    @property
    def n_views(self) -> int:
        return len(self.var_a)

    @property
    def n_vars(self) -> int:
        return len(self.anchor_view)

    def values(self, q: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(n_views,)`` increments from the start values for unknowns ``q``."""
        qa = np.where(self.var_a >= 0, np.asarray(q, float)[np.maximum(self.var_a, 0)], 0.0) if self.n_vars else 0.0
        qb = np.where(self.var_b >= 0, np.asarray(q, float)[np.maximum(self.var_b, 0)], 0.0) if self.n_vars else 0.0
        return self.w_a * qa + self.w_b * qb


def fixed_mapping(n_views: int) -> Mapping:
    """Every view held at its start value."""
    none = np.full(n_views, -1, dtype=np.intp)
    return Mapping(none, np.zeros(n_views), none.copy(), np.zeros(n_views), np.zeros(0, dtype=np.intp))


def _references(reference_view: int | Sequence[int] | None) -> list[int]:
    if reference_view is None:
        return []
    if isinstance(reference_view, (int, np.integer)):
        return [int(reference_view)]
    return [int(v) for v in reference_view]


def block_mapping(labels: NDArray[np.intp], reference_view: int | Sequence[int] | None = None) -> Mapping:
    """One unknown per group label (``labels < 0``: fixed); the reference views' groups are fixed."""
    labels = np.asarray(labels, dtype=np.intp)
    free = labels >= 0
    for ref in _references(reference_view):
        if labels[ref] >= 0:
            free &= labels != labels[ref]
    _, first, inverse = unique_inverse(labels[free])
    var_a = np.full(len(labels), -1, dtype=np.intp)
    var_a[free] = inverse
    anchors = np.flatnonzero(free)[first]
    none = np.full(len(labels), -1, dtype=np.intp)
    return Mapping(var_a, free.astype(float), none, np.zeros(len(labels)), anchors.astype(np.intp))


def per_view_mapping(n_views: int, fixed_views: Sequence[int] = ()) -> Mapping:
    """An unknown for every view except ``fixed_views``."""
    labels = np.arange(n_views, dtype=np.intp)
    labels[list(fixed_views)] = -1
    return block_mapping(labels)


def tilt_groups_imod(
    tilts_deg: NDArray[np.float64],
    default_size: float,
    power: float,
    points_per_view: NDArray[np.intp] | None = None,
    views: Sequence[int] | None = None,
) -> list[list[int]]:
    """IMOD's automatic groups over one range of views (module docstring), as lists of 0-based views.

    ``views`` is the range (default: all views); views with fewer than 3 points (``points_per_view``)
    do not count towards group sizes when any view of the range is that sparse.
    """
    views = list(range(len(tilts_deg))) if views is None else list(views)
    if not views:
        return []
    t = np.abs(np.asarray(tilts_deg, dtype=float)[views])
    c = np.cos(np.radians(np.minimum(t, MAX_TILT_FOR_SIZE_DEG))) ** power
    counts = np.ones(len(views), bool)
    if points_per_view is not None:
        pts = np.asarray(points_per_view)[views]
        if np.any(pts < 3):
            counts = pts >= 3
    n = max(int(counts.sum()), 1)
    u = np.where(counts, np.sum(c[counts]) / (n * c * float(default_size)), 0.0)
    total = float(u.sum())
    n_groups = max(1, int(round(total)))
    groups: list[list[int]] = [[]]
    running = 0.0
    for k, v in enumerate(views):
        running += u[k]
        if groups[-1] and running > len(groups) * total / n_groups + 0.01 and len(groups) < n_groups:
            groups.append([])
        groups[-1].append(v)
    return groups


def linear_mapping(groups: list[list[int]], n_views: int, reference_view: int | Sequence[int] | None = None,
                   linked: Sequence[bool] | None = None) -> Mapping:
    """Unknowns at the anchor views of consecutive groups, linearly interpolated between them.

    The first view of each reference view's group is held. ``linked[m]`` says whether group ``m + 1``
    continues group ``m`` (IMOD does not interpolate across a gap in its group numbering); default all
    linked.
    """
    linked = [True] * max(len(groups) - 1, 0) if linked is None else list(linked)
    refs = _references(reference_view)
    # Anchor views and which of them are held fixed.
    anchors: list[int] = []
    ends: list[int | None] = []  # the view each group ramps to (None: no ramp)
    for m, g in enumerate(groups):
        anchors.append(g[0])
        if m + 1 < len(groups) and linked[m]:
            ends.append(groups[m + 1][0])
        elif len(g) >= 3:
            ends.append(g[-1])
        else:
            ends.append(None)
    fixed_views = {g[0] for g in groups if any(r in g for r in refs)}
    points = sorted({a for a in anchors} | {e for m, e in enumerate(ends) if e is not None and
                                              (m + 1 >= len(groups) or not linked[m])})
    free_points = [p for p in points if p not in fixed_views]
    index = {p: k for k, p in enumerate(free_points)}
    var_a = np.full(n_views, -1, dtype=np.intp)
    var_b = np.full(n_views, -1, dtype=np.intp)
    w_a, w_b = np.zeros(n_views), np.zeros(n_views)
    for m, g in enumerate(groups):
        start, end = g[0], ends[m]
        for v in g:
            if end is None or v == start:
                var_a[v], w_a[v] = index.get(start, -1), float(start not in fixed_views)
                continue
            w = (end - v) / (end - start)
            var_a[v], w_a[v] = index.get(start, -1), w if start not in fixed_views else 0.0
            var_b[v], w_b[v] = index.get(end, -1), (1.0 - w) if end not in fixed_views else 0.0
    var_a[w_a == 0] = -1
    var_b[w_b == 0] = -1
    return Mapping(var_a, w_a, var_b, w_b, np.asarray(free_points, dtype=np.intp))


def blocks_from_groups(groups: list[list[int]], n_views: int) -> NDArray[np.intp]:
    """Group labels per view (-1 for views in no group)."""
    labels = np.full(n_views, -1, dtype=np.intp)
    for m, g in enumerate(groups):
        labels[g] = m
    return labels


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
    """IMOD's groups of 0-based views over the series (module docstring, "Over a series"), in the order IMOD
    numbers them, and ``len(groups) - 1`` flags: group ``m + 1`` continues group ``m`` (consecutive numbers).

    ``tilts_deg`` ``(n_views,)`` (nominal + offset), ``default_size``, ``power`` and ``points_per_view`` are
    as for `tilt_groups_imod`; ``nondefault`` holds ``(first, last, size)`` 0-based inclusive ranges with their
    own group size (negative: the separate views stay with the others there), ``separate`` lists of 0-based
    views grouped only among themselves.
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


def group_size_power(kind: str, code: int) -> float:
    """The exponent of cos(tilt) in the group sizes of an automapped variable (IMOD's input_vars.f90)."""
    if kind == "tilt":
        return 1.0 if code in (5, 7) else 0.0
    if kind == "compression":
        return 1.0 if code == 3 else 0.0
    if kind == "x_stretch":
        return 1.5
    if kind == "skew":
        return 0.0 if code == 3 else 1.0
    return 0.0


def is_grouped(kind: str, code: int) -> bool:
    """Whether tiltalign's option ``code`` automaps variable ``kind`` in groups (tilt 5-8, the others 3 and 4)."""
    return code in ((5, 6, 7, 8) if kind == "tilt" else (3, 4))


def grouped_mapping(kind: str, code: int, groups: list[list[int]], n_views: int, held: Sequence[int],
                    linked: Sequence[bool] | None = None) -> Mapping:
    """The mapping of an automapped ``kind`` with option ``code`` over ``groups``: linear for tilt 5 and 7,
    X-stretch 4 (numbered the other way round) and the others' 3; block groups for the other codes."""
    if code in (5, 7) if kind == "tilt" else code == (4 if kind == "x_stretch" else 3):
        return linear_mapping(groups, n_views, reference_view=held, linked=linked)
    return block_mapping(blocks_from_groups(groups, n_views), held)
