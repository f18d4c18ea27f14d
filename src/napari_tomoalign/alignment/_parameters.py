"""How the per-view variables (rotation, tilt, magnification) are fixed, shared or grouped.

A *mapping* assigns each view a column of the solver's unknown vector, or -1 where the value is
held fixed. Views that share a column share one value. The gauge (see the alignment model) fixes
the column that holds the reference view's tilt and magnification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Mode = Literal["fixed", "one", "view", "group"]
MODES: tuple[str, ...] = ("fixed", "one", "view", "group")


@dataclass(frozen=True)
class VariableOption:
    """How one kind of per-view variable is solved.

    Parameters
    ----------
    mode
        ``"fixed"`` (held at its start value), ``"one"`` (one value for all views), ``"view"``
        (independent per view) or ``"group"`` (one value per block of ``group_size`` neighbouring
        views, in stack order).
    group_size
        Views per block when ``mode == "group"``.
    """

    mode: Mode = "view"
    group_size: int = 5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown variable mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.mode == "group" and int(self.group_size) < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")

    @classmethod
    def parse(cls, text: str) -> VariableOption:
        """Read ``"fixed"``, ``"one"``, ``"view"``, ``"group"`` or ``"group:N"``."""
        mode, _, size = str(text).partition(":")
        if mode == "group" and size:
            try:
                n = int(size)
            except ValueError:
                raise ValueError(f"group size in {text!r} is not a whole number; write e.g. group:5") from None
            return cls("group", n)
        if size:
            raise ValueError(f"only 'group' takes a size, got {text!r}")
        return cls(mode)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"group:{self.group_size}" if self.mode == "group" else self.mode


def view_groups(option: VariableOption, n_views: int) -> NDArray[np.intp]:
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
    groups = view_groups(option, len(included))
    groups = np.where(included, groups, -1)
    if gauge_view is not None and groups[gauge_view] >= 0:
        groups = np.where(groups == groups[gauge_view], -1, groups)
    labels = np.unique(groups[groups >= 0])
    columns = np.full(len(groups), -1, dtype=np.intp)
    free = groups >= 0
    columns[free] = np.searchsorted(labels, groups[free]) + first_column
    return columns, len(labels)
