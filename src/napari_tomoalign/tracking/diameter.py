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

Each measure is a function of the view and its start alone, and the loops come back to the same starts
(a measure that has settled is repeated to confirm it, and `estimate_bead_diameter` measures twice), so
each is made once per view (``steps``): checking a given diameter near the truth costs two measures, not
four, with the same result.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..reconstruction.warp import bin_image
from ._profile import BeadProfile, fit_profile
from ._views import extract_patches, patch_origins
from .beads import BeadFindingError, find_beads
from .binned import working_binning

TRUST_FACTOR = 1.8
SMALLEST_GOLD_NM = 3.0  # a bead measured smaller than this in nm says the pixel size is wrong, not the diameter
MEASURE_NOTED = 0.05  # a measured diameter further than this (relative) from the one given is said (it is taken)
RETRY_FACTOR = 1.5  # when nothing can be measured from the given diameter, from 1.5 times it and a 1.5th
AGREE = 0.15
LADDER_PX = 1024  # the ladder of starts runs on a central crop this wide, then the whole view refines it


class DiameterError(BeadFindingError):
    """The beads measure a diameter far from the one given (``measured_px`` and ``given_px``; measured is
    None when nothing could be measured)."""

    def __init__(self, message: str, measured_px: float | None, given_px: float | None) -> None:
        super().__init__(message)
        self.measured_px, self.given_px = measured_px, given_px


def _measure_from(view: NDArray, rough_px: float, dark: bool, repeats: int = 6,
                  steps: dict[int, dict[float, float]] | None = None, searches: dict | None = None) -> float:
    """The diameter measured from ``rough_px`` again and again (at most ``repeats`` times) until it moves
    under 1 %, each time on a copy binned for the last measure. ``steps``: the measures already made on
    ``view``, by binning (`estimate_bead_diameter`'s ``steps``), filled here; ``searches``: `find_beads`'s."""
    d = float(rough_px)
    steps = {} if steps is None else steps
    binned: dict[int, NDArray] = {}
    for _ in range(repeats):
        b = working_binning(d, view.shape)
        if b not in binned:
            binned[b] = bin_image(view, b) if b > 1 else np.asarray(view, dtype=np.float32)
        img = binned[b]
        top = min(img.shape) / 4.0
        new = b * estimate_bead_diameter(img, float(np.clip(d / b, 1.5, top)), dark=dark,
                                         steps=steps.setdefault(b, {}), searches=searches)
        if not np.isfinite(new):
            raise BeadFindingError("the bead profile could not be measured")
        done = abs(new / d - 1.0) < 0.01 and working_binning(new, view.shape) == b
        d = float(new)
        if done:
            break
    return d


def measure_bead_diameter(view: ArrayLike, rough_px: float | None = None, *, dark: bool = True,
                          steps: dict[int, dict[float, float]] | None = None, searches: dict | None = None) -> float:
    """The beads' diameter in pixels measured on one view, from ``rough_px`` or, when None, from scratch
    (see the module docstring); raises `DiameterError` when no beads can be measured. ``steps``: the
    measures already made on this view (`_measure_from`), for a caller that measures it again; ``searches``:
    the bead searches made on the whole view, filled here (`find_beads`'s)."""
    img = np.asarray(view)
    steps = {} if steps is None else steps
    if rough_px is not None:
        try:
            return _measure_from(img, float(rough_px), dark, steps=steps, searches=searches)
        except (BeadFindingError, ValueError, np.linalg.LinAlgError) as exc:
            raise DiameterError(f"the bead diameter could not be measured ({exc})", None, rough_px) from None
    crop = _central(img, LADDER_PX)
    top = min(crop.shape) / 8.0
    found = []
    on_crop: dict[int, dict[float, float]] = steps if crop.shape == img.shape else {}
    for start in np.geomspace(4.0, max(top, 4.0), max(2, int(np.log(max(top, 4.0) / 4.0) / np.log(1.5)) + 1)):
        try:
            d = _measure_from(crop, float(start), dark, repeats=3, steps=on_crop)
            again = _measure_from(crop, d, dark, repeats=1, steps=on_crop)
        except (BeadFindingError, ValueError, np.linalg.LinAlgError):
            continue
        if abs(again / d - 1.0) <= AGREE:
            found.append(again)
    if not found:
        raise DiameterError("no bead diameter could be measured on the minimum-tilt view", None, None)
    values = np.array(found)
    votes = [(np.abs(values / v - 1.0) <= AGREE).sum() for v in values]
    best = float(np.median(values[np.abs(values / values[int(np.argmax(votes))] - 1.0) <= AGREE]))
    if crop.shape == img.shape:
        return best
    try:  # measured again on the whole view, from what the crop gave
        return _measure_from(img, best, dark, steps=steps, searches=searches)
    except (BeadFindingError, ValueError, np.linalg.LinAlgError):
        return best


