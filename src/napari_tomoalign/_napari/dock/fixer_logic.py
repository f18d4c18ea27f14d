"""3dmod's Bead Fixer, the pure part: no napari, magicgui or Qt here.

- Centring a point on its bead uses the tracker's own localisation (`tracking._measure.fit_at`: the sub-pixel
  fit of the bead's radial profile), on a patch cut around the point (a 4096 x 4096 view is never copied), binned
  as the tracker bins unbinned data (`tracking.binned.working_binning`: beads of 8-16 px); where that fit fails
  from the point (on a bead's edge), from the centre of the bead's mass near it (a centroid, as 3dmod's).
- Gaps are the views where the model puts a marker inside the image and the layer has no point of it now (the
  '?' rings, and any point deleted since).
- Re-tracking one bead walks outward from a corrected point, view after view in both directions: the guess in
  the next view is the model's prediction shifted by the correction found in the last one (the last position
  when there is no model), and the tracker's fit places it; it stops where the fit fails or lands farther than a
  bead's diameter from the guess (with a model, after `MISSES` such views in a row: a bead hidden in one view).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ...alignment.result import Alignment
from ...reconstruction.warp import bin_image
from ...tracking._measure import fit_at
from ...tracking._profile import BeadProfile
from ...tracking._views import hot_threshold
from ...tracking.binned import to_binned, to_full, working_binning

MISSES = 2
PATCH_DIAMETERS = 3.0  # half the side of the patch cut around a point, in bead diameters (plus a margin)


def measured_diameter(view: NDArray, given_px: float, dark: bool = True) -> float:
    """The beads' diameter measured on ``view`` from ``given_px``, as *Find beads* and Track measure it
    (`tracking.diameter.diameter_to_track`); ``given_px`` where none can be measured or the measure is far from it.
    The Bead Fixer fits with it: with the dock's diameter a third off (10 nm gold given for 15 nm, the dock's
    default after reopening a series), *Centre on bead* left points 1.2-1.5 px short of 10 px beads (new user s14)."""
    from ...tracking.diameter import DiameterError, diameter_to_track

    try:
        return float(diameter_to_track(np.asarray(view, dtype=np.float32)[None], np.zeros(1), float(given_px),
                                       dark=dark))
    except (DiameterError, ValueError):
        return float(given_px)


def centre_on_bead(view: NDArray, xy: NDArray, diameter_px: float, dark: bool = True
                   ) -> tuple[NDArray[np.float64], bool]:
    """The bead's centre near ``xy`` (x, y) in the 2-D image ``view`` and whether the fit found one there."""
    rows, cols = view.shape[-2:]
    half = int(np.ceil(PATCH_DIAMETERS * diameter_px)) + 8
    x0, y0 = max(int(round(xy[0])) - half, 0), max(int(round(xy[1])) - half, 0)
    x1, y1 = min(int(round(xy[0])) + half + 1, cols), min(int(round(xy[1])) + half + 1, rows)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return np.asarray(xy, dtype=float), False
    patch = np.ascontiguousarray(view[y0:y1, x0:x1], dtype=np.float32)
    start = np.asarray(xy, dtype=float).reshape(1, 2) - [x0, y0]
    b = working_binning(diameter_px, (rows, cols))  # as the tracker fits unbinned data: on its working binning
    if b > 1:  # (new user's finding Q, session 12: at full resolution, 1-2 counts a pixel hid a 50 px bead)
        found, ok = _fit_near(bin_image(patch, b), to_binned(start, b)[0], diameter_px / b, dark)
        found = to_full(found.reshape(1, 2), b)[0] + [x0, y0]
    else:
        found, ok = _fit_near(patch, start[0], diameter_px, dark)
        found = found + [x0, y0]
    ok = ok and bool(np.all(np.isfinite(found)))
    return (found if ok else np.asarray(xy, dtype=float)), ok


def _fit_near(img: NDArray[np.float32], start: NDArray[np.float64], d: float, dark: bool) -> tuple[NDArray, bool]:
    """The tracker's fit from ``start``; where it fails or leaves the bead, again from the bead's mass centre
    (`_mass_centre`): a point on a bead's edge, 4 px off a 10 px bead, was "no bead found" (new user s14)."""
    profile, sign, hot = BeadProfile.ideal(d), -1.0 if dark else 1.0, hot_threshold(img)
    m = fit_at(img, start.reshape(1, 2), profile, sign, hot)
    if bool(m.ok[0]) and np.hypot(*(m.xy[0] - start)) <= 0.5 * d:
        return m.xy[0], True
    near = _mass_centre(img, start, d, dark)
    if np.array_equal(near, start):
        return m.xy[0], bool(m.ok[0])
    m = fit_at(img, near.reshape(1, 2), profile, sign, hot)
    return m.xy[0], bool(m.ok[0])


