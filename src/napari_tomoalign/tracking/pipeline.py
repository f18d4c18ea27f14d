"""From a raw tilt series to a fiducial model in one call: coarse alignment, bead finding, seed picking,
tracking in two passes, a re-fit of every point under the prewhitened background (`_whiten`) and a final
robust fit (`track_beads`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..alignment.result import Alignment
from ..conventions import view_number
from ..errors import Cancelled
from ..jobs.threads import honours_threads, thread_limit
from ..reconstruction.input_checks import REPLACE, check_finite_views
from ._profile import BeadProfile, fit_profile
from ._refine import clean_up, fill_gaps, polish
from ._spread import second_core
from ._views import ViewReader, extract_patches, patch_origins
from ._whiten import make_whitener
from .beads import BeadCandidates, find_beads
from .binned import track_binned, working_binning
from .blank_views import blank_note, choose_seed_view, find_blank_views, outward_order
from .coarse import CoarseAlignment, coarse_align
from .medians import median
from .result import TrackingResult, build_result, column_medians
from .seeds import pick_seeds
from .tracker import BeadTracker

Progress = Callable[[str, int, int, str], None]
SHORT_TRACK_SPAN_DEG = 20.0
POOL_FACTOR = 3
# Threads of the tracking's compiled loops, BLAS and FFTs when the caller sets none: one. Tracking is hundreds
# of steps of a few milliseconds, where waking a second thread (and its spinning between steps) cost more
# than it saved: 1024² x 41, 2 cores, 2.9 s CPU on one thread against 5.7 s on two, and less wall time too.
TRACKING_THREADS = 1


def learned_profile(img: NDArray[np.float32], xy: NDArray[np.float64], diameter: float, dark: bool) -> BeadProfile:
    """The beads' own radial profile from single beads of the seed view (the ideal one if too few); for
    dark beads on counts, of the multiplicative model the tracker fits."""
    ideal = BeadProfile.ideal(diameter)
    mult = bool(dark and img.min() >= 0 and median(img) > 0)
    if len(xy) < 4:
        return ideal
    r_max = diameter / 2 + 3.5
    size = 2 * int(np.ceil(r_max + 1.5)) + 1
    origins = patch_origins(xy[:300], size)
    patches, inside = extract_patches(img, origins, size)
    fit = fit_profile(patches, xy[:300] - origins, ideal, diameter / 2 + 2.5, multiplicative=mult)
    sign = -1.0 if dark else 1.0
    ok = inside & fit.converged & (sign * fit.amplitude > 0) & (fit.elongation < 1.3)
    if ok.sum() < 4:
        return ideal
    return BeadProfile.learned(patches[ok], fit.xy[ok], fit.background[ok], fit.amplitude[ok], diameter / 2, r_max,
                               prior=ideal, multiplicative=mult)


def _short_track_quality(tr: BeadTracker) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Heights and a quality in (0, 1] of every bead from the short tracks (fraction found, residual)."""
    z = np.full(tr.n_beads, np.nan)
    frac = np.isfinite(tr.pos[tr.done][..., 0]).mean(axis=0)
    resid = np.full(tr.n_beads, 1.0)
    al = tr.refit()
    if al is not None:
        _, mean = al.per_marker_residual_px()
        for i, m in enumerate(al.marker_ids):
            if al.marker_included[i]:
                z[m - 1] = al.xyz_px[i, 2]
                resid[m - 1] = mean[i]
    return z, frac / (1.0 + np.nan_to_num(resid, nan=1.0) / 0.5)


def _seed_beads(reader, seed_view, diameter, dark, estimate, progress, searches) -> tuple[BeadCandidates, float]:
    img = reader.view(seed_view)
    if estimate:
        from .diameter import estimate_bead_diameter

        diameter = estimate_bead_diameter(img, diameter, dark=dark)
    cands = find_beads(img, diameter, dark=dark, searches=searches)
    if progress is not None:
        progress("find", 1, 1, f"{int(cands.above.sum())} bead candidates in view {view_number(seed_view)}")
    return cands, diameter


