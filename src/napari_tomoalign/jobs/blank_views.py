"""Which views of an aligned stack are filled blank rather than warped by an alignment, and why (s15 new user:
``aligned-stack`` said "41 aligned views" while views 1 and 21, excluded from the fit, were all fill)."""

from __future__ import annotations

from typing import Any

import numpy as np


def blank_views_note(saved: Any) -> str | None:
    """One line naming the views the alignment did not determine (filled with their mean, as the warp fills them)
    and why: they were not in its fit (``--exclude-views``, an ExcludeList, or too few markers: the alignment's
    report says which); None when every view was warped by the alignment."""
    from ..conventions import format_views

    blank = np.flatnonzero(~np.asarray(saved.view_determined, bool))
    if blank.size == 0:
        return None
    views = f"views {format_views(blank)}" if blank.size > 1 else f"view {format_views(blank)}"
    return (f"{blank.size} filled blank ({views}: not in the alignment's fit, excluded or without markers, as its"
            f" report says): give IMOD's tilt EXCLUDELIST {format_views(blank)} for this stack")
