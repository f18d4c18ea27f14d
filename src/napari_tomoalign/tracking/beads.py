"""Finding gold beads in one view: a matched filter, a strength against the local background, and a
threshold at the dip of the strength histogram (after IMOD's ``imodfindbeads``).

1. Hot pixels are clamped and the view lightly smoothed.
2. The view is correlated with a zero-mean model bead of the given diameter (the matched filter); its
   local maxima, at least 0.85 diameters apart, are the candidates.
3. Each candidate's *strength* is the geometric mean of the integral of its density above the local
   background (the median of an annulus around it) and its depth fitted with the model bead (IMOD's
   ``MeasureToUse 2``): stain blobs of a bead's mass but not of its shape score low. For count data (all
   values >= 0) both are taken relative to the background, so that beads over a dark carbon film are
   judged like the others.
4. The threshold is the dip between the false peaks' and the beads' modes of the kernel-smoothed
   strength histogram, found with kernel widths from 0.2 of the strength range downwards. When there is
   no dip, `BeadFindingError` says so. Gold beads of one size are nearly equally dark: when the
   candidates above the dip vary in fitted depth by more than 25 % (robust spread), the dip is one of
   the texture's and `BeadFindingError` says so too; candidates under 0.6 of the median depth (stain
   blobs) are dropped, and round candidates under the dip with at least that depth and a quarter of the
   median strength are taken (the smaller beads of a batch whose sizes spread: `_small_beads`).
5. Candidates above the threshold with another one within 2 diameters are *clustered*; those whose
   density is elongated, or much stronger than the typical bead (merged clumps), are flagged too: clumps to avoid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from ._fourier import fft_workers
from ._profile import BeadProfile, fit_profile
from ._spread import split
from ._views import clamp_hot_pixels, extract_patches, patch_origins
from .medians import median, row_medians
from .strength_dip import histogram_dip

FAINT = 0.6
MAX_DEPTH_SPREAD = 0.25
SMALL_BEAD = 0.25  # the strength, over the median bead's, of the smallest beads taken under the dip
SMALL_ROUND = 1.3


class BeadFindingError(ValueError):
    """Beads could not be told from other peaks; the message says why and what to try."""


@dataclass(frozen=True)
class BeadCandidates:
    """Bead candidates found in one view.

    Attributes
    ----------
    xy
        ``(n, 2)`` (x, y) positions in pixels, strongest first.
    strength
        ``(n,)`` strengths relative to the median bead above the threshold (so beads are near 1).
    threshold
        The strength at the histogram dip, in the same units.
    above
        ``(n,)`` True for candidates above the threshold (the beads).
    clustered, elongated
        ``(n,)`` flags of clumps: another bead within 2 diameters, or much stronger than a single bead;
        or a density elongated beyond ``elongation_limit``.
    elongation
        ``(n,)`` ratio of the principal spreads of each candidate's density (1 for a round bead).
    histogram
        ``(2, bins)`` strength and smoothed density, to show where the threshold fell.
    """

    xy: NDArray[np.float64]
    strength: NDArray[np.float64]
    threshold: float
    above: NDArray[np.bool_]
    clustered: NDArray[np.bool_]
    elongated: NDArray[np.bool_]
    elongation: NDArray[np.float64]
    bead_diameter_px: float
    histogram: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def good(self) -> NDArray[np.bool_]:
        """``(n,)`` beads that are neither clustered nor elongated."""
        return self.above & ~self.clustered & ~self.elongated


def diameter_px_from_nm(diameter_nm: float, pixel_size_nm: float) -> float:
    """The bead diameter in pixels, from its size in nm and the pixel size in nm (for example 10 nm gold at
    0.8 nm/px is 12.5 px)."""
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"the pixel size must be a positive number of nm, not {pixel_size_nm}; is it in the header?")
    if not (np.isfinite(diameter_nm) and diameter_nm > 0):
        raise ValueError(f"the bead diameter must be a positive number of nm, not {diameter_nm}")
    return float(diameter_nm) / float(pixel_size_nm)


def _fft_correlate(img: NDArray[np.float32], kernel: NDArray[np.float64]) -> NDArray[np.float32]:
    """Correlation of ``img`` with a small centred ``kernel`` (same size as ``img``, edges wrap)."""
    rows, cols = img.shape
    k = np.zeros((rows, cols), dtype=np.float32)
    kh, kw = kernel.shape
    k[:kh, :kw] = kernel
    k = np.roll(k, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    w = fft_workers()
    f = sfft.rfft2(img, workers=w) * np.conj(sfft.rfft2(k, workers=w))
    return sfft.irfft2(f, s=(rows, cols), workers=w).astype(np.float32)


def matched_filter(mass: NDArray[np.float32], diameter_px: float) -> NDArray[np.float32]:
    """Correlation with a model bead made zero-mean over a disk of one diameter's radius."""
    size = 2 * int(np.ceil(diameter_px)) + 1
    t = BeadProfile.ideal(diameter_px).image(size)
    a = np.arange(size) - size // 2
    disk = np.hypot(a[None, :], a[:, None]) <= diameter_px
    t = np.where(disk, t - t[disk].mean(), 0.0)
    return _fft_correlate(mass, t / np.sqrt(np.sum(t * t)))


