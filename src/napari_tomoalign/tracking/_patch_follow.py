"""Following patches from one view to the next: the next view brought into this one's frame by the coarse
alignment (its cosine stretch included), both views' patches cut at the same places, correlated in one
batch of FFTs under etomo's patch filter, and each peak refined to sub-pixel by parabolas.

For every patch the step gives the shift of its content, the normalised correlation at the peak (1 for
identical patches, near 0 for noise against noise), how elongated the peak is (an edge gives a ridge,
whose position along the edge is undetermined) and whether the peak lies on the search limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray
from scipy import ndimage

from . import _fourier as ft


class ViewMap(Protocol):
    """A mapping of positions between views with a linear part per view (`coarse.CoarseAlignment`, or the
    plane mapping of a solved alignment)."""

    def matrix(self, j: int) -> NDArray[np.float64]: ...

    def map(self, xy: NDArray[np.float64], from_view: int, to_view: int) -> NDArray[np.float64]: ...


def binned_to_raw(k: NDArray[np.float64], b: int) -> NDArray[np.float64]:
    """Unbinned positions of binned pixel positions (binned pixel 0 covers unbinned 0 .. b - 1)."""
    return k * b + (b - 1) / 2.0


def raw_to_binned(q: NDArray[np.float64], b: int) -> NDArray[np.float64]:
    return (q - (b - 1) / 2.0) / b


def warp_into(img_b: NDArray[np.float32], coarse: ViewMap, a: int, b: int, binning: int) -> NDArray[np.float32]:
    """View ``b`` (binned) resampled into view ``a``'s binned frame by the coarse alignment; NaN outside."""
    m = coarse.matrix(b) @ np.linalg.inv(coarse.matrix(a))
    origin = coarse.map(binned_to_raw(np.zeros((1, 2)), binning), a, b)[0]
    off = raw_to_binned(origin, binning)
    return ndimage.affine_transform(img_b, m[::-1, ::-1], offset=off[::-1], order=1, mode="constant",
                                    cval=np.nan, output=np.float32)


def cut(img: NDArray[np.float32], centres: NDArray[np.intp], size: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """``(n, size, size)`` patches centred on integer (x, y) ``centres`` and whether each lies wholly inside
    the image with no NaN (patches that do not are zeros)."""
    rows, cols = img.shape
    x0, y0 = centres[:, 0] - size // 2, centres[:, 1] - size // 2
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + size <= cols) & (y0 + size <= rows)
    out = np.zeros((len(centres), size, size), dtype=np.float32)
    if inside.any():
        win = np.lib.stride_tricks.sliding_window_view(img, (size, size))
        out[inside] = win[y0[inside], x0[inside]]
        bad = ~np.isfinite(out[inside]).all(axis=(1, 2))
        idx = np.flatnonzero(inside)
        inside[idx[bad]] = False
        out[idx[bad]] = 0.0
    return out, inside


def _taper(size: int) -> NDArray[np.float32]:
    w = max(2, size // 8)
    ramp = np.ones(size, dtype=np.float32)
    edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(w) + 0.5) / w)
    ramp[:w], ramp[size - w:] = edge, edge[::-1]
    return ramp[:, None] * ramp[None, :]


@dataclass
class StepResult:
    """What correlating a batch of patch pairs found (``(n,)`` arrays; ``shift`` ``(n, 2)`` x, y, binned)."""

    shift: NDArray[np.float64]
    ncc: NDArray[np.float64]
    roundness: NDArray[np.float64]
    at_limit: NDArray[np.bool_]


