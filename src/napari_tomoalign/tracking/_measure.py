"""Measuring beads near predicted positions: correlation with a template in a search box, then the
sub-pixel profile fit (`_profile.fit_profile`), all beads of a view at once.

Each bead has a running-average template: the mean of its last `AVERAGE` accepted patches, as
beadtrack's ``MaxBeadsToAverage``. The search correlates it (normalised) with the view around the
prediction; the best peak, down-weighted with distance from the prediction, starts the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from ._fourier import fft_workers
from ._profile import BeadProfile, fit_profile
from ._spread import split
from ._views import clamp_hot_pixels, extract_patches, patch_origins
from .medians import row_medians

AVERAGE = 4


@dataclass
class Measurement:
    """Per bead: ``xy`` ``(k, 2)`` image position, ``contrast`` (the fitted depth, positive for a bead of
    the expected polarity; divided by ``level`` for count data), ``rms`` residual of the fit, ``elongation``,
    ``score`` (the normalised correlation at the peak), ``ok`` (fit converged and the whole bead inside the
    image) and ``level``, the fitted background under the bead."""

    xy: NDArray[np.float64]
    contrast: NDArray[np.float64]
    rms: NDArray[np.float64]
    elongation: NDArray[np.float64]
    score: NDArray[np.float64]
    ok: NDArray[np.bool_]
    level: NDArray[np.float64]


class Templates:
    """Running-average templates ``(n_beads, B, B)`` of the beads' density (polarity made positive)."""

    def __init__(self, n_beads: int, size: int, profile: BeadProfile) -> None:
        self.size = size
        self.ring = np.zeros((n_beads, AVERAGE, size, size), dtype=np.float32)
        self.count = np.zeros(n_beads, dtype=np.intp)
        self.default = profile.image(size).astype(np.float32)

    def get(self, beads: NDArray[np.intp]) -> NDArray[np.float32]:
        n = np.minimum(self.count[beads], AVERAGE)
        out = self.ring[beads].sum(axis=1) / np.maximum(n, 1)[:, None, None]
        out[n == 0] = self.default
        return out

    def add(self, img: NDArray, beads: NDArray[np.intp], xy: NDArray[np.float64], sign: float) -> None:
        if len(beads) == 0:
            return
        patches, _ = extract_patches(img, patch_origins(xy, self.size), self.size)
        mass = sign * (patches - row_medians(patches.reshape(len(patches), -1))[:, None, None])
        slot = self.count[beads] % AVERAGE
        self.ring[beads, slot] = mass
        self.count[beads] += 1

    def subset(self, keep: NDArray[np.intp]) -> Templates:
        out = Templates.__new__(Templates)
        out.size, out.default = self.size, self.default
        out.ring, out.count = self.ring[keep].copy(), self.count[keep].copy()
        return out


def _ncc_maps(patches: NDArray[np.float32], templates: NDArray[np.float32]) -> NDArray[np.float64]:
    """Normalised cross-correlation of each template ``(k, B, B)`` over its patch ``(k, P, P)``, for every
    offset at which the template fits: ``(k, P - B + 1, P - B + 1)``."""
    k, size = patches.shape[0], patches.shape[-1]
    b = templates.shape[-1]
    t = templates - templates.mean(axis=(1, 2), keepdims=True)
    t /= np.maximum(np.sqrt((t * t).sum(axis=(1, 2), keepdims=True)), 1e-12)
    pad = np.zeros((k, size, size), dtype=np.float32)
    pad[:, :b, :b] = t
    n = size - b + 1
    w = fft_workers()
    cc = sfft.irfft2(np.conj(sfft.rfft2(pad, workers=w)) * sfft.rfft2(patches, workers=w), s=(size, size),
                     workers=w)[:, :n, :n]
    c1, c2 = _integral_images(np.ascontiguousarray(patches, dtype=np.float32))

    def box(c):
        return c[:, b:, b:] - c[:, :n, b:] - c[:, b:, :n] + c[:, :n, :n]

    s1, s2 = box(c1), box(c2)
    var = np.maximum(s2 - s1 * s1 / (b * b), 1e-12)
    return cc / np.sqrt(var)


@numba.njit(cache=True, nogil=True)
def _integral_images(p):  # pragma: no cover - compiled
    """The summed-area tables of ``p`` ``(k, P, P)`` and of its square, with a zero first row and column:
    ``np.cumsum(np.cumsum(pad(p), 1), 2, dtype=float64)`` (rows summed in float32, as numpy does for float32)
    and the same of ``pad(p.astype(float64) ** 2)``, in one pass without the padded copies."""
    k, size = p.shape[0], p.shape[1]
    c1 = np.zeros((k, size + 1, size + 1))
    c2 = np.zeros((k, size + 1, size + 1))
    col1 = np.zeros(size + 1, dtype=np.float32)
    col2 = np.zeros(size + 1)
    for q in range(k):
        col1[:] = 0.0
        col2[:] = 0.0
        for i in range(1, size + 1):
            row1, row2 = 0.0, 0.0
            for j in range(1, size + 1):
                v = p[q, i - 1, j - 1]
                col1[j] = col1[j] + v
                col2[j] = col2[j] + np.float64(v) * np.float64(v)
                row1 += np.float64(col1[j])
                row2 += col2[j]
                c1[q, i, j] = row1
                c2[q, i, j] = row2
    return c1, c2


