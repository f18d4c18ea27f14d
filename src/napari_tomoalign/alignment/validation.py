"""Checks of the observations before a solve, and which views and markers the fit can determine."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import AlignmentError


def validate_observations(
    views: ArrayLike, markers: ArrayLike, xy: ArrayLike, tilt_angles_deg: ArrayLike, image_size: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], tuple[int, int],
           NDArray[np.float64]]:
    """Check the inputs of `align_markers` before any work; raise `AlignmentError` naming the problem.

    Returns the views, marker ids, positions, tilt angles, ``(width, height)`` and weights as arrays.
    """
    try:
        xy_a = np.asarray(xy, dtype=float)
        views_f = np.asarray(views, dtype=float).ravel()
        markers_f = np.asarray(markers, dtype=float).ravel()
        tilts = np.asarray(tilt_angles_deg, dtype=float).ravel()
        size = np.asarray(image_size, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise AlignmentError(f"marker observations must be numbers: {exc}") from None
    if xy_a.ndim != 2 or xy_a.shape[1] != 2:
        raise AlignmentError(f"marker positions must be an (n, 2) array of (x, y), got shape {xy_a.shape}")
    n = len(xy_a)
    if len(views_f) != n or len(markers_f) != n:
        raise AlignmentError(
            f"got {n} positions but {len(views_f)} view numbers and {len(markers_f)} marker ids;"
            " give one of each per observation"
        )
    if n == 0:
        raise AlignmentError("there are no marker observations; click or import markers first")
    bad = ~np.all(np.isfinite(xy_a), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AlignmentError(
            f"{int(bad.sum())} marker position(s) are NaN or infinite (first: row {i}, view {views_f[i]:g},"
            f" marker {markers_f[i]:g}); remove or correct them"
        )
    for name, arr in (("view", views_f), ("marker", markers_f)):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise AlignmentError(f"{name} numbers must be whole numbers")
    if np.any(views_f < 0):
        raise AlignmentError(f"view numbers start at 0; got view {int(views_f.min())}")
    if size.shape != (2,) or not np.all(np.isfinite(size)) or np.any(size < 1):
        raise AlignmentError(f"image size must be two positive numbers (width, height), got {image_size!r}")
    if tilts.size == 0 or not np.all(np.isfinite(tilts)):
        raise AlignmentError("tilt angles must be finite numbers, one per view")
    if np.any(np.abs(tilts) >= 90):
        raise AlignmentError("tilt angles must be in degrees within (-90, 90); check the tilt file")
    v = views_f.astype(np.intp)
    if v.max() >= len(tilts):
        raise AlignmentError(
            f"markers are placed on view {int(v.max())} but only {len(tilts)} tilt angles were given"
            f" (views 0-{len(tilts) - 1}); the tilt file needs one angle per view of the stack"
        )
    m = markers_f.astype(np.int64)
    key = v.astype(np.int64) * (int(m.max()) - int(m.min()) + 1) + (m - m.min())
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        dup = np.flatnonzero(np.isin(key, uniq[counts > 1]))
        pairs = sorted({(int(v[i]), int(m[i])) for i in dup})
        shown = ", ".join(f"(view {a}, marker {b})" for a, b in pairs[:5])
        raise AlignmentError(
            f"{len(pairs)} (view, marker) pair(s) are given more than once: {shown}"
            f"{' ...' if len(pairs) > 5 else ''}; keep one point per marker per view"
        )
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise AlignmentError("weights must be one finite, non-negative number per observation")
    return v, m, xy_a, tilts, (int(size[0]), int(size[1])), w


def determinable(
    v: NDArray[np.intp], mi: NDArray[np.intp], n_views: int, n_markers: int, min_markers_per_view: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Views and markers kept in the fit: markers in >= 2 views, views with enough markers."""
    view_ok = np.ones(n_views, dtype=bool)
    marker_ok = np.ones(n_markers, dtype=bool)
    while True:
        use = view_ok[v] & marker_ok[mi]
        m_count = np.bincount(mi[use], minlength=n_markers)
        new_marker_ok = marker_ok & (m_count >= 2)
        use = view_ok[v] & new_marker_ok[mi]
        v_count = np.bincount(v[use], minlength=n_views)
        new_view_ok = view_ok & (v_count >= min_markers_per_view)
        if np.array_equal(new_view_ok, view_ok) and np.array_equal(new_marker_ok, marker_ok):
            return view_ok, marker_ok
        view_ok, marker_ok = new_view_ok, new_marker_ok
