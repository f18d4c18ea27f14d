"""Reading views one at a time, hot-pixel clamping and patch extraction.

A stack (a memory map is fine) is never read whole: `ViewReader` reads one view, converts it to
float32 and keeps the last few. For a `numpy.memmap` the pages of a view are released after reading,
so that a long pass over a big file does not grow the process's resident memory.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from concurrent.futures import Future

import numba
import numpy as np
from numpy.typing import NDArray

from ..reconstruction.warp import bin_image
from ._spread import beside
from .medians import median

HOT_PIXEL_SD = 8.0


def noise_sd(img: NDArray, sample: int = 32768, seed: int = 0) -> float:
    """Pixel noise standard deviation from the MAD of horizontal neighbour differences (texture-robust)."""
    rows, cols = img.shape
    rng = np.random.default_rng(seed)
    r = rng.integers(0, rows, sample)
    c = rng.integers(0, cols - 1, sample)
    d = img[r, c + 1].astype(np.float64) - img[r, c]
    mad = median(np.abs(d - median(d)))
    return float(max(1.4826 * mad / np.sqrt(2.0), 1e-6))


def hot_threshold(img: NDArray, sd: float | None = None, k: float = HOT_PIXEL_SD, sample: int = 16384) -> float:
    """The deviation from its neighbours' median beyond which a pixel is hot or dead: ``k`` noise SDs, and
    at least half the image's 0.5-99.5 percentile range (so that noise-free images keep their real edges)."""
    rows, cols = img.shape
    rng = np.random.default_rng(1)
    values = img[rng.integers(0, rows, sample), rng.integers(0, cols, sample)].astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    sd = noise_sd(img, sample) if sd is None else sd
    return float(max(k * 1.25 * sd, 0.5 * (hi - lo)))


def clamp_hot_pixels(img: NDArray[np.float32], threshold: float | None = None) -> int:
    """Replace, in place, pixels that differ from the median of their 8 neighbours by more than
    ``threshold`` (default `hot_threshold`: hot pixels, dead pixels, X-rays) with that median. Works on a
    2-D view or a ``(n, rows, cols)`` stack of patches; returns how many pixels were replaced. (A cheap
    test against the mean of the 4 neighbours picks the pixels whose median is worth computing.)

    A C-ordered float32 image is clamped in one compiled pass (`_clamp`), with numpy's numbers (float32 sums,
    the median's middle pair averaged in float32, the limits compared as numpy compares them): 484 calls of a
    1024^2 x 41 run's tracking, 0.1 s of its main thread in numpy's dozen passes over small patches. Others take
    `clamp_hot_pixels_numpy`, the reference."""
    if threshold is None:
        threshold = hot_threshold(img if img.ndim == 2 else img.reshape(-1, img.shape[-1]))
    if img.dtype != np.float32 or img.ndim not in (2, 3) or not img.flags.c_contiguous or not img.flags.writeable:
        return clamp_hot_pixels_numpy(img, threshold)
    return int(_clamp(img if img.ndim == 3 else img[None], _as_compared(0.5 * threshold), _as_compared(threshold)))


def _as_compared(limit) -> float:
    """``limit`` as numpy compares a float32 array with it: a Python number in float32 (NEP 50's weak scalars), a
    numpy float64 in float64; returned in float64, exactly, for the compiled comparison in float64."""
    return float(np.asarray(limit, dtype=np.result_type(np.float32, limit)))


