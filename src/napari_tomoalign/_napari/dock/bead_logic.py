"""Pure functions of the bead step (find beads, track) and of the triage order: no napari, magicgui or Qt.

Points follow napari's order, ``(view, y, x)`` in pixels of the tilt series; positions the core's, ``(x, y)``.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...alignment.result import Alignment
from ...conventions import view_number
from ...tracking.beads import BeadCandidates
from ...tracking.result import TrackingResult
from .logic import view_index

# Strength colours: a hue ramp from red at the threshold (doubtful) through yellow and green to cyan at a
# typical bead (strength 1, the median bead) and stronger; bright on grey images, and never white.
STRENGTH_HUES = (0.0, 0.52)
STRENGTH_SATURATION = 0.8
ADDED_RGBA = (1.0, 1.0, 1.0, 1.0)  # candidates the user clicked in: no strength
RING_OVER_BEAD = 1.5  # ring diameter over bead diameter: the bead's edge stays visible inside the ring
# The share of the progress bar of each stage of `track_beads`: (start, end) in percent.
TRACK_SHARES = {"coarse": (0, 20), "find": (20, 25), "track": (25, 85), "fill gaps": (85, 97), "fit": (97, 100)}


def nearest_zero_view(tilts: NDArray | None, stack: Any = None) -> int:
    """The view to find the beads on: the smallest |tilt| that is not blank, as the command line's default
    (`tracking.blank_views.first_clear_view`; 0 when the angles are unknown)."""
    if tilts is None or not len(tilts):
        return 0
    if stack is not None and len(tilts) == stack.shape[0]:
        from ...tracking.blank_views import first_clear_view

        return first_clear_view(stack, tilts)
    return int(np.argmin(np.abs(np.asarray(tilts, dtype=float))))


def strength_colors(strength: NDArray, threshold: float) -> NDArray[np.float64]:
    """``(n, 4)`` RGBA per candidate: the hue goes from red at the threshold to cyan at a typical bead
    (strength 1) and above (`STRENGTH_HUES`), linear in strength between."""
    s = np.asarray(strength, dtype=float).ravel()
    u = np.clip((s - float(threshold)) / max(1.0 - float(threshold), 1e-6), 0.0, 1.0)
    hue = STRENGTH_HUES[0] + u * (STRENGTH_HUES[1] - STRENGTH_HUES[0])
    rgb = [colorsys.hsv_to_rgb(float(h), STRENGTH_SATURATION, 1.0) for h in hue]
    return np.column_stack([np.reshape(rgb, (-1, 3)), np.ones(len(s))])


def rgba_hex(rgba: ArrayLike) -> str:
    return "#" + "".join(f"{int(round(255 * float(c))):02x}" for c in np.asarray(rgba)[:3])


def swatch(rgba: ArrayLike) -> str:
    """A small block of colour in rich text (a background behind two spaces: no glyph from another font,
    so the line keeps the label's line height)."""
    return f"<span style='background-color:{rgba_hex(rgba)}'>&nbsp;&nbsp;</span>"


def strength_legend(threshold: float, n_beads: int, n_clumps: int, view: int, tilt_deg: float) -> str:
    """Rich text for the dock: what the rings' colours and shapes mean, with the strengths they stand for."""
    thr = float(threshold)
    ramp = "".join(swatch(c) for c in strength_colors(np.linspace(thr, 1.0, 7), thr))
    return (f"{n_beads} candidates in view {view_number(view)} ({tilt_deg:.1f}&deg;). Colour = strength: {thr:.2f} {ramp} "
            f"1.00 and up (1: a typical bead; red: just over the threshold). {swatch(ADDED_RGBA)} added by you. "
            + (f"Squares: {n_clumps} clumps, tracked only with 'track clumps too'. " if n_clumps else "")
            + "Delete or add rings, then Track.")


def tracked_legend(n_beads: int, n_points: int, n_check: int, layer_name: str) -> str:
    """Rich text for the dock after Track: what the markers layer holds and what its outlines mean."""
    points = "point" if n_check == 1 else "points"
    return (f"Tracked {n_beads} beads ({n_points} points) into '{layer_name}', a markers layer: ring colour = "
            f"marker. <b>Thick white outline</b>: {n_check} {points} worth a check (faint in their view, flagged by "
            "the robust fit, or not in it); <i>Next big residual</i> (step 5) visits them first. Rings marked '?': "
            "where the model puts a bead in a view it was not tracked in. Edit as any markers (step 3), then Align.")


def candidate_points(cands: BeadCandidates, view: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The beads among ``cands`` (candidates above the threshold) as points ``(n, 3)`` (view, y, x) in
    pixels, and ``(n,)`` True for clumps (clustered or elongated)."""
    keep = np.asarray(cands.above, dtype=bool)
    xy = np.asarray(cands.xy, dtype=float)[keep]
    clump = (np.asarray(cands.clustered) | np.asarray(cands.elongated))[keep]
    return np.column_stack([np.full(len(xy), float(view)), xy[:, 1], xy[:, 0]]), clump


def seeds_from_points(data: NDArray, view: int, clump: NDArray | None = None, with_clumps: bool = False
                      ) -> tuple[NDArray[np.float64], int]:
    """``(n, 2)`` (x, y) seeds from the candidate points in ``view`` (clumps left out unless
    ``with_clumps``), and how many points lie in other views (ignored)."""
    d = np.asarray(data, dtype=float).reshape(-1, 3)
    here = view_index(d[:, 0]) == int(view)
    use = here if clump is None or with_clumps else here & ~np.asarray(clump, dtype=bool)
    return d[use][:, [2, 1]].copy(), int((~here).sum())


def tracked_points(result: TrackingResult) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """The tracked markers as points ``(n, 3)`` (view, y, x) in pixels, their marker ids, and ``(n,)`` True
    for points to check (weak, flagged by the robust fit, or not in the final fit)."""
    t = result.markers
    data = np.column_stack([t.view.astype(float), t.xy[:, 1], t.xy[:, 0]])
    check = np.asarray(result.weak, bool) | np.asarray(result.flagged, bool) | ~np.isfinite(result.residual_px)
    return data, np.asarray(t.marker, dtype=np.int64), check


def tracking_percent(stage: str, done: int, total: int) -> int:
    """Overall progress in percent of `track_beads` from one of its reports."""
    lo, hi = TRACK_SHARES.get(stage, (0, 100))
    return int(round(lo + min(1.0, max(0.0, done / max(total, 1))) * (hi - lo)))


@dataclass(frozen=True)
class Visit:
    """A point for triage to show: its view and marker, its residual (NaN if none) and why it comes early."""

    view: int
    marker: int
    residual_px: float
    note: str = ""


def visit_order(view: NDArray, marker: NDArray, residual: NDArray, priority: NDArray,
                notes: dict[int, str]) -> list[Visit]:
    """Visits sorted by ``priority`` (0 first), then by decreasing residual (a missing one counts as the
    largest); ``notes`` names each priority."""
    r = np.asarray(residual, dtype=float)
    key = np.where(np.isfinite(r), r, np.inf)
    order = np.lexsort((-key, np.asarray(priority)))
    return [Visit(int(view[k]), int(marker[k]), float(r[k]), notes.get(int(priority[k]), "")) for k in order]


def tracking_visits(result: TrackingResult) -> list[Visit]:
    """Triage order after Track: weak, flagged and unfitted points first, each group by residual."""
    t = result.markers
    weak, flagged = np.asarray(result.weak, bool), np.asarray(result.flagged, bool)
    missing = ~np.isfinite(result.residual_px)
    priority = np.where(flagged, 0, np.where(weak, 1, np.where(missing, 2, 3)))
    return visit_order(t.view, t.marker, result.residual_px, priority,
                       {0: "flagged by tracking's robust fit", 1: "weak: faint in this view", 2: "not in the fit"})


def checked_pairs(data: NDArray, marker: NDArray, check: NDArray | None) -> set[tuple[int, int]]:
    """``(view, marker)`` of the points of a markers layer whose ``check`` feature is True."""
    if check is None or not len(data):
        return set()
    c = np.asarray(check, dtype=bool)
    v, m = view_index(np.asarray(data)[:, 0])[c], np.asarray(marker, dtype=np.int64)[c]
    return {(int(a), int(b)) for a, b in zip(v, m)}


def alignment_visits(al: Alignment, check: set[tuple[int, int]]) -> list[Visit]:
    """Triage order after Align: points the robust fit flagged, then those tracking marked to check
    (``check``: (view, marker) pairs), then the rest, each group by decreasing residual."""
    used = np.flatnonzero(al.obs_used)
    v, m = al.obs_view[used], al.marker_ids[al.obs_marker[used]]
    marked = np.array([(int(a), int(b)) in check for a, b in zip(v, m)], dtype=bool)
    priority = np.where(al.flagged[used], 0, np.where(marked, 1, 2))
    return visit_order(v, m, np.hypot(*al.residuals_px[used].T), priority, {0: "flagged", 1: "marked by tracking"})
