"""A bead's radial profile and the sub-pixel fit of it to many beads at once.

A gold bead is a sphere, so its image is radially symmetric in every view. `BeadProfile` tabulates
that profile ``T(r)`` (1 at the centre, 0 far out): first the ideal one (the chord of a sphere,
integrated over pixels and blurred), then one learned from the beads of the data themselves (which
holds the detector blur, the bright-field non-linearity and, in cryo, the defocus fringe).

`fit_profile` fits ``background plane + amplitude * T(|x - x0|)`` to every patch by Gauss-Newton,
vectorised over the beads; the fitted centre is the bead's sub-pixel position. A plane under the bead
keeps a texture gradient from pulling the centre.

In bright field the gold stops a share of the electrons, so a bead's depth scales with the counts
around it: on a background that brightens across the bead the dark disc is deeper on the bright side,
and the additive model moves the centre toward that side, by about 1.6 px per unit of relative slope
for a 5 px bead and 6.7 px for a 12.5 px one (0.07 and 0.27 px on a 4 %/px slope, as near a carbon
edge). ``multiplicative`` couples the bead's depth to the plane: ``plane + a T (level + m (plane -
level))``, fully multiplicative (``plane * (1 + a T)``) for ``m = 1``; the beads' profile is learned
that way from count data. The plane's slope is measured on the ring around the bead, where small-scale
texture also tilts it, and a coupled model passes that error into the centre, so the tracker's search
fits stay additive and its final positions come from the prewhitened fit of log counts (`_whiten`),
where the background is additive and has no such pull.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ._profile_fit import fit_kernel
from ._spread import split

STEP = 0.05
QUADRATIC = False


@dataclass(frozen=True)
class BeadProfile:
    """Radial profile ``T(r)`` tabulated every ``STEP`` px; ``radius_px`` is the bead's radius."""

    radius_px: float
    values: NDArray[np.float64]

    @property
    def r_max(self) -> float:
        return (len(self.values) - 1) * STEP

    def __call__(self, r: NDArray) -> tuple[NDArray, NDArray]:
        """``T(r)`` and ``dT/dr`` (linear interpolation of the table; 0 beyond it)."""
        x = np.asarray(r) / STEP
        i = np.minimum(x.astype(np.intp), len(self.values) - 2)
        f = x - i
        v0, v1 = self.values[i], self.values[i + 1]
        t = v0 + f * (v1 - v0)
        slope = (v1 - v0) / STEP
        far = x >= len(self.values) - 1
        return np.where(far, 0.0, t), np.where(far, 0.0, slope)

    def image(self, size: int, dx: float = 0.0, dy: float = 0.0) -> NDArray[np.float64]:
        """``(size, size)`` image of the profile centred at the middle pixel plus ``(dx, dy)``."""
        a = np.arange(size) - size // 2
        r = np.hypot(a[None, :] - dx, a[:, None] - dy)
        return self(r)[0]

    @classmethod
    def ideal(cls, diameter_px: float, blur_px: float = 0.6, centre_transmission: float = 0.5) -> BeadProfile:
        """The bright-field image of a sphere of ``diameter_px``: ``1 - exp(-mu chord)``, darkest at the
        centre with ``centre_transmission``, averaged over pixels and blurred by a Gaussian."""
        radius = diameter_px / 2.0
        ss = 8
        n = int(np.ceil(radius + 4 * blur_px + 3)) * ss
        a = (np.arange(-n, n + 1)) / ss
        sigma = max(blur_px, 0.05) * ss
        reach = int(4.0 * sigma + 0.5)  # the Gaussian's half-width in ndimage (truncate 4)
        # Only the middle row of the filtered image is kept, so only what reaches it is filtered, by the same
        # calls in the same order as ndimage's 2-D filters (the box along columns, then rows; then the
        # Gaussian likewise): the box's running sums from the first row, the Gaussian's rows within its reach.
        # The same numbers (checked against the whole image's filtering), 2.5x faster: 60 profiles per diameter
        # measure (`diameter._diameter_from_edge`).
        last = min(2 * n + 1, n + reach + ss + 1)
        r2 = a[None, :] ** 2 + a[:last, None] ** 2
        chord = np.sqrt(np.clip(radius * radius - r2, 0.0, None)) / max(radius, 1e-6)
        box = ndimage.uniform_filter1d(1.0 - np.exp(np.log(centre_transmission) * chord), ss, axis=0)
        box = ndimage.uniform_filter1d(box[n - reach : n + reach + 1], ss, axis=1)
        row = ndimage.gaussian_filter1d(ndimage.gaussian_filter1d(box, sigma, axis=0)[reach], sigma)[n:]
        values = np.interp(np.arange(0, a[-1], STEP), a[n:], row)
        return cls(radius, _normalised(values))

    @classmethod
    def learned(cls, patches: NDArray, centres: NDArray, background: NDArray, amplitude: NDArray,
                radius_px: float, r_max: float, prior: BeadProfile | None = None,
                multiplicative: bool = False) -> BeadProfile:
        """Average radial profile of beads: ``patches`` ``(k, P, P)`` with their fitted centres ``(k, 2)``
        (patch x, y), plane backgrounds ``(k, 3)`` and amplitudes ``(k,)`` (see `fit_profile`; with
        ``multiplicative`` each patch is divided by its plane rather than the plane subtracted).

        The profile is smoothed in radius (a 0.4 px Gaussian kernel), scaled to 1 over the bead's core
        and, with few beads, blended with ``prior`` (weight ``k / (k + 8)`` for the data).
        """
        k, size = patches.shape[0], patches.shape[-1]
        g = np.arange(size, dtype=float)
        dx = g[None, None, :] - centres[:, 0, None, None]
        dy = g[None, :, None] - centres[:, 1, None, None]
        plane = background[:, 0, None, None] + background[:, 1, None, None] * (g[None, None, :] - size // 2) \
            + background[:, 2, None, None] * (g[None, :, None] - size // 2)
        if multiplicative:
            level = background[:, 0, None, None]
            norm = ((patches / plane - 1.0) * level / amplitude[:, None, None]).ravel()
        else:
            norm = ((patches - plane) / amplitude[:, None, None]).ravel()
        r = np.hypot(dx, dy).ravel()
        use = np.isfinite(norm) & (r < r_max + 1.0)
        r, norm = r[use], norm[use]
        grid = np.arange(0, r_max, STEP)
        values = np.empty(len(grid))
        for i0 in range(0, len(grid), 8):  # kernel regression, in blocks that stay in cache (64 rows: the same, 2x CPU)
            w = np.exp(-0.5 * ((grid[i0 : i0 + 8, None] - r[None, :]) / 0.4) ** 2)
            values[i0 : i0 + 8] = (w @ norm) / np.maximum(w.sum(axis=1), 1e-12)
        values -= np.mean(values[grid > r_max - 1.0])
        values *= _fade(grid, r_max)
        core = grid <= max(0.5, 0.4 * radius_px)
        values = values / max(float(np.mean(values[core])), 1e-6)
        if prior is not None:
            w = k / (k + 8.0)
            values = w * values + (1.0 - w) * prior(grid)[0]
        return cls(radius_px, _normalised(values))


def _fade(r: NDArray, r_max: float) -> NDArray:
    """1 inside, a cosine fade to 0 over the last pixel of the table."""
    return np.clip(0.5 + 0.5 * np.cos(np.pi * np.clip(r - (r_max - 1.0), 0.0, 1.0)), 0.0, 1.0)


def _normalised(values: NDArray) -> NDArray:
    """The table with two zeros appended, scaled to 1 at the centre (the mean of its first 0.5 px)."""
    v = np.append(np.asarray(values, dtype=float), [0.0, 0.0])
    centre = float(np.mean(v[: int(0.5 / STEP) + 1]))
    return v / centre if centre != 0 else v


@dataclass
class ProfileFit:
    """Per bead: ``xy`` ``(k, 2)`` centre in patch coordinates, ``amplitude`` (signed, in image units),
    ``background`` ``(k, 3)`` plane (level, x slope, y slope about the patch centre), ``rms`` residual,
    ``elongation`` (ratio of the principal spreads of the bead's mass, 1 for a round bead), ``converged``."""

    xy: NDArray[np.float64]
    amplitude: NDArray[np.float64]
    background: NDArray[np.float64]
    rms: NDArray[np.float64]
    elongation: NDArray[np.float64]
    converged: NDArray[np.bool_]


def fit_profile(patches: NDArray, start: NDArray, profile: BeadProfile, fit_radius: float,
                iterations: int = 6, quadratic: bool = QUADRATIC, multiplicative: float = 0.0) -> ProfileFit:
    """Fit ``background + amplitude * T(|x - centre|)`` to each of ``patches`` ``(k, P, P)`` from ``start``
    ``(k, 2)`` (patch x, y); the background is a plane, or a quadratic surface with ``quadratic``. With
    ``multiplicative`` ``m`` > 0 (count data) the bead's depth follows the background (the module
    docstring; ``m = 1``: ``background * (1 + a T)``); the amplitude returned is then ``a`` times the
    background level at the patch centre, in image units as for the additive model. The fit
    uses the pixels within ``fit_radius`` of the start, then of the first estimate; Levenberg-Marquardt with
    the centre's steps limited to 1 px (a compiled loop over the beads). NaN pixels (outside the image)
    are left out."""
    p = np.ascontiguousarray(patches, dtype=np.float32)
    k = p.shape[0]
    xy = np.array(start, dtype=np.float64).reshape(k, 2)
    theta = np.zeros((k, 7))
    rms, moved, elong = np.zeros(k), np.zeros(k), np.ones(k)
    nl, table = 7 if quadratic else 4, profile.values

    def fit(lo: int, hi: int) -> None:  # each bead on its own: the halves on two cores (`_spread`)
        fit_kernel(p[lo:hi], xy[lo:hi], table, STEP, float(fit_radius), int(iterations), profile.radius_px + 1.0,
                   nl, float(multiplicative), theta[lo:hi], rms[lo:hi], moved[lo:hi], elong[lo:hi])

    if k:
        split(fit, k)
    amplitude = theta[:, 0] * theta[:, 1] if multiplicative else theta[:, 0].copy()
    return ProfileFit(xy, amplitude, theta[:, 1:4].copy(), rms, elong, moved < 0.15)
