"""Tracking seed beads through a tilt series (after IMOD's ``beadtrack``).

Pass 1 goes outward from the seed view, alternating sides, so the partial model stays balanced
(`blank_views.outward_order`: blank views are never measured). Each view:

1. Every bead's position is predicted (`_predict.predict`): from the alignment of what is tracked so far (our
   solver, warm-started, after every view) or, before there is one, carried from its last position by the coarse
   alignment.
2. Up to ten long-tracked beads spread over the field (the *anchors*) are searched in a wide box; the
   displacement most of them agree on, then a rotation and scale, correct every prediction.
3. Every bead is searched in a small box against its running-average template and fitted to sub-pixel. A find
   is kept only if it is close to the prediction, its contrast is like the bead's recent contrast (not too weak,
   not doubled by an overlapping bead) and its density is round. Failed beads are searched again in a box twice
   as wide with relaxed limits (the rescue); a doubtful find leaves a gap.
4. Beads whose predictions come within 1.5 diameters of each other (crossing tracks) are fitted with their
   neighbours' profiles subtracted, when the model predicted them, and left as gaps otherwise or when closer than
   0.45 diameters (`APART`); beads not wholly inside the image are not measured.
5. The model is refitted (after every view at first, then every other view); a new point far from it is
   measured again at the model's position, or dropped.

Pass 2 (`_refine.fill_gaps`) refits robustly with every variable free, then searches each gap at the
model's position in a small box, and re-measures points far from the model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from ..alignment.options import AlignmentOptions, VariableOption
from ..alignment.result import Alignment
from ..alignment.solver import align_markers
from ..compute import compiled_kernels
from ..errors import AlignmentError, Cancelled
from . import _predict as pr
from ._measure import Measurement, Templates, fit_at, fit_crowded, measure_beads
from ._profile import BeadProfile
from ._views import ViewReader
from .beads import matched_filter
from .coarse import CoarseAlignment
from .medians import median

N_ANCHORS = 10
EVERY_VIEW = 12  # the model is refitted after every view until this many are tracked, then every other
APART = 0.45  # beads predicted closer than this many diameters are not measured (they cannot be told apart)


class BeadTracker:
    """The tracks of ``seeds_xy`` ``(n_beads, 2)`` found in ``seed_view``, built view by view.

    ``pos`` ``(n_views, n_beads, 2)`` holds the positions (NaN for gaps), ``contrast``, ``rms`` and
    ``elongation`` ``(n_views, n_beads)`` the fit of each point; bead ``b`` is marker ``b + 1``.
    """

    def __init__(self, reader: ViewReader, tilts: NDArray[np.float64], coarse: CoarseAlignment,
                 profile: BeadProfile, seeds_xy: NDArray[np.float64], seed_view: int, *, dark: bool = True,
                 tilt_axis_deg: float | None = None, clumps: bool = False, skip: Sequence[int] = ()) -> None:
        self.reader, self.tilts, self.coarse, self.profile = reader, np.asarray(tilts, float), coarse, profile
        self.sign = -1.0 if dark else 1.0
        self.seed_view, self.axis, self.clumps = int(seed_view), tilt_axis_deg, clumps
        self.skip = frozenset(int(v) for v in skip)  # blank views: never measured (`blank_views`)
        self.d = 2.0 * profile.radius_px
        nv, nb = len(self.tilts), len(seeds_xy)
        self.pos = np.full((nv, nb, 2), np.nan)
        self.contrast = np.full((nv, nb), np.nan)
        self.rms = np.full((nv, nb), np.nan)
        self.elongation = np.full((nv, nb), np.nan)
        self.templates = Templates(nb, 2 * int(np.ceil(self.d + 2)) + 1, profile)
        self._model: Alignment | None = None
        self._deferred: tuple | None = None  # a refit left until its model is needed (`defer_refit`)
        self._final_model = False  # the model is a final fit (every variable free), which the next one starts from
        self.done = [self.seed_view]
        self._unchecked: list[int] = []
        img = reader.view(self.seed_view)
        # dark beads on counts (bright field): the gold stops a share of the electrons, so contrast is relative
        self.relative = bool(dark and img.min() >= 0 and median(img) > 0)
        m = fit_at(img, np.asarray(seeds_xy, float), profile, self.sign, reader.hot_level(self.seed_view), self.relative)
        if clumps:  # the beads of a clump fitted with their neighbours subtracted
            near = self.crowded(np.asarray(seeds_xy, float), np.ones(nb, dtype=bool))
            if near.any():
                mc = fit_crowded(img, np.asarray(seeds_xy, float)[near], profile, self.sign,
                                 reader.hot_level(self.seed_view), self.relative)
                for name in ("xy", "contrast", "rms", "elongation", "ok"):
                    getattr(m, name)[near] = getattr(mc, name)
        self.store(self.seed_view, np.arange(nb), m, m.ok)
        self.mean_contrast = np.where(m.ok, m.contrast, np.nanmedian(m.contrast[m.ok]) if m.ok.any() else 1.0)
        self.sd_contrast = 0.15 * self.mean_contrast

    @property
    def n_beads(self) -> int:
        return self.pos.shape[1]

    # ------------------------------------------------------------------ bookkeeping
    def store(self, j: int, beads: NDArray[np.intp], m: Measurement, keep: NDArray[np.bool_]) -> None:
        b = beads[keep]
        self.pos[j, b] = m.xy[keep]
        self.contrast[j, b] = m.contrast[keep]
        self.rms[j, b] = m.rms[keep]
        self.elongation[j, b] = m.elongation[keep]

    def _learn(self, j: int, beads: NDArray[np.intp]) -> None:
        """Update the templates and the contrast statistics of the beads just found in view ``j``."""
        self.templates.add(self.reader.view(j), beads, self.pos[j, beads], self.sign)
        c = self.contrast[j, beads]
        mu, sd = self.mean_contrast[beads], self.sd_contrast[beads]
        self.mean_contrast[beads] = 0.7 * mu + 0.3 * c
        self.sd_contrast[beads] = np.sqrt(0.7 * sd * sd + 0.3 * (c - mu) ** 2)

    def subset(self, keep: NDArray[np.intp], keep_model: bool = False) -> None:
        """Keep only beads ``keep`` (renumbered in that order); the model is dropped until the next refit, or
        with ``keep_model`` renumbered alike (the beads left out get negative ids), for the next to start from."""
        keep = np.asarray(keep, dtype=np.intp)
        number = -1 - np.arange(self.n_beads)
        number[keep] = np.arange(1, len(keep) + 1)
        for name in ("pos", "contrast", "rms", "elongation"):
            setattr(self, name, getattr(self, name)[:, keep])
        self.mean_contrast, self.sd_contrast = self.mean_contrast[keep], self.sd_contrast[keep]
        self.templates = self.templates.subset(keep)
        al = self.model
        self.model = replace(al, marker_ids=number[al.marker_ids - 1]) if keep_model and al is not None else None

    def observations(self) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.float64]]:
        """``(view, marker, xy)`` of every tracked point; marker ``b + 1`` is bead ``b``."""
        v, b = np.nonzero(np.isfinite(self.pos[..., 0]))
        return v.astype(np.intp), (b + 1).astype(np.int64), self.pos[v, b]

    # ------------------------------------------------------------------ the model
    @property
    def model(self) -> Alignment | None:
        """The alignment of the points (the last refit's; a deferred refit is made now)."""
        if self._deferred is not None:
            robust, final, observations = self._deferred
            self._deferred = None
            self.refit(robust, final, observations=observations)
        return self._model

    @model.setter
    def model(self, al: Alignment | None) -> None:
        self._deferred = None
        self._model = al

    def defer_refit(self, robust: bool = False, final: bool = False) -> None:
        """`refit` of the points as they are now, made only when the model is next read: a cold fit that follows
        (`_refine.clean_up`) does not need it, and the model read later is the same as if it had been made now."""
        v, mk, xy = self.observations()
        self._deferred = (robust, final, (v, mk, xy.copy()))

    def refit(self, robust: bool = False, final: bool = False, cold: bool = False,
              observations: tuple | None = None) -> Alignment | None:
        """Solve the alignment of the points so far (or of ``observations``), warm-started from the model (a
        final fit only from a final one; ``cold``: from scratch); keep the old model if it cannot. The solver
        runs on its compiled kernels at every size: tracking has loaded numba already, and its dozens of solves
        of a few thousand to tens of thousands of points run faster there (the switch is per thread)."""
        v, mk, xy = self.observations() if observations is None else observations
        if final:
            opts = AlignmentOptions(robust=robust, tilt_axis_deg=self.axis)
        else:
            opts = AlignmentOptions(tilt=VariableOption("fixed"), robust=robust, tilt_axis_deg=self.axis,
                                    estimate_tilt_axis=self.axis is None, max_iterations=50)
        model = None if cold else self.model  # a deferred refit first, unless this one starts from scratch
        start = model if model is not None and (not final or self._final_model) else None
        shape = self.reader.shape
        with compiled_kernels():  # per thread: the dock's worker too
            try:
                fitted = align_markers(v, mk, xy, self.tilts, (shape[1], shape[0]), opts, warn=False, start=start)
            except AlignmentError:
                if start is None:
                    return self.model
                try:
                    fitted = align_markers(v, mk, xy, self.tilts, (shape[1], shape[0]), opts, warn=False)
                except AlignmentError:
                    return self.model
        self.model = fitted
        self._final_model = final
        return self.model

    def model_residuals(self, j: int) -> tuple[NDArray[np.intp], NDArray[np.float64], float]:
        """Beads tracked in view ``j``, their residual lengths against the model, and the model's RMS."""
        al = self.model
        beads = np.flatnonzero(np.isfinite(self.pos[j, :, 0]))
        if al is None or not al.view_determined[j]:
            return beads, np.zeros(len(beads)), np.inf
        index = {int(m) - 1: i for i, m in enumerate(al.marker_ids)}
        idx = np.array([index.get(int(b), -1) for b in beads])
        pred = np.where(idx[:, None] >= 0, al.predicted_xy_px[j, np.maximum(idx, 0)], np.nan)
        res = np.hypot(*(pred - self.pos[j, beads]).T)
        return beads, np.where(np.isfinite(res), res, 0.0), float(al.rms_residual_px)

    # ------------------------------------------------------------------ one view
    def _last_known(self) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Each bead's position in the most recently tracked view that has it."""
        xy = np.full((self.n_beads, 2), np.nan)
        view = np.full(self.n_beads, -1, dtype=np.intp)
        for v in self.done:  # oldest first; later views overwrite
            ok = np.isfinite(self.pos[v, :, 0])
            xy[ok], view[ok] = self.pos[v, ok], v
        return xy, view

    def _last_known_side(self, n: int) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """As `_last_known`, using only the views between the seed view and ``n`` (this side)."""
        lo, hi = sorted((self.tilts[self.seed_view], self.tilts[n]))
        side = [v for v in self.done if lo <= self.tilts[v] <= hi]
        xy = np.full((self.n_beads, 2), np.nan)
        view = np.full(self.n_beads, -1, dtype=np.intp)
        for v in sorted(side, key=lambda v: abs(self.tilts[v] - self.tilts[self.seed_view])):
            ok = np.isfinite(self.pos[v, :, 0])
            xy[ok], view[ok] = self.pos[v, ok], v
        return xy, view

    def inside(self, xy: NDArray[np.float64], margin: float) -> NDArray[np.bool_]:
        rows, cols = self.reader.shape
        with np.errstate(invalid="ignore"):
            return (xy[:, 0] >= margin) & (xy[:, 1] >= margin) & (xy[:, 0] <= cols - 1 - margin) \
                & (xy[:, 1] <= rows - 1 - margin)

    def crowded(self, xy: NDArray[np.float64], active: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Beads whose predicted positions lie within 1.5 diameters of another active bead's."""
        idx = np.flatnonzero(active)
        out = np.zeros(len(xy), dtype=bool)
        if len(idx) > 1:
            pairs = cKDTree(xy[idx]).query_pairs(1.5 * self.d, output_type="ndarray")
            out[idx[pairs.ravel()]] = True
        return out

    def acceptable(self, m: Measurement, beads: NDArray[np.intp], pred: NDArray[np.float64],
                   tol: float | NDArray[np.float64], relax: float = 1.0,
                   contrast: NDArray[np.float64] | None = None) -> NDArray[np.bool_]:
        """Finds close enough to the prediction, with the bead's usual contrast (its running mean, or
        ``contrast`` per bead of ``beads``) and a round density; ``relax`` < 1 widens the limits."""
        mu = self.mean_contrast[beads] if contrast is None else contrast
        sd = self.sd_contrast[beads] if contrast is None else 0.15 * contrast
        low = relax * np.minimum(0.6 * mu, mu - sd)
        dist = np.hypot(*(m.xy - pred).T)
        rms_ok = m.rms <= 3.0 * np.median(m.rms[m.ok]) if m.ok.any() else m.ok
        return m.ok & (dist <= tol) & (m.contrast >= low) & (m.contrast <= 1.8 * mu / relax) \
            & (m.elongation <= 1.6 / relax) & rms_ok

    # ------------------------------------------------------------------ pass 1
    def search_radius(self, from_model: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Search half-width per bead: small where the model predicted, wider where parallax is unknown."""
        return np.where(from_model, max(0.6 * self.d, 3.0), max(1.5 * self.d, 8.0))

    def track_view(self, j: int, n: int) -> int:
        """Track every bead into view ``j`` from its neighbour ``n`` (see the module docstring)."""
        img, hot = self.reader.view(j), self.reader.hot_level(j)
        last_xy, last_view = self._last_known_side(n)
        pred, from_model = pr.predict(self.model, j, n, self.coarse, last_xy, last_view)
        margin = self.profile.radius_px + 1.0
        active = self.inside(pred, margin)
        pred = self._anchor_correction(img, hot, pred, active, from_model)
        active &= self.inside(pred, margin)
        crowded = self.crowded(pred, active)
        todo = np.flatnonzero(active & ~crowded)
        hw = self.search_radius(from_model)[todo]
        m = measure_beads(img, pred[todo], self.templates.get(todo), self.profile, hw, self.sign, hot,
                          relative=self.relative)
        ok = self.acceptable(m, todo, pred[todo], hw)
        self.store(j, todo, m, ok)
        bad = todo[~ok]
        if len(bad):
            wide = 2.0 * hw[~ok]
            m2 = measure_beads(img, pred[bad], self.templates.get(bad), self.profile, wide, self.sign, hot,
                               prior_px=hw[~ok], relative=self.relative)
            ok2 = self.acceptable(m2, bad, pred[bad], wide, relax=0.85)
            self.store(j, bad, m2, ok2)
        self.measure_crowded(j, pred, np.flatnonzero(active & crowded & (from_model | self.clumps)), from_model)
        self.done.append(j)
        found = np.flatnonzero(np.isfinite(self.pos[j, :, 0]))
        self._learn(j, found)
        self._unchecked.append(j)
        if len(self.done) <= EVERY_VIEW or len(self.done) % 2 == 0:  # a mature model may skip a refit
            self.refit()
            for v in self._unchecked:
                self._post_fit_check(v)
            self._unchecked = []
        return int(np.isfinite(self.pos[j, :, 0]).sum())

    def measure_crowded(self, j: int, pred: NDArray[np.float64], beads: NDArray[np.intp],
                        from_model: NDArray[np.bool_] | None = None) -> None:
        """Beads predicted close to another (crossing tracks, clumps), fitted with their neighbours subtracted;
        pairs closer than `APART` diameters cannot be told apart and are left as gaps. A find must lie within a
        quarter diameter of the model's prediction, or half a diameter of one carried without a model."""
        if len(beads) == 0:
            return
        d = np.hypot(*(pred[beads, None, :] - pred[None, beads, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        beads = beads[d.min(axis=1) >= APART * self.d]
        if len(beads) == 0:
            return
        img, hot = self.reader.view(j), self.reader.hot_level(j)
        start = pred[beads].copy()
        tol = np.full(len(beads), max(1.0, 0.25 * self.d))
        if from_model is not None and not from_model[beads].all():
            # carried without a model (parallax unknown): each bead's template, which holds its clump's
            # neighbours too, finds where the clump went; the joint fit starts from there
            far = ~from_model[beads]
            tol[far] = max(1.5, 0.5 * self.d)
            m0 = measure_beads(img, start[far], self.templates.get(beads[far]), self.profile,
                               self.search_radius(from_model[beads[far]]), self.sign, hot, relative=self.relative)
            start[far] = np.where(m0.ok[:, None], m0.xy, start[far])
        m = fit_crowded(img, start, self.profile, self.sign, hot, self.relative)
        pred = pred.copy()
        pred[beads] = start  # the joint fit must stay near where it started (the template's find, if any)
        self.store(j, beads, m, self.acceptable(m, beads, pred[beads], tol))

    def _anchor_correction(self, img, hot, pred, active, from_model) -> NDArray[np.float64]:
        """Predictions corrected by a consensus fit to the anchors found in a wide search."""
        history = np.isfinite(self.pos[self.done][..., 0]).sum(axis=0)
        cand = np.flatnonzero(active & (history >= 1))
        if len(cand) == 0:
            return pred
        prio = history[cand] + self.mean_contrast[cand] / max(float(np.max(self.mean_contrast[cand])), 1e-12)
        pick = cand[pr.spread_pick(pred[cand], prio, N_ANCHORS, 0.15 * min(self.reader.shape))]
        modelled = bool(from_model[pick].all())
        wide = max(2.0 * self.d, 10.0) if modelled else max(3.0 * self.d, 16.0)
        tol = 2.0 if modelled else 0.6 * self.d + 2.0
        centre = self.coarse.centre
        for attempt in range(3):
            m = measure_beads(img, pred[pick], self.templates.get(pick), self.profile, wide, self.sign, hot,
                              prior_px=2.0 * wide, relative=self.relative)
            ok = self.acceptable(m, pick, pred[pick], wide, relax=0.85)
            xf, support = pr.correction(pred[pick][ok], m.xy[ok], centre, tol) if ok.any() else (None, 0)
            if xf is not None and support >= min(3, len(pick)):
                return pr.apply(xf, pred, centre)
            if attempt == 2:
                break
            # the anchors disagree: move the whole predicted pattern onto the view's beads, search again
            shift = pr.constellation_shift(self._bead_map(img), pred[cand], (0.25 + 0.15 * attempt)
                                           * min(self.reader.shape))
            if shift is None:
                break
            pred = pred + shift
        return pred

    def _bead_map(self, img: NDArray[np.float32]) -> NDArray[np.float32]:
        """The view's matched-filter response, beads positive (for the constellation search)."""
        mass = self.sign * img
        return matched_filter(mass - mass.mean(), self.d)

    def _post_fit_check(self, j: int) -> None:
        """Points of view ``j`` far from the refitted model: measured again at the model's position, or dropped."""
        beads, res, rms = self.model_residuals(j)
        if not np.isfinite(rms):
            return
        bad = beads[res > max(1.5, 4.0 * rms)]
        if len(bad) == 0:
            return
        self.pos[j, bad] = np.nan
        pred = self.model_prediction(j, bad)
        ok0 = np.isfinite(pred[:, 0])
        bad, pred = bad[ok0], pred[ok0]
        m = measure_beads(self.reader.view(j), pred, self.templates.get(bad), self.profile, 2.5, self.sign,
                          self.reader.hot_level(j), relative=self.relative)
        self.store(j, bad, m, self.acceptable(m, bad, pred, max(1.0, 3.0 * rms)))
        self.refit()

    def model_prediction(self, j: int, beads: NDArray[np.intp]) -> NDArray[np.float64]:
        """``(len(beads), 2)`` the model's positions of ``beads`` in view ``j`` (NaN where it has none)."""
        out = np.full((len(beads), 2), np.nan)
        al = self.model
        if al is None or not al.view_determined[j]:
            return out
        index = {int(m) - 1: i for i, m in enumerate(al.marker_ids)}
        for k, b in enumerate(beads):
            i = index.get(int(b))
            if i is not None:
                out[k] = al.predicted_xy_px[j, i]
        return out

    def run(self, pairs: list[tuple[int, int]], progress: Callable[[str, int, int, str], None] | None = None,
            should_stop: Callable[[], bool] | None = None, offset: int = 0, total: int | None = None) -> None:
        """Pass 1 over ``pairs`` of (view, neighbour toward the seed)."""
        total = total or len(pairs) + 1
        for k, (j, n) in enumerate(pairs):
            if should_stop is not None and should_stop():
                raise Cancelled("tracking cancelled")
            if k + 1 < len(pairs):  # the next view read on the second core meanwhile, if there is one
                self.reader.prefetch(pairs[k + 1][0])
            found = self.track_view(j, n)
            if progress is not None:
                progress("track", offset + k + 2, total, f"tracked view {j}: {found} of {self.n_beads} beads")
        if self._unchecked:
            self.refit()
            for v in self._unchecked:
                self._post_fit_check(v)
            self._unchecked = []
