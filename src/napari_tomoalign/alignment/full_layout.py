"""The unknowns of a full-model solve and how each view's nine parameters and the beam tilt follow from them.

Every per-view value is its start value plus a weighted sum of unknowns (`grouping.Mapping`), so the
whole model is ``raw = base + M q`` with a sparse ``M``. `UnknownLayout` stores ``M`` as *slots*: for
view ``j``, slot ``s`` adds ``w[j, s] q[col[j, s]]`` to raw parameter ``raw[j, s]`` (the columns of
``full_model.FULL_VIEW_PARAMS``, or `BEAM` for the beam tilt). This is the form the compiled loops of
`_kernels_full` use.

The unknowns are, in order: each variable kind's mapped unknowns, the beam tilt (when free), then the
shifts of the included views except the ones held for the translation gauge. Unknowns that no
included view uses are dropped, so a patch that lacks some views solves only what its data determine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .full_model import COMP, DMAG, N_FULL, SKEW, XTILT
from .grouping import Mapping
from .model import DX, DY, MAG, ROT, TILT

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
            ok = (self.slot_raw >= 0) & (self.slot_col >= 0)
            add = self.slot_w * np.asarray(q, float)[np.maximum(self.slot_col, 0)]
            view_slots = ok & (self.slot_raw < BEAM)
            rows = np.broadcast_to(np.arange(len(out))[:, None], self.slot_raw.shape)
            np.add.at(out, (rows[view_slots], self.slot_raw[view_slots]), add[view_slots])
            beam_cols = np.unique(self.slot_col[ok & (self.slot_raw == BEAM)])
            if beam_cols.size:
                beam += float(np.asarray(q, float)[beam_cols[0]])
        return out, beam

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
    free_kinds: Sequence[str] | None = None,
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
    free_kinds
        Solve only these kinds (default: every kind in ``mappings``), for staged solving.
    """
    n_views = len(base)
    kinds = [k for k in PARAM_OF_KIND if k in mappings and (free_kinds is None or k in free_kinds)]
    raw_l: list[list[int]] = [[] for _ in range(n_views)]
    col_l: list[list[int]] = [[] for _ in range(n_views)]
    w_l: list[list[float]] = [[] for _ in range(n_views)]
    kind_of: list[int] = []
    n = 0

    def add(view: int, raw: int, col: int, w: float) -> None:
        raw_l[view].append(raw)
        col_l[view].append(col)
        w_l[view].append(w)

    for kind in kinds:
        m, p = mappings[kind], PARAM_OF_KIND[kind]
        for v in range(n_views):
            for var, w in ((m.var_a[v], m.w_a[v]), (m.var_b[v], m.w_b[v])):
                if var >= 0 and w != 0.0:
                    add(v, p, n + int(var), float(w))
        kind_of += [p] * m.n_vars
        n += m.n_vars
    if beam_free:
        for view in np.flatnonzero(included).tolist():
            add(view, BEAM, n, 1.0)
        kind_of.append(BEAM)
        n += 1
    held = set(shift_fixed)
    for p in (DX, DY):
        for view in np.flatnonzero(included).tolist():
            if (view, p) not in held:
                add(view, p, n, 1.0)
                kind_of.append(p)
                n += 1
    return _compact(raw_l, col_l, w_l, np.asarray(kind_of, dtype=np.intp), n, base, base_beam, included)


def _compact(raw_l, col_l, w_l, kind_of, n, base, base_beam, included) -> UnknownLayout:
    """Pack the slot lists into arrays and drop unknowns that no included view uses."""
    n_views = len(raw_l)
    width = max([len(r) for r in raw_l] + [1])
    raw = np.full((n_views, width), -1, dtype=np.intp)
    col = np.full((n_views, width), -1, dtype=np.intp)
    w = np.zeros((n_views, width))
    for v in range(n_views):
        k = len(raw_l[v])
        raw[v, :k], col[v, :k], w[v, :k] = raw_l[v], col_l[v], w_l[v]
    used = np.zeros(n, dtype=bool)
    used[col[included][col[included] >= 0]] = True
    renumber = np.full(n + 1, -1, dtype=np.intp)
    renumber[:n][used] = np.arange(int(used.sum()))
    col = np.where(col >= 0, renumber[col], -1)
    return UnknownLayout(raw, col, w, np.asarray(base, float).copy(), float(base_beam), int(used.sum()),
                         kind_of[used])


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
