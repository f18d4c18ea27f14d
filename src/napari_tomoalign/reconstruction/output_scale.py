"""IMOD's ``SCALE`` for an integer tomogram, taken from the same rows whatever the memory.

The scale (add, then multiply) comes from the middle `SCALE_ROWS` rows (slices) of the output: the streamed
WBP makes the slab that holds them first (`slab_spans`), or, with slabs thinner than them (a small ``--memory``),
makes them first in pieces for the scale alone (`window_scale`); the local WBP is streamed the same way. The scale was
taken from whichever slab was in the middle, so that
the same command gave int16 files up to 2133 grey levels apart on a busy and a quiet machine (the default slab
follows the free memory: new user's finding, session 13).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

SCALE_ROWS = 64  # output rows the integer scale is taken from: the middle ones


def scale_window(y_lo: int, y_hi: int) -> tuple[int, int]:
    """The rows ``(first, stop)`` of ``y_lo .. y_hi`` that set the integer scale: the middle `SCALE_ROWS`."""
    w0 = y_lo + max(0, (y_hi - y_lo) // 2 - SCALE_ROWS // 2)
    return w0, min(y_hi, w0 + SCALE_ROWS)


def slab_spans(y_lo: int, y_hi: int, n_rows: int, window: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Slabs of at most ``n_rows`` covering ``y_lo .. y_hi``; with a ``window`` that fits in one, the slab that holds
    it comes first (the others follow in order): one of the plain slabs when one holds it, else a slab that starts
    at the window (a volume that fits in one slab was made in two, 3-5% more of `run`'s time)."""
    grid = [(y0, min(y_hi, y0 + n_rows)) for y0 in range(y_lo, y_hi, n_rows)]
    if window is None or window[1] - window[0] > n_rows:
        return grid
    holding = [k for k, (a, b) in enumerate(grid) if a <= window[0] and window[1] <= b]
    if holding:  # the plain slabs hold the window (one slab for the whole volume, often): that slab first
        return [grid[holding[0]]] + grid[: holding[0]] + grid[holding[0] + 1 :]
    w0 = window[0]
    after = [(y0, min(y_hi, y0 + n_rows)) for y0 in range(w0, y_hi, n_rows)]
    before = [(max(y_lo, y1 - n_rows), y1) for y1 in range(w0, y_lo, -n_rows)][::-1]
    return after[:1] + before + after[1:]


def integer_scale(vol: NDArray[np.float32], dtype: np.dtype) -> tuple[float, float]:
    """IMOD's ``SCALE`` (add, then multiply) that puts a float tomogram into the integer ``dtype``, from the rows
    that set it (`scale_window`): its mean to the middle of the range, and for 16 bits twice its largest deviation
    to half the range (slabs up to twice as contrasted still fit; 1/16000 of that range a level), for bytes
    five standard deviations (the contrast 3dmod shows; denser gold is clipped, and counted). etomo gives
    ``tilt`` such a ``SCALE`` for its integer tomograms; without one, a WBP in density units rounds to a few
    levels or to nothing."""
    info = np.iinfo(dtype)
    # sums a section at a time: a float64 copy of the slab was twice the slab, past the memory budget
    # (new user's finding O, session 12: --memory 3G peaked at 7.2 GB)
    n = float(vol.size)
    mean = sum(float(vol[z].sum(dtype=np.float64)) for z in range(vol.shape[0])) / n
    if info.bits > 8:
        spread = 2.0 * max(float(vol.max()) - mean, mean - float(vol.min()))
    else:
        var = sum(float(np.square(vol[z] - np.float32(mean), dtype=np.float64).sum()) for z in range(vol.shape[0])) / n
        spread = 5.0 * float(np.sqrt(var))
    mult = float(info.max - info.min) / 2.0 / spread if np.isfinite(spread) and spread > 0 else 1.0
    return -mean + (float(info.max) + float(info.min) + 1.0) / 2.0 / mult, mult


def window_scale(made: Callable[[int, int], NDArray[np.float32]], window: tuple[int, int], n_rows: int,
                 dtype: np.dtype) -> tuple[float, float]:
    """`integer_scale` of the rows ``window`` made ``n_rows`` at a time by ``made(first, stop)``, within a memory
    budget that cannot hold them together: their sums (exactly rounded: `math.fsum`), extremes and squares."""
    info = np.iinfo(dtype)
    sums, squares, lo, hi, n = [], [], math.inf, -math.inf, 0
    for y0 in range(window[0], window[1], n_rows):
        part = made(y0, min(window[1], y0 + n_rows))
        for z in range(part.shape[0]):
            sums.append(float(part[z].sum(dtype=np.float64)))
            squares.append(float(np.square(part[z], dtype=np.float64).sum()))
        lo, hi, n = min(lo, float(part.min())), max(hi, float(part.max())), n + part.size
        del part
    mean = math.fsum(sums) / n
    if info.bits > 8:
        spread = 2.0 * max(hi - mean, mean - lo)
    else:
        spread = 5.0 * math.sqrt(max(0.0, math.fsum(squares) / n - mean * mean))
    mult = float(info.max - info.min) / 2.0 / spread if math.isfinite(spread) and spread > 0 else 1.0
    return -mean + (float(info.max) + float(info.min) + 1.0) / 2.0 / mult, mult
