"""What the dock names the files it saves: as IMOD names them, after the stack's stem (``BBa.st`` gives
``BBa.fid``, ``BBa.xf``, ``BBa.tlt``, ``BBafid.xyz``), never after a layer's name (``BBa.st_tracked.xf``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .logic import safe_stem

STACK_SUFFIXES = (".st", ".mrc", ".mrcs", ".ali", ".preali", ".rec", ".tif", ".tiff")
LAYER_SUFFIXES = (" tracked", " markers", " beads?")  # what the dock appends to a stack's name


def stem_of_name(name: str) -> str:
    """A layer's name without what the dock appends and without a stack's extension."""
    for tail in LAYER_SUFFIXES:
        if name.endswith(tail):
            name = name[: -len(tail)]
    for suffix in STACK_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return safe_stem(name)


def stack_stem(image: Any, markers: Any = None) -> str:
    """The stem of the files of a stack: its file's stem, else its layer's name (a sample, an array), else the
    markers layer's (without its ``.fid``); ``markers`` without either."""
    path = getattr(getattr(image, "source", None), "path", None) if image is not None else None
    if path:
        return stem_of_name(Path(str(path)).name)
    if image is not None:
        return stem_of_name(str(image.name))
    if markers is not None:
        path = getattr(getattr(markers, "source", None), "path", None)
        name = Path(str(path)).name if path else str(markers.name)
        for suffix in (".fid", ".csv", ".mod"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        return stem_of_name(name)
    return "markers"