def _starts(reader, seed, diameter, seeds_xy, n_beads, dark, estimate, clumps, progress, searches):
    """The candidates, the diameter, and the starting positions of the beads to track with the clumps to
    avoid (None for given seeds): every usable bead, or (for a target) a spread pool of three times as
    many for the short tracks."""
    if seeds_xy is not None:
        xy = np.asarray(seeds_xy, dtype=float).reshape(-1, 2)
        if len(xy) == 0:
            raise ValueError("no seed positions were given; give at least 3 beads to track")
        return None, diameter, xy, None
    cands, diameter = _seed_beads(reader, seed, diameter, dark, estimate, progress, searches)
    xy, avoid = cands.xy[cands.above], (cands.elongated | (cands.clustered & (clumps != "track")))[cands.above]
    target = None if n_beads is None else max(POOL_FACTOR * int(n_beads), 60)
    pool = pick_seeds(xy, target, (reader.shape[1], reader.shape[0]), bead_diameter_px=diameter, avoid=avoid)
    return cands, diameter, xy[pool], avoid[pool]


@honours_threads
def track_beads(
    stack: NDArray,
    tilt_angles_deg: ArrayLike,
    bead_diameter_px: float,
    *,
    tilt_axis_deg: float | None = None,
    n_beads: int | None = None,
    seed_view: int | None = None,
    seeds_xy: ArrayLike | None = None,
    skip_views: Sequence[int] | None = None,
    dark: bool = True,
    estimate_diameter: bool = False,
    coarse: CoarseAlignment | None = None,
    whiten: bool = True,
    binning: int | None = None,
    clumps: str = "skip",
    full_resolution: bool = False,
    threads: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    searches: dict | None = None,
) -> TrackingResult:
    """Track gold beads through a raw tilt series and return the fiducial model.

    Parameters
    ----------
    stack
        ``(n_views, rows, cols)`` raw tilt series; a memory map is read one view at a time.
    tilt_angles_deg
        ``(n_views,)`` nominal tilt angles in stack order.
    bead_diameter_px
        Bead diameter in pixels (``diameter_nm / pixel_size_nm``).
    tilt_axis_deg
        Tilt-axis angle from the image's y axis, counter-clockwise (for the coarse alignment's cosine
        stretch and the solver's branch); None estimates it from the tracks.
    n_beads
        Target number of beads, spread over the field and both surfaces; None tracks every single bead
        away from the borders.
    seed_view, seeds_xy
        The view to start from (default: the minimum tilt that is not skipped) and, optionally, the
        ``(n, 2)`` bead positions in it to track (for example candidates the user edited); then no beads are
        found or picked.
    skip_views
        0-based views left out of the coarse alignment's chain and the tracking, which carry on across them
        (IMOD's ``SkipViews``); None: the blank ones (`blank_views.find_blank_views`), named in a note.
    dark
        Beads darker than the background (bright field).
    estimate_diameter
        Measure the diameter from the data, starting from ``bead_diameter_px``.
    coarse
        A coarse alignment already made (`coarse_align`); made here when None.
    whiten
        Re-fit every point under the prewhitened background before the final fit (`_whiten`): texture
        that pulls the centres the same way in every view is kept from the 3-D positions.
    binning
        Track on a copy binned this much and refine every point at full resolution (`binned`); default
        `binned.working_binning` (beads of 8-16 px; 1, no binning, for beads under 16 px).
    clumps
        ``"skip"`` leaves out beads with another within 2 diameters in the seed view (IMOD's default);
        ``"track"`` tracks each bead of a clump that the finder resolves, fitted with its neighbours
        subtracted (merged, elongated blobs are still left out).
    full_resolution
        With a binning: move every point to its fit at full resolution (default: keep the binned fit,
        mapped to full resolution, which came out better end to end on the benchmark's unbinned sets).
    threads
        Cap on the threads of FFTs, BLAS and compiled loops (a GUI keeps a core for itself), applied around
        the whole call (`jobs.threads.honours_threads`); None: `TRACKING_THREADS`.
    progress, should_stop
        ``progress(stage, done, total, text)`` with stages ``coarse``, ``find``, ``track``, ``fill gaps`` and
        ``fit``; `Cancelled` is raised between views when ``should_stop()`` returns True.
    searches
        `find_beads`'s searches already made (by the diameter check, `diameter.diameter_to_track`): the seed
        view's search is reused when its pixels and parameters are the same.

    Raises
    ------
    BeadFindingError
        When no beads can be told from other peaks in the seed view.
    """
    tilts = _check(stack, tilt_angles_deg, bead_diameter_px, clumps)
    skip, seed, seed_note = _skips_and_seed(stack, tilts, seed_view, skip_views)
    with thread_limit(TRACKING_THREADS if threads is None else threads), second_core(threads is None):
        b = working_binning(bead_diameter_px, stack.shape[1:]) if binning is None else int(binning)
        if b > 1:
            binned = track_binned(stack, tilts, bead_diameter_px, b, tilt_axis_deg=tilt_axis_deg, n_beads=n_beads,
                                  seed_view=seed, skip_views=skip, seeds_xy=seeds_xy, dark=dark,
                                  estimate_diameter=estimate_diameter, coarse=coarse, whiten=whiten, progress=progress,
                                  should_stop=should_stop, clumps=clumps, full_resolution=full_resolution,
                                  searches=searches)
            binned.warnings[:0] = [seed_note] if seed_note else []
            return binned
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if coarse is None:
            coarse = coarse_align(stack, tilts, tilt_axis_deg=tilt_axis_deg, progress=progress, should_stop=should_stop,
                                  skip_views=skip)
        timings["coarse"] = time.perf_counter() - t0
        reader = ViewReader(stack, cache=3)
        t0 = time.perf_counter()
        cands, diameter, xy, avoid = _starts(reader, seed, float(bead_diameter_px), seeds_xy, n_beads, dark,
                                             estimate_diameter, clumps, progress, searches)
        profile = learned_profile(reader.view(seed), xy[~avoid] if avoid is not None else xy, diameter, dark)
        notes: list[str] = [seed_note] if seed_note else []
        timings["find"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr = BeadTracker(reader, tilts, coarse, profile, xy, seed, dark=dark, tilt_axis_deg=tilt_axis_deg,
                         clumps=clumps == "track", skip=skip)
        pairs = outward_order(tilts, seed, skip)
        done = 0
        if n_beads is not None and n_beads < tr.n_beads and seeds_xy is None:
            done = _short_pairs(tilts, pairs, seed)
            tr.run(pairs[:done], progress, should_stop, total=len(pairs) + 1)
            z, quality = _short_track_quality(tr)
            tr.subset(pick_seeds(xy, n_beads, (reader.shape[1], reader.shape[0]), bead_diameter_px=diameter,
                                 avoid=avoid, z_px=z, quality=quality))
            tr.refit()
        tr.run(pairs[done:], progress, should_stop, offset=done, total=len(pairs) + 1)
        timings["track"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fill_gaps(tr, progress, should_stop)
        timings["refine"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if whiten:
            _polish(tr, cands, profile, dark, should_stop)
        timings["polish"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if should_stop is not None and should_stop():
            raise Cancelled("tracking cancelled")
        if progress is not None:
            progress("fit", 0, 1, "final robust fit")
        al = clean_up(tr)
        timings["refine"] += time.perf_counter() - t0
        return _result(tr, al, reader, coarse, cands, seed, diameter, timings, notes)


def _polish(tr: BeadTracker, cands: BeadCandidates | None, profile: BeadProfile, dark: bool,
            should_stop: Callable[[], bool] | None) -> None:
    """Every point re-fitted under the prewhitened background, its spectrum measured on the seed view with
    every bead found erased, the beads' whitened profile learned from the tracked ones there."""
    seed, reader = tr.seed_view, tr.reader
    seed_xy = tr.pos[seed][np.isfinite(tr.pos[seed, :, 0])]
    every = cands.xy[cands.above] if cands is not None else seed_xy
    whitener = make_whitener(reader.view(seed), every, seed_xy, profile, dark=dark, hot=reader.hot_level(seed))
    polish(tr, whitener, should_stop)


def _skips_and_seed(stack, tilts, seed_view, skip_views) -> tuple[tuple[int, ...], int, str | None]:
    """The views to skip (given, else the blank ones), the seed view (given, else the minimum tilt not skipped),
    and the note naming blank views found here."""
    found = skip_views is None
    skip = tuple(sorted(int(v) for v in (find_blank_views(stack, tilts) if found else skip_views)))
    seed = choose_seed_view(tilts, skip, seed_view)
    skip = tuple(v for v in skip if v != seed)  # a seed view given is tracked, blank or not
    return skip, seed, blank_note(skip, tilts, seed) if found else None


def _check(stack, tilt_angles_deg, bead_diameter_px, clumps="skip") -> NDArray[np.float64]:
    if clumps not in ("skip", "track"):
        raise ValueError(f"clumps must be 'skip' or 'track', not {clumps!r}")
    if getattr(stack, "ndim", 0) != 3:
        raise ValueError(f"the stack must be 3-D (views, rows, cols), not {getattr(stack, 'ndim', 0)}-D")
    tilts = np.asarray(tilt_angles_deg, dtype=float).ravel()
    if len(tilts) != stack.shape[0]:
        raise ValueError(f"{len(tilts)} tilt angles for a stack of {stack.shape[0]} views; they must match")
    if not np.all(np.isfinite(tilts)) or np.any(np.abs(tilts) >= 90):
        raise ValueError("tilt angles must be finite and within (-90, 90) degrees")
    d = float(bead_diameter_px)
    if not np.isfinite(d) or not 1.5 <= d <= min(stack.shape[1:]) / 4:
        raise ValueError(f"a bead diameter of {d:g} px does not fit these {stack.shape[2]} x {stack.shape[1]}"
                         " images; give it in pixels (diameter in nm / pixel size in nm)")
    check_finite_views(stack, what="tilt series", remedy=REPLACE)
    return tilts


def _short_pairs(tilts, pairs, seed) -> int:
    """How many of the first ``pairs`` span ``SHORT_TRACK_SPAN_DEG`` around the seed (at least 4)."""
    for k, (j, _) in enumerate(pairs):
        if abs(tilts[j] - tilts[seed]) >= SHORT_TRACK_SPAN_DEG / 2 and k >= 3:
            return k + 1
    return len(pairs)


def _odd_tracks(tr: BeadTracker, al: Alignment | None) -> NDArray[np.bool_]:
    """``(n_beads,)`` True for tracks that follow something other than the gold: under 3 points; a median
    contrast under 0.6 of the median track's; or under 0.8 of it together with a mean residual over 3 times
    the median track's or an elongation 0.1 above the median (gold beads of one size are alike; stain blobs
    are fainter, less round and less consistent with the 3-D model)."""
    count = np.isfinite(tr.pos[..., 0]).sum(axis=0)
    odd = count < 3
    if (~odd).sum() < 5:
        return odd
    contrast, elong = (column_medians(a, 0.0) for a in (tr.contrast, tr.elongation))
    resid = np.zeros(tr.n_beads)
    if al is not None:
        _, mean = al.per_marker_residual_px()
        ok = al.marker_included & (al.marker_ids - 1 < tr.n_beads)
        resid[al.marker_ids[ok] - 1] = np.nan_to_num(mean[ok])
    keep = ~odd
    c0, r0, e0 = (float(np.median(a[keep])) for a in (contrast, resid, elong))
    faint = contrast < 0.8 * c0
    return odd | (contrast < 0.6 * c0) | (faint & ((resid > 3.0 * r0) | (elong > e0 + 0.1)))


def _result(tr, al, reader, coarse, cands, seed, diameter, timings, notes) -> TrackingResult:
    """Drop short and faint tracks, then assemble the result."""
    odd = _odd_tracks(tr, al)
    warnings = list(notes)
    if odd.any():
        warnings.append(f"{int(odd.sum())} track(s) shorter than 3 views or fainter than the gold were dropped")
        tr.subset(np.flatnonzero(~odd), keep_model=True)
        al = clean_up(tr, rounds=0)
    noise = np.array([reader.sd.get(j, np.nan) for j in range(reader.n_views)])
    size = (reader.shape[1], reader.shape[0])
    return build_result(tr.pos, tr.contrast, tr.elongation, None if tr.relative else noise, al, size, coarse=coarse,
                        candidates=cands, seed_view=seed, bead_diameter_px=diameter, warnings=warnings,
                        timings_s=timings)
