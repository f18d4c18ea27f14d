"""Align with the options of an IMOD ``align.com``: tiltalign's full model, solved as every settings is.

`read_imod_settings` reads the command file's ``tiltalign`` section and builds the variable mappings as
tiltalign does (`imod_options`); `align_markers_imod` solves them by `solver.align_markers`, so the result
is the same `Alignment` the default model gives, and its ``.xf`` carries stretch, skew and X-tilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import UsageError
from .imod_options import settings_from_com
from .result import Alignment
from .settings import ModelSettings
from .solver import align_markers
from .validation import validate_observations


def read_imod_settings(com_path: str | os.PathLike[str], tilt_angles_deg: ArrayLike,
                       points_per_view: NDArray[np.intp] | None = None) -> ModelSettings:
    """The `ModelSettings` of the ``tiltalign`` section of ``com_path`` for a series with these tilts."""
    from ..io.imod_com import read_com_section  # io imports alignment: imported here, not at the top

    return settings_from_com(read_com_section(com_path), np.asarray(tilt_angles_deg, dtype=float), points_per_view)


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
) -> Alignment:
    """Align marker observations with the tiltalign options of an IMOD command file.

    The settings of ``com_path`` (`read_imod_settings`) solved by `solver.align_markers`: the same path,
    stages, robust loop and `Alignment` as the default model.

    Parameters
    ----------
    views, markers, xy, tilt_angles_deg, image_size
        As for `solver.align_markers`: ``(n_obs,)`` 0-based views and marker ids, ``(n_obs, 2)``
        positions (first pixel's centre at 0), ``(n_views,)`` nominal (raw) tilts in degrees and
        ``(width, height)``.
    com_path
        An ``align.com`` (or any command file with a ``$tiltalign`` section).
    pixel_size_nm
        Only for reporting residuals in nm.
    global_only
        Accept ``LocalAlignments 1`` and return the global fit (the local fits are solved elsewhere);
        without it such a file is refused.
    progress
        ``progress(stage, iteration, cost)`` after each accepted step (stages ``markers``, ``full``,
        ``robust``).
    should_stop
        Polled every iteration.
    weights, start
        As for `solver.align_markers`: observation weights, and a previous solution to warm-start from.

    Raises
    ------
    UsageError
        For tiltalign options that are not carried out (named in the message).
    AlignmentError
        For input that cannot be aligned.
    """
    v, _, _, tilts, _, _ = validate_observations(views, markers, xy, tilt_angles_deg, image_size, None)
    settings = read_imod_settings(com_path, tilts, np.bincount(v, minlength=len(tilts)))
    if settings.local_alignments and not global_only:
        raise UsageError("LocalAlignments 1 in the command file: local alignments are not part of this solve;"
                         " set it to 0 to align globally")
    return align_markers(views, markers, xy, tilt_angles_deg, image_size, settings=settings,
                         pixel_size_nm=pixel_size_nm, weights=weights, progress=progress, should_stop=should_stop,
                         start=start, warn=False)