def measure_beads(img: NDArray[np.float32], pred: NDArray[np.float64], templates: NDArray[np.float32],
                  profile: BeadProfile, search_px: float | NDArray[np.float64], sign: float,
                  hot: float, prior_px: float | NDArray[np.float64] | None = None, relative: bool = False) -> Measurement:
    """Find each bead near its prediction ``pred`` ``(k, 2)`` and fit it to sub-pixel.

    ``templates`` ``(k, B, B)`` are matched within ``search_px`` of the prediction; the normalised
    correlation is multiplied by ``exp(-d^2 / 2 prior^2)`` for a distance ``d`` from the prediction
    (``prior_px`` defaults to the search radius). ``sign`` is -1 for dark beads; pixels further than ``hot``
    from their neighbours' median are clamped; ``relative`` gives the contrast as a fraction of the
    background (for count data).
    """
    k = len(pred)
    if k == 0:
        z = np.zeros(0)
        return Measurement(np.zeros((0, 2)), z, z, z, z, np.zeros(0, bool), z)
    search = np.broadcast_to(np.asarray(search_px, dtype=float), (k,))
    prior = search if prior_px is None else np.broadcast_to(np.asarray(prior_px, dtype=float), (k,))
    size = templates.shape[-1] + 2 * (int(np.ceil(search.max())) + 1)  # one patch size for all
    found, score = np.empty((k, 2)), np.empty(k)

    def part(lo: int, hi: int) -> None:  # each bead on its own: the halves on two cores (`_spread`)
        found[lo:hi], score[lo:hi] = _search(img, pred[lo:hi], templates[lo:hi], size, search[lo:hi], prior[lo:hi],
                                             sign, hot)

    split(part, k)
    return _fit_at(img, found, profile, sign, score, hot, relative)


def _search(img, pred, templates, size: int, search, prior, sign: float, hot: float):
    """`measure_beads`' template search in ``size`` patches: each bead's peak ``(k, 2)`` and its correlation."""
    k, b = len(pred), templates.shape[-1]
    origins = patch_origins(pred, size)
    patches, _ = extract_patches(img, origins, size)
    clamp_hot_pixels(patches, hot)
    cc = _ncc_maps(sign * patches, templates)
    n = cc.shape[-1]
    centre = np.arange(n) + b // 2  # the bead centre, in patch coordinates, at each offset
    gx = centre[None, None, :] - (pred[:, 0] - origins[:, 0])[:, None, None]
    gy = centre[None, :, None] - (pred[:, 1] - origins[:, 1])[:, None, None]
    d2 = gx * gx + gy * gy
    weighted = np.where(d2 <= (search * search)[:, None, None], cc * np.exp(-0.5 * d2 / (prior * prior)[:, None, None]),
                        -np.inf)
    flat = np.argmax(weighted.reshape(k, -1), axis=1)
    iy, ix = np.divmod(flat, n)
    return origins + b // 2 + _parabola(cc, iy, ix), cc[np.arange(k), iy, ix]


def _parabola(cc: NDArray, iy: NDArray[np.intp], ix: NDArray[np.intp]) -> NDArray[np.float64]:
    """(x, y) of each map's peak refined by parabolas (clamped to half a pixel)."""
    k, n = cc.shape[0], cc.shape[-1]
    rows = np.arange(k)

    def vertex(m, c, p):
        den = m - 2 * c + p
        return np.where(den < 0, np.clip(0.5 * (m - p) / np.where(den < 0, den, -1), -0.5, 0.5), 0.0)

    xm, xp = np.clip(ix - 1, 0, n - 1), np.clip(ix + 1, 0, n - 1)
    ym, yp = np.clip(iy - 1, 0, n - 1), np.clip(iy + 1, 0, n - 1)
    c = cc[rows, iy, ix]
    dx = np.where((ix > 0) & (ix < n - 1), vertex(cc[rows, iy, xm], c, cc[rows, iy, xp]), 0.0)
    dy = np.where((iy > 0) & (iy < n - 1), vertex(cc[rows, ym, ix], c, cc[rows, yp, ix]), 0.0)
    return np.column_stack([ix + dx, iy + dy])


