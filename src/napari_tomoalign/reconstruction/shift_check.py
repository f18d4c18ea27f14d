"""``--shift X Z`` (IMOD's ``SHIFT``) checked against the views and the markers before any work (new user s14, finding 24:
``--shift 5000 0`` wrote an all-zero tomogram and ``--shift 0 5000`` one of nothing but streaks, both without a word).

IMOD's ``tilt`` takes any shift; a user judges it by what comes out. So, in IMOD's numbers (unbinned pixels; the
volume is ``W`` wide, the aligned frame's width, and ``T`` thick; with ``SHIFT x z`` it holds the specimen's
``x`` from ``-W/2 - SHIFT_x`` to ``W/2 - SHIFT_x`` and its ``z`` from ``SHIFT_z - T/2`` to ``SHIFT_z + T/2``, z as the
markers' fid.xyz, `positioning.wbp_shift`):

- **refused** when the volume misses every view: a voxel at ``(x, z)`` projects to ``u = x cos t + z sin t`` in the
  view of tilt ``t`` (its ``W`` columns about the axis); over the volume ``u`` spans the centre's ``u`` plus or minus
  ``(W - 1)/2 |cos t| + (T - 1)/2 |sin t|``, and if that span misses the view's columns in every view, no voxel
  gets anything: the tomogram is all zero. The message gives the X range that keeps some of it for this thickness;
- **refused** when the volume would reach further from the tilt axis than the thickest tomogram may be
  (`jobs.facts.MAX_THICKNESS_FACTOR` times the image's larger side, as ``--thickness``): no section is there;
- **warned** when the alignment has markers (fid.xyz) and the volume lies wholly above the highest of them or
  below the lowest (or beside all of them in X): the specimen is where the gold is, on its faces or in it, so
  the volume is likely empty resin; the warning gives the Z that centres the markers. A volume between two bead
  layers holding none of them is the usual thin slab of the middle of a cell (s15 new user: it was warned about).

The X-axis tilt and Z factors are left out of the first rule (they move a voxel by a few per cent of z at most).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def x_range(tilts_deg: NDArray[np.float64], width: int, thickness: int, z_centre: float) -> tuple[float, float]:
    """The IMOD ``SHIFT x`` (unbinned pixels) from the lowest to the highest that leave some of a ``width`` x
    ``thickness`` volume centred at specimen height ``z_centre`` inside at least one view of ``tilts_deg``."""
    t = np.radians(np.asarray(tilts_deg, dtype=float))
    c, s = np.cos(t), np.sin(t)
    reach = (width - 1) / 2.0 * (1.0 + np.abs(c)) + (thickness - 1) / 2.0 * np.abs(s)
    # the centre's specimen x is -SHIFT_x: |(-SHIFT_x) cos t + z_centre sin t| < reach
    return float(np.min((z_centre * s - reach) / c)), float(np.max((z_centre * s + reach) / c))


def check_shift(shift: tuple[float, float], tilts_deg: NDArray[np.float64], width: int, thickness: int,
                image_size: tuple[int, int]) -> None:
    """`errors.UsageError` when IMOD's ``SHIFT`` ``shift`` puts the volume outside every view, or beyond where any
    specimen may be (module docstring)."""
    from ..errors import UsageError
    from ..jobs.facts import MAX_THICKNESS_FACTOR

    sx, sz = (float(v) for v in shift)
    far = MAX_THICKNESS_FACTOR * max(image_size) / 2.0
    if abs(sz) + thickness / 2.0 > far:
        most = max(far - thickness / 2.0, 0.0)
        reach = abs(sz) + thickness / 2.0
        raise UsageError(f"--shift {sx:g} {sz:g}: the volume ({thickness} px thick) would reach {reach:.0f} px from the"
                         f" tilt axis, beyond the {far:.0f} px the thickest tomogram reaches ({MAX_THICKNESS_FACTOR} x the"
                         f" image size, as --thickness): no specimen is there; give Z within +-{most:.0f}")
    lo, hi = x_range(tilts_deg, width, thickness, sz)
    if not lo < sx < hi:
        raise UsageError(f"--shift {sx:g} {sz:g}: the volume ({width} px wide, {thickness} px thick) would lie outside"
                         f" every view, an empty tomogram; for this thickness and Z, X may go from {np.ceil(lo):.0f} to"
                         f" {np.floor(hi):.0f} (0 keeps the volume over the tilt axis)")


def markers_outside(shift: tuple[float, float], xyz: NDArray[np.float64], width: int, thickness: int,
                    offset_deg: float, x_axis_tilt_deg: float, given: bool = True) -> str | None:
    """A warning when the volume that IMOD's ``SHIFT`` ``shift`` places lies wholly above or below the markers ``xyz``
    (fid.xyz, x and y from the image's centre, z from the tilt axis; after the tilt offset and the XAXISTILT applied,
    to first order, as `positioning.level_parameters` places them), or beside all of them in X; None otherwise.
    ``given``: the user gave the shift (the warning names it), else the volume is where the plan put it."""
    from .positioning import wbp_x_tilts

    p = np.asarray(xyz, dtype=float)
    p = p[np.all(np.isfinite(p), axis=1)]
    if p.size == 0:
        return None
    d, f = np.radians(offset_deg), np.radians(float(wbp_x_tilts(0.0, x_axis_tilt_deg)))
    z = p[:, 0] * np.sin(d) + (p[:, 2] * np.cos(f) - p[:, 1] * np.sin(f)) * np.cos(d)
    sx, sz = (float(v) for v in shift)
    beside = not np.any(np.abs(p[:, 0] + sx) <= width / 2.0)
    if not beside and sz - thickness / 2.0 <= z.max() and sz + thickness / 2.0 >= z.min():
        return None
    hint_x = -float(np.median(p[:, 0])) if beside else sx
    where = "beside all of them in X" if beside else "above them all" if sz - thickness / 2.0 > z.max() else (
        "below them all")
    placed = f"--shift {sx:g} {sz:g} puts the volume" if given else "the volume lies"
    return (f"warning: {placed} ({thickness} px thick) at z {sz - thickness / 2:.0f} to {sz + thickness / 2:.0f},"
            f" {where}: the {len(p)} markers lie at z {z.min():.0f} to {z.max():.0f}"
            f" (unbinned px about the tilt axis); the volume likely holds no specimen; --shift {hint_x:.0f}"
            f" {(z.min() + z.max()) / 2:.0f} centres them")


def plan_warnings(plan: Any) -> list[str]:
    """The warnings a `tomogram_plan.TomogramPlan` carries (its ``info``'s ``shift_warnings``)."""
    return list(plan.info.get("shift_warnings", ()))
