"""Which views of an aligned stack are filled blank rather than warped by an alignment, and why (s15 new user:
``aligned-stack`` said "41 aligned views" while views 1 and 21, excluded from the fit, were all fill)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def excluded_views(alignment_dir: str | os.PathLike[str]) -> set[int]:
    """The 0-based views the folder's ``alignment.json`` records as excluded (``--exclude-views``, an align.com's
    ExcludeList); empty for an IMOD set or a record that cannot be read (its own reader says what is wrong)."""
    from ..io.errors import FileFormatError
    from ..io.guarded import read_text_limited

    path = Path(alignment_dir) / "alignment.json"
    if not path.is_file():
        return set()
    try:
        record = json.loads(read_text_limited(path, "alignment", 256 * 2**20))
        return {int(v) for v in record.get("excluded_views") or ()}
    except (FileFormatError, OSError, ValueError, TypeError, AttributeError):
        return set()


def blank_views_note(saved: Any, alignment_dir: str | os.PathLike[str]) -> str | None:
    """One line naming the views the alignment did not determine (filled with their mean, as the warp fills them)
    and why: excluded from the fit, or without markers; None when every view was warped by the alignment."""
    from ..conventions import format_views

    blank = np.flatnonzero(~np.asarray(saved.view_determined, bool))
    if blank.size == 0:
        return None
    excluded = excluded_views(alignment_dir)
    parts = []
    out = [int(v) for v in blank if int(v) in excluded]
    empty = [int(v) for v in blank if int(v) not in excluded]
    if out:
        parts.append(f"views {format_views(out)} excluded from the alignment" if len(out) > 1 else
                     f"view {format_views(out)} excluded from the alignment")
    if empty:
        parts.append(f"views {format_views(empty)} undetermined by it (no markers)" if len(empty) > 1 else
                     f"view {format_views(empty)} undetermined by it (no markers)")
    return (f"{blank.size} filled blank ({'; '.join(parts)}): give IMOD's tilt EXCLUDELIST {format_views(blank)}"
            " for this stack")
