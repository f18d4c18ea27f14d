"""Erasing gold beads from a tilt series before reconstruction, as IMOD's ``ccderaser -fid`` does.

Each bead's pixels (a disk a little wider than the bead) are replaced by the local background: a plane
fitted to an annulus around the bead (leaving out pixels of other beads), plus noise with the
annulus's own spread, so that the erased spot looks like its surroundings. Without this the gold's
extreme density leaves streaks across the tomogram.

The positions come per view: the tracked points, or better the alignment's model positions of every
bead in every view (`bead_positions`), which also cover views where a bead was not tracked. They can
be for the raw stack or, mapped by the alignment's transforms, for the aligned stack.

`GoldEraser` is the one erasure every job uses (``aligned-stack --erase-gold``, ``run --erase-gold``,
``batch``): built from an alignment in memory or from a saved alignment folder, in the raw stack's pixels
either way (a ``.prexg`` is undone), it erases view ``j`` with noise seeded by ``(seed, j)``, so that the
output does not depend on which views were erased before. `erase_beads` erases a whole stack with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..alignment.result import Alignment
from ..errors import Cancelled
from ..io.imod import apply_transform
from ..io.prealignment import to_raw


def erase_radius_px(bead_diameter_px: float) -> float:
    """The radius erased around a bead centre: half the diameter plus max(1.5 px, 0.2 diameters)."""
    return 0.5 * bead_diameter_px + max(1.5, 0.2 * bead_diameter_px)


def bead_positions(al: Alignment, transforms: NDArray[np.float64] | None = None,
                   binning: int = 1) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """``(view, xy)`` of every fitted marker in every fitted view from the alignment's model.

    With ``transforms`` ``(n_views, 2, 3)`` (for example `imod_transforms`), the positions are mapped into
    the aligned stack; ``binning`` scales them to a binned stack (pixel centres as `aligned_stack` bins).
    """
    ok_views = np.flatnonzero(al.view_determined)
    ok_markers = np.flatnonzero(al.marker_included)
    views, xys = [], []
    c = al.image_centre
    for j in ok_views:
        xy = al.predicted_xy_px[j, ok_markers]
        if transforms is not None:
            xy = apply_transform(np.asarray(transforms[j], dtype=float), xy, c)
        views.append(np.full(len(xy), j, dtype=np.intp))
        xys.append(xy)
    view = np.concatenate(views) if views else np.zeros(0, np.intp)
    xy = np.concatenate(xys) if xys else np.zeros((0, 2))
    if binning > 1:
        xy = (xy - (binning - 1) / 2.0) / binning
    return view, xy


def _patch_grid(xy: NDArray[np.float64], half: int, shape: tuple[int, int]):
    """Integer rows/cols ``(k, P)`` of a patch around each position, and per-pixel validity ``(k, P, P)``."""
    centre = np.floor(xy + 0.5).astype(np.intp)
    a = np.arange(-half, half + 1)
    ys = centre[:, 1, None] + a[None, :]
    xs = centre[:, 0, None] + a[None, :]
    valid = ((ys >= 0) & (ys < shape[0]))[:, :, None] & ((xs >= 0) & (xs < shape[1]))[:, None, :]
    return np.clip(ys, 0, shape[0] - 1), np.clip(xs, 0, shape[1] - 1), valid


def erase_view(img: NDArray, xy: ArrayLike, radius_px: float, rng: np.random.Generator,
               noise: bool = True) -> NDArray[np.float32]:
    """A copy of one view with the disks of ``radius_px`` around ``xy`` ``(k, 2)`` replaced by background."""
    out = np.array(img, dtype=np.float32)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if len(xy) == 0:
        return out
    half = int(np.ceil(radius_px + 3.5))
    ys, xs, valid = _patch_grid(xy, half, out.shape)
    py = np.broadcast_to(ys[:, :, None] - xy[:, 1, None, None], valid.shape)
    px = np.broadcast_to(xs[:, None, :] - xy[:, 0, None, None], valid.shape)
    r = np.hypot(px, py)
    disk = (r <= radius_px) & valid
    covered = np.zeros(out.shape, dtype=bool)
    covered[np.broadcast_to(ys[:, :, None], r.shape)[disk], np.broadcast_to(xs[:, None, :], r.shape)[disk]] = True
    ring = (r > radius_px + 0.5) & (r <= radius_px + 3.5) & valid & ~covered[ys[:, :, None], xs[:, None, :]]
    values = out[ys[:, :, None], xs[:, None, :]].astype(np.float64)
    basis = np.stack([np.ones_like(px), px, py], axis=-1)
    w = ring[..., None] * basis
    a = np.einsum("kyxi,kyxj->kij", w, basis) + 1e-6 * np.eye(3)
    b = np.einsum("kyxi,kyx->ki", w, values)
    coef = np.linalg.solve(a, b[..., None])[..., 0]
    fitted = np.einsum("kyxi,ki->kyx", basis, coef)
    n_ring = np.maximum(ring.sum(axis=(1, 2)), 1)
    sd = np.sqrt(np.sum(np.where(ring, values - fitted, 0.0) ** 2, axis=(1, 2)) / np.maximum(n_ring - 3, 1))
    fill = fitted + (rng.standard_normal(fitted.shape) * sd[:, None, None] if noise else 0.0)
    kk, yy, xx = np.nonzero(disk)
    out[ys[kk, yy], xs[kk, xx]] = fill[kk, yy, xx]
    return out


def erase_beads(
    stack: NDArray,
    view: ArrayLike,
    xy: ArrayLike,
    bead_diameter_px: float,
    *,
    radius_px: float | None = None,
    noise: bool = True,
    seed: int = 0,
    out: NDArray[np.float32] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> NDArray[np.float32]:
    """Replace every bead's pixels with local background, view by view.

    Parameters
    ----------
    stack
        ``(n_views, rows, cols)`` raw or aligned stack; a memory map is read one view at a time.
    view, xy
        ``(n,)`` view index and ``(n, 2)`` (x, y) position of each bead to erase, in the stack's pixels
        (see `bead_positions`).
    bead_diameter_px
        Bead diameter in the stack's pixels; the erased radius is `erase_radius_px` unless given.
    noise
        Add noise with the annulus's spread to the fitted background (as the surroundings look).
    seed
        Seed of the noise (the same seed gives the same output).
    out
        Optional ``(n_views, rows, cols)`` float32 array to write into (for example a memory map).
    progress, should_stop
        ``progress(done, total)`` after each view; `Cancelled` when ``should_stop()`` is true.
    """
    if getattr(stack, "ndim", 0) != 3:
        raise ValueError(f"the stack must be 3-D (views, rows, cols), not {getattr(stack, 'ndim', 0)}-D")
    n = stack.shape[0]
    eraser = GoldEraser(view, xy, bead_diameter_px, n, radius_px=radius_px, noise=noise, seed=seed)
    if out is None:
        out = np.empty(stack.shape, dtype=np.float32)
    for j in range(n):
        if should_stop is not None and should_stop():
            raise Cancelled("erasing cancelled")
        out[j] = eraser(j, stack[j])
        if progress is not None:
            progress(j + 1, n)
    return out


class GoldEraser:
    """``eraser(j, image)``: view ``j`` with every bead at ``xy[view == j]`` replaced by background.

    ``view`` ``(k,)`` and ``xy`` ``(k, 2)``: the beads' positions in the stack's pixels (`bead_positions`);
    ``n_views``: the stack's views. The erased radius is `erase_radius_px` of ``bead_diameter_px`` unless
    ``radius_px`` is given; the noise of view ``j`` is seeded by ``(seed, j)``.
    """

    def __init__(self, view: ArrayLike, xy: ArrayLike, bead_diameter_px: float, n_views: int, *,
                 radius_px: float | None = None, noise: bool = True, seed: int = 0) -> None:
        view = np.asarray(view, dtype=np.intp).ravel()
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if len(view) != len(xy):
            raise ValueError(f"{len(view)} view numbers for {len(xy)} positions; give one view per position")
        if len(view) and (view.min() < 0 or view.max() >= n_views):
            raise ValueError(f"view numbers must lie in 0..{n_views - 1} for this stack")
        if not np.isfinite(bead_diameter_px) or bead_diameter_px <= 0:
            raise ValueError(f"the bead diameter must be a positive number of pixels, not {bead_diameter_px}")
        self.radius_px = erase_radius_px(bead_diameter_px) if radius_px is None else float(radius_px)
        self.noise, self.seed = bool(noise), int(seed)
        order = np.argsort(view, kind="stable")
        bounds = np.searchsorted(view[order], np.arange(n_views + 1))
        self._xy = [xy[order[bounds[j] : bounds[j + 1]]] for j in range(n_views)]

    def positions(self, j: int) -> NDArray[np.float64]:
        """``(k, 2)`` the (x, y) of the beads erased in view ``j``."""
        return self._xy[j]

    def __call__(self, j: int, image: NDArray) -> NDArray[np.float32]:
        rng = np.random.default_rng([self.seed, int(j)])
        return erase_view(image, self._xy[j], self.radius_px, rng, self.noise)

    @classmethod
    def from_alignment(cls, al: Alignment, bead_diameter_px: float, *, prexg: NDArray[np.float64] | None = None,
                       seed: int = 0) -> GoldEraser:
        """The beads where ``al``'s model puts them in the raw stack (``prexg``: the alignment was solved on
        markers of the prealigned stack, as etomo's ``.preali``; its prealignment is undone)."""
        view, xy = bead_positions(al)
        if prexg is not None:
            xy = to_raw(prexg, view, xy, al.image_size)
        return cls(view, xy, bead_diameter_px, al.n_views, seed=seed)

    @classmethod
    def from_folder(cls, alignment_dir: str | os.PathLike[str], bead_diameter_px: float, n_views: int, *,
                    seed: int = 0) -> GoldEraser:
        """The beads a saved alignment folder puts in the raw stack (its ``predicted.csv``, the ``.prexg``
        of its run stamp undone: `io.bead_positions.read_bead_positions`)."""
        from ..io.bead_positions import read_bead_positions

        view, xy = read_bead_positions(alignment_dir)
        return cls(view, xy, bead_diameter_px, n_views, seed=seed)

