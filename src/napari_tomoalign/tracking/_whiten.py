"""Bead positions refined under a textured background: least squares after prewhitening.

The profile fit (`_profile.fit_profile`) is least squares, which is the best estimate when the
background left after the plane is white noise. Stain and ice texture is not: most of its power lies at
low spatial frequencies, on the scale of the bead, and it pulls the fitted centre. The pull does not
average out over the series. Along the tilt axis, texture keeps its offset from the bead in every
view, and texture at the bead's own height keeps it across the axis too, so each bead gets a constant
bias that passes straight into its 3-D position and the alignment's predictions (0.01-0.02 px on the
plastic-like simulated set, more than the noise leaves after averaging over 60 views).

The remedy is generalised least squares: filter image and model by the inverse square root of the
background's power spectrum (prewhitening), then fit as before. `Whitener` measures that spectrum on the
seed view with the beads erased (`reconstruction.erase.erase_view`), turns it into a small real-space
kernel, and learns the beads' whitened profile from the seed view's single beads. Count data are
filtered as log counts, where bright field's multiplicative background is additive. `Whitener.refine`
re-fits given positions in one view; a point moves only if the fit converges within half a pixel.
When the background is white (noise-limited data such as the cryo-like set), the kernel is close to a
delta and the refinement changes little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray
from scipy import ndimage

from ..reconstruction.erase import erase_radius_px, erase_view
from ._fourier import fft_workers
from ._profile import BeadProfile, fit_profile
from ._spread import split
from ._views import clamp_hot_pixels, extract_patches, patch_origins
from .medians import median, row_medians

KERNEL_PX = 11
MAX_MOVE_PX = 0.5
MIN_BEADS = 12
LEARN_BEADS = 120  # single beads the whitened profile is learned from
FIT_MARGIN_PX = 2.5  # the fit uses pixels within the bead's radius plus this
SPECTRUM_PX = 1024  # the background's spectrum is measured on a central crop at most this wide


def _log_counts(a: NDArray[np.float32], floor: float) -> NDArray[np.float32]:
    return np.log(np.maximum(a, np.float32(floor))).astype(np.float32)


def whitening_kernel(background: NDArray[np.float32], size: int = KERNEL_PX) -> NDArray[np.float32]:
    """``(size, size)`` kernel that flattens the radially averaged power spectrum of ``background`` (an
    image with the beads erased): the inverse square root of the spectrum, scaled to 1 at the highest
    frequencies, cropped in real space with a cosine window and scaled to unit sum of squares."""
    rows, cols = background.shape
    a = background - np.float32(background.mean())
    win = np.outer(np.hanning(rows), np.hanning(cols)).astype(np.float32)
    power = np.abs(sfft.rfft2(a * win, workers=fft_workers())) ** 2
    ky = sfft.fftfreq(rows)[:, None]
    kx = sfft.rfftfreq(cols)[None, :]
    nb = 64
    ring = np.minimum((np.hypot(kx, ky) / 0.5 * nb).astype(np.intp), nb)
    radial = np.bincount(ring.ravel(), power.ravel(), nb + 1) / np.maximum(np.bincount(ring.ravel(), None, nb + 1), 1)
    radial = ndimage.uniform_filter1d(radial, 3, mode="nearest")
    floor = float(np.median(radial[int(0.75 * nb):]))
    gain = np.sqrt(floor / np.maximum(radial, 1e-12 * floor + 1e-30))
    # the kernel on a small grid: its frequency response sampled there, then windowed in real space
    n = 4 * size
    fy = sfft.fftfreq(n)[:, None]
    fx = sfft.fftfreq(n)[None, :]
    response = np.interp(np.hypot(fx, fy) / 0.5 * nb, np.arange(nb + 1), gain)
    k = np.real(sfft.fftshift(sfft.ifft2(response)))
    c, h = n // 2, size // 2
    k = k[c - h : c + h + 1, c - h : c + h + 1]
    r = np.hypot(*np.meshgrid(np.arange(-h, h + 1), np.arange(-h, h + 1)))
    k *= 0.5 + 0.5 * np.cos(np.pi * np.clip(r / (h + 1), 0.0, 1.0))
    return (k / np.sqrt(np.sum(k * k))).astype(np.float32)


@dataclass(frozen=True)
class Whitener:
    """A whitening ``kernel`` ``(K, K)``, whether to filter ``log`` counts, and the beads' whitened
    ``profile``; ``sign`` is -1 for dark beads."""

    kernel: NDArray[np.float32]
    log: bool
    floor: float
    profile: BeadProfile
    sign: float

    def patches(self, img: NDArray[np.float32], xy: NDArray[np.float64], size: int,
                hot: float) -> tuple[NDArray[np.float32], NDArray[np.intp], NDArray[np.bool_]]:
        """Whitened ``(k, size, size)`` patches around ``xy``, their origins, and True where wholly inside."""
        k = self.kernel.shape[0]
        big = size + k - 1
        origins = patch_origins(xy, size)
        raw, inside = extract_patches(img, origins - k // 2, big)
        raw = raw.copy()
        clamp_hot_pixels(raw, hot)
        if self.log:
            raw = _log_counts(raw, self.floor)
        n = sfft.next_fast_len(big, real=True)  # zero padding: the slice below never sees the wrap
        w = fft_workers()
        spec = sfft.rfft2(raw, s=(n, n), workers=w) * sfft.rfft2(self.kernel[::-1, ::-1], s=(n, n))
        out = sfft.irfft2(spec, s=(n, n), workers=w)[:, k - 1 : big, k - 1 : big]
        return out.astype(np.float32), origins, inside

    def refine(self, img: NDArray[np.float32], xy: NDArray[np.float64], hot: float) -> NDArray[np.float64]:
        """``xy`` ``(n, 2)`` re-fitted in the whitened view; points whose fit fails keep their position."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        out = xy.copy()

        def part(lo: int, hi: int) -> None:  # each point on its own: the halves on two cores (`_spread`)
            out[lo:hi] = self._refine(img, xy[lo:hi], hot)

        split(part, len(xy))
        return out

    def _refine(self, img: NDArray[np.float32], xy: NDArray[np.float64], hot: float) -> NDArray[np.float64]:
        if len(xy) == 0:
            return xy.copy()
        radius = self.profile.radius_px + FIT_MARGIN_PX
        size = 2 * int(np.ceil(radius + 1.5)) + 1
        wp, origins, inside = self.patches(img, xy, size, hot)
        fit = fit_profile(wp, xy - origins, self.profile, radius, iterations=3)
        new = fit.xy + origins
        ok = inside & fit.converged & (self.sign * fit.amplitude > 0) \
            & (np.hypot(*(new - xy).T) <= MAX_MOVE_PX)
        return np.where(ok[:, None], new, xy)


