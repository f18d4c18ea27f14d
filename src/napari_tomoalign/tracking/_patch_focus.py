"""Patch contours measured against a reference focused at their own depth (GUI-free).

On a thick slab a window holds content of many depths, and each depth moves differently as the slab
tilts, so a window followed view to view (both earlier passes) follows whichever depth happens to
correlate best, and that changes along the contour: the track is no rigid point, and the error adds up step
by step. Given an alignment, every window of a contour can instead be cut where the contour's 3-D point
``P`` projects, resampled into the frame of the contour's middle view by the alignment's mapping of the
specimen plane. Content at ``P``'s depth then stands still from window to window while content at other
depths slides by ``(z - z_P)`` times the change of ``tan(tilt)``: the mean of the windows is a picture of
``P``'s depth alone, the rest smeared out (the shift-and-add of tomosynthesis). Each window is correlated
against the mean of the contour's *other* windows (its own would pull the peak to where it was cut), so
each view is measured against one reference, not the view before: nothing adds up along the contour, and
what is followed is one depth. A few rounds re-cut the windows where they were found (each round's mean is
sharper). The points go back to the solver like any contour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, sparse

from ..alignment.options import AlignmentOptions
from ..alignment.solver import align_markers
from ..errors import Cancelled
from ..io.table import MarkerTable
from ._patch_follow import PatchCorrelator, StepResult, ViewMap, raw_to_binned
from ._patch_refine import SECOND_PASS_ROBUST_SCALE, PlaneMap, second_pass, tilt_weights
from ._patch_result import PatchTrackingResult
from ._views import ViewReader
from .coarse import Progress

# hard lamella 1024 x 41, seeds 1-3, end to end over the views with >= 20 % dose: after the second pass 8.0, 5.3,
# 6.1 px; after the focus passes (at most 3 of 2 rounds) 1.44, 1.19, 1.38 px (earlier code, 1 round a pass: 1.57, 2.96, 1.82)
FOCUS_PASSES = 3
FOCUS_MIN_GAIN = 0.1  # no further pass after one that lowered the mean residual by less than this fraction
FOCUS_ROUNDS = 2
BATCH = 1024  # windows correlated at once
# The focus windows' side relative to the patches' (96 px patches: 128 px windows): each is measured against a
# quiet mean of many, so its own noise decides, and a bigger window holds more signal. Hard lamella seeds 1-3
# (patches of 48 binned px), end to end: windows of 64 px 1.44/1.19/1.38, of 80 px 1.89/1.21/1.46; with the
# earlier code (3 passes, image-SD weights) 48 px 1.46/1.58/2.07, 64 px 1.51 and 96 px 2.40 on seed 3
FOCUS_SIZE = 4 / 3


def _middles(table: MarkerTable, tilts: NDArray[np.float64]) -> NDArray[np.intp]:
    """For each point, the view in the middle (in tilt order) of its contour."""
    rank = np.argsort(np.argsort(tilts, kind="stable"), kind="stable")
    order = np.lexsort((rank[table.view], table.marker))
    m_sorted = table.marker[order]
    starts = np.flatnonzero(np.r_[True, m_sorted[1:] != m_sorted[:-1]])
    stops = np.r_[starts[1:], len(m_sorted)]
    mid = np.empty(len(table), dtype=np.intp)
    for s0, s1 in zip(starts, stops, strict=True):
        mid[order[s0:s1]] = table.view[order[(s0 + s1 - 1) // 2]]
    return mid


def _window_spectra(reader: ViewReader, corr: PatchCorrelator, table: MarkerTable, at: NDArray[np.float64],
                    maps: NDArray[np.float64], binning: int, use: NDArray[np.bool_],
                    ) -> tuple[NDArray[np.complex64], NDArray[np.bool_]]:
    """The spectra (`PatchCorrelator.spectra`) of windows centred on raw positions ``at``, sampled on a grid of
    the middle view's frame carried into each point's view by ``maps`` ``(n, 2, 2)``, each scaled to unit
    energy under the filter (views differ in dose, and each should weigh alike in its contour's mean); and
    whether each lay inside its view. Only the points ``use``; the others, and windows off their view, zero.
    View by view, so that only the spectra are held whole."""
    size = corr.size
    g = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()])  # (2, size*size)
    spec = np.zeros((len(table), size, size // 2 + 1), dtype=np.complex64)
    ok = np.zeros(len(table), dtype=bool)
    centre = raw_to_binned(at, binning)
    for j in np.unique(table.view):
        idx = np.flatnonzero((table.view == j) & use & np.isfinite(at[:, 0]))
        if len(idx) == 0:
            continue
        img = reader.view(int(j), binning)
        pts = centre[idx, :, None] + np.einsum("nij,jk->nik", maps[idx], grid)  # (n, 2, size*size) x, y
        vals = ndimage.map_coordinates(img, [pts[:, 1].ravel(), pts[:, 0].ravel()], order=1, mode="constant",
                                       cval=np.nan, output=np.float32).reshape(len(idx), size, size)
        inside = np.isfinite(vals).all(axis=(1, 2))
        if not inside.any():
            continue
        s = corr.spectra(vals[inside])
        energy = np.einsum("nij,ij->n", s.real**2 + s.imag**2, corr.energy_weight)
        spec[idx[inside]] = s / np.sqrt(np.maximum(energy, 1e-30)).astype(np.float32)[:, None, None]
        ok[idx[inside]] = True
    return spec, ok


def _correlate(corr: PatchCorrelator, sums: NDArray[np.complex64], contour: NDArray[np.intp],
               spec: NDArray[np.complex64], idx: NDArray[np.intp]) -> StepResult:
    """Each window ``idx`` of ``spec`` correlated against its contour's sum less its own share, in batches of
    ``BATCH`` (the correlator's temporaries are several times its input)."""
    parts = [corr.correlate_spectra(sums[contour[i]] - spec[i], spec[i])
             for i in (idx[k:k + BATCH] for k in range(0, len(idx), BATCH))]
    if not parts:
        return corr.correlate_spectra(spec[idx], spec[idx])
    return StepResult(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("shift", "ncc", "roundness", "at_limit")))


def focus_tracks(reader: ViewReader, plane: ViewMap, at: NDArray[np.float64], table: MarkerTable,
                 tilts: NDArray[np.float64], corr: PatchCorrelator, binning: int, thresholds: tuple[float, float, float],
                 rounds: int = FOCUS_ROUNDS, should_stop: Callable[[], bool] | None = None) -> MarkerTable:
    """The contours of ``table`` measured against references focused at their own depth (module docstring),
    their windows first cut at ``at`` ``(n, 2)`` (raw; where the alignment projects each contour's point,
    NaN for none) and carried between views by ``plane``'s linear parts. Returns the same markers and views
    less the points whose correlation failed; contours left with under 3 points dropped."""
    min_correlation, relative_correlation, min_roundness = thresholds
    at = np.array(at, dtype=np.float64)
    mid = _middles(table, tilts)
    inv_mid = np.linalg.inv(np.stack([plane.matrix(int(r)) for r in range(len(tilts))]))
    mats = np.stack([plane.matrix(int(j)) for j in range(len(tilts))])
    maps = np.einsum("nij,njk->nik", mats[table.view], inv_mid[mid])  # middle frame -> each view, linear
    inverse = np.unique(table.marker, return_inverse=True)[1]
    member = sparse.csr_matrix((np.ones(len(table), np.float32), (inverse, np.arange(len(table)))),
                               shape=(inverse.max(initial=-1) + 1, len(table)))  # contour x point
    found = at.copy()
    good = np.isfinite(at[:, 0])
    for _ in range(max(1, rounds)):
        if should_stop is not None and should_stop():
            raise Cancelled("patch tracking cancelled")
        spec, ok = _window_spectra(reader, corr, table, found, maps, binning, good)
        # spectra are linear in the windows: each contour's sum less the window's own share is (up to a scale the
        # correlation ignores) the spectrum of the mean of its other windows
        sums = (member @ spec.reshape(len(spec), -1)).astype(np.complex64).reshape(-1, *spec.shape[1:])
        idx = np.flatnonzero(ok)
        res = _correlate(corr, sums, inverse, spec, idx)
        del spec, sums
        thr = max(min_correlation, relative_correlation * float(np.quantile(res.ncc, 0.9)) if len(idx) else 0.0,
                  corr.chance)
        fine = (res.ncc >= thr) & (res.roundness >= min_roundness) & ~res.at_limit
        good = np.zeros(len(table), dtype=bool)
        good[idx[fine]] = True
        found[idx[fine]] += binning * np.einsum("nij,nj->ni", maps[idx[fine]], res.shift[fine])
    at = found
    keep = good.copy()
    inverse = np.unique(table.marker, return_inverse=True)[1]
    keep &= np.bincount(inverse, weights=keep)[inverse] >= 3
    return MarkerTable(table.view[keep], table.marker[keep], at[keep], table.image_size, table.source)


def predicted_positions(result: PatchTrackingResult) -> NDArray[np.float64]:
    """Where the result's alignment projects each point's contour (raw; NaN where it has no point)."""
    al, table = result.alignment, result.markers
    index = {int(m): i for i, m in enumerate(al.marker_ids)}
    mi = np.array([index.get(int(m), -1) for m in table.marker], dtype=np.intp)
    at = np.full((len(table), 2), np.nan)
    usable = (mi >= 0) & np.all(np.isfinite(al.xyz_px[np.maximum(mi, 0)]), axis=1)
    at[usable] = al.predicted_xy_px[table.view[usable], mi[usable]]
    return at


def focus_pass(prior: PatchTrackingResult, reader: ViewReader, tilts: NDArray[np.float64], corr: PatchCorrelator,
               options: AlignmentOptions, thresholds: tuple[float, float, float],
               should_stop: Callable[[], bool] | None = None) -> PatchTrackingResult:
    """``prior``'s contours measured by `focus_tracks` (windows of ``corr``'s size) where its alignment puts
    them, renumbered from 1 and fitted as the second pass fits (its robust scale and tilt weights)."""
    t0 = time.perf_counter()
    table = focus_tracks(reader, PlaneMap(prior.alignment), predicted_positions(prior), prior.markers, tilts, corr,
                         prior.binning, thresholds, FOCUS_ROUNDS, should_stop)
    kept, marker = np.unique(table.marker, return_inverse=True)
    table = MarkerTable(table.view, (marker + 1).astype(np.int64), table.xy, table.image_size, table.source)
    al = align_markers(table.view, table.marker, table.xy, tilts, prior.alignment.image_size,
                       replace(options, robust_scale=SECOND_PASS_ROBUST_SCALE), warn=False, should_stop=should_stop,
                       weights=tilt_weights(table.view, tilts))
    lost = len(np.unique(prior.markers.marker)) - len(kept)
    key = "contours lost in the focus passes"
    return replace(prior, markers=table, alignment=al, patch_of=prior.patch_of[kept - 1],
                   dropped={**prior.dropped, key: prior.dropped.get(key, 0) + lost},
                   timings_s={**prior.timings_s, "focus": prior.timings_s.get("focus", 0.0) + time.perf_counter() - t0})


def later_passes(first: PatchTrackingResult, reader: ViewReader, tilts: NDArray[np.float64], corr: PatchCorrelator,
                 options: AlignmentOptions, thresholds: tuple[float, float, float], progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> PatchTrackingResult:
    """The second pass (`_patch_refine.second_pass`), then up to ``FOCUS_PASSES`` focus passes (`focus_pass`)
    with windows ``FOCUS_SIZE`` times the patches' side, while each lowers the mean residual of the points the
    robust fit kept by at least ``FOCUS_MIN_GAIN``."""
    result = second_pass(first, reader, tilts, corr, options, thresholds, progress, should_stop)
    focus = corr.resized(int(round(corr.size * FOCUS_SIZE / 2)) * 2)
    before = np.inf
    for k in range(FOCUS_PASSES):
        if progress is not None:
            progress("fit", 0, 1, f"focus pass {k + 1} of at most {FOCUS_PASSES}: {len(result.markers)} points")
        result = focus_pass(result, reader, tilts, focus, options, thresholds, should_stop)
        kept = result.residual_px[~result.flagged & np.isfinite(result.residual_px)]
        mean = float(kept.mean()) if len(kept) else np.inf
        if mean * (1.0 + FOCUS_MIN_GAIN) > before:
            break
        before = mean
    return result


__all__ = ["FOCUS_MIN_GAIN", "FOCUS_PASSES", "FOCUS_ROUNDS", "FOCUS_SIZE", "focus_pass", "focus_tracks", "later_passes",
           "predicted_positions"]
