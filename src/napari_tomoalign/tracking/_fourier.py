"""Fourier helpers of the coarse alignment: band-pass filter, pad and taper, sub-pixel peaks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

_cap = threading.local()  # per thread: a batch worker or the dock's worker caps its own FFTs


def fft_workers() -> int:
    """The threads the tracking's FFTs use here: every core, unless `fft_threads` capped them."""
    return int(getattr(_cap, "workers", -1))


@contextmanager
def fft_threads(n: int) -> Iterator[None]:
    """Cap the tracking's FFTs at ``n`` threads in this thread, for the block."""
    before = fft_workers()
    _cap.workers = max(1, int(n))
    try:
        yield
    finally:
        _cap.workers = before


def cap_fft_threads(n: int) -> None:
    """Cap the tracking's FFTs at ``n`` threads in this thread for the rest of its life (a helper thread's)."""
    _cap.workers = max(1, int(n))


def good_size(n: int) -> int:
    """The next size with only small prime factors (fast FFTs)."""
    return int(sfft.next_fast_len(int(n), real=True))


def bandpass(shape: tuple[int, int], sigma1: float = 0.03, radius2: float = 0.25,
             sigma2: float = 0.05) -> NDArray[np.float32]:
    """The rfft2-domain filter of tiltxcorr's defaults (frequencies in cycles per pixel).

    ``1 - exp(-k^2 / 2 sigma1^2)`` removes the low frequencies; above ``radius2`` a Gaussian edge of
    ``sigma2`` removes the high ones.
    """
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.rfftfreq(shape[1])[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    f = 1.0 - np.exp(-0.5 * (k / sigma1) ** 2) if sigma1 > 0 else np.ones_like(k)
    f = np.where(k > radius2, f * np.exp(-0.5 * ((k - radius2) / sigma2) ** 2), f)
    return f.astype(np.float32)


def taper_pad(img: NDArray[np.float32], pad_fraction: float = 0.05, max_pad: int = 20,
              taper_fraction: float = 0.1, max_taper: int = 100) -> NDArray[np.float32]:
    """``img`` minus its mean, its edges tapered to 0 (10 %, at most 100 px) and padded with 0 (5 %, at most
    20 px) to a fast FFT size, as tiltxcorr does. The image sits at the top-left of the padded array."""
    rows, cols = img.shape
    out_rows = good_size(rows + min(max_pad, int(pad_fraction * rows)) * 2)
    out_cols = good_size(cols + min(max_pad, int(pad_fraction * cols)) * 2)
    a = img - np.float32(img.mean())
    wy = _ramp(rows, min(max_taper, max(1, int(taper_fraction * rows))))
    wx = _ramp(cols, min(max_taper, max(1, int(taper_fraction * cols))))
    out = np.zeros((out_rows, out_cols), dtype=np.float32)
    out[:rows, :cols] = a * wy[:, None] * wx[None, :]
    return out


def _ramp(n: int, width: int) -> NDArray[np.float32]:
    w = np.ones(n, dtype=np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
    w[:width] = ramp
    w[n - width:] = np.minimum(w[n - width:], ramp[::-1])
    return w


def spectrum(img: NDArray[np.float32]) -> NDArray[np.complex64]:
    return sfft.rfft2(img, workers=fft_workers())


def correlation_peak(fa: NDArray[np.complex64], fb: NDArray[np.complex64], shape: tuple[int, int],
                     filt: NDArray[np.float32] | None, limit: tuple[float, float]) -> tuple[NDArray[np.float64], float]:
    """Shift ``t`` (x, y) such that image b(x) matches a(x - t), and the peak's prominence.

    Only shifts within ``limit`` (x, y) are searched. The prominence is the peak over the standard
    deviation of the correlation (a quality measure; near 3 means no real peak).
    """
    prod = fb * np.conj(fa)
    if filt is not None:
        prod *= filt
    cc = sfft.irfft2(prod, s=shape, workers=fft_workers())
    cc = np.fft.fftshift(cc)
    cy, cx = shape[0] // 2, shape[1] // 2
    ly, lx = int(min(limit[1], cy - 2)), int(min(limit[0], cx - 2))
    win = cc[cy - ly : cy + ly + 1, cx - lx : cx + lx + 1]
    iy, ix = (int(i) for i in np.unravel_index(int(np.argmax(win)), win.shape))
    sub = subpixel_peak(win, iy, ix)
    t = np.array([sub[0] - lx, sub[1] - ly])
    prominence = float((win[iy, ix] - cc.mean()) / max(cc.std(), 1e-30))
    return t, prominence


def subpixel_peak(a: NDArray, iy: int, ix: int) -> tuple[float, float]:
    """(x, y) of a peak refined by a parabola through it and its neighbours along each axis."""
    def vertex(m, c, p):
        den = m - 2 * c + p
        return 0.0 if den >= 0 else float(np.clip(0.5 * (m - p) / den, -0.5, 0.5))

    dx = vertex(a[iy, ix - 1], a[iy, ix], a[iy, ix + 1]) if 0 < ix < a.shape[1] - 1 else 0.0
    dy = vertex(a[iy - 1, ix], a[iy, ix], a[iy + 1, ix]) if 0 < iy < a.shape[0] - 1 else 0.0
    return ix + dx, iy + dy
