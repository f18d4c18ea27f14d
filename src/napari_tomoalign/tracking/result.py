"""What tracking returns: the marker table, per-bead and per-point quality, and how to save them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..io.atomic import atomic_open
from ..io.imod_model import DEFAULT_NAME, TRACKED_ON
from ..io.markers import MarkerTable, write_imod_model, write_markers_csv
from .beads import BeadCandidates
from .coarse import CoarseAlignment

WEAK_FRACTION = 0.6


@dataclass(frozen=True)
class BeadQuality:
    """Per tracked bead (``(n_beads,)`` arrays, in marker order).

    Attributes
    ----------
    marker
        Marker id (1, 2, ...).
    n_views
        Track length: views with a point.
    fraction
        Points over the views where the final model puts the bead wholly inside the image.
    mean_residual_px
        Mean residual length against the final alignment.
    contrast
        Median fitted depth of the bead: for count data (bright field, no negative values) as a fraction of
        the background under it (the share of electrons the gold stops); otherwise over the view's noise SD
        (a signal-to-noise ratio).
    elongation
        Median ratio of the principal spreads of the bead's density (1 for a round bead; clumps and
        overlapping beads are higher).
    z_px
        Height in the section from the final alignment (the markers' centroid at 0); NaN if not fitted.
    n_flagged
        Points that the robust fit weighed below 0.5 (kept, worth a look).
    """

    marker: NDArray[np.int64]
    n_views: NDArray[np.intp]
    fraction: NDArray[np.float64]
    mean_residual_px: NDArray[np.float64]
    contrast: NDArray[np.float64]
    elongation: NDArray[np.float64]
    z_px: NDArray[np.float64]
    n_flagged: NDArray[np.intp]


@dataclass
class TrackingResult:
    """The fiducial model made from a raw tilt series.

    Attributes
    ----------
    markers
        The ``view, marker, x, y`` table that `align_markers` and ``tomoalign align`` read.
    residual_px, flagged, weak
        ``(n_points,)`` per row of ``markers``: residual length against ``alignment``; True where the robust
        fit weighed the point below 0.5; True where its contrast is under 0.6 of the bead's median. The
        points worth checking first.
    quality
        Per-bead `BeadQuality`.
    alignment
        The robust alignment of the final markers (None if it could not be solved).
    coarse, candidates, seed_view, bead_diameter_px
        The coarse alignment, the candidates found in the seed view (None when seeds were given) and
        the bead diameter used.
    """

    markers: MarkerTable
    residual_px: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    weak: NDArray[np.bool_]
    quality: BeadQuality
    alignment: Alignment | None
    coarse: CoarseAlignment
    candidates: BeadCandidates | None
    seed_view: int
    bead_diameter_px: float
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def n_beads(self) -> int:
        return len(self.quality.marker)

    def summary(self, warnings: bool = True) -> str:
        """A few lines for a log or a status bar."""
        q = self.quality
        lines = [f"{self.n_beads} beads, {len(self.markers)} points, median track {int(np.median(q.n_views))} views"
                 if self.n_beads else "no beads tracked"]
        if self.alignment is not None:
            lines.append(f"alignment: mean residual {self.alignment.mean_residual_px:.3f} px, RMS "
                         f"{self.alignment.rms_residual_px:.3f} px; {int(self.flagged.sum())} points flagged, "
                         f"{int(self.weak.sum())} weak")
        lines.append(", ".join(f"{k} {v:.2f} s" for k, v in self.timings_s.items()))
        return "\n".join(lines + (self.warnings if warnings else []))  # the command line says them apart


def build_result(pos: NDArray[np.float64], contrast: NDArray[np.float64], elongation: NDArray[np.float64],
                 noise: NDArray[np.float64] | None, al: Alignment | None, image_size: tuple[int, int],
                 **rest) -> TrackingResult:
    """Assemble a `TrackingResult` from the tracker's arrays ``(n_views, n_beads[, 2])``; bead ``b`` becomes
    marker ``b + 1``. ``noise`` ``(n_views,)`` turns absolute contrasts into signal-to-noise ratios; None
    keeps them (relative depths of count data)."""
    v, b = np.nonzero(np.isfinite(pos[..., 0]))
    order = np.lexsort((v, b))
    v, b = v[order], b[order]
    table = MarkerTable(v.astype(np.intp), (b + 1).astype(np.int64), pos[v, b], image_size, "tracked")
    nb = pos.shape[1]
    resid, flagged = np.full(len(v), np.nan), np.zeros(len(v), dtype=bool)
    z, frac = np.full(nb, np.nan), np.full(nb, np.nan)
    if al is not None:
        lookup = {(int(a), int(al.marker_ids[m])): i for i, (a, m) in enumerate(zip(al.obs_view, al.obs_marker))}
        idx = np.array([lookup.get((int(a), int(m)), -1) for a, m in zip(table.view, table.marker)], dtype=np.intp)
        have = idx >= 0
        resid[have] = np.hypot(*al.residuals_px[idx[have]].T)
        if al.robust_weights is not None:
            with np.errstate(invalid="ignore"):
                flagged[have] = al.robust_weights[idx[have]] < 0.5
        z, frac = _model_stats(al, nb, image_size, np.isfinite(pos[..., 0]))
    snr = contrast / noise[:, None] if noise is not None else contrast
    with np.errstate(invalid="ignore"):
        med_c = _nanmedian(contrast)
        weak = contrast[v, b] < WEAK_FRACTION * med_c[b]
    count = np.bincount(b, minlength=nb)
    quality = BeadQuality(
        np.arange(1, nb + 1, dtype=np.int64), count.astype(np.intp), frac,
        np.bincount(b, np.nan_to_num(resid), nb) / np.maximum(count, 1),
        _nanmedian(snr), _nanmedian(elongation), z, np.bincount(b, flagged, nb).astype(np.intp))
    return TrackingResult(table, resid, flagged, weak, quality, al, **rest)


def column_medians(a: NDArray[np.float64], empty: float = np.nan) -> NDArray[np.float64]:
    """Each column's median over its finite values (``empty`` for a column with none): the same numbers as
    `numpy.median` of each column's finite values (the middle one, or the mean of the middle two), in one pass."""
    finite = np.isfinite(a)
    n = finite.sum(axis=0)
    if len(a) == 0:
        return np.full(a.shape[1], empty)
    s = np.sort(np.where(finite, a, np.inf), axis=0)  # the finite values first, in order
    low = np.take_along_axis(s, (np.maximum(n - 1, 0) // 2)[None, :], axis=0)[0]
    high = np.take_along_axis(s, np.minimum(n // 2, len(s) - 1)[None, :], axis=0)[0]
    with np.errstate(invalid="ignore", over="ignore"):
        mid = np.where(n % 2 == 1, low, (low + high) / 2.0)
    return np.where(n > 0, mid, empty)


def _nanmedian(a: NDArray[np.float64]) -> NDArray[np.float64]:
    return column_medians(np.asarray(a, dtype=np.float64))


def _model_stats(al: Alignment, nb: int, image_size: tuple[int, int], tracked: NDArray[np.bool_]):
    """Each bead's height and tracked fraction of the views where the model has it inside the image."""
    z, frac = np.full(nb, np.nan), np.full(nb, np.nan)
    w, h = image_size
    for i, m in enumerate(al.marker_ids):
        k = int(m) - 1
        if not al.marker_included[i] or not 0 <= k < nb:
            continue
        p = al.predicted_xy_px[:, i]
        with np.errstate(invalid="ignore"):
            inside = (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] <= h - 1)
        z[k] = al.xyz_px[i, 2]
        frac[k] = tracked[inside, k].sum() / max(int(inside.sum()), 1)
    return z, frac


def write_tracked_markers(path: str | os.PathLike[str], result: TrackingResult, n_views: int | None = None,
                          overwrite: bool = False, stack: str | os.PathLike[str] | None = None,
                          pixel_size_nm: float | None = None) -> None:
    """Write the markers as ``.csv`` (``view,marker,x,y``) or an IMOD ``.fid``/``.mod`` model (IMOD's
    half-pixel convention, z = view; ``n_views`` defaults to the series'), atomically. A model is named after
    the ``stack`` it was tracked on (`imod_model.TRACKED_ON`), so that an alignment from it knows which stack
    its transforms map, and records ``pixel_size_nm`` (IMOD's ``pixsize``)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        write_markers_csv(p, result.markers, overwrite=overwrite)
    elif p.suffix.lower() in (".fid", ".mod"):
        n = len(result.coarse.shifts_px) if n_views is None else n_views
        name = TRACKED_ON + Path(stack).name if stack is not None else DEFAULT_NAME
        write_imod_model(p, result.markers, n_views=n, overwrite=overwrite, name=name, pixel_size_nm=pixel_size_nm)
    else:
        raise ValueError(f"{p}: write markers as .csv, .fid or .mod, not {p.suffix!r}")


def write_bead_quality_csv(path: str | os.PathLike[str], result: TrackingResult, overwrite: bool = False) -> None:
    """One row per bead: marker, n_views, fraction, mean_residual_px, contrast, elongation, z_px, n_flagged."""
    q = result.quality
    with atomic_open(path, overwrite=overwrite) as f:
        f.write("marker,n_views,fraction,mean_residual_px,contrast,elongation,z_px,n_flagged\n")
        for row in zip(q.marker, q.n_views, q.fraction, q.mean_residual_px, q.contrast, q.elongation, q.z_px,
                       q.n_flagged):
            f.write(f"{row[0]},{row[1]},{row[2]:.3f},{row[3]:.4f},{row[4]:.2f},{row[5]:.3f},{row[6]:.2f},{row[7]}\n")