class PatchCorrelator:
    """Correlates batches of ``size`` x ``size`` patch pairs under a band-pass (cycles per binned pixel).

    ``chance`` is the correlation that pure noise reaches at its best lag (1.3 times the 95th percentile
    over independent noise patches, measured once): blank patches, vacuum and featureless areas do not beat
    it, whatever the patch size and filter."""

    def __init__(self, size: int, sigma1: float, radius2: float, sigma2: float, max_shift: float) -> None:
        self.size = int(size)
        self.band, self.max_shift = (sigma1, radius2, sigma2), float(max_shift)
        self.taper = _taper(self.size)
        filt = ft.bandpass((self.size, self.size), sigma1, min(radius2, 0.5), sigma2).astype(np.float32)
        self.filt2 = filt * filt
        weight = np.full(self.filt2.shape[1], 2.0, dtype=np.float32)
        weight[0] = 1.0
        if self.size % 2 == 0:
            weight[-1] = 1.0
        self.energy_weight = (self.filt2 * weight[None, :]) / np.float32(self.size * self.size)
        self.col_weight = weight[None, :]
        self.kx = (2 * np.pi * sfft.rfftfreq(self.size)).astype(np.float32)[None, :]
        self.ky = (2 * np.pi * sfft.fftfreq(self.size)).astype(np.float32)[:, None]
        self.limit = int(max(2, min(max_shift, self.size // 2 - 2)))
        self.chance = 0.0
        rng = np.random.default_rng(0)
        noise = rng.standard_normal((2, 32, self.size, self.size)).astype(np.float32)
        self.chance = 1.3 * float(np.quantile(self.correlate(noise[0], noise[1]).ncc, 0.95))

    def resized(self, size: int) -> PatchCorrelator:
        """A correlator of patches of ``size`` with the same filter and the same search limit relative to the size."""
        return PatchCorrelator(size, *self.band, self.max_shift * size / self.size)

    def _spectra(self, p: NDArray[np.float32]) -> NDArray[np.complex64]:
        p = (p - p.mean(axis=(1, 2), keepdims=True)) * self.taper
        return sfft.rfft2(p, axes=(1, 2), workers=ft.fft_workers())

    def _local(self, prod: NDArray[np.complex64], tau: NDArray[np.float64]):
        """The correlation at continuous shifts ``tau`` (n, 2), with its gradient and Hessian (xx, xy, yy):
        the filtered cross-spectrum ``prod`` (its half-plane weights applied) summed as the trigonometric
        polynomial it is, so the peak is found exactly, with no parabola's pull toward whole pixels."""
        ex = np.exp(1j * (self.kx[None] * tau[:, 0, None, None])).astype(np.complex64)
        ey = np.exp(1j * (self.ky[None] * tau[:, 1, None, None])).astype(np.complex64)
        z = prod * ex * ey
        kx, ky = self.kx[None], self.ky[None]
        n2 = float(self.size * self.size)
        zx, zy = z * kx, z * ky
        f = z.real.sum(axis=(1, 2)) / n2
        g = np.column_stack([-zx.imag.sum(axis=(1, 2)), -zy.imag.sum(axis=(1, 2))]) / n2
        h = np.column_stack([-(zx * kx).real.sum(axis=(1, 2)), -(zx * ky).real.sum(axis=(1, 2)),
                             -(zy * ky).real.sum(axis=(1, 2))]) / n2
        return f.astype(np.float64), g.astype(np.float64), h.astype(np.float64)

    def spectra(self, p: NDArray[np.float32]) -> NDArray[np.complex64]:
        """The half-plane spectra of patches as `correlate_spectra` takes them (mean removed, tapered); linear
        in the patches, so the spectrum of a mean of patches is the mean of their spectra."""
        return self._spectra(p)

    def correlate(self, pa: NDArray[np.float32], pb: NDArray[np.float32]) -> StepResult:
        """Shift (x, y) that carries each patch of ``pa`` onto its partner in ``pb``, and the peak's quality."""
        if len(pa) == 0:
            return self.correlate_spectra(np.zeros((0, 1, 1), np.complex64), np.zeros((0, 1, 1), np.complex64))
        return self.correlate_spectra(self._spectra(pa), self._spectra(pb))

    def correlate_spectra(self, fa: NDArray[np.complex64], fb: NDArray[np.complex64]) -> StepResult:
        """`correlate` of patches given by their `spectra`."""
        n = len(fa)
        if n == 0:
            z = np.zeros(0)
            return StepResult(np.zeros((0, 2)), z, z, np.zeros(0, dtype=bool))
        ea = np.einsum("nij,ij->n", (fa.real**2 + fa.imag**2), self.energy_weight)
        eb = np.einsum("nij,ij->n", (fb.real**2 + fb.imag**2), self.energy_weight)
        cc = sfft.irfft2(fb * np.conj(fa) * self.filt2, s=(self.size, self.size), axes=(1, 2), workers=ft.fft_workers())
        cc = np.fft.fftshift(cc, axes=(1, 2))
        c0, lim = self.size // 2, self.limit
        win = cc[:, c0 - lim : c0 + lim + 1, c0 - lim : c0 + lim + 1]
        flat = win.reshape(n, -1).argmax(axis=1)
        iy, ix = np.divmod(flat, win.shape[2])
        iy, ix = iy + c0 - lim, ix + c0 - lim
        at_limit = (np.abs(iy - c0) >= lim) | (np.abs(ix - c0) >= lim)
        iy, ix = np.clip(iy, 1, self.size - 2), np.clip(ix, 1, self.size - 2)
        prod = fb * np.conj(fa) * (self.filt2 * self.col_weight)
        tau = np.column_stack([ix - c0, iy - c0]).astype(np.float64)
        for _ in range(3):
            f, g, h = self._local(prod, tau)
            det = h[:, 0] * h[:, 2] - h[:, 1] ** 2
            ok = (h[:, 0] < 0) & (det > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                dx = np.where(ok, -(h[:, 2] * g[:, 0] - h[:, 1] * g[:, 1]) / det, 0.0)
                dy = np.where(ok, -(h[:, 0] * g[:, 1] - h[:, 1] * g[:, 0]) / det, 0.0)
            tau += np.clip(np.column_stack([dx, dy]), -0.75, 0.75)
        f, g, h = self._local(prod, tau)
        tr, det = h[:, 0] + h[:, 2], h[:, 0] * h[:, 2] - h[:, 1] ** 2
        disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0.0))
        big, small = np.abs(tr / 2 - disc), np.abs(tr / 2 + disc)
        with np.errstate(invalid="ignore", divide="ignore"):
            roundness = np.where(tr < 0, np.minimum(big, small) / np.maximum(np.maximum(big, small), 1e-30), 0.0)
            ncc = f / np.sqrt(np.maximum(ea * eb, 1e-30))
        shift = tau
        return StepResult(shift, ncc.astype(np.float64), roundness.astype(np.float64), at_limit)
