"""Checks of the observations before a solve, and which views and markers the fit can determine.

A degenerate input is an error that names the problem, never a "converged" result: markers that all
sit at one point, positions far outside the image (1e150, or an image size of 1e23), no tilt range,
zero total weight, marker ids that no float or JSON reader keeps apart (2**53 and beyond).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import view_number
from ..errors import AlignmentError

MAX_IMAGE_SIDE = 1_000_000  # as io.limits (a header's image size); not imported from there: io is not loaded to solve
MAX_ID = 2**53  # marker ids and view numbers must be below this in size: exact as floats and in JSON
MIN_TILT_RANGE_DEG = 1.0  # below this the markers' depth is not determined at all
MIN_SPREAD_PX = 1.0  # the markers of at least one view must span this much
OUTSIDE_MARGIN = 0.1  # positions may lie this fraction of the larger image side outside the image


def _whole_numbers(values: ArrayLike, name: str) -> NDArray[np.int64]:
    """Integers exactly as given (an integer array is never sent through float), or `AlignmentError`."""
    a = np.asarray(values).ravel()
    if a.dtype.kind in "iu":
        if a.size and (int(a.max()) >= MAX_ID or int(a.min()) <= -MAX_ID):
            raise AlignmentError(f"{name} numbers must be below 2**53 in size; got {int(np.abs(a).max())}")
        return a.astype(np.int64)
    try:
        f = a.astype(float)
    except (TypeError, ValueError) as exc:
        raise AlignmentError(f"{name} numbers must be whole numbers: {exc}") from None
    if not np.all(np.isfinite(f)) or np.any(f != np.round(f)):
        raise AlignmentError(f"{name} numbers must be whole numbers")
    if f.size and np.max(np.abs(f)) >= MAX_ID:
        raise AlignmentError(f"{name} numbers must be below 2**53 in size; got {np.max(np.abs(f)):.17g}")
    return f.astype(np.int64)


def _check_duplicates(v: NDArray[np.int64], m: NDArray[np.int64]) -> None:
    order = np.lexsort((m, v))
    vs, ms = v[order], m[order]
    same = (vs[1:] == vs[:-1]) & (ms[1:] == ms[:-1])
    if same.any():
        pairs = sorted({(int(a), int(b)) for a, b in zip(vs[1:][same], ms[1:][same])})
        shown = ", ".join(f"(view {view_number(a)}, marker {b})" for a, b in pairs[:5])
        raise AlignmentError(
            f"{len(pairs)} (view, marker) pair(s) are given more than once: {shown}"
            f"{' ...' if len(pairs) > 5 else ''}; keep one point per marker per view"
        )


def _check_geometry(v: NDArray[np.int64], m: NDArray[np.int64], xy: NDArray[np.float64], tilts, size) -> None:
    """Positions inside the image (with a margin), spread over it, and a tilt range to see depth."""
    w, h = size
    margin = OUTSIDE_MARGIN * max(w, h)
    out = (xy[:, 0] < -margin) | (xy[:, 0] > w - 1 + margin) | (xy[:, 1] < -margin) | (xy[:, 1] > h - 1 + margin)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise AlignmentError(
            f"{int(out.sum())} marker position(s) lie outside the {w} x {h} image by more than {margin:g} px"
            f" (first: row {i}, view {view_number(v[i])}, marker {int(m[i])} at x {xy[i, 0]:.6g}, y {xy[i, 1]:.6g});"
            " check the image size and the positions' units (pixels)"
        )
    order = np.argsort(v, kind="stable")
    vs, pts = v[order], xy[order]
    starts = np.flatnonzero(np.r_[True, vs[1:] != vs[:-1]])
    spread = np.maximum(np.maximum.reduceat(pts[:, 0], starts) - np.minimum.reduceat(pts[:, 0], starts),
                        np.maximum.reduceat(pts[:, 1], starts) - np.minimum.reduceat(pts[:, 1], starts))
    if spread.max() < MIN_SPREAD_PX:
        raise AlignmentError(
            f"in every view all markers lie within {MIN_SPREAD_PX:g} px of one point; the markers must be"
            " distinct beads spread over the image"
        )
    seen = tilts[np.bincount(v, minlength=len(tilts)) > 0]
    if np.ptp(seen) < MIN_TILT_RANGE_DEG:
        raise AlignmentError(
            f"the views with markers span a tilt range of only {np.ptp(seen):.3g} deg (from {seen.min():g} to"
            f" {seen.max():g}); markers cannot be placed in depth without a tilt range: check the tilt file"
        )


def _numbers(values: ArrayLike, name: str, what: str) -> NDArray[np.float64]:
    """``values`` as a float array, or `AlignmentError` naming the parameter (None and text are refused)."""
    if values is None or isinstance(values, (str, bytes)):
        raise AlignmentError(f"{name} must be {what}, got {values!r:.60}")
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AlignmentError(f"{name} must be {what}: {exc}") from None


def check_call_types(options: object, settings: object, pixel_size_nm: object, start: object) -> None:
    """The keyword arguments of `align_markers` are of the types it takes; else TypeError naming the one."""
    from .options import AlignmentOptions, ModelSettings
    from .result import Alignment

    for name, value, kind in (("options", options, AlignmentOptions), ("settings", settings, ModelSettings),
                              ("start", start, Alignment)):
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{name} must be {kind.__name__} or None, got {type(value).__name__} {value!r:.60}")
    if pixel_size_nm is not None and not (
            isinstance(pixel_size_nm, (int, float, np.integer, np.floating)) and not isinstance(pixel_size_nm, bool)
            and np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel_size_nm must be a positive number of nm or None, got {pixel_size_nm!r:.60}")


def validate_observations(
    views: ArrayLike, markers: ArrayLike, xy: ArrayLike, tilt_angles_deg: ArrayLike, image_size: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], tuple[int, int],
           NDArray[np.float64]]:
    """Check the inputs of `align_markers` before any work; raise `AlignmentError` naming the problem.

    Returns the views, marker ids, positions, tilt angles, ``(width, height)`` and weights as arrays.
    """
    for name, given in (("views", views), ("markers", markers)):
        if given is None or isinstance(given, (str, bytes)):
            raise AlignmentError(f"{name} must be one whole number per observation, got {given!r:.60}")
    xy_a = _numbers(xy, "xy", "the (n, 2) marker positions in pixels")
    tilts = _numbers(tilt_angles_deg, "tilt_angles_deg", "one tilt angle in degrees per view").ravel()
    size = _numbers(image_size, "image_size", "(width, height) in pixels").ravel()
    n_views_given, n_markers_given = np.size(views), np.size(markers)
    if xy_a.ndim != 2 or xy_a.shape[1] != 2:
        raise AlignmentError(f"marker positions must be an (n, 2) array of (x, y), got shape {xy_a.shape}")
    n = len(xy_a)
    if n_views_given != n or n_markers_given != n:
        raise AlignmentError(
            f"got {n} positions but {n_views_given} view numbers and {n_markers_given} marker ids;"
            " give one of each per observation"
        )
    if n == 0:
        raise AlignmentError("there are no marker observations; click or import markers first")
    v = _whole_numbers(views, "view")
    m = _whole_numbers(markers, "marker")
    bad = ~np.all(np.isfinite(xy_a), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AlignmentError(
            f"{int(bad.sum())} marker position(s) are NaN or infinite (first: row {i}, view {view_number(v[i])},"
            f" marker {int(m[i])}); remove or correct them"
        )
    if np.any(v < 0):
        raise AlignmentError(f"view indices start at 0 (the first view); got index {int(v.min())}")
    if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size < 1) or np.any(size > MAX_IMAGE_SIDE):
        raise AlignmentError(f"image size must be two numbers from 1 to {MAX_IMAGE_SIDE} (width, height),"
                             f" got {image_size!r}")
    if tilts.size == 0 or not np.all(np.isfinite(tilts)):
        raise AlignmentError("tilt angles must be finite numbers, one per view")
    if np.any(np.abs(tilts) >= 90):
        raise AlignmentError("tilt angles must be in degrees within (-90, 90); check the tilt file")
    if v.max() >= len(tilts):
        raise AlignmentError(
            f"markers are placed on view {view_number(v.max())} but only {len(tilts)} tilt angles were given"
            f" (views 1-{len(tilts)}); the tilt file needs one angle per view of the stack"
        )
    _check_duplicates(v, m)
    w = _weights(weights, n)
    size_t = (int(size[0]), int(size[1]))
    _check_geometry(v, m, xy_a, tilts, size_t)
    return v.astype(np.intp), m, xy_a, tilts, size_t, w


def _weights(weights: ArrayLike | None, n: int) -> NDArray[np.float64]:
    try:
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    except (TypeError, ValueError):
        raise AlignmentError("weights must be numbers, one per observation") from None
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise AlignmentError("weights must be one finite, non-negative number per observation")
    total = float(np.sum(w))
    if not total > 0 or not np.isfinite(total):
        raise AlignmentError("the weights add up to zero: every observation would be left out of the fit")
    if w.max() > 1e12 * (total / n):
        raise AlignmentError("the weights span more than 12 orders of magnitude; scale them to a sensible range")
    return w


def determinable(
    v: NDArray[np.intp], mi: NDArray[np.intp], n_views: int, n_markers: int, min_markers_per_view: int,
    weights: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Views and markers kept in the fit: markers in >= 2 views, views with enough markers. With
    ``weights``, observations of weight 0 do not count (they add nothing to the fit)."""
    view_ok = np.ones(n_views, dtype=bool)
    marker_ok = np.ones(n_markers, dtype=bool)
    counts = np.ones(len(v), dtype=bool) if weights is None else np.asarray(weights) > 0
    while True:
        use = view_ok[v] & marker_ok[mi] & counts
        m_count = np.bincount(mi[use], minlength=n_markers)
        new_marker_ok = marker_ok & (m_count >= 2)
        use = view_ok[v] & new_marker_ok[mi] & counts
        v_count = np.bincount(v[use], minlength=n_views)
        new_view_ok = view_ok & (v_count >= min_markers_per_view)
        if np.array_equal(new_view_ok, view_ok) and np.array_equal(new_marker_ok, marker_ok):
            return view_ok, marker_ok
        view_ok, marker_ok = new_view_ok, new_marker_ok