def _mass_centre(patch: NDArray[np.float32], start: NDArray[np.float64], d: float, dark: bool) -> NDArray[np.float64]:
    """Where the fit starts: the centre of the bead's mass near ``start`` (the density beyond the median of a ring
    around it, within 0.8 diameters), moved until it holds, as 3dmod's Bead Fixer centroids; ``start`` itself
    when there is no mass or it walks more than a diameter away."""
    smooth = ndimage.gaussian_filter(patch, max(0.85, d / 12))
    mass = -smooth if dark else smooth
    yy, xx = np.mgrid[: patch.shape[0], : patch.shape[1]]
    p = np.asarray(start, dtype=float)
    for _ in range(8):
        r = np.hypot(xx - p[0], yy - p[1])
        ring = (r >= 0.9 * d) & (r <= 1.3 * d)
        if not ring.any():
            return np.asarray(start, dtype=float)
        w = np.clip(mass - np.median(mass[ring]), 0.0, None) * (r <= 0.8 * d)
        total = float(w.sum())
        if total <= 0.0:
            return np.asarray(start, dtype=float)
        q = np.array([(w * xx).sum(), (w * yy).sum()]) / total
        if np.hypot(*(q - start)) > d:
            return np.asarray(start, dtype=float)
        step, p = float(np.hypot(*(q - p))), q
        if step < 0.05:
            break
    return p


def retrack_bead(stack: NDArray, start_view: int, start_xy: NDArray, diameter_px: float,
                 predicted: NDArray | None = None, dark: bool = True) -> dict[int, NDArray[np.float64]]:
    """``{view: (x, y)}`` of one bead tracked from ``start_xy`` in ``start_view`` through the views on both sides;
    ``predicted`` ``(n_views, 2)`` is the model's position of that marker in each view (NaN where none)."""
    n = len(stack)
    out = {int(start_view): np.asarray(start_xy, dtype=float)}
    pred = None if predicted is None else np.asarray(predicted, dtype=float)
    for step in (1, -1):
        last = np.asarray(start_xy, dtype=float)
        offset = last - pred[start_view] if pred is not None and np.all(np.isfinite(pred[start_view])) else None
        j, misses = int(start_view) + step, 0
        while 0 <= j < n:
            model = pred is not None and offset is not None and np.all(np.isfinite(pred[j]))
            guess = pred[j] + offset if model and pred is not None and offset is not None else last
            xy, ok = centre_on_bead(stack[j], guess, diameter_px, dark)
            if not ok or np.hypot(*(xy - guess)) > diameter_px:
                misses += 1
                if not model or misses > MISSES:
                    break
                j += step
                continue
            out[j], last, misses = xy, xy, 0
            if model and pred is not None:
                offset = xy - pred[j]
            j += step
    return out


def gaps(al: Alignment, data: NDArray, marker: NDArray) -> list[tuple[int, int, NDArray[np.float64]]]:
    """``(view, marker id, (x, y))`` wherever the model puts a marker inside the image and the markers layer
    (``data`` (view, y, x), ``marker`` ids) has no point of it now, by marker then view (3dmod's Next gap order)."""
    w, h = al.image_size
    p = al.predicted_xy_px
    inside = np.all(np.isfinite(p), axis=2) & (p[..., 0] >= 0) & (p[..., 0] <= w - 1) & (p[..., 1] >= 0) \
        & (p[..., 1] <= h - 1)
    wanted = inside & al.view_determined[:, None] & al.marker_included[None, :]
    column = {int(m): k for k, m in enumerate(al.marker_ids)}
    d = np.asarray(data, dtype=float).reshape(-1, 3)
    for v, m in zip(np.round(d[:, 0]).astype(np.int64), np.asarray(marker, dtype=np.int64)):
        if int(m) in column and 0 <= v < al.n_views:
            wanted[v, column[int(m)]] = False
    views, cols = np.nonzero(wanted)
    order = np.lexsort((views, al.marker_ids[cols]))
    return [(int(views[k]), int(al.marker_ids[cols[k]]), p[views[k], cols[k]].astype(float)) for k in order]


def next_gap(found: list[tuple[int, int, NDArray[np.float64]]], current: tuple[int, int] | None) -> int | None:
    """Index in ``found`` of the gap after ``current`` ``(view, marker)`` in (marker, view) order, wrapping."""
    if not found:
        return None
    if current is None:
        return 0
    key = (current[1], current[0])
    later = [k for k, (v, m, _) in enumerate(found) if (m, v) > key]
    return later[0] if later else 0


def with_point(data: NDArray, marker: NDArray, view: int, marker_id: int, xy: NDArray
               ) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
    """Points ``data`` (view, y, x) and ``marker`` ids with ``marker_id``'s point in ``view`` at ``xy`` (x, y):
    moved when there is one, added otherwise; and the index of that point."""
    d = np.array(data, dtype=float).reshape(-1, 3)
    m = np.asarray(marker, dtype=np.int64)
    hit = np.flatnonzero((np.round(d[:, 0]).astype(np.int64) == view) & (m == marker_id))
    if hit.size:
        d[hit[0], 1:] = xy[1], xy[0]
        return d, m, int(hit[0])
    return (np.vstack([d, [float(view), float(xy[1]), float(xy[0])]]), np.append(m, np.int64(marker_id)),
            len(d))