def make_whitener(img: NDArray[np.float32], beads_xy: NDArray[np.float64], singles_xy: NDArray[np.float64],
                  profile: BeadProfile, *, dark: bool, hot: float) -> Whitener | None:
    """A `Whitener` from one view: ``beads_xy`` every bead to erase before measuring the background's
    spectrum, ``singles_xy`` single beads (fitted positions) to learn the whitened profile from. None
    with fewer than `MIN_BEADS` single beads."""
    singles_xy = np.asarray(singles_xy, dtype=float).reshape(-1, 2)[:LEARN_BEADS]
    if len(singles_xy) < MIN_BEADS:
        return None
    rows, cols = img.shape
    y0, x0 = max(0, (rows - SPECTRUM_PX) // 2), max(0, (cols - SPECTRUM_PX) // 2)
    work = np.array(img[y0 : y0 + SPECTRUM_PX, x0 : x0 + SPECTRUM_PX], dtype=np.float32)
    clamp_hot_pixels(work, hot)
    log = bool(dark and img.min() >= 0 and median(work) > 0)
    floor = max(float(np.percentile(work, 0.1)), 0.5) if log else 0.0
    erased = erase_view(work, np.asarray(beads_xy, dtype=float).reshape(-1, 2) - [x0, y0],
                        erase_radius_px(2.0 * profile.radius_px), np.random.default_rng(0))
    kernel = whitening_kernel(_log_counts(erased, floor) if log else erased)
    sign = -1.0 if dark else 1.0
    w = Whitener(kernel, log, floor, profile, sign)
    r_max = profile.radius_px + 0.5 * KERNEL_PX + 1.0
    size = 2 * int(np.ceil(r_max + 1.5)) + 1
    wp, origins, inside = w.patches(img, singles_xy, size, hot)
    wp, centres = wp[inside], (singles_xy - origins)[inside]
    if len(wp) < MIN_BEADS:
        return None
    a = np.arange(size) - size // 2
    outer = np.hypot(a[None, :], a[:, None]) > r_max - 1.0
    level = row_medians(wp[:, outer])
    background = np.column_stack([level, np.zeros(len(wp)), np.zeros(len(wp))])
    learned = BeadProfile.learned(wp, centres, background, np.full(len(wp), sign), profile.radius_px, r_max)
    return Whitener(kernel, log, floor, learned, sign)
