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

import numba
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

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
        r2 = a[None, :] ** 2 + a[:, None] ** 2
        chord = np.sqrt(np.clip(radius * radius - r2, 0.0, None)) / max(radius, 1e-6)
        img = ndimage.uniform_filter(1.0 - np.exp(np.log(centre_transmission) * chord), ss)
        img = ndimage.gaussian_filter(img, max(blur_px, 0.05) * ss)
        row = img[n, n:]
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
        for i0 in range(0, len(grid), 64):  # kernel regression, in blocks to bound memory
            w = np.exp(-0.5 * ((grid[i0 : i0 + 64, None] - r[None, :]) / 0.4) ** 2)
            values[i0 : i0 + 64] = (w @ norm) / np.maximum(w.sum(axis=1), 1e-12)
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
    if k:
        _fit_kernel(p, xy, profile.values, STEP, float(fit_radius), int(iterations), profile.radius_px + 1.0,
                    7 if quadratic else 4, float(multiplicative), theta, rms, moved, elong)
    amplitude = theta[:, 0] * theta[:, 1] if multiplicative else theta[:, 0].copy()
    return ProfileFit(xy, amplitude, theta[:, 1:4].copy(), rms, elong, moved < 0.15)


@numba.njit(cache=True, nogil=True)
def _solve(a, b, n):  # pragma: no cover - compiled
    """Solve the n x n symmetric positive system in place (Gaussian elimination); False if singular."""
    for i in range(n):
        if a[i, i] <= 0.0:
            return False
        for r in range(i + 1, n):
            f = a[r, i] / a[i, i]
            for c in range(i, n):
                a[r, c] -= f * a[i, c]
            b[r] -= f * b[i]
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for c in range(i + 1, n):
            acc -= a[i, c] * b[c]
        b[i] = acc / a[i, i]
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _basis(x, y, half, nl, out, o):  # pragma: no cover - compiled
    """The background's basis at pixel (x, y) into ``out[o:]``: 1, x, y (and x^2, xy, y^2, scaled)."""
    gx, gy = x - half, y - half
    out[o], out[o + 1], out[o + 2] = 1.0, gx, gy
    if nl == 7:
        sx, sy = gx / max(half, 1), gy / max(half, 1)
        out[o + 3], out[o + 4], out[o + 5] = sx * sx, sx * sy, sy * sy


@numba.njit(cache=True, nogil=True)
def _accumulate(img, x0, y0, mx, my, radius, th, table, step, nl, mult, full, a, b):  # pragma: no cover - compiled
    """Normal equations of the fit (the ``nl`` background and amplitude parameters, and the centre when
    ``full``); returns the sum of squared residuals at ``th`` and (x0, y0), and the number of pixels.
    ``mult`` > 0: the model is ``background + th[0] T (th[1] + mult (background - th[1]))`` (``th[0]``
    relative) rather than ``background + th[0] T``."""
    size = img.shape[0]
    half = size // 2
    nt = table.size
    n = nl + 2 if full else nl
    o = 2 if full else 0
    jac = np.empty(9)
    for i in range(n):
        b[i] = 0.0
        for c in range(n):
            a[i, c] = 0.0
    ssr, r2max, count = 0.0, radius * radius, 0
    for y in range(size):
        for x in range(size):
            if (x - mx) ** 2 + (y - my) ** 2 > r2max or img[y, x] != img[y, x]:
                continue
            dx, dy = x - x0, y - y0
            r = np.sqrt(dx * dx + dy * dy)
            u = r / step
            i0 = min(int(u), nt - 2)
            t, dt = 0.0, 0.0
            if u < nt - 1:
                t = table[i0] + (u - i0) * (table[i0 + 1] - table[i0])
                dt = (table[i0 + 1] - table[i0]) / step
            _basis(x, y, half, nl, jac, o + 1)
            bg = 0.0
            for i in range(1, nl):
                bg += th[i] * jac[o + i]
            if mult > 0.0:  # the bead's depth follows the level th[1] plus `mult` of the rest of the surface
                under = th[1] + mult * (bg - th[1])
                model = bg + th[0] * t * under
                jac[o] = under * t
                jac[o + 1] = 1.0 + th[0] * t
                for i in range(2, nl):
                    jac[o + i] *= 1.0 + mult * th[0] * t
                slope = under * th[0] * dt
            else:
                model = bg + th[0] * t
                jac[o] = t
                slope = th[0] * dt
            res = img[y, x] - model
            ssr += res * res
            count += 1
            if full:
                rs = r if r > 1e-9 else 1.0
                jac[0], jac[1] = -slope * dx / rs, -slope * dy / rs
            for i in range(n):
                b[i] += jac[i] * res
                for c in range(i, n):
                    a[i, c] += jac[i] * jac[c]
    for i in range(n):
        for c in range(i):
            a[i, c] = a[c, i]
    return ssr, count