def _central(img: NDArray, size: int) -> NDArray:
    """The central ``size`` x ``size`` part of ``img`` (all of it when smaller)."""
    rows, cols = img.shape
    y0, x0 = max(0, (rows - size) // 2), max(0, (cols - size) // 2)
    return img[y0 : y0 + size, x0 : x0 + size]


def diameter_to_track(stack: NDArray, tilt_angles_deg: ArrayLike, given_px: float | None, *,
                      dark: bool = True, searches: dict | None = None, seed_view: int | None = None) -> float:
    """The diameter to track ``stack`` with: measured on the seed view (``seed_view``, else the tracker's
    default: the minimum tilt that is not blank), from ``given_px`` (None: from scratch); see the module docstring for
    when the given one is kept or `DiameterError` raised. ``searches``: `find_beads`'s, filled here (the
    tracker's own search of that view can reuse one)."""
    from .blank_views import choose_seed_view, find_blank_views

    seed = seed_view if seed_view is not None else choose_seed_view(tilt_angles_deg, find_blank_views(stack,
                                                                                                      tilt_angles_deg))
    view = np.asarray(stack[seed])
    steps: dict[int, dict[float, float]] = {}  # each measure on this view made once (`_measure_from`)
    if given_px is None:
        return measure_bead_diameter(view, None, dark=dark, steps=steps, searches=searches)
    for start in (given_px, given_px * RETRY_FACTOR, given_px / RETRY_FACTOR):
        try:
            measured = measure_bead_diameter(view, start, dark=dark, steps=steps, searches=searches)
            break
        except DiameterError:
            continue
    else:  # nothing measured near the given size: from scratch, else the given one as it is
        try:
            measured = measure_bead_diameter(view, None, dark=dark, steps=steps, searches=searches)
        except DiameterError:
            return float(given_px)
    if 1.0 / TRUST_FACTOR <= measured / given_px <= TRUST_FACTOR:
        return measured
    raise DiameterError(f"the beads measure about {measured:.1f} px across, not the {given_px:.1f} px given",
                        measured, float(given_px))


def resolve_diameter(stack: NDArray, tilt_angles_deg: ArrayLike, given_px: float | None, pixel_nm: float | None,
                     unit: str = "nm", dark: bool = True, searches: dict | None = None,
                     seed_view: int | None = None) -> float:
    """`diameter_to_track` for a front end: a `DiameterError` becomes a one-line `UsageError` that names
    the measured diameter in ``unit`` (``"nm"`` with ``pixel_nm``, else ``"px"``) and the option to give."""
    from ..errors import UsageError

    try:
        return diameter_to_track(stack, tilt_angles_deg, given_px, dark=dark, searches=searches, seed_view=seed_view)
    except DiameterError as exc:
        nm = unit == "nm" and bool(pixel_nm)
        option = "--bead-diameter-nm" if nm else "--bead-diameter-px"
        if exc.measured_px is None:
            raise UsageError(f"{exc}: give {option} D (the gold's diameter), or check the polarity (--polarity)"
                             ) from None
        scale, u = (float(pixel_nm), " nm") if nm else (1.0, " px")  # type: ignore[arg-type]
        given = f"{exc.given_px * scale:.1f}{u}" if exc.given_px is not None else "?"
        if nm and exc.given_px is not None and (abs(scale - 0.1) < 1e-6 or exc.measured_px * scale < SMALLEST_GOLD_NM):
            # no gold is that small: the pixel size is wrong (1 A is what converters leave; new user's finding U)
            raise UsageError(f"the beads measure {exc.measured_px:.1f} px, which at {scale:g} nm/px"
                             f"{' (1 A: often a placeholder)' if abs(scale - 0.1) < 1e-6 else ''} is"
                             f" {exc.measured_px * scale:.1f} nm: the pixel size is likely wrong; give --pixel-size-nm"
                             f" ({exc.given_px * scale:.1f} nm gold would mean"
                             f" {exc.given_px * scale / exc.measured_px:.3g} nm/px)") from None
        raise UsageError(f"the beads measure about {exc.measured_px * scale:.1f}{u} across, not the {given} given:"
                         f" give {option} {exc.measured_px * scale:.1f} (or {option} auto)") from None


def measured_note(given_px: float | None, measured_px: float, pixel_nm: float | None, unit: str = "nm") -> str | None:
    """The note that a given diameter was replaced by the beads' measure (more than `MEASURE_NOTED` off; with
    ``auto``, ``given_px`` None, always: the measure), in
    ``unit`` (``"nm"`` with ``pixel_nm``, else ``"px"``), with the option to give next time; None otherwise."""
    nm = unit == "nm" and bool(pixel_nm)
    scale, u, option = (float(pixel_nm), "nm", "--bead-diameter-nm") if nm else (1.0, "px", "--bead-diameter-px")  # type: ignore[arg-type]
    if given_px is None:  # 'auto': the measure is the only diameter the user will see (new user's finding, session 13)
        px = f" ({measured_px:.1f} px)" if nm else ""
        return (f"note: the beads measure {measured_px * scale:.1f} {u}{px} across (give {option}"
                f" {measured_px * scale:.1f} next time, and to --erase-gold)")
    if abs(measured_px / given_px - 1.0) <= MEASURE_NOTED:
        return None
    return (f"note: the beads measure {measured_px * scale:.1f} {u} across, not the {given_px * scale:.1f} {u} given:"
            f" tracked with the measure (give {option} {measured_px * scale:.1f} next time, and to --erase-gold)")


def estimate_bead_diameter(image: NDArray, rough_diameter_px: float, *, dark: bool = True,
                           steps: dict[float, float] | None = None, searches: dict | None = None) -> float:
    """The bead diameter measured from the data: the radius at half depth of the averaged profile of the
    single beads found with ``rough_diameter_px``, as a sphere's projection relates it to the diameter
    (twice: from the rough diameter, then from the first measure).

    ``steps``: the measures already made on this ``image`` (a start to its measure), filled here; each
    measure is a function of the image and its start alone, and a settled measure is repeated to confirm
    it (`diameter`), so a caller that measures one view again and again passes one dict. ``searches``:
    `find_beads`'s."""
    d = float(rough_diameter_px)
    img = np.array(image, dtype=np.float32)
    for _ in range(2):
        known = steps.get(d) if steps is not None else None
        new = known if known is not None else _measure_step(img, d, dark, searches)
        if steps is not None:
            steps[d] = new
        d = new
    return d


def _measure_step(img: NDArray[np.float32], d: float, dark: bool, searches: dict | None) -> float:
    """One measure of the diameter from ``d`` (`estimate_bead_diameter`)."""
    try:
        cands = find_beads(img, d, dark=dark, small_beads=False, searches=searches)
    except BeadFindingError:  # a diameter far off can spoil the depth fits: the integral alone
        cands = find_beads(img, d, dark=dark, use_depth=False, small_beads=False, uniform=False, searches=searches)
    xy = cands.xy[cands.above & ~cands.clustered][:200]
    if len(xy) < 3:
        raise BeadFindingError("fewer than 3 single beads were found; the diameter cannot be estimated")
    size = 2 * int(np.ceil(d + 3)) + 1
    origins = patch_origins(xy, size)
    patches, _ = extract_patches(img, origins, size)
    fit = fit_profile(patches, xy - origins, BeadProfile.ideal(d), d / 2 + 2.0)
    prof = BeadProfile.learned(patches, fit.xy, fit.background, fit.amplitude, d / 2, d / 2 + 3.0)
    return _diameter_from_edge(_half_depth_radius(prof, 0.3 * d / 2))


def _half_depth_radius(prof: BeadProfile, inner: float) -> float:
    """Radius beyond ``inner`` px where a profile first falls below half its depth at the centre. (The
    steepest fall, an alternative, moves inward with a defocus fringe; half depth barely does.)"""
    v = prof.values
    r = np.arange(len(v)) * 0.05
    core = float(np.mean(v[r <= max(0.5, inner)]))
    below = np.flatnonzero((r > inner) & (v < 0.5 * core))
    return float(r[below[0]]) if len(below) else float(r[-1])


@functools.lru_cache(maxsize=64)
def _diameter_from_edge(edge: float) -> float:
    """The diameter whose ideal profile falls to half depth at ``edge`` (a step of 0.05 px: few values)."""
    ds = np.linspace(1.5, 2.5 * edge + 4.0, 60)
    edges = np.array([_half_depth_radius(BeadProfile.ideal(d), 0.3 * d / 2) for d in ds])
    return float(np.interp(edge, edges, ds))