def _peaks(resp: NDArray[np.float32], spacing: float, border: int, max_peaks: int) -> NDArray[np.intp]:
    """``(n, 2)`` integer (x, y) of local maxima with a positive response, strongest first."""
    size = max(3, int(round(spacing)) | 1)
    is_max = (resp == ndimage.maximum_filter(resp, size=size, mode="nearest")) & (resp > 0)
    is_max[:border] = is_max[-border:] = False
    is_max[:, :border] = is_max[:, -border:] = False
    ys, xs = np.nonzero(is_max)
    order = np.argsort(-resp[ys, xs], kind="stable")[:max_peaks]
    return np.column_stack([xs[order], ys[order]])


def _strengths(img, xy_int, radius, dark, relative):
    """Integral of the density above the annulus median within the bead, and a sub-pixel centroid (each
    candidate on its own: the halves on two cores, `_spread`)."""
    strength, xy = np.empty(len(xy_int)), np.empty((len(xy_int), 2))

    def part(lo: int, hi: int) -> None:
        strength[lo:hi], xy[lo:hi] = _strengths_of(img, xy_int[lo:hi], radius, dark, relative)

    split(part, len(xy_int))
    return strength, xy


def _strengths_of(img, xy_int, radius, dark, relative):
    size = 2 * int(np.ceil(radius + 4)) + 1
    patches, _ = extract_patches(img, patch_origins(xy_int.astype(float), size), size)
    a = np.arange(size) - size // 2
    r = np.hypot(a[None, :], a[:, None])
    ring = (r >= radius + 1.5) & (r <= radius + 3.5)
    bg = row_medians(patches[:, ring])
    sign = -1.0 if dark else 1.0
    inside = r <= radius + 0.5
    mass = sign * (patches - bg[:, None, None])
    strength = np.sum(mass[:, inside], axis=1)
    if relative:
        strength = strength / np.maximum(bg, 1e-6)
    w = np.clip(mass, 0.0, None) * (r <= radius + 1.0)
    tot = np.maximum(w.sum(axis=(1, 2)), 1e-12)
    cx = (w * a[None, None, :]).sum(axis=(1, 2)) / tot
    cy = (w * a[None, :, None]).sum(axis=(1, 2)) / tot
    return strength, xy_int + np.clip(np.column_stack([cx, cy]), -1.0, 1.0)