def fit_radius(profile: BeadProfile) -> float:
    return profile.radius_px + 2.5


def _fit_patches(img, xy, profile: BeadProfile, hot: float):
    radius = fit_radius(profile)
    size = 2 * int(np.ceil(radius + 1.5)) + 1
    origins = patch_origins(xy, size)
    patches, _ = extract_patches(img, origins, size, outside=np.nan)
    clamp_hot_pixels(patches, hot)
    return patches, origins, radius


def _measurement(fit, origins, start, shape, profile: BeadProfile, sign: float, score, relative: bool) -> Measurement:
    """A `Measurement` from a profile fit; ``ok`` needs convergence near ``start`` and the whole bead inside."""
    out = fit.xy + origins
    rows, cols = shape
    r = profile.radius_px + 1.0
    within = (out[:, 0] >= r) & (out[:, 1] >= r) & (out[:, 0] <= cols - 1 - r) & (out[:, 1] <= rows - 1 - r)
    contrast = sign * fit.amplitude
    level = fit.background[:, 0]
    if relative:
        contrast = contrast / np.maximum(level, 1e-6)
    ok = within & fit.converged & (contrast > 0) & (np.hypot(*(out - start).T) < max(2.0, 0.8 * profile.radius_px))
    return Measurement(out, contrast, fit.rms, fit.elongation, np.asarray(score, dtype=float), ok, level)


def _fit_at(img, xy, profile: BeadProfile, sign: float, score, hot: float, relative: bool = False) -> Measurement:
    """Sub-pixel profile fit of beads starting at ``xy`` (additive: the final positions come from the
    prewhitened log-count fit of `_whiten`, which a sloped background does not pull)."""
    patches, origins, radius = _fit_patches(img, xy, profile, hot)
    fit = fit_profile(patches, xy - origins, profile, radius, iterations=8)
    return _measurement(fit, origins, xy, img.shape, profile, sign, score, relative)


def fit_crowded(img: NDArray[np.float32], xy: NDArray[np.float64], profile: BeadProfile, sign: float, hot: float,
                relative: bool = False, rounds: int = 3) -> Measurement:
    """Fit beads that lie close together, starting at ``xy`` ``(k, 2)``: each is fitted with the others'
    fitted profiles subtracted from its patch, ``rounds`` times (an approximation of their joint fit); one
    whose fit fails stays where it was and is subtracted with the others' median depth."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    pos, amp = xy.copy(), np.zeros(len(xy))
    fit = origins = None
    for _ in range(rounds + 1):
        patches, origins, radius = _fit_patches(img, pos, profile, hot)
        _subtract_neighbours(patches, origins, pos, amp, profile)
        fit = fit_profile(patches, pos - origins, profile, radius, iterations=8)
        # a bead whose fit fails (the middle one of a clump, its background ring all neighbours) keeps its
        # place and is subtracted from the others with the typical depth of gold of one size
        ok = (sign * fit.amplitude > 0) & fit.converged
        typical = float(np.median(fit.amplitude[ok])) if ok.any() else 0.0
        pos, amp = np.where(ok[:, None], fit.xy + origins, pos), np.where(ok, fit.amplitude, typical)
    return _measurement(fit, origins, xy, img.shape, profile, sign, np.full(len(xy), np.nan), relative)


def _subtract_neighbours(patches: NDArray[np.float32], origins: NDArray[np.intp], pos: NDArray[np.float64],
                         amp: NDArray[np.float64], profile: BeadProfile) -> None:
    """From each bead ``a``'s patch, every other bead ``b`` within a patch's width, its profile of depth
    ``amp[b]`` at ``pos[b]`` subtracted (``b`` in order, in float32: one pass over all the pairs)."""
    size = patches.shape[-1]
    near = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1]) < size
    a, b = np.nonzero(near & ~np.eye(len(pos), dtype=bool) & (amp != 0.0)[None, :])
    if len(a) == 0:
        return
    g = np.arange(size, dtype=float)
    r = np.hypot(g[None, None, :] + origins[a, 0, None, None] - pos[b, 0, None, None],
                 g[None, :, None] + origins[a, 1, None, None] - pos[b, 1, None, None])
    depth = amp[b].astype(np.float32)[:, None, None]
    np.subtract.at(patches, a, depth * profile(r)[0].astype(np.float32))  # in order: b after b, as a loop would


def fit_at(img: NDArray[np.float32], xy: NDArray[np.float64], profile: BeadProfile, sign: float,
           hot: float, relative: bool = False) -> Measurement:
    """Fit beads starting exactly at ``xy`` ``(k, 2)`` (no search)."""
    return _fit_at(img, np.asarray(xy, dtype=float).reshape(-1, 2), profile, sign, np.full(len(xy), np.nan), hot,
                   relative)