def clamp_hot_pixels_numpy(img: NDArray[np.float32], threshold: float) -> int:
    """`clamp_hot_pixels` in numpy (any dtype and layout), as it was before the compiled pass: its reference."""
    inner = img[..., 1:-1, 1:-1]
    mean4 = 0.25 * (img[..., :-2, 1:-1] + img[..., 2:, 1:-1] + img[..., 1:-1, :-2] + img[..., 1:-1, 2:])
    with np.errstate(invalid="ignore"):
        idx = np.nonzero(np.abs(inner - mean4) > 0.5 * threshold)
    if len(idx[0]) == 0:
        return 0
    lead, ys, xs = tuple(idx[:-2]), idx[-2] + 1, idx[-1] + 1
    around = np.stack([img[lead + (ys + dy, xs + dx)] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    med = np.median(around, axis=0)
    value = img[lead + (ys, xs)]
    with np.errstate(invalid="ignore"):
        bad = np.abs(value - med) > threshold
    img[tuple(a[bad] for a in lead + (ys, xs))] = med[bad]
    return int(bad.sum())


@numba.njit(cache=True, nogil=True)
def _clamp(img, half, limit):  # pragma: no cover - compiled
    """`clamp_hot_pixels_numpy` of a C-ordered float32 ``(n, rows, cols)``: every replacement from the image as
    it was (found first, then made), each median from a sort of the 8 neighbours (any NaN among them: none)."""
    n, rows, cols = img.shape
    found = np.empty((64, 3), np.intp)
    values = np.empty(64, np.float32)
    k = 0
    near = np.empty(8, np.float32)
    quarter, two = np.float32(0.25), np.float32(2.0)
    for p in range(n):
        for y in range(1, rows - 1):
            for x in range(1, cols - 1):
                v = img[p, y, x]
                mean4 = quarter * (((img[p, y - 1, x] + img[p, y + 1, x]) + img[p, y, x - 1]) + img[p, y, x + 1])
                if not np.float64(abs(v - mean4)) > half:
                    continue
                m, nan = 0, False
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        if dy != 0 or dx != 0:
                            u = img[p, y + dy, x + dx]
                            nan = nan or u != u
                            i = m
                            while i > 0 and near[i - 1] > u:  # insertion sort
                                near[i] = near[i - 1]
                                i -= 1
                            near[i] = u
                            m += 1
                med = (near[3] + near[4]) / two
                if nan or not np.float64(abs(v - med)) > limit:
                    continue
                if k == len(values):
                    found = np.concatenate((found, np.empty_like(found)))
                    values = np.concatenate((values, np.empty_like(values)))
                found[k, 0], found[k, 1], found[k, 2], values[k] = p, y, x, med
                k += 1
    for i in range(k):
        img[found[i, 0], found[i, 1], found[i, 2]] = values[i]
    return k


class ViewReader:
    """Views of a ``(n_views, rows, cols)`` stack as float32 arrays, read on demand and cached (a few).

    ``clamp`` replaces hot pixels in each view as it is read (`clamp_hot_pixels`).
    """

    def __init__(self, stack: NDArray, clamp: bool = False, cache: int = 3) -> None:
        if getattr(stack, "ndim", 0) != 3:
            raise ValueError(f"the stack must be 3-D (views, rows, cols), not {getattr(stack, 'ndim', 0)}-D")
        self.stack = stack
        self.clamp = clamp
        self._cache: OrderedDict[tuple[int, int], NDArray[np.float32]] = OrderedDict()
        self._size = cache
        self.sd: dict[int, float] = {}
        self.hot: dict[int, float] = {}
        self._ahead: dict[tuple[int, int], Future] = {}  # views being read on the second core (`prefetch`)

    @property
    def n_views(self) -> int:
        return int(self.stack.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.stack.shape[1]), int(self.stack.shape[2])

    def view(self, j: int, binning: int = 1) -> NDArray[np.float32]:
        """View ``j`` as float32, binned by ``binning`` (averaging blocks)."""
        key = (int(j), int(binning))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        level = self.hot.get(int(j)) if binning == 1 else None
        ahead = self._ahead.pop(key, None)
        img, sd, got = ahead.result() if ahead is not None else read_view(self.stack, j, binning, level)
        if level is None and binning == 1 and sd is not None:  # (sd is measured when level is None)
            self.sd[int(j)], self.hot[int(j)] = sd, got
        if self.clamp:
            clamp_hot_pixels(img, got)
        self._cache[key] = img
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return img

    def prefetch(self, j: int, binning: int = 1) -> None:
        """Start reading view ``j`` on the second core (`_spread.beside`; nothing without one), for `view` to
        take when it is asked for: the same array and numbers as a read then."""
        key = (int(j), int(binning))
        if key in self._cache or key in self._ahead:
            return
        level = self.hot.get(int(j)) if binning == 1 else None
        ahead = beside(read_view, self.stack, int(j), int(binning), level)
        if ahead is not None:
            for old in list(self._ahead)[: max(0, len(self._ahead) - 2)]:  # never asked for: dropped
                del self._ahead[old]
            self._ahead[key] = ahead

    def noise(self, j: int) -> float:
        """Noise SD of the unbinned view ``j``."""
        if int(j) not in self.sd:
            self.view(j)
        return self.sd[int(j)]

    def hot_level(self, j: int) -> float:
        """`hot_threshold` of the unbinned view ``j``."""
        if int(j) not in self.hot:
            self.view(j)
        return self.hot[int(j)]


def read_view(stack: NDArray, j: int, binning: int, level: float | None) -> tuple[NDArray[np.float32], float | None,
                                                                                 float]:
    """View ``j`` of ``stack`` as float32 (binned by ``binning``), with its noise SD and `hot_threshold` when
    ``level`` (the threshold) is not known: ``(image, sd or None, threshold)``."""
    raw = stack[j]
    img = bin_image(raw, binning) if binning > 1 else np.array(raw, dtype=np.float32)
    release_view(stack, j)
    sd = None
    if level is None:
        sd = noise_sd(img)
        level = hot_threshold(img, sd)
    return img, sd, level


def release_view(stack: NDArray, j: int) -> None:
    """Drop the pages of view ``j`` of a memory map from this process (they stay in the page cache)."""
    base: object = stack
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    mm = getattr(base, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    view_bytes = stack[0].nbytes
    start = int(getattr(base, "offset", 0)) % mmap.ALLOCATIONGRANULARITY + j * view_bytes  # within the mapping
    page = mmap.PAGESIZE
    lo = (start // page) * page
    try:
        mm.madvise(mmap.MADV_DONTNEED, lo, min(start + view_bytes, len(mm)) - lo)
    except (ValueError, OSError):  # pragma: no cover - platform dependent
        pass


def patch_origins(xy: NDArray[np.float64], size: int) -> NDArray[np.intp]:
    """``(k, 2)`` integer (x, y) of the top-left pixel of ``size``-wide patches centred near ``xy``."""
    return (np.floor(xy + 0.5).astype(np.intp) - size // 2)


def extract_patches(img: NDArray, origins: NDArray[np.intp], size: int,
                    outside: float | None = None) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """``(k, size, size)`` patches with top-left pixels ``origins`` (x, y), and ``(k,)`` True where the
    patch lies wholly inside the image. Pixels outside the image repeat the edge, or are ``outside``."""
    rows, cols = img.shape
    if len(origins) == 0:
        return np.zeros((0, size, size), np.float32), np.zeros(0, bool)
    ar = np.arange(size)
    ys = origins[:, 1, None] + ar[None, :]
    xs = origins[:, 0, None] + ar[None, :]
    inside = (origins[:, 0] >= 0) & (origins[:, 1] >= 0) & (origins[:, 0] + size <= cols) & (origins[:, 1] + size <= rows)
    yc = np.clip(ys, 0, rows - 1)
    xc = np.clip(xs, 0, cols - 1)
    if isinstance(img, np.ndarray) and img.dtype == np.float32 and img.flags.c_contiguous:
        patches = np.empty((len(origins), size, size), np.float32)
        _gather(img, yc, xc, patches)  # the same copy as the fancy index below, without its index arrays
    else:
        patches = img[yc[:, :, None], xc[:, None, :]].astype(np.float32, copy=False)
    if outside is not None and not inside.all():
        out = (ys != yc)[:, :, None] | (xs != xc)[:, None, :]
        patches[out] = outside
    return patches, inside


@numba.njit(cache=True, nogil=True)
def _gather(img, yc, xc, out):  # pragma: no cover - compiled
    """``out[k, i, j] = img[yc[k, i], xc[k, j]]``."""
    for k in range(out.shape[0]):
        for i in range(out.shape[1]):
            row = img[yc[k, i]]
            for j in range(out.shape[2]):
                out[k, i, j] = row[xc[k, j]]
