"""The bead diameter measured, not trusted.

People give the diameter they remember (10 nm gold that images as 12 nm with its fringe, the pixel size
of another binning). The tracker's filters are sized by it, so a diameter 30 % off used to lose beads
silently. Here the diameter is measured on the minimum-tilt view (`beads.estimate_bead_diameter`: the
half-depth radius of the averaged profile of the single beads found), on a copy binned so that the
beads measure 8-16 px (`binned.working_binning`), three times in a row (from a start far off, the
first measure is only nearer):

- `diameter_to_track` with a given diameter: the measured one is used when it is within a factor
  `TRUST_FACTOR` of the given one (a given diameter 0.6-1.4 times the true one tracks like the true
  one); further off, `DiameterError` names the measured diameter. When nothing can be measured from
  the given diameter (big beads given 0.6 times their size: the profile's window ends inside them), it is
  measured from 1.5 times and a 1.5th of it, then from scratch; when that fails too (too few single beads), the
  given diameter is used as it is.
- `measure_bead_diameter` with none (``auto``): every start of a ladder of diameters from 4 px to an
  eighth of a central crop of at most 1024 px (`LADDER_PX`) is measured on that crop, and the measure
  that the most starts agree on (within 15 %), among those that reproduce themselves, is measured again
  on the whole view; `DiameterError` when no start reproduces itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..reconstruction.warp import bin_image
from .beads import BeadFindingError, estimate_bead_diameter
from .binned import working_binning

TRUST_FACTOR = 1.8
RETRY_FACTOR = 1.5  # when nothing can be measured from the given diameter, from 1.5 times it and a 1.5th
AGREE = 0.15
LADDER_PX = 1024  # the ladder of starts runs on a central crop this wide, then the whole view refines it


class DiameterError(BeadFindingError):
    """The beads measure a diameter far from the one given (``measured_px`` and ``given_px``; measured is
    None when nothing could be measured)."""

    def __init__(self, message: str, measured_px: float | None, given_px: float | None) -> None:
        super().__init__(message)
        self.measured_px, self.given_px = measured_px, given_px


def _measure_from(view: NDArray, rough_px: float, dark: bool, repeats: int = 6) -> float:
    """The diameter measured from ``rough_px`` again and again (at most ``repeats`` times) until it moves
    under 1 %, each time on a copy binned for the last measure."""
    d = float(rough_px)
    for _ in range(repeats):
        b = working_binning(d, view.shape)
        img = bin_image(view, b) if b > 1 else np.asarray(view, dtype=np.float32)
        top = min(img.shape) / 4.0
        new = b * estimate_bead_diameter(img, float(np.clip(d / b, 1.5, top)), dark=dark)
        if not np.isfinite(new):
            raise BeadFindingError("the bead profile could not be measured")
        done = abs(new / d - 1.0) < 0.01 and working_binning(new, view.shape) == b
        d = float(new)
        if done:
            break
    return d


def measure_bead_diameter(view: ArrayLike, rough_px: float | None = None, *, dark: bool = True) -> float:
    """The beads' diameter in pixels measured on one view, from ``rough_px`` or, when None, from scratch
    (see the module docstring); raises `DiameterError` when no beads can be measured."""
    img = np.asarray(view)
    if rough_px is not None:
        try:
            return _measure_from(img, float(rough_px), dark)
        except (BeadFindingError, ValueError, np.linalg.LinAlgError) as exc:
            raise DiameterError(f"the bead diameter could not be measured ({exc})", None, rough_px) from None
    crop = _central(img, LADDER_PX)
    top = min(crop.shape) / 8.0
    found = []
    for start in np.geomspace(4.0, max(top, 4.0), max(2, int(np.log(max(top, 4.0) / 4.0) / np.log(1.5)) + 1)):
        try:
            d = _measure_from(crop, float(start), dark, repeats=3)
            again = _measure_from(crop, d, dark, repeats=1)
        except (BeadFindingError, ValueError, np.linalg.LinAlgError):
            continue
        if abs(again / d - 1.0) <= AGREE:
            found.append(again)
    if not found:
        raise DiameterError("no bead diameter could be measured on the minimum-tilt view: give it", None, None)
    values = np.array(found)
    votes = [(np.abs(values / v - 1.0) <= AGREE).sum() for v in values]
    best = float(np.median(values[np.abs(values / values[int(np.argmax(votes))] - 1.0) <= AGREE]))
    if crop.shape == img.shape:
        return best
    try:  # measured again on the whole view, from what the crop gave
        return _measure_from(img, best, dark)
    except (BeadFindingError, ValueError, np.linalg.LinAlgError):
        return best


def _central(img: NDArray, size: int) -> NDArray:
    """The central ``size`` x ``size`` part of ``img`` (all of it when smaller)."""
    rows, cols = img.shape
    y0, x0 = max(0, (rows - size) // 2), max(0, (cols - size) // 2)
    return img[y0 : y0 + size, x0 : x0 + size]


def diameter_to_track(stack: NDArray, tilt_angles_deg: ArrayLike, given_px: float | None, *,
                      dark: bool = True) -> float:
    """The diameter to track ``stack`` with: measured on the minimum-tilt view, from ``given_px`` (None:
    from scratch); see the module docstring for when the given one is kept or `DiameterError` raised."""
    seed = int(np.argmin(np.abs(np.asarray(tilt_angles_deg, dtype=float))))
    view = np.asarray(stack[seed])
    if given_px is None:
        return measure_bead_diameter(view, None, dark=dark)
    for start in (given_px, given_px * RETRY_FACTOR, given_px / RETRY_FACTOR):
        try:
            measured = measure_bead_diameter(view, start, dark=dark)
            break
        except DiameterError:
            continue
    else:  # nothing measured near the given size: from scratch, else the given one as it is
        try:
            measured = measure_bead_diameter(view, None, dark=dark)
        except DiameterError:
            return float(given_px)
    if 1.0 / TRUST_FACTOR <= measured / given_px <= TRUST_FACTOR:
        return measured
    raise DiameterError(f"the beads measure about {measured:.1f} px across, not the {given_px:.1f} px given",
                        measured, float(given_px))


def resolve_diameter(stack: NDArray, tilt_angles_deg: ArrayLike, given_px: float | None, pixel_nm: float | None,
                     unit: str = "nm", dark: bool = True) -> float:
    """`diameter_to_track` for a front end: a `DiameterError` becomes a one-line `UsageError` that names
    the measured diameter in ``unit`` (``"nm"`` with ``pixel_nm``, else ``"px"``) and the option to give."""
    from ..errors import UsageError

    try:
        return diameter_to_track(stack, tilt_angles_deg, given_px, dark=dark)
    except DiameterError as exc:
        nm = unit == "nm" and bool(pixel_nm)
        option = "--bead-diameter-nm" if nm else "--bead-diameter-px"
        if exc.measured_px is None:
            raise UsageError(f"{exc}: give {option} D (the gold's diameter), or check the polarity (--polarity)"
                             ) from None
        scale, u = (float(pixel_nm), " nm") if nm else (1.0, " px")  # type: ignore[arg-type]
        given = f"{exc.given_px * scale:.1f}{u}" if exc.given_px is not None else "?"
        raise UsageError(f"the beads measure about {exc.measured_px * scale:.1f}{u} across, not the {given} given:"
                         f" give {option} {exc.measured_px * scale:.1f} (or {option} auto)") from None
