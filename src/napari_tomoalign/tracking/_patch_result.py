"""What patch tracking returns: the contours as a marker table, the robust alignment, and the account of
every patch laid (used, or dropped and why), with the agreement check and a report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..errors import AlignmentError
from ..io.table import MarkerTable
from .coarse import CoarseAlignment

# why a patch's track ended on one side of the start view (codes of `PatchTrackingResult.ends`)
REASONS = {1: "left the image", 2: "correlated poorly", 3: "edge-like peak", 4: "shift at the search limit",
           5: "left the specimen (brightness jump)"}
MAX_FLAGGED = 0.35  # more of the points weighed under 0.5 by the robust fit than this: patches disagree
MIN_POINTS_PER_VIEW = 10  # a median number of points per view under this: too few patches were followed
MAX_MEAN_RESIDUAL_PX = 3.0  # a mean residual of the points the robust fit kept above this: patches disagree
# After the first pass of several: its fit only places the later passes' windows, which re-measure every point
# (the hard lamella's first pass leaves 3.7-4.0 px, its last 1.1-1.5 px); the full limit holds at the end
FIRST_PASS_MAX_MEAN_RESIDUAL_PX = 6.0


class PatchTrackingError(AlignmentError):
    """The series cannot be aligned by its texture; the message gives the figure that decided it."""


@dataclass
class PatchTrackingResult:
    """Patch tracks and their alignment.

    Attributes
    ----------
    markers
        ``view, marker, x, y`` of every contour piece (one marker each), what `align_markers` reads.
    alignment
        The robust alignment of the contours.
    laid, centres
        ``(n, 2)`` patch centres laid on the start view, and those on the specimen that were followed.
    positions, correlation
        ``(n_views, n_followed, 2)`` tracked positions (NaN where not) and ``(n_views, n_followed)`` the
        normalised correlation of each step.
    ends
        ``(2, n_followed)`` why each track ended towards higher, then lower tilts (`REASONS`; 0: it ran
        to the end of the series).
    patch_of
        ``(n_markers,)`` the followed patch each contour piece comes from.
    """

    markers: MarkerTable
    alignment: Alignment
    coarse: CoarseAlignment
    laid: NDArray[np.float64]
    centres: NDArray[np.float64]
    positions: NDArray[np.float64]
    correlation: NDArray[np.float64]
    ends: NDArray[np.intp]
    patch_of: NDArray[np.intp]
    patch_size_px: int
    binning: int
    tilt_axis_source: str
    dropped: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_contours(self) -> int:
        return len(self.patch_of)

    @property
    def flagged(self) -> NDArray[np.bool_]:
        """``(n_points,)`` True where the robust fit weighed the point under 0.5."""
        w = self.alignment.robust_weights
        if w is None:
            return np.zeros(len(self.markers), dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(w < 0.5)

    @property
    def residual_px(self) -> NDArray[np.float64]:
        return np.hypot(*self.alignment.residuals_px.T)

    def end_counts(self) -> dict[str, int]:
        """How many track ends each reason caused (both sides counted)."""
        codes, counts = np.unique(self.ends[self.ends > 0], return_counts=True)
        return {REASONS[int(c)]: int(n) for c, n in zip(codes, counts)}

    def check_agreement(self, max_mean_px: float | None = None) -> None:
        """Raise `PatchTrackingError` when too few points hold the views (a median under
        `MIN_POINTS_PER_VIEW` per view) or the points disagree with the fit: a mean residual over the points
        the robust fit kept above ``max_mean_px`` (default `MAX_MEAN_RESIDUAL_PX`), or more than `MAX_FLAGGED`
        of them weighed under 0.5."""
        limit = MAX_MEAN_RESIDUAL_PX if max_mean_px is None else float(max_mean_px)
        per_view = np.bincount(self.markers.view, minlength=len(self.alignment.tilt_angles_deg))
        if np.median(per_view) < MIN_POINTS_PER_VIEW:
            raise PatchTrackingError(
                f"too few patches could be followed: a median of {np.median(per_view):g} points per view (needs"
                f" {MIN_POINTS_PER_VIEW}; {len(np.unique(self.patch_of))} of {len(self.laid)} patches used); try smaller"
                " patches or more overlap (--patch-size, --overlap)")
        frac = float(self.flagged.mean()) if len(self.markers) else 1.0
        kept = self.residual_px[~self.flagged & np.isfinite(self.residual_px)]
        mean = float(kept.mean()) if len(kept) else float("inf")
        if mean > limit:
            raise PatchTrackingError(
                f"the patches disagree: mean residual {mean:.2f} px over the {len(kept)} points the robust fit kept"
                f" (at most {limit:g} px is usable); the specimen may deform, the dose be too low for"
                " these patches (try --patch-size larger) or the tilt angles be wrong")
        if frac > MAX_FLAGGED:
            raise PatchTrackingError(
                f"the patches disagree: the robust fit weighed {100 * frac:.0f}% of {len(self.markers)} points under"
                f" 0.5 (at most {100 * MAX_FLAGGED:.0f}% is usable; RMS residual {self.alignment.rms_residual_px:.2f}"
                " px); the specimen may deform or the tilt angles may be wrong")

    def summary(self, warnings: bool = True) -> str:
        """A few lines for a log, the command line or the dock."""
        al = self.alignment
        used = len(np.unique(self.patch_of))
        lines = [f"patch tracking: {len(self.laid)} patches of {self.patch_size_px} px laid (binned {self.binning}),"
                 f" {used} used in {self.n_contours} contours, {len(self.markers)} points; tilt axis"
                 f" {al.tilt_axis_deg:.2f} deg ({self.tilt_axis_source})"]
        drops = {k: v for k, v in self.dropped.items() if v}
        not_used = len(self.centres) - used - self.dropped.get("tracked in under 3 views", 0)
        if not_used > 0:
            drops["ended before 3 views"] = not_used
        if drops:
            lines.append("patches dropped: " + ", ".join(f"{v} {k}" for k, v in drops.items()))
        ends = self.end_counts()
        if ends:
            lines.append("track ends: " + ", ".join(f"{v} {k}" for k, v in ends.items()))
        lines.append(f"alignment: mean residual {al.mean_residual_px:.3f} px, RMS {al.rms_residual_px:.3f} px;"
                     f" {int(self.flagged.sum())} points ({100 * self.flagged.mean():.1f}%) weighed under 0.5")
        lines.append(", ".join(f"{k} {v:.2f} s" for k, v in self.timings_s.items()))
        return "\n".join(lines + (self.warnings if warnings else []))  # the command line says them apart

    def batch_figures(self) -> dict[str, int]:
        """The tracking columns of a batch's summary row (``beads_tracked`` counts contours here)."""
        return dict(beads_tracked=self.n_contours, points_tracked=len(self.markers),
                    tracking_flagged=int(self.flagged.sum()), tracking_weak=0)

    def write_json(self, path: str | os.PathLike[str], tilt_source: str) -> None:
        """A batch's ``tracking.json`` for this run (atomically)."""
        import json

        from ..io.atomic import atomic_open

        used = len(np.unique(self.patch_of))
        info = {**self.batch_figures(), "method": "patch tracking", "patch_size_px": self.patch_size_px,
                "patches_laid": len(self.laid), "patches_used": used, "dropped": self.dropped,
                "track_ends": self.end_counts(), "tilt_source": tilt_source,
                "timings_s": {k: round(float(v), 4) for k, v in self.timings_s.items()},
                "warnings": list(self.warnings)}
        with atomic_open(path, overwrite=True) as f:
            json.dump(info, f, indent=1)
