"""Align with the options of an IMOD ``align.com``: tiltalign's full model, solved as every settings is.

`read_imod_settings` reads the command file's ``tiltalign`` section and builds the variable mappings as
tiltalign does (`imod_options`); `align_markers_imod` solves them by `solver.align_markers`, so the result
is the same `Alignment` the default model gives, and its ``.xf`` carries stretch, skew and X-tilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import format_views
from ..errors import UsageError
from .imod_options import settings_from_com
from .result import Alignment
from .settings import ModelSettings
from .solver import align_markers
from .validation import validate_observations


def read_imod_settings(com_path: str | os.PathLike[str], tilt_angles_deg: ArrayLike,
                       points_per_view: NDArray[np.intp] | None = None, excluded_views: Sequence[int] = ()
                       ) -> ModelSettings:
    """The `ModelSettings` of the ``tiltalign`` section of ``com_path`` for a series with these tilts; the 0-based
    ``excluded_views`` (``--exclude-views``) join its ``ExcludeList`` and are read as tiltalign reads that."""
    from ..io.imod_com import read_com_section  # io imports alignment: imported here, not at the top

    entries = read_com_section(com_path)
    if len(excluded_views):
        entries = {**entries, "ExcludeList": [",".join([*entries.get("ExcludeList", []), format_views(excluded_views)])]}
    return settings_from_com(entries, np.asarray(tilt_angles_deg, dtype=float), points_per_view)


def align_markers_imod(
    views: ArrayLike,
    markers: ArrayLike,
    xy: ArrayLike,
    tilt_angles_deg: ArrayLike,
    image_size: ArrayLike,
    com_path: str | os.PathLike[str],
    *,
    pixel_size_nm: float | None = None,
    global_only: bool = False,
    progress: Callable[[str, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    weights: ArrayLike | None = None,
    start: Alignment | None = None,
    excluded_views: Sequence[int] = (),
) -> Alignment:
    """Align marker observations with the tiltalign options of the IMOD command file ``com_path`` (an
    ``align.com``, or any file with a ``$tiltalign`` section): `solver.align_markers` with its settings
    (`read_imod_settings`; the arguments as there). ``global_only`` accepts ``LocalAlignments 1`` and returns
    the global fit (the local fits are `local.local_alignments`'); without it such a file is refused with a
    `UsageError`, as are tiltalign options that are not carried out (named in the message). ``excluded_views``
    (0-based) are added to the file's ``ExcludeList``.
    """
    v, _, _, tilts, _, _ = validate_observations(views, markers, xy, tilt_angles_deg, image_size, None)
    settings = read_imod_settings(com_path, tilts, np.bincount(v, minlength=len(tilts)), excluded_views)
    if settings.local_alignments and not global_only:
        raise UsageError("LocalAlignments 1 in the command file: local alignments are not part of this solve;"
                         " set it to 0 to align globally")
    return align_markers(views, markers, xy, tilt_angles_deg, image_size, settings=settings,
                         pixel_size_nm=pixel_size_nm, weights=weights, progress=progress, should_stop=should_stop,
                         start=start, warn=False)