def find_beads(
    image: NDArray,
    bead_diameter_px: float,
    *,
    dark: bool = True,
    threshold: float | None = None,
    min_spacing: float = 0.85,
    cluster_distance: float = 2.0,
    elongation_limit: float = 1.45,
    relative: bool | None = None,
    max_peaks: int = 20000,
    use_depth: bool = True,
    small_beads: bool = True,
    uniform: bool = True,
    searches: dict | None = None,
) -> BeadCandidates:
    """Find the gold beads of one view (see the module docstring).

    Parameters
    ----------
    image
        ``(rows, cols)`` view.
    bead_diameter_px
        Bead diameter in pixels (``diameter_nm / pixel_size_nm``).
    dark
        Beads darker than the background (bright field); False for bright beads.
    threshold
        A strength threshold, as a fraction of the strongest candidate's, to use instead of the histogram
        dip (for images where there is none).
    min_spacing, cluster_distance
        In bead diameters: the weaker of two closer candidates is dropped; beads closer than
        ``cluster_distance`` are clustered.
    relative
        Strength relative to the local background; by default for dark beads on counts (no value < 0),
        where the gold absorbs a share of the electrons.
    use_depth
        Strength as the geometric mean of integral and fitted depth (default), or the integral alone
        (more tolerant of a wrong diameter).
    small_beads
        Take the round candidates under the dip that have a bead's depth (`_small_beads`); off for measuring
        the diameter, which wants the clearest beads (from a diameter half the true one, the marginal
        candidates are parts of beads and hold the measure there).
    uniform
        Raise when the candidates above the dip vary in depth more than gold of one size can (off where the
        strongest candidates are all that is wanted, as in measuring the diameter from a rough one).
    searches
        Searches already made (filled here), for a caller that searches one view again with other
        ``small_beads`` or ``uniform`` (the diameter check, then the tracker's seed view): steps 1-4 are
        reused when the parameters that shape them and the image's every pixel are the same.

    Raises
    ------
    BeadFindingError
        When no histogram dip separates beads from other peaks (and no ``threshold`` was given).
    """
    img = np.array(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"find_beads takes one 2-D view, not a {img.ndim}-D array")
    d = float(bead_diameter_px)
    if not 1.5 <= d <= min(img.shape) / 4:
        raise ValueError(f"a bead diameter of {d:g} px does not fit these {img.shape[1]} x {img.shape[0]} images")
    key = (_digest(img), d, dark, threshold, min_spacing, relative, max_peaks, use_depth) if searches is not None else ()
    known = searches.get(key) if searches is not None else None
    if known is not None:
        xy, raw, elong, depth, hist = (np.array(known[k]) for k in (0, 1, 2, 3, 5))
        cut = float(known[4])
    else:
        xy, raw, elong, depth, cut, hist = _candidates(img, d, dark, threshold, min_spacing, relative, max_peaks,
                                                       use_depth)
        if searches is not None:
            searches[key] = (xy.copy(), raw.copy(), elong.copy(), depth.copy(), cut, hist.copy())
    above = raw > cut
    if above.sum() >= 5:  # gold beads of one size have nearly one depth; stain blobs are fainter
        if threshold is None and uniform:
            _check_uniform(depth[above])
        above &= depth >= FAINT * np.median(depth[above])
        if threshold is None and small_beads:
            above |= _small_beads(raw, depth, elong, above)
    if not above.any():
        raise BeadFindingError(f"no candidate is above the strength threshold {threshold}; lower it")
    scale = float(np.median(raw[above]))
    strength = raw / scale
    hist = hist / np.array([[scale], [1.0]])
    clustered = _clustered(xy, above, cluster_distance * d) | (above & (strength > 1.8))
    return BeadCandidates(xy, strength, cut / scale, above, clustered, above & (elong > elongation_limit), elong, d, hist)


def _digest(img: NDArray[np.float32]) -> tuple[tuple[int, ...], bytes]:
    """The image's shape and a hash of its every pixel (a search is reused only on the same pixels)."""
    return img.shape, hashlib.blake2b(np.ascontiguousarray(img).data, digest_size=20).digest()


def _candidates(img, d, dark, threshold, min_spacing, relative, max_peaks, use_depth):
    """Steps 1-4 of the search (the module docstring): ``(xy, strength, elongation, depth, threshold, histogram)``
    of the candidates at least ``min_spacing`` diameters apart, strongest first."""
    clamp_hot_pixels(img)
    if relative is None:
        relative = bool(dark and img.min() >= 0 and median(img) > 0)
    smooth = ndimage.gaussian_filter(img, max(0.85, d / 12))
    mass = -smooth if dark else smooth
    border = int(np.ceil(d / 2)) + 2  # beads whose disc is in the view (the seeds keep their own border)
    xy_int = _peaks(matched_filter(mass - mass.mean(), d), min_spacing * d, border, max_peaks)
    integral, xy = _strengths(smooth, xy_int, d / 2, dark, relative)
    raw, depth, elong, xy = _combined_strength(img, xy, integral, d, dark, relative, use_depth)
    if threshold is None:
        cut, hist = histogram_dip(raw)
    else:
        cut, hist = float(threshold) * float(np.max(raw, initial=0.0)), np.zeros((2, 0))
    xy, raw, elong, depth = _min_spacing(xy, raw, elong, depth, min_spacing * d)
    return xy, raw, elong, depth, cut, hist


