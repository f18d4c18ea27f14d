"""How the per-view variables (rotation, tilt, magnification) are fixed, shared or grouped.

A *mapping* assigns each view a column of the solver's unknown vector, or -1 where the value is
held fixed. Views that share a column share one value. The gauge (see the alignment model) fixes
the column that holds the reference view's tilt and magnification.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .arrays import unique
from .model import DX, DY, MAG, ROT, TILT
from .options import AlignmentOptions, VariableOption


def variable_groups(option: VariableOption, n_views: int) -> NDArray[np.intp]:
    """``(n_views,)`` group label of each view, or -1 for every view when the variable is fixed."""
    if option.mode == "fixed":
        return np.full(n_views, -1, dtype=np.intp)
    if option.mode == "one":
        return np.zeros(n_views, dtype=np.intp)
    if option.mode == "view":
        return np.arange(n_views, dtype=np.intp)
    return np.arange(n_views, dtype=np.intp) // int(option.group_size)


def column_map(
    option: VariableOption,
    included: NDArray[np.bool_],
    gauge_view: int | None,
    first_column: int,
) -> tuple[NDArray[np.intp], int]:
    """Columns of the unknown vector for one variable kind.

    Parameters
    ----------
    option
        How the variable is solved.
    included
        ``(n_views,)`` mask of the views in the fit; excluded views get -1.
    gauge_view
        The view whose value is held fixed together with every view sharing its group, or None.
    first_column
        The first free column number.

    Returns
    -------
    columns
        ``(n_views,)`` column index per view, -1 where fixed.
    n_columns
        How many columns were used.
    """
    groups = variable_groups(option, len(included))
    groups = np.where(included, groups, -1)
    if gauge_view is not None and groups[gauge_view] >= 0:
        groups = np.where(groups == groups[gauge_view], -1, groups)
    labels = unique(groups[groups >= 0])
    columns = np.full(len(groups), -1, dtype=np.intp)
    free = groups >= 0
    columns[free] = np.searchsorted(labels, groups[free]) + first_column
    return columns, len(labels)


def free_per_view(options: AlignmentOptions, stage_tilt: bool) -> int:
    """How many unknowns a view has on its own in the fullest stage."""
    n = 2
    n += options.rotation.mode == "view"
    n += options.magnification.mode == "view"
    n += stage_tilt and options.tilt.mode == "view"
    return n


def shift_gauge(
    tilts_rad: NDArray[np.float64], rot_rad: NDArray[np.float64], included: NDArray[np.bool_], ref: int
) -> list[tuple[int, int]]:
    """The three shift components held fixed to remove the translation gauge.

    Both shifts of the reference view, and the better-conditioned shift of the included view
    whose tilt differs most from it.
    """
    diff = np.where(included, np.abs(np.sin(tilts_rad - tilts_rad[ref])), -1.0)
    k = int(np.argmax(diff))
    fixed = [(ref, DX), (ref, DY)]
    if diff[k] > 1e-6:
        fixed.append((k, DX if abs(np.cos(rot_rad[k])) >= abs(np.sin(rot_rad[k])) else DY))
    return fixed


def columns(
    included: NDArray[np.bool_],
    ref: int,
    rotation: VariableOption,
    tilt: VariableOption,
    magnification: VariableOption,
    shift_fixed: list[tuple[int, int]],
) -> tuple[NDArray[np.intp], int]:
    """``(n_views, 5)`` unknown columns for one stage, and how many there are."""
    n_views = len(included)
    cols = np.full((n_views, 5), -1, dtype=np.intp)
    n = 0
    for kind, option, gauge in ((TILT, tilt, ref), (ROT, rotation, None), (MAG, magnification, ref)):
        c, k = column_map(option, included, gauge, n)
        cols[:, kind] = c
        n += k
    for kind in (DX, DY):
        free = included.copy()
        for view, comp in shift_fixed:
            if comp == kind:
                free[view] = False
        idx = np.flatnonzero(free)
        cols[idx, kind] = n + np.arange(len(idx))
        n += len(idx)
    return cols, n
