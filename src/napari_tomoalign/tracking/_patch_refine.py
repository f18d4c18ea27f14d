"""A second pass of patch tracking with windows placed by the first alignment (GUI-free).

Following a patch view to view re-centres its window on its content at each step. On a thick slab the
content under a window lies at many depths, and as the slab tilts, content of other depths slides into
and out of the window (parallax), so the depth whose position the window follows wanders from step to
step: no rigid 3-D point projects onto the track, and the fit spreads that wander over the geometry.

The second pass keeps each contour's window on one column of the specimen instead: the first alignment
gives the contour's 3-D point ``P`` and every view's projection, so the window is cut where ``P`` projects
in every view of the contour, and each view is correlated against the contour's reference view (the middle
of its run), the view brought into the reference's frame by the alignment's mapping of the specimen plane
(the cosine stretch, rotation and magnification included). The shift found is where the content of the
reference window lies in that view. As the window stays on one column, the depth its content is centred
on stays put, and the positions are those of a rigid point at that depth, which the fit can follow.
IMOD's etomo offers the like as a second iteration of ``tiltxcorr`` patch tracking on the stack prealigned
by the first alignment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from ..alignment.model import DX, DY, view_matrices
from ..alignment.options import AlignmentOptions
from ..alignment.result import Alignment
from ..alignment.solver import align_markers
from ..errors import Cancelled
from ..io.table import MarkerTable
from ._patch_follow import PatchCorrelator, binned_to_raw, cut, raw_to_binned, warp_into
from ._patch_result import PatchTrackingResult
from ._views import ViewReader
from .coarse import Progress

# easy lamellae 1024 x 41, seeds 1-3: 0.78, 0.96, 0.96 px (1.8: 0.79, 1.04, 0.91); on seeds 4-6 no scale
# from 1.0 to 2.5 is better throughout (1.4: 1.81, 2.04, 1.38 px)
SECOND_PASS_ROBUST_SCALE = 1.4
# A window at tilt t spans thickness * sin(t) of depth, so what it follows there is the least sure to be one
# rigid point: the second pass's points weigh cos(t)^4. Easy lamellae 1024 x 41, seeds 1-6: 0.57, 0.77, 0.83,
# 0.84, 0.94, 0.64 px (unweighted 0.62, 0.91, 1.06, 0.87, 1.31, 0.66); weighting both passes, or cos^2, does worse
SECOND_PASS_TILT_WEIGHT_POWER = 4.0


def tilt_weights(views: NDArray[np.intp], tilts: NDArray[np.float64]) -> NDArray[np.float64]:
    """The second pass's weight of each observation: ``cos(tilt)`` of its view to the power
    ``SECOND_PASS_TILT_WEIGHT_POWER``."""
    return np.cos(np.radians(np.asarray(tilts, dtype=float)[views])) ** SECOND_PASS_TILT_WEIGHT_POWER


class PlaneMap:
    """The alignment's mapping of the specimen's plane between views, in unbinned image pixels: the plane
    ``z = a x + b y + c`` fitted through the 3-D points of the contours (a lamella is a slab, often
    pre-tilted in the model's frame); ``matrix(j)`` the linear part of view ``j``'s projection of the
    plane, ``map`` carries positions."""

    def __init__(self, al: Alignment) -> None:
        # a solved beam tilt is already folded into ``full_params`` (as in IMOD's files): none to add here
        a, _ = view_matrices(al.full_params, derivatives=False)
        xyz = al.xyz_px[np.all(np.isfinite(al.xyz_px), axis=1)]
        slope, c = np.zeros(2), 0.0
        if len(xyz) >= 3:
            design = np.column_stack([xyz[:, :2], np.ones(len(xyz))])
            coef = np.linalg.lstsq(design, xyz[:, 2], rcond=None)[0]
            slope, c = np.asarray(coef[:2], dtype=np.float64), float(coef[2])
        self._m = a[:, :, :2] + a[:, :, 2:3] * slope[None, None, :]
        self._d = al.full_params[:, [DX, DY]] + a[:, :, 2] * c
        self._c = al.image_centre

    def matrix(self, j: int) -> NDArray[np.float64]:
        return np.asarray(self._m[j])

    def map(self, xy: NDArray[np.float64], from_view: int, to_view: int) -> NDArray[np.float64]:
        p = np.atleast_2d(np.asarray(xy, dtype=float)) - self._c - self._d[from_view]
        ref = p @ np.linalg.inv(self._m[from_view]).T
        return ref @ self._m[to_view].T + self._d[to_view] + self._c


def _chains(table: MarkerTable, tilts: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For each point of ``table``, the point of the same contour one view nearer the contour's middle (in
    tilt order; -1 for the middle point itself) and how many steps it lies from the middle."""
    rank = np.argsort(np.argsort(tilts, kind="stable"), kind="stable")
    order = np.lexsort((rank[table.view], table.marker))
    m_sorted = table.marker[order]
    starts = np.flatnonzero(np.r_[True, m_sorted[1:] != m_sorted[:-1]])
    stops = np.r_[starts[1:], len(m_sorted)]
    prev = np.full(len(table), -1, dtype=np.intp)
    dist = np.zeros(len(table), dtype=np.intp)
    for s0, s1 in zip(starts, stops, strict=True):
        mid = (s0 + s1 - 1) // 2
        for k in range(s0, s1):
            if k != mid:
                prev[order[k]] = order[k + 1 if k < mid else k - 1]
                dist[order[k]] = abs(k - mid)
    return prev, dist


def refine_tracks(reader: ViewReader, al: Alignment, table: MarkerTable, tilts: NDArray[np.float64],
                  corr: PatchCorrelator, binning: int, min_correlation: float, relative_correlation: float,
                  min_roundness: float, should_stop: Callable[[], bool] | None = None,
                  ) -> tuple[MarkerTable, NDArray[np.float64]]:
    """The contours of ``table`` measured again with windows placed by ``al`` (see the module docstring).

    Each contour is followed from its middle view outward, view to view, with both windows where the
    contour's 3-D point projects; each step measures how far the content moved beyond what the alignment
    predicts, and these departures add up along the contour. Returns the new table (the same markers and
    views less the points whose correlation failed and those beyond them; contours left with under 3
    points dropped) and each point's normalised correlation (1 for the middle views)."""
    plane = PlaneMap(al)
    index = {int(m): i for i, m in enumerate(al.marker_ids)}
    mi = np.array([index.get(int(m), -1) for m in table.marker], dtype=np.intp)
    pred = np.full((len(table), 2), np.nan)
    usable = (mi >= 0) & np.all(np.isfinite(al.xyz_px[np.maximum(mi, 0)]), axis=1)
    pred[usable] = al.predicted_xy_px[table.view[usable], mi[usable]]
    prev, dist = _chains(table, tilts)
    # the windows stand where the model puts them, so every step is measured at once, pair of views by pair
    step = np.flatnonzero((prev >= 0) & np.isfinite(pred[:, 0]))
    step = step[np.isfinite(pred[prev[step], 0])]
    moved = np.full((len(table), 2), np.nan)
    ncc = np.full(len(table), np.nan)
    pairs = np.column_stack([table.view[prev[step]], table.view[step]])
    for a, b in np.unique(pairs, axis=0):
        if should_stop is not None and should_stop():
            raise Cancelled("patch tracking cancelled")
        sel = step[(pairs[:, 0] == a) & (pairs[:, 1] == b)]
        found, ncc[sel] = _measure(reader, plane, int(a), int(b), pred[prev[sel]], pred[sel], corr, binning,
                                   min_correlation, relative_correlation, min_roundness)
        moved[sel] = found - pred[sel]
    dev = np.full((len(table), 2), np.nan)  # the content's departure from the prediction, added up outward
    mid = (prev < 0) & np.isfinite(pred[:, 0])
    dev[mid], ncc[mid] = 0.0, 1.0
    for d in range(1, int(dist.max(initial=0)) + 1):
        at = np.flatnonzero(dist == d)
        dev[at] = dev[prev[at]] + moved[at]
    xy = pred + dev
    keep = np.isfinite(xy[:, 0])
    inverse = np.unique(table.marker, return_inverse=True)[1]
    keep &= np.bincount(inverse, weights=keep)[inverse] >= 3
    out = MarkerTable(table.view[keep], table.marker[keep], xy[keep], table.image_size, table.source)
    return out, ncc[keep]


def _measure(reader: ViewReader, plane: PlaneMap, r: int, b: int, at_r: NDArray[np.float64], at_b: NDArray[np.float64],
             corr: PatchCorrelator, binning: int, min_correlation: float, relative_correlation: float,
             min_roundness: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where the content of the windows at ``at_r`` in view ``r`` lies in view ``b`` (raw positions, NaN
    where the correlation fails), searched around ``at_b``; and the correlations."""
    out = np.full_like(at_r, np.nan)
    ncc = np.full(len(at_r), np.nan)
    k_r = raw_to_binned(at_r, binning)
    ki_r = np.rint(k_r).astype(np.intp)
    frac = k_r - ki_r
    pa, ok_a = cut(reader.view(r, binning), ki_r, corr.size)
    warped = warp_into(reader.view(b, binning), plane, r, b, binning)
    k_w = raw_to_binned(plane.map(at_b, b, r), binning) - frac  # where window r's corner content is expected
    ki_w = np.rint(k_w).astype(np.intp)
    pb, ok_b = cut(warped, ki_w, corr.size)
    ok = ok_a & ok_b
    if not ok.any():
        return out, ncc
    whole = np.rint(corr.correlate(pa[ok], pb[ok]).shift).astype(np.intp)
    pb2, ok2 = cut(warped, ki_w[ok] + whole, corr.size)
    idx = np.flatnonzero(ok)[ok2]
    if len(idx) == 0:
        return out, ncc
    res = corr.correlate(pa[idx], pb2[ok2])
    thr = max(min_correlation, relative_correlation * float(np.quantile(res.ncc, 0.9)), corr.chance)
    good = (res.ncc >= thr) & (res.roundness >= min_roundness) & ~res.at_limit
    found = ki_w[idx] + whole[ok2] + res.shift + frac[idx]
    g = idx[good]
    out[g] = plane.map(binned_to_raw(found[good], binning), r, b)
    ncc[idx] = res.ncc
    return out, ncc


def second_pass(first: PatchTrackingResult, reader: ViewReader, tilts: NDArray[np.float64], corr: PatchCorrelator,
                options: AlignmentOptions, thresholds: tuple[float, float, float], progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None) -> PatchTrackingResult:
    """The first pass's contours measured again with windows placed by its alignment (`refine_tracks`),
    renumbered from 1, and fitted with ``options`` at a tighter robust scale (``SECOND_PASS_ROBUST_SCALE``:
    these tracks are quieter, so a point off by a pixel is more likely wrong), the points weighted by
    their view's tilt (`tilt_weights`). The result records how many contours were lost (under 3 points
    left) and the pass's time."""
    t0 = time.perf_counter()
    table, al = first.markers, first.alignment
    if progress is not None:
        progress("fit", 0, 1, f"second pass: {len(table)} points measured where the first fit puts them")
    refined, _ = refine_tracks(reader, al, table, tilts, corr, first.binning, *thresholds, should_stop=should_stop)
    kept, marker = np.unique(refined.marker, return_inverse=True)
    refined = MarkerTable(refined.view, (marker + 1).astype(np.int64), refined.xy, refined.image_size,
                          refined.source)
    al2 = align_markers(refined.view, refined.marker, refined.xy, tilts, al.image_size,
                        replace(options, robust_scale=SECOND_PASS_ROBUST_SCALE), warn=False, should_stop=should_stop,
                        weights=tilt_weights(refined.view, tilts))
    lost = len(np.unique(table.marker)) - len(kept)
    return replace(first, markers=refined, alignment=al2, patch_of=first.patch_of[kept - 1],
                   dropped={**first.dropped, "contours lost in the second pass": lost},
                   timings_s={**first.timings_s, "second pass": time.perf_counter() - t0})


__all__ = ["SECOND_PASS_ROBUST_SCALE", "SECOND_PASS_TILT_WEIGHT_POWER", "PlaneMap", "refine_tracks", "second_pass",
           "tilt_weights"]
