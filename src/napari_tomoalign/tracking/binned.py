"""Tracking at the scale the beads need: find and track on a binned copy, refine at full resolution.

An unbinned cryo series (4096 x 4096 at 0.2 nm/px, 10 nm gold of 50 px) is as hard for a tracker made
for beads of 5-15 px as a binned one is easy: the matched filter, the search boxes and the texture
model are all sized in pixels. IMOD works the same way (``imodfindbeads`` scales beads to 8 px,
``tiltxcorr`` bins to about 1000 px). So:

1. `working_binning` picks the binning that brings the beads to 8-16 px (`WORKING_BEAD_PX`, IMOD's 8 px),
   keeping at least 192 binned pixels a side. (10-20 px localised worse end to end on the benchmark's
   50-80 px beads on 1600 px views: x1.17 and x1.08 of the 0.3 px reference against x1.07 and x0.89 at
   binning 7 on seeds 2 and 3, and no better on its 50 px beads.)
2. `BinnedViews` is the binned stack as an array of views, each binned when it is read from the
   (memory-mapped) file, whose pages are then released: memory in proportion to one view.
3. The whole chain (`pipeline.track_beads`) runs on it.
4. `refine_full_resolution` maps every tracked point to full resolution and does the final robust fit
   and its clean-up there. With ``full_resolution=True`` every point is first fitted at full
   resolution with the beads' own profile learned on the full-resolution seed view (a quadratic
   background over a ring of 0.4 radii; beads within 1.5 diameters of another with their neighbours
   subtracted) and moves to that fit when it converges within half a binned pixel plus one pixel. It is
   not the default: on the benchmark's unbinned sets (cryo, 50 px gold at 1.5 counts/px) the binned,
   prewhitened fit came out better end to end (0.093 against 0.104 px of 0.8 nm, seed 1; 0.091
   against 0.112, seed 2), and binning to 8-16 px beads loses nothing the noise had left, while the
   full-resolution pass reads every full view once more.

Coordinates: x = column, y = row, a pixel's centre at its integer index; binned pixel ``i`` averages full
pixels ``b i .. b i + b - 1``, whose centre is ``b i + (b - 1) / 2`` (`to_full`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..alignment.options import AlignmentOptions
from ..alignment.result import Alignment
from ..alignment.solver import align_markers
from ..compute import compiled_kernels
from ..errors import AlignmentError, Cancelled
from ..reconstruction.warp import bin_image
from ._measure import fit_crowded
from ._refine import residual_scatter
from ._views import ViewReader, release_view
from .beads import BeadCandidates, find_beads
from .coarse import CoarseAlignment
from .medians import median
from .result import TrackingResult, build_result

WORKING_BEAD_PX = 8.0  # beads are tracked at 8-16 px
MIN_BINNED_PX = 192
FULL_MARGIN = 0.4  # the full-resolution fit's background ring, as a share of the bead's radius
# Memory, in float32 views of the full size (`tracking_memory_bytes`), measured on 8000 x 8000 x 5: 14.5 views
# at the peak tracked unbinned (12 px beads), 2.7 tracked binned by 6 (50 px beads)
CHECK_VIEWS, TRACKING_VIEWS = 3.0, 16.0


def working_binning(bead_diameter_px: float, image_shape: tuple[int, int]) -> int:
    """The binning at which beads of ``bead_diameter_px`` measure `WORKING_BEAD_PX` to twice that (1 for
    beads under 16 px), with at least `MIN_BINNED_PX` binned pixels on the shorter side."""
    b = max(1, int(float(bead_diameter_px) // WORKING_BEAD_PX))
    return max(1, min(b, min(image_shape) // MIN_BINNED_PX))


def tracking_memory_bytes(image_shape: tuple[int, int], bead_diameter_px: float | None) -> int:
    """About the most memory tracking a stack of ``image_shape`` views takes: full-size float32 views for the
    diameter check and the full-resolution refit (`CHECK_VIEWS`), and at the working binning for the tracking
    itself (`TRACKING_VIEWS`; None: beads of unknown size, tracked unbinned at worst)."""
    rows, cols = image_shape
    b = working_binning(bead_diameter_px, image_shape) if bead_diameter_px else 1
    return int(4 * rows * cols * (CHECK_VIEWS + TRACKING_VIEWS / b**2))


def check_tracking_memory(image_shape: tuple[int, int], bead_diameter_px: float | None, where: str) -> None:
    """A `UsageError` before any work when the tracking would need more memory than the system has available
    (a 30000 x 30000 super-resolution stack with small beads: an out-of-memory kill after a minute otherwise)."""
    from ..compute import available_memory_bytes
    from ..errors import UsageError

    need, have = tracking_memory_bytes(image_shape, bead_diameter_px), available_memory_bytes()
    if have is not None and need > have:
        rows, cols = image_shape
        raise UsageError(f"{where}: tracking {cols} x {rows} views needs about {need / 2**30:.1f} GiB of memory and"
                         f" {have / 2**30:.1f} GiB is available: bin the stack first (IMOD's newstack -bin 2) and give"
                         " the bead diameter of the binned stack")


def to_full(xy: NDArray[np.float64], binning: int) -> NDArray[np.float64]:
    """Binned pixel coordinates to full-resolution ones."""
    return np.asarray(xy, dtype=float) * binning + (binning - 1) / 2.0


def to_binned(xy: NDArray[np.float64], binning: int) -> NDArray[np.float64]:
    """Full-resolution pixel coordinates to binned ones."""
    return (np.asarray(xy, dtype=float) - (binning - 1) / 2.0) / binning


class BinnedViews:
    """A ``(n_views, rows // b, cols // b)`` float32 view of a stack, each view binned as it is read."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, stack: NDArray, binning: int) -> None:
        self.stack, self.binning = stack, int(binning)
        n, rows, cols = stack.shape
        self.shape = (int(n), int(rows) // self.binning, int(cols) // self.binning)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, j: int) -> NDArray[np.float32]:
        if not isinstance(j, (int, np.integer)):
            raise TypeError("BinnedViews gives one view at a time: index it with an integer")
        img = bin_image(self.stack[int(j)], self.binning)
        release_view(self.stack, int(j))
        return img


def scaled_coarse(coarse: CoarseAlignment, binning: int, image_size: tuple[int, int]) -> CoarseAlignment:
    """A coarse alignment of the binned copy in full-resolution pixels."""
    return replace(coarse, shifts_px=coarse.shifts_px * binning, binning=coarse.binning * binning,
                   image_size=image_size)


def refine_full_resolution(stack: NDArray, binned: TrackingResult, binning: int, tilts: NDArray[np.float64],
                           tilt_axis_deg: float | None, *, dark: bool = True, move: bool = True,
                           should_stop: Callable[[], bool] | None = None) -> TrackingResult:
    """Every point of ``binned`` (tracked on a copy binned by ``binning``) re-fitted on ``stack`` at full
    resolution, the robust fit and clean-up redone there (see the module docstring). With ``move`` False
    the points keep their binned positions (mapped to full resolution, no full-resolution view is read)
    and their contrast and roundness as measured on the binned copy."""
    t0 = time.perf_counter()
    nv, nb = stack.shape[0], binned.n_beads
    pos = np.full((nv, nb, 2), np.nan)
    pos[binned.markers.view, binned.markers.marker - 1] = to_full(binned.markers.xy, binning)
    d = binned.bead_diameter_px * binning
    noise, measured = None, None
    if move:
        measured, noise = _refit_points(stack, pos, d, binned.seed_view, binning, dark, should_stop)
    size = (int(stack.shape[2]), int(stack.shape[1]))
    al = final_fit(pos, tilts, size, tilt_axis_deg)
    cands = binned.candidates
    if cands is not None:
        cands = replace(cands, xy=to_full(cands.xy, binning), bead_diameter_px=cands.bead_diameter_px * binning)
    timings = dict(binned.timings_s, full_resolution=time.perf_counter() - t0)
    notes = binned.warnings + [f"note: tracked on a copy binned by {binning} (beads of {binned.bead_diameter_px:.1f} px)"
                               + (", every point refined at full resolution" if move else "")]
    nan = np.full((nv, nb), np.nan)
    contrast, elong = measured if measured is not None else (nan, nan)
    out = build_result(pos, contrast, elong, noise, al, size, coarse=scaled_coarse(binned.coarse, binning, size),
                       candidates=cands, seed_view=binned.seed_view, bead_diameter_px=d, warnings=notes,
                       timings_s=timings)
    if measured is None:  # contrast and roundness as measured on the binned copy
        out.quality = replace(out.quality, contrast=binned.quality.contrast, elongation=binned.quality.elongation)
        weak = {(int(v), int(m)): w for v, m, w in zip(binned.markers.view, binned.markers.marker, binned.weak)}
        out.weak = np.array([weak.get((int(v), int(m)), False) for v, m in zip(out.markers.view, out.markers.marker)],
                            dtype=bool)
    return out


def _refit_points(stack, pos, d, seed, binning, dark, should_stop):
    """Move every point of ``pos`` (in place) to its fit at full resolution when it converges within half a
    binned pixel plus one pixel; returns the fits' ``(contrast, elongation)`` and the views' noise (None
    for counts, whose contrast is relative)."""
    from .pipeline import learned_profile

    reader = ViewReader(stack, cache=2)
    nv, nb = pos.shape[:2]
    contrast, elong = np.full((nv, nb), np.nan), np.full((nv, nb), np.nan)
    img = reader.view(seed)
    relative = bool(dark and img.min() >= 0 and median(img) > 0)
    profile = learned_profile(img, pos[seed][np.isfinite(pos[seed, :, 0])], d, dark)
    sign, tol = (-1.0 if dark else 1.0), 0.5 * binning + 1.0
    for j in range(nv):
        if should_stop is not None and should_stop():
            raise Cancelled("tracking cancelled")
        have = np.flatnonzero(np.isfinite(pos[j, :, 0]))
        if len(have) == 0:
            continue
        img, hot = reader.view(j), reader.hot_level(j)
        near = _crowded(pos[j, have], 1.5 * d)
        for group, fit in ((have[~near], _fit_single), (have[near], fit_crowded)):
            if len(group) == 0:
                continue
            m = fit(img, pos[j, group], profile, sign, hot, relative)
            ok = m.ok & (np.hypot(*(m.xy - pos[j, group]).T) <= tol)
            pos[j, group[ok]] = m.xy[ok]
            contrast[j, group] = np.where(m.ok, m.contrast, np.nan)
            elong[j, group] = np.where(m.ok, m.elongation, np.nan)
    noise = None if relative else np.array([reader.sd.get(j, np.nan) for j in range(nv)])
    return (contrast, elong), noise


def _fit_single(img, xy, profile, sign, hot, relative):
    """`fit_at` with a quadratic background, multiplicative for counts (the slope of a tilted slab and
    the texture's large scales, over a bead of 50 px, pull an additive plane fit)."""
    from ._measure import Measurement, fit_radius
    from ._profile import fit_profile
    from ._views import clamp_hot_pixels, extract_patches, patch_origins

    radius = fit_radius(profile) + FULL_MARGIN * profile.radius_px
    size = 2 * int(np.ceil(radius + 1.5)) + 1
    origins = patch_origins(xy, size)
    patches, _ = extract_patches(img, origins, size, outside=np.nan)
    clamp_hot_pixels(patches, hot)
    fit = fit_profile(patches, xy - origins, profile, radius, iterations=8, quadratic=True,
                      multiplicative=1.0 if relative else 0.0)
    out = fit.xy + origins
    contrast = sign * fit.amplitude
    if relative:
        contrast = contrast / np.maximum(fit.background[:, 0], 1e-6)
    ok = fit.converged & (contrast > 0)
    return Measurement(out, contrast, fit.rms, fit.elongation, np.full(len(xy), np.nan), ok, fit.background[:, 0])


def _crowded(xy: NDArray[np.float64], dist: float) -> NDArray[np.bool_]:
    if len(xy) < 2:
        return np.zeros(len(xy), dtype=bool)
    dd = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(dd, np.inf)
    return dd.min(axis=1) < dist


def final_fit(pos: NDArray[np.float64], tilts: NDArray[np.float64], size: tuple[int, int],
              tilt_axis_deg: float | None, rounds: int = 3) -> Alignment | None:
    """The robust fit of the points ``pos`` ``(n_views, n_beads, 2)``; points it down-weights (weight under
    0.5) with a residual over 5 times the scatter are dropped from ``pos`` and the fit repeated (as
    `_refine.clean_up`). None when the points cannot be aligned."""
    opts = AlignmentOptions(robust=True, tilt_axis_deg=tilt_axis_deg)
    al = None
    for k in range(rounds + 1):
        v, b = np.nonzero(np.isfinite(pos[..., 0]))
        try:
            with compiled_kernels():
                al = align_markers(v, b + 1, pos[v, b], tilts, size, opts, warn=False)
        except AlignmentError:
            return al
        if k == rounds or al.robust_weights is None:
            return al
        r = np.hypot(*al.residuals_px.T)
        with np.errstate(invalid="ignore"):
            bad = al.obs_used & (al.robust_weights < 0.5) & (r > max(1.0, 5.0 * residual_scatter(al)))
        if not bad.any():
            return al
        pos[al.obs_view[bad], al.marker_ids[al.obs_marker[bad]] - 1] = np.nan
    return al


def track_binned(stack: NDArray, tilts: NDArray[np.float64], bead_diameter_px: float, binning: int, *,
                 tilt_axis_deg: float | None = None, seeds_xy: ArrayLike | None = None,
                 coarse: CoarseAlignment | None = None, dark: bool = True, full_resolution: bool = False,
                 should_stop: Callable[[], bool] | None = None, **options) -> TrackingResult:
    """`pipeline.track_beads` on ``stack`` binned by ``binning``, then `refine_full_resolution`; the
    ``options`` pass through (``n_beads``, ``seed_view``, ``estimate_diameter``, ``whiten``, ``progress``,
    ``clumps``)."""
    from .pipeline import track_beads

    small = BinnedViews(stack, binning)
    if coarse is not None:
        coarse = replace(coarse, shifts_px=coarse.shifts_px / binning, binning=max(1, coarse.binning // binning),
                         image_size=(small.shape[2], small.shape[1]))
    seeds = None if seeds_xy is None else to_binned(np.asarray(seeds_xy, dtype=float).reshape(-1, 2), binning)
    result = track_beads(cast(NDArray, small), tilts, bead_diameter_px / binning, tilt_axis_deg=tilt_axis_deg,
                         seeds_xy=seeds, coarse=coarse, dark=dark, should_stop=should_stop, binning=1, **options)
    if result.n_beads == 0:
        return result
    return refine_full_resolution(stack, result, binning, tilts, tilt_axis_deg, dark=dark, move=full_resolution,
                                  should_stop=should_stop)


def find_beads_as_tracked(view: NDArray, bead_diameter_px: float, dark: bool = True) -> BeadCandidates:
    """The beads of one full-resolution view found as `track_beads` finds them: on the view binned by
    `working_binning` (beads of 8-16 px; at full resolution, 1-2 counts per pixel hide most 50 px beads), the
    candidates given in full-resolution pixels (a GUI's *Find beads* before its *Track*: the same beads)."""
    from dataclasses import replace

    b = working_binning(bead_diameter_px, tuple(view.shape))
    if b == 1:
        return find_beads(np.asarray(view, dtype=np.float32), bead_diameter_px, dark=dark)
    found = find_beads(bin_image(view, b), bead_diameter_px / b, dark=dark)
    return replace(found, xy=to_full(found.xy, b), bead_diameter_px=found.bead_diameter_px * b)


def tomogram_binning(image_size: tuple[int, int]) -> int:
    """``tomoalign run``'s default tomogram binning: 2, or the power of two that brings the larger side to
    about 1024 px (4 for 4096 x 4096), as a first look at an unbinned series usually is."""
    return max(2, 2 ** int(round(np.log2(max(max(image_size), 1) / 1024.0))))


def stack_tomogram_binning(stack_path: Any) -> tuple[int, str]:
    """`tomogram_binning` of a stack (its header read) and the note that says it: the one default of ``run``,
    ``batch`` and ``run_to_folder``."""
    from ..io.mrc import open_tilt_series

    rows, cols = open_tilt_series(stack_path, find_tilts=False).data.shape[1:]
    b = tomogram_binning((cols, rows))
    return b, f"tomogram binned by {b} (the default for {cols} x {rows}; --bin N to change)"
