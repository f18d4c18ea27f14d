"""The views a hand-over leaves out, restored: the number of views and the excluded views' nominal tilts.

RELION's tilt-series star and the CryoET Data Portal JSON list only the views used (each with its index in the
raw stack), so a reader sees a gap where views were excluded before the last one used, and nothing of those
after it. IMOD's ``.xf`` and ``.tlt`` need a line for every view of the stack. `restore_views` makes the count
whole and gives each view the file does not describe its nominal tilt:

- the count: ``n_views`` given (``--n-views``, or the header of ``--stack``), else the file's own record
  (RELION's ``rlnTomoFrameCount``, AreTomo's ``RawSize``, IMOD's line count); where it cannot be known, the
  views up to the last one listed, with one warning (`ViewsNotRecorded`) that says so and how to give it;
- the tilt of a view the file does not list: the stack's nominal tilts (``--stack``: its ``.rawtlt``, ``.mdoc``
  or extended header, as `tilt_sources` finds them), else the nominal tilts the file records for the views it
  lists (RELION's ``rlnTomoNominalStageTiltAngle``) when they lie on one tilt step (as a series taken in tilt
  order does), else an estimate from the solved tilts on one step, with a warning; the excluded views stay
  undetermined (IMOD's files give them the unit transform, as this package writes every view it did not fit).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from ..conventions import format_views
from .alignment import SavedAlignment
from .errors import FileFormatError

STEP_TOLERANCE_DEG = 0.01  # recorded nominal tilts on one step to this (rawtlt files keep 2 decimals)
ESTIMATE_TOLERANCE_DEG = 3.0  # solved tilts this near one step (a series in tilt order): the others estimated on it


class ViewsNotRecorded(UserWarning):
    """A hand-over does not record how many views the stack has, or the tilts of the views it left out."""


def _on_one_step(index: NDArray[np.intp], tilts: NDArray[np.float64], tolerance: float) -> NDArray[np.float64] | None:
    """``(step, start)`` of the line through ``tilts`` at ``index`` when every one is within ``tolerance`` of it."""
    if index.size < 2:
        return None
    fit = np.polyfit(index.astype(float), tilts, 1)
    return fit if np.max(np.abs(np.polyval(fit, index) - tilts)) <= tolerance else None


def restore_views(saved: SavedAlignment, where: object, *, n_views: int | None = None,
                  nominal_deg: NDArray[np.float64] | None = None,
                  how: str = "--n-views N or --stack STACK", how_tilts: str = "--stack STACK") -> SavedAlignment:
    """``saved`` with ``n_views`` views (or as many as it records), every view the file does not describe given a
    nominal tilt (module docstring); `ViewsNotRecorded` warns of what could not be known (``how`` and
    ``how_tilts`` say how to give the count and the tilts), `FileFormatError` refuses a count that the file's own
    indices contradict."""
    n = len(saved.transforms)
    if n_views is not None:
        if n_views < n:
            raise FileFormatError(f"{where}: lists view {n} but the stack has {n_views} views; give the stack (or the"
                                  " count) of the series this alignment was made on")
        if n_views > n and saved.count_known:
            raise FileFormatError(f"{where}: records {n} views but the stack has {n_views}; give the stack (or the"
                                  " count) of the series this alignment was made on")
        if n_views > n:
            saved = _padded(saved, n_views)
    elif not saved.count_known:
        warnings.warn(f"{where}: the file lists only the views used ({int(saved.view_determined.sum())}, up to view {n});"
                      f" views after {n} that were left out, if any, cannot be known: give {how} to restore them",
                      ViewsNotRecorded, stacklevel=2)
    tilts = np.asarray(saved.tilt_angles_deg, dtype=float).copy()
    unknown = ~np.isfinite(tilts)
    if not unknown.any():
        return replace(saved, count_known=True)
    if nominal_deg is not None:
        if len(nominal_deg) != tilts.size:
            raise FileFormatError(f"{where}: the stack has {len(nominal_deg)} tilt angles for {tilts.size} views")
        tilts[unknown] = nominal_deg[unknown]
    else:
        tilts[unknown] = _estimated(saved, unknown, where, how_tilts)
    return replace(saved, tilt_angles_deg=tilts, count_known=True)


def _estimated(saved: SavedAlignment, unknown: NDArray[np.bool_], where: object, how_tilts: str) -> NDArray[np.float64]:
    """Tilts for the ``unknown`` views: the recorded nominal tilts' step, else the solved tilts', else 0 (warned)."""
    j = np.arange(unknown.size)
    nominal = saved.nominal_tilts_deg
    if nominal is not None and len(nominal) == unknown.size:
        known = np.isfinite(nominal) & ~unknown
        fit = _on_one_step(j[known], np.asarray(nominal, float)[known], STEP_TOLERANCE_DEG)
        if fit is not None:
            return np.round(np.polyval(fit, j[unknown]), 2)
    det = saved.view_determined & np.isfinite(saved.tilt_angles_deg)
    fit = _on_one_step(j[det], np.asarray(saved.tilt_angles_deg, float)[det], ESTIMATE_TOLERANCE_DEG)
    views = format_views(j[unknown])
    if fit is not None:
        warnings.warn(f"{where}: the tilts of views {views} (left out) are not recorded; written as estimates on the"
                      f" others' step of {fit[0]:.2f} deg: give {how_tilts} for their nominal tilts",
                      ViewsNotRecorded, stacklevel=3)
        return np.round(np.polyval(fit, j[unknown]), 2)
    warnings.warn(f"{where}: the tilts of views {views} (left out) are not recorded; written as 0: give "
                  f"{how_tilts} for their nominal tilts", ViewsNotRecorded, stacklevel=3)
    return np.zeros(int(unknown.sum()))


def _padded(saved: SavedAlignment, n: int) -> SavedAlignment:
    """``saved`` with views up to ``n``: the new ones not determined, their tilts not known (NaN)."""
    k = n - len(saved.transforms)
    nominal = saved.nominal_tilts_deg
    return replace(
        saved, transforms=np.concatenate([saved.transforms, np.full((k, 2, 3), np.nan)]),
        tilt_angles_deg=np.concatenate([saved.tilt_angles_deg, np.full(k, np.nan)]),
        view_determined=np.concatenate([saved.view_determined, np.zeros(k, dtype=bool)]),
        nominal_tilts_deg=None if nominal is None else np.concatenate([nominal, np.full(k, np.nan)]),
        x_tilts_deg=None if saved.x_tilts_deg is None else np.concatenate([saved.x_tilts_deg, np.zeros(k)]))


@dataclass(frozen=True)
class StackFacts:
    """What a raw stack's header (and its tilt source) says of the series an alignment belongs to."""

    n_views: int
    image_size: tuple[int, int]
    pixel_size_nm: float | None
    tilts_deg: NDArray[np.float64] | None  # nominal, from its .rawtlt, .mdoc or extended header (`tilt_sources`)
    pre_exposure: NDArray[np.float64] | None = None  # e/A^2 before each view, from its .mdoc (`mdoc_dose`)


def stack_facts(stack: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None,
                n_views: int | None = None) -> StackFacts:
    """The `StackFacts` of ``stack`` (``--stack``); an ``image_size`` or ``n_views`` also given must agree."""
    from .mrc import open_tilt_series

    series = open_tilt_series(stack, strict_tilts=False)
    n, rows, cols = series.data.shape
    if image_size is not None and tuple(image_size) != (cols, rows):
        raise FileFormatError(f"{stack} is {cols} x {rows}, not the --image-size {image_size[0]} x {image_size[1]}"
                              " given; give one of them")
    if n_views is not None and n_views != n:
        raise FileFormatError(f"{stack} has {n} views, not the --n-views {n_views} given; give one of them")
    pix = series.pixel_size_angstrom / 10.0 if series.pixel_size_angstrom else None
    tilts = None if series.tilt_angles_deg is None else np.asarray(series.tilt_angles_deg, dtype=float)
    from .mdoc_dose import stack_pre_exposure

    return StackFacts(n, (cols, rows), pix, tilts, stack_pre_exposure(stack, n))
