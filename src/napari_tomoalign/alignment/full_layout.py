"""The unknowns of a solve and how each view's nine parameters and the beam tilt follow from them.

Every per-view value is its start value plus a weighted sum of unknowns (`grouping.Mapping`), so the
whole model is ``raw = base + M q`` with a sparse ``M``. `UnknownLayout` stores ``M`` as *slots*: for
view ``j``, slot ``s`` adds ``w[j, s] q[col[j, s]]`` to raw parameter ``raw[j, s]`` (the columns of
``model.FULL_VIEW_PARAMS``, or `BEAM` for the beam tilt). This is the form the kernels (`_kernels`,
`_kernels_numpy`) use, for the default model's settings as for an align.com's.

The unknowns are, in order: each variable kind's mapped unknowns, the beam tilt (when free), then the
shifts of the included views except the ones held for the translation gauge. Unknowns that no
included view uses are dropped, so a patch that lacks some views solves only what its data determine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from .grouping import Mapping
from .model import COMP, DMAG, DX, DY, MAG, N_FULL, ROT, SKEW, TILT, XTILT

BEAM = N_FULL  # the raw parameter number of the beam tilt
PARAM_OF_KIND = {"rotation": ROT, "tilt": TILT, "magnification": MAG, "compression": COMP,
                 "x_stretch": DMAG, "skew": SKEW, "x_tilt": XTILT}


@dataclass(frozen=True)
class UnknownLayout:
    """Slots ``(n_views, S)`` mapping the unknowns ``q`` to raw parameters (module docstring).

    Attributes
    ----------
    slot_raw, slot_col, slot_w
        Raw parameter (-1 for an unused slot), unknown column and weight of every slot.
    base
        ``(n_views, 9)`` start values of the view parameters.
    base_beam
        Start value of the beam tilt, radians.
    n_q
        Number of unknowns.
    kind_of_column
        ``(n_q,)`` the raw parameter number each unknown belongs to.
    """

    slot_raw: NDArray[np.intp]
    slot_col: NDArray[np.intp]
    slot_w: NDArray[np.float64]
    base: NDArray[np.float64]
    base_beam: float
    n_q: int
    kind_of_column: NDArray[np.intp]

    def params(self, q: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
        """``(n_views, 9)`` view parameters and the beam tilt for unknowns ``q``."""
        out = self.base.copy()
        beam = self.base_beam
        if self.n_q:
            at, col, w, beam_col = self._targets
            q = np.asarray(q, float)
            out.ravel()[:] += np.bincount(at, weights=w * q[col], minlength=out.size)
            if beam_col >= 0:
                beam += float(q[beam_col])
        return out, beam

    @cached_property
    def _targets(self) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], int]:
        """For `params`: the flat ``(view, raw)`` entry, unknown and weight of every used view slot, and the
        beam tilt's unknown (-1: none)."""
        ok = (self.slot_raw >= 0) & (self.slot_col >= 0)
        view = ok & (self.slot_raw < BEAM)
        rows, slots = np.nonzero(view)
        beam_cols = self.slot_col[ok & (self.slot_raw == BEAM)]
        return (rows * self.base.shape[1] + self.slot_raw[rows, slots], self.slot_col[rows, slots],
                self.slot_w[rows, slots], int(beam_cols[0]) if beam_cols.size else -1)

    @property
    def default_preset(self) -> bool:
        """Only the default model's parameters (tilt, rotation, magnification, shifts) are unknowns."""
        return bool(np.all(self.slot_raw <= DY))

    def scatter_vector(self, per_slot: NDArray[np.float64]) -> NDArray[np.float64]:
        """Sum ``(n_views, S)`` per-slot values into ``(n_q,)``."""
        ok = (self.slot_col >= 0) & (self.slot_raw >= 0)
        return np.bincount(self.slot_col[ok], weights=per_slot[ok], minlength=self.n_q).astype(float)

    def scatter_square(self, per_slot: NDArray[np.float64]) -> NDArray[np.float64]:
        """Sum ``(n_views, S, S)`` per-slot blocks into ``(n_q, n_q)``."""
        cols = np.where(self.slot_raw >= 0, self.slot_col, -1)
        rows = np.broadcast_to(cols[:, :, None], per_slot.shape)
        colz = np.broadcast_to(cols[:, None, :], per_slot.shape)
        ok = (rows >= 0) & (colz >= 0)
        flat = rows[ok] * self.n_q + colz[ok]
        out = np.bincount(flat, weights=per_slot[ok], minlength=self.n_q * self.n_q).astype(float)
        return out.reshape(self.n_q, self.n_q)

    def per_slot(self, q: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(n_views, S)`` the value of each slot's unknown (0 for unused slots)."""
        ok = (self.slot_col >= 0) & (self.slot_raw >= 0)
        return np.where(ok, np.asarray(q, float)[np.maximum(self.slot_col, 0)] if self.n_q else 0.0, 0.0)


def build_layout(
    mappings: dict[str, Mapping],
    base: NDArray[np.float64],
    base_beam: float,
    beam_free: bool,
    included: NDArray[np.bool_],
    shift_fixed: Sequence[tuple[int, int]] = (),
) -> UnknownLayout:
    """The slots for one solve.

    Parameters
    ----------
    mappings
        A `grouping.Mapping` per variable kind (keys of `PARAM_OF_KIND`); missing kinds are fixed.
    base, base_beam
        Start values (``(n_views, 9)`` and radians).
    beam_free
        Solve for one beam tilt.
    included
        ``(n_views,)`` views with observations in this solve; only they get shift unknowns, and
        unknowns used by no included view are dropped.
    shift_fixed
        ``(view, DX or DY)`` shift components held at their start value (the translation gauge).
    """
    kinds = [k for k in PARAM_OF_KIND if k in mappings]
    raw_c: list[NDArray] = []  # one (n_views,) column of slots per mapped unknown reference, -1 where unused
    col_c: list[NDArray] = []
    w_c: list[NDArray] = []
    kind_of: list[int] = []
    n = 0

    def add(use: NDArray[np.bool_], raw: int, col: NDArray | int, w: NDArray | float) -> None:
        raw_c.append(np.where(use, raw, -1))
        col_c.append(np.where(use, col, -1))
        w_c.append(np.where(use, w, 0.0))

    for kind in kinds:
        m, p = mappings[kind], PARAM_OF_KIND[kind]
        for var, w in ((m.var_a, m.w_a), (m.var_b, m.w_b)):
            use = (var >= 0) & (w != 0.0)
            if use.any():
                add(use, p, n + var, w)
        kind_of += [p] * m.n_vars
        n += m.n_vars
    inc = np.asarray(included, dtype=bool)
    if beam_free:
        add(inc, BEAM, n, 1.0)
        kind_of.append(BEAM)
        n += 1
    for p in (DX, DY):
        free = inc.copy()
        free[[v for v, c in shift_fixed if c == p]] = False
        add(free, p, n + np.cumsum(free) - 1, 1.0)
        kind_of += [p] * int(free.sum())
        n += int(free.sum())
    return _compact(np.stack(raw_c, 1), np.stack(col_c, 1), np.stack(w_c, 1), np.asarray(kind_of, dtype=np.intp), n,
                    base, base_beam, inc)


def _compact(raw, col, w, kind_of, n, base, base_beam, included) -> UnknownLayout:
    """Move each view's slots to the front (dropping columns no view uses) and drop unknowns that no included
    view uses."""
    order = np.argsort(raw < 0, axis=1, kind="stable")  # used slots first, in their order
    raw, col, w = (np.take_along_axis(a, order, axis=1) for a in (raw, col, w))
    width = max(1, int(np.max(np.sum(raw >= 0, axis=1), initial=0)))
    raw, col, w = raw[:, :width], col[:, :width], w[:, :width]
    used = np.zeros(n, dtype=bool)
    used[col[included][col[included] >= 0]] = True
    renumber = np.full(n + 1, -1, dtype=np.intp)
    renumber[:n][used] = np.arange(int(used.sum()))
    col = np.where(col >= 0, renumber[col], -1)
    return UnknownLayout(np.ascontiguousarray(raw), np.ascontiguousarray(col), np.ascontiguousarray(w),
                         np.asarray(base, float).copy(), float(base_beam), int(used.sum()), kind_of[used])


def shift_gauge(tilts_rad: NDArray[np.float64], rot_rad: NDArray[np.float64], included: NDArray[np.bool_],
                ref: int) -> list[tuple[int, int]]:
    """The three shift components held fixed to remove the translation gauge: both shifts of the reference
    view, and the better-conditioned shift of the included view whose tilt differs most from it."""
    diff = np.where(included, np.abs(np.sin(tilts_rad - tilts_rad[ref])), -1.0)
    k = int(np.argmax(diff))
    fixed = [(ref, DX), (ref, DY)]
    if diff[k] > 1e-6:
        fixed.append((k, DX if abs(np.cos(rot_rad[k])) >= abs(np.sin(rot_rad[k])) else DY))
    return fixed
