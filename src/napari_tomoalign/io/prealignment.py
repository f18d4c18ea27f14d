"""etomo's prealignment (``.prexg``) both ways: points of the prealigned stack (``.preali``, where etomo's fiducial
model is placed) to the raw stack (``.st``) and back, and what follows from it.

A ``.prexg`` line maps a raw view to its prealigned one about the image centre, as IMOD applies an ``.xf``:
``prealigned = A (raw - c) + d + c`` with ``c = ((nx - 1) / 2, (ny - 1) / 2)`` in 0-based pixels (IMOD's own
centre ``(nx / 2, ny / 2)`` in its half-pixel coordinates). Vectors (residuals) carry ``A`` alone. The one place
of this mapping: the dock draws etomo's markers over the raw stack through it and saves them back through it, and
gold erasure reads a run's beads through it (`io.bead_positions`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..conventions import image_centre

if TYPE_CHECKING:
    from ..alignment.result import Alignment

UNIT = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _parts(prexg: NDArray[np.float64], view: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    v = np.asarray(view, dtype=np.intp)
    p = np.asarray(prexg, dtype=float)
    return p[v, :, :2], p[v, :, 2]


def to_raw(prexg: NDArray[np.float64], view: NDArray, xy: NDArray, image_size: tuple[int, int]) -> NDArray[np.float64]:
    """``(n, 2)`` raw-stack positions of points ``xy`` (x, y) of the prealigned stack, in views ``view``."""
    c = image_centre(image_size)
    a, d = _parts(prexg, view)
    return np.einsum("nij,nj->ni", np.linalg.inv(a), np.asarray(xy, dtype=float).reshape(-1, 2) - c - d) + c


def to_prealigned(prexg: NDArray[np.float64], view: NDArray, xy: NDArray,
                  image_size: tuple[int, int]) -> NDArray[np.float64]:
    """``(n, 2)`` prealigned-stack positions of raw-stack points ``xy`` (x, y) in views ``view`` (`to_raw` undone)."""
    c = image_centre(image_size)
    a, d = _parts(prexg, view)
    return np.einsum("nij,nj->ni", a, np.asarray(xy, dtype=float).reshape(-1, 2) - c) + d + c


def vectors_to_raw(prexg: NDArray[np.float64], view: NDArray, vectors: NDArray) -> NDArray[np.float64]:
    """``(n, 2)`` displacements (residuals) of the prealigned stack, as the raw stack has them."""
    a, _ = _parts(prexg, view)
    return np.einsum("nij,nj->ni", np.linalg.inv(a), np.asarray(vectors, dtype=float).reshape(-1, 2))


def raw_transforms(prexg: NDArray[np.float64], xf: NDArray[np.float64]) -> NDArray[np.float64]:
    """The raw stack's transforms: the ``.prexg``, then the prealigned stack's ``xf`` (IMOD's ``xfproduct``); a view
    without a solved transform keeps its prealignment alone (as `io.alignment.write_alignment` writes it)."""
    from .imod import compose_xf

    return compose_xf(prexg, np.where(np.isfinite(xf), xf, UNIT))


def alignment_on_raw(al: Alignment, prexg: NDArray[np.float64] | None) -> Alignment:
    """``al`` (solved from markers of the prealigned stack) with its observations, residuals and predicted positions
    in the raw stack's pixels, for drawing over the raw stack and editing on it; ``al`` itself when ``prexg`` is None.
    Its model (angles, shifts, 3-D positions) is the prealigned stack's: never solve, write or warp with it."""
    if prexg is None:
        return al
    size = al.image_size
    nv, nm = al.predicted_xy_px.shape[:2]
    views = np.repeat(np.arange(nv), nm)
    predicted = al.predicted_xy_px.reshape(-1, 2)
    finite = np.all(np.isfinite(predicted), axis=1)
    moved = np.full_like(predicted, np.nan)
    moved[finite] = to_raw(prexg, views[finite], predicted[finite], size)
    return replace(al, obs_xy_px=to_raw(prexg, al.obs_view, al.obs_xy_px, size),
                   residuals_px=vectors_to_raw(prexg, al.obs_view, al.residuals_px),
                   predicted_xy_px=moved.reshape(nv, nm, 2))


__all__ = ["alignment_on_raw", "raw_transforms", "to_prealigned", "to_raw", "vectors_to_raw"]
