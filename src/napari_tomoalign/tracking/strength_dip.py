"""The threshold of the bead search (`beads` step 4): the dip between the false peaks' and the beads' modes of
the kernel-smoothed histogram of the candidates' strengths, with kernel widths from 0.2 of the strength range
downwards."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MODE_OVER_DIP = 1.3


def histogram_dip(strength: NDArray[np.float64], min_beads: int = 3) -> tuple[float, NDArray[np.float64]]:
    """The strength at the dip between false peaks and beads, and the ``(2, bins)`` smoothed histogram.

    Kernel widths from 0.2 of the strength range downwards are tried until a dip appears whose lower
    side holds the false peaks and upper side at least ``min_beads`` candidates; the dip is then placed
    with a width of 0.05. Raises `BeadFindingError` when there is none.
    """
    s = np.asarray(strength, dtype=float)
    top = np.sort(s)[-min(len(s), 3)] if len(s) else 0.0
    from .beads import BeadFindingError

    if len(s) < min_beads + 3 or top <= 0:
        raise BeadFindingError(f"only {len(s)} peaks were found; check the bead diameter and polarity")
    x = np.clip(s / top, -0.5, 1.5)
    grid = np.linspace(-0.2, 1.5, 341)
    for h in (0.2, 0.15, 0.1, 0.07, 0.05, 0.035):
        dens = _kde(x, grid, h)
        dip = _deepest_dip(dens, grid, x, min_beads)
        if dip is not None:
            near = np.abs(grid - dip) <= max(h, 0.05)
            fine = _kde(x, grid, 0.05)
            at = grid[near][int(np.argmin(fine[near]))]
            return float(at * top), np.vstack([grid * top, fine])
    raise BeadFindingError(
        "no dip in the bead-strength histogram separates beads from other peaks; check the bead diameter"
        " (or have it measured: auto) and the polarity (dark or bright beads)")


def _kde(x, grid, h):
    """Gaussian kernel density of ``x`` on ``grid``, in blocks of rows held in cache (the same sums, 2-4x faster)."""
    rows = max(1, 65536 // max(len(x), 1))
    dens = [np.exp(-0.5 * ((grid[i : i + rows, None] - x[None, :]) / h) ** 2).sum(axis=1) for i in range(0, len(grid), rows)]
    return np.concatenate(dens) / (len(x) * h * np.sqrt(2 * np.pi))


def _deepest_dip(dens, grid, x, min_beads):
    """Position of the deepest local minimum with a real mode on each side, or None. The beads' mode must
    lie well above the dip (their median at least `MODE_OVER_DIP` times it), or every bead above the
    strongest false peak by that factor (an empty gap): a bump in the tail of the false peaks is not a
    population of beads. The gap is for a few beads among many false peaks (6-12 gold on a stained
    section), whose dip lies near the beads: the false peaks' tail pushes it there."""
    interior = np.flatnonzero((dens[1:-1] < dens[:-2]) & (dens[1:-1] <= dens[2:])) + 1
    best, best_ratio = None, 0.8
    for i in interior:
        left, right = dens[:i].max(), dens[i:].max()
        up, below = x[x > grid[i]], x[x <= grid[i]]
        if len(up) < min_beads or len(up) > 0.9 * len(x) or grid[i] <= 0.05:
            continue
        gap = len(below) > 0 and up.min() >= MODE_OVER_DIP * below.max()
        if np.median(up) < MODE_OVER_DIP * grid[i] and not gap:
            continue
        ratio = dens[i] / min(left, right)
        if ratio < best_ratio:
            best, best_ratio = grid[i], ratio
    return best
