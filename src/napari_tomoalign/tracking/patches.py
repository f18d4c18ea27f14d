"""Marker-free alignment by patch tracking, as IMOD's ``tiltxcorr`` with a patch size does it (GUI-free).

With no gold, the specimen's own texture serves as the markers. After the coarse alignment
(`coarse_align`, cosine-stretched), square patches are laid over the view nearest 0° (`PatchOptions`:
size, overlap, borders; by default 3/32 of the smaller side overlapping by half, denser than etomo's
fifth and third). Each patch is followed from that view towards both ends of the series by correlating it
with the same area of the next view, brought into its frame by the coarse alignment (`_patch_follow`),
under etomo's patch filter, the peak refined to sub-pixel. A patch's track ends where it leaves the
image, where its correlation falls under the step's threshold (vacuum, the dark protective layer and
featureless areas correlate as noise does), where the peak is a ridge (an edge, such as the protective
layer's, fixes no position along itself), where the peak lies on the search limit, or where the patch's
brightness jumps against the others' (it left the specimen). Patches that are dark or bright against
the others on the first view (the protective layer, vacuum) are not laid.

Each track is cut into contours of ``length`` views overlapping by ``length_overlap`` (IMOD's
``imodchopconts``, etomo's 16 and 4), each its own marker, and the contours go to `align_markers` with
robust fitting; a second pass measures them again with windows held where that fit projects each
contour's 3-D point (`_patch_refine`), then focus passes against each contour's windows averaged at its depth
(`_patch_focus`). Too little texture (few patches correlate next to the start view) or patches that disagree
(a loose check after the first pass, the full one at the end) raise `PatchTrackingError`, in one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..alignment.options import AlignmentOptions
from ..alignment.solver import align_markers
from ..errors import Cancelled
from ..io.table import MarkerTable
from ..reconstruction.input_checks import REPLACE, check_finite_views
from ._patch_focus import later_passes
from ._patch_follow import PatchCorrelator, binned_to_raw, cut, raw_to_binned, warp_into
from ._patch_result import FIRST_PASS_MAX_MEAN_RESIDUAL_PX, REASONS, PatchTrackingError, PatchTrackingResult
from ._views import ViewReader
from .coarse import CoarseAlignment, coarse_align

Progress = Callable[[str, int, int, str], None]
LEFT_IMAGE, POOR, RIDGE, AT_LIMIT, LEFT_SPECIMEN = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class PatchOptions:
    """How patches are laid and followed (IMOD's names in brackets; None: scaled to the image).

    Parameters
    ----------
    patch_size
        Side of the square patches in unbinned pixels (``SizeOfPatchesXandY``); default 3/32 of the smaller
        image side (96 px on 1024), at least 48 px (a few periods of the filter's lowest band) unless the
        image is under 240 px (then a fifth). Smaller patches follow fewer of a thick slab's depths: on the
        easy lamella 96 px/half overlap binned by 2: median 0.89 px over six seeds, etomo's 1.17 (issue 23).
    overlap
        Fraction by which neighbouring patches overlap (``OverlapOfPatchesXandY``), 0 to 0.9 (default 0.5).
    border
        Pixels left free at each image edge (``BordersInXandY``); default 5 % of the smaller side.
    length, length_overlap
        Views per contour piece and views shared by neighbouring pieces (``LengthAndOverlap``).
    binning
        Binning of the views the patches are cut from; default: patches of about 128 px or more binned
        (2 at most keeps everything etomo's low-pass lets through).
    filter_sigma1, filter_radius2, filter_sigma2
        The band-pass in cycles per unbinned pixel (etomo's patch-tracking values).
    min_correlation, relative_correlation
        A step is accepted with a normalised correlation of at least ``min_correlation`` and at least
        ``relative_correlation`` times the step's 90th percentile.
    min_roundness
        Smallest ratio of the peak's two curvatures; under it the peak is a ridge (an edge).
    iterations
        1: the tracks followed view to view are fitted once; 2 (default): the contours are then measured
        again where the first fit projects each contour's 3-D point, then against their windows focused at
        its depth, and fitted again (`_patch_refine`, `_patch_focus`; etomo's second iteration, and more).
    """

    patch_size: int | None = None
    overlap: float = 0.5
    border: int | None = None
    length: int = 16
    length_overlap: int = 4
    binning: int | None = None
    filter_sigma1: float = 0.03
    filter_radius2: float = 0.125
    filter_sigma2: float = 0.03
    min_correlation: float = 0.08
    relative_correlation: float = 0.3
    min_roundness: float = 0.12
    iterations: int = 2

    def size_for(self, shape: tuple[int, int]) -> int:
        """The patch side in unbinned pixels for images of ``shape`` (rows, cols), even."""
        side = self.patch_size or max(round(min(shape) * 3 / 32), min(48, min(shape) // 5))  # see the docstring
        return int(side) // 2 * 2

    def check(self, shape: tuple[int, int]) -> None:
        """Raise ValueError (one line) for options that do not fit images of ``shape``."""
        size = self.size_for(shape)
        if not 16 <= size <= min(shape) - 2 * self.border_for(shape):
            raise ValueError(f"a patch size of {size} px does not fit {shape[1]} x {shape[0]} images; give 16 px up"
                             " to the image less its borders (--patch-size)")
        if not (np.isfinite(self.overlap) and -1.0 < self.overlap <= 0.9):
            raise ValueError(f"the patch overlap must be a fraction from 0 to 0.9, not {self.overlap} (--overlap)")
        if not 3 <= self.length <= 10_000 or not 0 <= self.length_overlap < self.length:
            raise ValueError(f"contours of {self.length} views overlapping by {self.length_overlap} do not work; give"
                             " a length of at least 3 views and an overlap under it (--length)")
        if self.iterations not in (1, 2):
            raise ValueError(f"patch tracking runs 1 or 2 iterations, not {self.iterations}")

    def border_for(self, shape: tuple[int, int]) -> int:
        return int(self.border) if self.border is not None else int(0.05 * min(shape))

    def binning_for(self, shape: tuple[int, int]) -> int:
        if self.binning is not None:
            return max(1, int(self.binning))
        return 2 if self.size_for(shape) >= 96 else 1  # 96 px patches correlate as 48: 4x cheaper, as accurate


def lay_patches(shape: tuple[int, int], options: PatchOptions) -> NDArray[np.float64]:
    """``(n, 2)`` patch centres (x, y) spread evenly over the image less its borders, overlapping by at least
    ``overlap``."""
    size, border = options.size_for(shape), options.border_for(shape)
    step = max(1.0, size * (1.0 - options.overlap))
    axes = []
    for n_px in (shape[1], shape[0]):
        span = n_px - 2 * border - size
        count = int(np.ceil(span / step - 1e-9)) + 1  # overlap at least the fraction asked
        axes.append(border + size / 2 - 0.5 + np.linspace(0.0, span, count) if count > 1
                    else np.array([(n_px - 1) / 2.0]))
    gx, gy = np.meshgrid(*axes)
    return np.column_stack([gx.ravel(), gy.ravel()])


def _levels(pa: NDArray[np.float32]) -> NDArray[np.float64]:
    m = pa.mean(axis=(1, 2)).astype(np.float64)
    med = np.median(m) if len(m) else 1.0
    return m / med if med > 0 else np.ones_like(m)


def _step(reader, coarse, a, b, pos_a, corr, binning, opt, counts_like):
    """One view to the next for every patch tracked in view ``a``: raw positions in ``b`` (NaN where the
    track ends), the reason it ends (0: it goes on) and the correlations."""
    k = raw_to_binned(pos_a, binning)
    ki = np.rint(k).astype(np.intp)
    pa, ok_a = cut(reader.view(a, binning), ki, corr.size)
    warped = warp_into(reader.view(b, binning), coarse, a, b, binning)
    pb, ok_b = cut(warped, ki, corr.size)
    ok = ok_a & ok_b
    reason = np.where(ok, 0, LEFT_IMAGE)
    out = np.full_like(pos_a, np.nan)
    ncc = np.full(len(pos_a), np.nan)
    if not ok.any():
        return out, reason, ncc
    # correlate, then again with b's patch cut where the first peak put it: the taper pulls a peak toward
    # zero in proportion to the shift, so the second, under half a pixel, is nearly free of that pull
    whole = np.rint(corr.correlate(pa[ok], pb[ok]).shift).astype(np.intp)
    pb2, ok2 = cut(warped, ki[ok] + whole, corr.size)
    idx = np.flatnonzero(ok)
    ok[idx[~ok2]] = False
    reason[idx[~ok2]] = LEFT_IMAGE
    whole = whole[ok2]
    if not ok.any():
        return out, reason, ncc
    res = corr.correlate(pa[ok], pb2[ok2])
    res.shift = res.shift + whole
    thr = max(opt.min_correlation, opt.relative_correlation * float(np.quantile(res.ncc, 0.9)), corr.chance)
    r = np.zeros(len(res.ncc), dtype=np.intp)
    if counts_like:
        change = _levels(pb[ok]) / _levels(pa[ok])
        r[(change > 1.4) | (change < 1 / 1.4)] = LEFT_SPECIMEN
    r[res.roundness < opt.min_roundness] = RIDGE
    r[res.at_limit] = AT_LIMIT
    r[res.ncc < thr] = POOR
    idx = np.flatnonzero(ok)
    reason[idx] = r
    good = idx[r == 0]
    out[good] = coarse.map(binned_to_raw(k[good] + res.shift[r == 0], binning), a, b)
    ncc[idx] = res.ncc
    return out, reason, ncc


def follow_patches(reader: ViewReader, coarse: CoarseAlignment, centres: NDArray[np.float64], tilts: NDArray[np.float64],
                   corr: PatchCorrelator, binning: int, opt: PatchOptions, views: NDArray[np.intp] | None = None,
                   progress: Progress | None = None, should_stop: Callable[[], bool] | None = None):
    """Follow patches from the reference view outward (only through ``views`` if given): ``(n_views, n, 2)``
    raw positions (NaN where not tracked), ``(n_views, n)`` correlations, ``(2, n)`` why each side ended."""
    n_views, ref = len(tilts), coarse.reference_view
    pos = np.full((n_views, len(centres), 2), np.nan)
    ncc = np.full((n_views, len(centres)), np.nan)
    pos[ref] = centres
    ends = np.zeros((2, len(centres)), dtype=np.intp)
    order = np.argsort(tilts, kind="stable")
    if views is not None:
        order = order[np.isin(order, views)]
    at = int(np.flatnonzero(order == ref)[0])
    counts_like = bool(reader.view(ref, binning).min() >= 0)
    done = 1
    for s, side in enumerate((order[at + 1:], order[:at][::-1])):
        prev = ref
        for j in side:
            if should_stop is not None and should_stop():
                raise Cancelled("patch tracking cancelled")
            live = np.flatnonzero(np.isfinite(pos[prev, :, 0]))
            if len(live) == 0:
                break
            out, reason, c = _step(reader, coarse, prev, int(j), pos[prev, live], corr, binning, opt, counts_like)
            pos[j, live], ncc[j, live] = out, c
            ends[s, live[reason > 0]] = reason[reason > 0]
            prev = int(j)
            done += 1
            if progress is not None:
                progress("track", done, len(order), f"patches: view {done} of {len(order)}, {len(live)} followed")
    return pos, ncc, ends


def chop_contours(pos: NDArray[np.float64], tilts: NDArray[np.float64], length: int, overlap: int,
                  min_points: int = 3) -> tuple[MarkerTable, NDArray[np.intp], int]:
    """Tracks ``(n_views, n, 2)`` cut into pieces of ``length`` views (in tilt order) overlapping by
    ``overlap``; a last piece under half the length joins the one before. Returns the table (markers
    numbered from 1), each marker's patch, and how many tracks were too short (under ``min_points``)."""
    order = np.argsort(tilts, kind="stable")
    have = np.isfinite(pos[order, :, 0])
    step = length - overlap
    v, m, xy, patch = [], [], [], []
    short = 0
    for i in range(pos.shape[1]):
        views = order[have[:, i]]
        if len(views) < min_points:
            short += int(len(views) > 0)
            continue
        starts = list(range(0, max(len(views) - overlap, 1), step))
        if len(starts) > 1 and len(views) - starts[-1] < max(length // 2, min_points):
            starts.pop()
        for k, s0 in enumerate(starts):
            stop = s0 + length if k + 1 < len(starts) else len(views)
            piece = views[s0:stop]
            patch.append(i)
            v.append(piece)
            m.append(np.full(len(piece), len(patch)))
            xy.append(pos[piece, i])
    if not v:
        return MarkerTable(np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros((0, 2))), np.zeros(0, np.intp), short
    table = MarkerTable(np.concatenate(v).astype(np.intp), np.concatenate(m).astype(np.int64), np.concatenate(xy))
    return table, np.asarray(patch, dtype=np.intp), short


def _texture_check(pos: NDArray[np.float64], ncc: NDArray[np.float64], ref: int, tilts) -> None:
    """Raise `PatchTrackingError` when fewer than a fifth of the patches (or under 4) could be followed into
    a view next to the start view."""
    order = np.argsort(tilts, kind="stable")
    at = int(np.flatnonzero(order == ref)[0])
    near = [int(order[k]) for k in (at - 1, at + 1) if 0 <= k < len(order)]
    n_laid = pos.shape[1]
    ok = int(np.isfinite(pos[near, :, 0]).any(axis=0).sum())
    if n_laid == 0 or ok < max(4, 0.2 * n_laid):
        c = ncc[near]
        med = float(np.median(c[np.isfinite(c)])) if np.isfinite(c).any() else 0.0
        raise PatchTrackingError(
            f"too little texture to track: {ok} of {n_laid} patches could be followed from view {ref} to the next"
            f" (median correlation {med:.3f}, no better than unrelated patches); try larger patches (--patch-size)"
            " or check the stack")


def _start_patches(reader: ViewReader, ref: int, binning: int, size: int, centres: NDArray[np.float64]):
    """Centres that lie on the specimen in the start view, and how many were dark or bright (count data:
    the protective layer is dark, vacuum bright, against the median patch)."""
    k = np.rint(raw_to_binned(centres, binning)).astype(np.intp)
    img = reader.view(ref, binning)
    pa, inside = cut(img, k, size)
    keep = inside.copy()
    dark = bright = 0
    if img.min() >= 0 and inside.any():
        lv = _levels(pa[inside])
        idx = np.flatnonzero(inside)
        dark, bright = int(np.sum(lv < 0.5)), int(np.sum(lv > 1.6))
        keep[idx[(lv < 0.5) | (lv > 1.6)]] = False
    return centres[keep], dark, bright


def _estimate_axis(reader, stack, tilts, centres, corr, binning, opt, should_stop) -> float:
    """The tilt axis from patches followed without stretching through the views within 20° of the start."""
    coarse = coarse_align(stack, tilts, tilt_axis_deg=None, should_stop=should_stop)
    near = np.flatnonzero(np.abs(tilts - tilts[coarse.reference_view]) <= 20.0)
    pos, _, _ = follow_patches(reader, coarse, centres, tilts, corr, binning, opt, views=near, should_stop=should_stop)
    table, _, _ = chop_contours(pos, tilts, len(tilts), 0)
    if len(table) < 12:
        raise PatchTrackingError(f"too little texture to track: {len(table)} points could be followed even through"
                                 " the views near the start one; check the stack, or try larger patches (--patch-size)")
    al = align_markers(table.view, table.marker, table.xy, tilts, (reader.shape[1], reader.shape[0]),
                       AlignmentOptions(robust=True), warn=False)
    return float(al.tilt_axis_deg)


def track_patches(
    stack: NDArray,
    tilt_angles_deg: ArrayLike,
    *,
    tilt_axis_deg: float | None = None,
    options: PatchOptions | None = None,
    coarse: CoarseAlignment | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PatchTrackingResult:
    """Align a tilt series by its texture (see the module docstring) and return the tracks and alignment.

    ``stack`` is ``(n_views, rows, cols)`` (a memory map is read a view at a time); ``tilt_axis_deg`` the
    axis angle from the image's y axis, counter-clockwise (None: estimated from patches near the start
    view); ``threads`` caps FFT, BLAS and compiled threads. ``progress(stage, done, total, text)`` is
    called with stages ``coarse``, ``track`` and ``fit``; `Cancelled` when ``should_stop()`` returns True.

    Raises
    ------
    PatchTrackingError
        Too little texture, or patches that disagree (one line with the deciding figure).
    """
    if threads is not None:
        from threadpoolctl import threadpool_limits

        from ..compute import compiled_threads
        from ._fourier import fft_threads

        with compiled_threads(threads), threadpool_limits(threads), fft_threads(threads):
            return track_patches(stack, tilt_angles_deg, tilt_axis_deg=tilt_axis_deg, options=options, coarse=coarse,
                                 progress=progress, should_stop=should_stop)
    opt = options or PatchOptions()
    tilts = _check(stack, tilt_angles_deg, opt)
    reader = ViewReader(stack, clamp=True, cache=3)
    shape = reader.shape
    binning, size = opt.binning_for(shape), opt.size_for(shape)
    bsize = size // binning // 2 * 2
    corr = PatchCorrelator(bsize, opt.filter_sigma1 * binning, opt.filter_radius2 * binning,
                           opt.filter_sigma2 * binning, bsize / 4)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    laid = lay_patches(shape, opt)
    ref = int(np.argmin(np.abs(tilts)))
    centres, dark, bright = _start_patches(reader, ref, binning, bsize, laid)
    axis_source = "given"
    if tilt_axis_deg is None and coarse is None:
        tilt_axis_deg, axis_source = _estimate_axis(reader, stack, tilts, centres, corr, binning, opt,
                                                    should_stop), "estimated from patches near the start view"
    if coarse is None:
        coarse = coarse_align(stack, tilts, tilt_axis_deg=tilt_axis_deg, progress=progress, should_stop=should_stop)
    timings["coarse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pos, ncc, ends = follow_patches(reader, coarse, centres, tilts, corr, binning, opt, progress=progress,
                                    should_stop=should_stop)
    _texture_check(pos, ncc, ref, tilts)
    table, patch_of, short = chop_contours(pos, tilts, opt.length, opt.length_overlap)
    table = MarkerTable(table.view, table.marker, table.xy, (shape[1], shape[0]), "patch tracking")
    timings["track"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if progress is not None:
        progress("fit", 0, 1, f"robust fit of {len(table)} points")
    al = align_markers(table.view, table.marker, table.xy, tilts, (shape[1], shape[0]),
                       patch_alignment_options(tilt_axis_deg), warn=False,
                       should_stop=should_stop)
    timings["fit"] = time.perf_counter() - t0
    dropped = {"dark at the start (protective layer)": dark, "bright at the start (vacuum)": bright,
               "tracked in under 3 views": short}
    result = PatchTrackingResult(table, al, coarse, laid, centres, pos, ncc, ends, patch_of, size, binning,
                                 axis_source, dropped, timings_s=timings)
    result.check_agreement(FIRST_PASS_MAX_MEAN_RESIDUAL_PX if opt.iterations == 2 else None)  # later passes re-measure
    if opt.iterations == 2:
        result = later_passes(result, reader, tilts, corr, patch_alignment_options(tilt_axis_deg),
                              (opt.min_correlation, opt.relative_correlation, opt.min_roundness), progress,
                              should_stop)
        result.check_agreement()
    return result


def patch_alignment_options(tilt_axis_deg: float | None) -> AlignmentOptions:
    """The fit patch tracks get: robust (patches over an edge or a deforming area give outliers), rotation,
    tilt and magnification per view, the axis estimated (near ``tilt_axis_deg``). Grouped tilts and
    magnifications were tried on simulated lamellae: with perfect tracks they leave 0.6 px end to end
    where per-view variables leave none, and they do not tame the patches' drift."""
    return AlignmentOptions(tilt_axis_deg=tilt_axis_deg, robust=True)


def _check(stack, tilt_angles_deg, opt: PatchOptions) -> NDArray[np.float64]:
    if getattr(stack, "ndim", 0) != 3:
        raise ValueError(f"the stack must be 3-D (views, rows, cols), not {getattr(stack, 'ndim', 0)}-D")
    tilts = np.asarray(tilt_angles_deg, dtype=float).ravel()
    if len(tilts) != stack.shape[0]:
        raise ValueError(f"{len(tilts)} tilt angles for a stack of {stack.shape[0]} views; they must match")
    if not np.all(np.isfinite(tilts)) or np.any(np.abs(tilts) >= 90):
        raise ValueError("tilt angles must be finite and within (-90, 90) degrees")
    if len(tilts) < 3:
        raise ValueError(f"patch tracking needs at least 3 views, not {len(tilts)}")
    opt.check(stack.shape[1:])
    check_finite_views(stack, what="stack", remedy=REPLACE)  # a NaN patch would spread through every correlation it enters
    return tilts


__all__ = ["REASONS", "PatchOptions", "PatchTrackingError", "PatchTrackingResult", "chop_contours", "follow_patches",
           "lay_patches", "track_patches"]