@numba.njit(cache=True, nogil=True, parallel=True)
def _fit_kernel(p, xy, table, step, radius, iterations, r_elong, nl, mult, theta, rms, moved, elong):  # pragma: no cover
    """Levenberg-Marquardt per bead: a linear start (amplitude and background at the given centre, of the
    additive model; for ``mult`` the amplitude is then made relative), then steps that are kept only when
    they lower the sum of squares. ``moved`` is the size of the last step kept in the final round (0 when
    none could lower it further: a minimum)."""
    for q in numba.prange(p.shape[0]):
        a, b = np.empty((9, 9)), np.empty(9)
        a2, b2 = np.empty((9, 9)), np.empty(9)
        trial = np.empty(7)
        img = p[q]
        th = theta[q]
        mx, my = xy[q, 0], xy[q, 1]
        _accumulate(img, mx, my, mx, my, radius, th, table, step, nl, 0.0, False, a, b)
        for i in range(nl):
            a[i, i] = a[i, i] * (1.0 + 1e-9) + 1e-9
        if _solve(a, b, nl):
            for i in range(nl):
                th[i] = b[i]
        if mult > 0.0:
            th[0] = th[0] / th[1] if th[1] > 0.0 else 0.0
        move = 0.0
        n = nl + 2
        for rnd in range(2):
            if rnd == 1:
                mx, my = xy[q, 0], xy[q, 1]
            lam, move = 1e-3, 0.0
            ssr, _ = _accumulate(img, xy[q, 0], xy[q, 1], mx, my, radius, th, table, step, nl, mult, True, a, b)
            for _ in range(iterations if rnd == 0 else 6):
                for i in range(n):
                    b2[i] = b[i]
                    for c in range(n):
                        a2[i, c] = a[i, c]
                    a2[i, i] = a[i, i] * (1.0 + lam) + 1e-9
                if not _solve(a2, b2, n):
                    break
                ddx, ddy = min(max(b2[0], -1.0), 1.0), min(max(b2[1], -1.0), 1.0)
                for i in range(nl):
                    trial[i] = th[i] + b2[2 + i]
                new, _ = _accumulate(img, xy[q, 0] + ddx, xy[q, 1] + ddy, mx, my, radius, trial, table, step, nl,
                                     mult, True, a2, b2)
                if new <= ssr:
                    xy[q, 0] += ddx
                    xy[q, 1] += ddy
                    for i in range(nl):
                        th[i] = trial[i]
                    for i in range(n):
                        b[i] = b2[i]
                        for c in range(n):
                            a[i, c] = a2[i, c]
                    ssr, lam = new, max(lam / 3.0, 1e-7)
                    move = np.sqrt(ddx * ddx + ddy * ddy)
                    if move < 1e-3:
                        break
                else:
                    lam *= 10.0
                    if lam > 1e4:
                        break
        moved[q] = move
        ssr, count = _accumulate(img, xy[q, 0], xy[q, 1], mx, my, radius, th, table, step, nl, mult, False, a, b)
        rms[q] = np.sqrt(ssr / max(count, 1))
        elong[q] = _moments(img, xy[q, 0], xy[q, 1], th, nl, r_elong)


@numba.njit(cache=True, nogil=True)
def _moments(img, x0, y0, th, nl, radius):  # pragma: no cover - compiled
    """sqrt of the ratio of the principal second moments of the bead's mass within ``radius``."""
    size = img.shape[0]
    half = size // 2
    sgn = 1.0 if th[0] >= 0 else -1.0
    basis = np.empty(7)
    w0 = sx = sy = sxx = syy = sxy = 0.0
    for y in range(size):
        for x in range(size):
            dx, dy = x - x0, y - y0
            if dx * dx + dy * dy > radius * radius:
                continue
            _basis(x, y, half, nl, basis, 1)
            bg = 0.0
            for i in range(1, nl):
                bg += th[i] * basis[i]
            m = sgn * (img[y, x] - bg)
            if not m > 0.0:
                continue
            w0 += m
            sx += m * dx
            sy += m * dy
            sxx += m * dx * dx
            syy += m * dy * dy
            sxy += m * dx * dy
    if w0 <= 0.0:
        return 99.0
    mx, my = sx / w0, sy / w0
    cxx, cyy, cxy = sxx / w0 - mx * mx, syy / w0 - my * my, sxy / w0 - mx * my
    tr, det = cxx + cyy, cxx * cyy - cxy * cxy
    disc = np.sqrt(max(tr * tr / 4 - det, 0.0))
    lo = max(tr / 2 - disc, 1e-12)
    return np.sqrt((tr / 2 + disc) / lo)