def check_solution(view_params: NDArray[np.float64], xyz: NDArray[np.float64], view_ok: NDArray[np.bool_]) -> None:
    """After the solve: every determined view's parameters and every solved marker's position must be finite
    numbers (a NaN or an overflow is an error that says so, never a "converged" result)."""
    bad_views = view_ok & ~np.all(np.isfinite(view_params), axis=1)
    bad_markers = ~np.all(np.isfinite(xyz), axis=1)
    if bad_views.any() or bad_markers.any():
        raise AlignmentError(
            f"the solve gave no finite solution for {int(bad_views.sum())} view(s) and {int(bad_markers.sum())}"
            " marker(s); the input geometry is degenerate (check the tilt angles, the image size and the positions)"
        )


def check_tilts_in_range(tilt_deg: ArrayLike, view_ok: ArrayLike) -> None:
    """Before an alignment is written: every solved tilt within (-90, 90) degrees. Beyond, no tilt file holds it
    and the angles given did not match the views; `AlignmentError` says so (the tracker's fits may pass there)."""
    tilt = np.where(np.asarray(view_ok, bool), np.abs(np.nan_to_num(np.asarray(tilt_deg, float))), 0.0)
    if np.any(tilt >= 90.0):
        k = int(np.argmax(tilt))
        raise AlignmentError(
            f"the solved tilt of view {view_number(k)} is {tilt[k]:.1f} deg, beyond 90: the tilt angles given do not"
            " match the views (another series' file, or another order, such as SerialEM's order of acquisition for a"
            " stack sorted by tilt); give the tilt angles of this stack, in its order"
        )


TILT_FILE_REFUSED_DEG = 15.0  # `run` refuses solved tilts this far from the given ones (`align` warns from 5 deg)


def tilt_file_mismatch(solved_deg: ArrayLike, given_deg: ArrayLike, view_ok: ArrayLike) -> tuple[float, int] | None:
    """``(degrees, 0-based view)`` of the largest difference between solved and given tilt angles over the
    determined views when it exceeds `TILT_FILE_REFUSED_DEG` (a tilt file of another series, or in another
    order), else None."""
    off = np.where(np.asarray(view_ok, bool), np.abs(np.asarray(solved_deg, float) - np.asarray(given_deg, float)), 0.0)
    off = np.nan_to_num(off, nan=0.0)
    k = int(np.argmax(off)) if off.size else 0
    return (float(off[k]), k) if off.size and off[k] > TILT_FILE_REFUSED_DEG else None