def _small_beads(raw, depth, elong, above):
    """Candidates under the dip that are gold all the same: the smaller beads of a batch whose sizes spread
    (strength grows with the cube of the size, so beads 0.8 times the mean size score half the median
    bead and can fall under a dip in the beads' own sparse histogram). Each has at least `FAINT` of the
    median bead's fitted depth (false peaks and stain blobs reach half of it at most), is round, and
    scores at least `SMALL_BEAD` of the median bead."""
    med_raw, med_depth = float(np.median(raw[above])), float(np.median(depth[above]))
    return ~above & (depth >= FAINT * med_depth) & (elong <= SMALL_ROUND) & (raw >= SMALL_BEAD * med_raw)


def _check_uniform(depth: NDArray[np.float64]) -> None:
    """Raise `BeadFindingError` when the candidates above the dip vary in depth more than gold of one size
    can (a robust spread over 0.25: a dip in the texture's own strengths, not beads)."""
    med = float(np.median(depth))
    spread = 1.4826 * float(np.median(np.abs(depth - med))) / max(med, 1e-12)
    if spread > MAX_DEPTH_SPREAD:
        raise BeadFindingError(
            f"the {len(depth)} candidates above the strength dip vary in depth by {spread:.0%}, too much for gold"
            " beads of one size: check the bead diameter (or have it measured: auto) and the polarity (dark or"
            " bright beads)")


def _min_spacing(xy, strength, elong, depth, dist):
    """Drop the weaker of every two candidates closer than ``dist``; the rest, strongest first."""
    order = np.argsort(-strength, kind="stable")
    xy, strength, elong, depth = xy[order], strength[order], elong[order], depth[order]
    drop = {max(i, j) for i, j in cKDTree(xy).query_pairs(dist)} if len(xy) > 1 else set()
    keep = np.array([k for k in range(len(xy)) if k not in drop], dtype=np.intp)
    return xy[keep], strength[keep], elong[keep], depth[keep]


def _clustered(xy, above, dist):
    out = np.zeros(len(xy), dtype=bool)
    idx = np.flatnonzero(above)
    for i, j in cKDTree(xy[idx]).query_pairs(dist) if len(idx) > 1 else ():
        out[idx[i]] = out[idx[j]] = True
    return out


def _combined_strength(img, xy, integral, d, dark, relative, use_depth):
    """Strength (geometric mean of integral and fitted depth), depth, elongation and position of each
    candidate. Only candidates with at least a fifth of the top integrals are fitted; the weaker ones get
    their integral times the fitted candidates' median ratio of strength to integral (so the false peaks
    keep their own distribution rather than a spike at zero)."""
    depth, elong = np.zeros(len(xy)), np.full(len(xy), 99.0)
    integral = np.clip(integral, 0.0, None)
    fit = integral >= 0.2 * np.sort(integral)[-min(3, len(integral))] if len(integral) else integral > 0
    depth[fit], elong[fit], xy[fit] = _fit_candidates(img, xy[fit], d, dark, relative)
    if not use_depth:
        return integral, depth, elong, xy
    raw = np.sqrt(integral * depth)
    ok = fit & (raw > 0)
    ratio = float(np.median(raw[ok] / integral[ok])) if ok.any() else 1.0
    raw[~fit] = integral[~fit] * ratio
    return raw, depth, elong, xy


def _fit_candidates(img, xy, d, dark, relative):
    """Depth of each candidate fitted with the model bead (relative to its background for counts), its
    elongation and its fitted position (the centroid where the fit fails)."""
    size = 2 * int(np.ceil(d / 2 + 4)) + 1
    origins = patch_origins(xy, size)
    patches, _ = extract_patches(img, origins, size, outside=np.nan)
    fit = fit_profile(patches, xy - origins, BeadProfile.ideal(d), d / 2 + 2.0, iterations=8)
    sign = -1.0 if dark else 1.0
    depth = sign * fit.amplitude
    if relative:
        depth = depth / np.maximum(fit.background[:, 0], 1e-6)
    good = (depth > 0) & (np.hypot(*(fit.xy + origins - xy).T) < 1.5)
    out = np.where((good & fit.converged)[:, None], fit.xy + origins, xy)
    return np.where(good, depth, 0.0), np.where(good, fit.elongation, 99.0), out
