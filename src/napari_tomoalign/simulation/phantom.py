"""An analytic phantom of smooth spheres, with exact line-integral projections.

Each sphere has density ``rho (1 - r^2 / R^2)^2`` inside radius ``R``. Its line integral at distance
``d`` from the centre is ``rho (16 / 15) (R^2 - d^2)^(5/2) / R^4``, so projections are exact at every
pixel and share no code with any reconstruction. The smooth edge keeps the spectrum compact, so a
reconstruction can be compared with the phantom without aliasing dominating the score.

Coordinates follow ``alignment-model.md``: the tilt axis is y, a specimen point ``(x, y, z)``
(relative to the volume centre) projects to ``u = x cos(theta) + z sin(theta)``, ``v = y`` (relative
to the image centre). Volumes are ``(z, y, x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SpherePhantom:
    """Smooth spheres: ``centres`` ``(n, 3)`` (x, y, z) px from the volume centre, ``radii`` and ``densities``."""

    centres: NDArray[np.float64]
    radii: NDArray[np.float64]
    densities: NDArray[np.float64]

    @classmethod
    def random(
        cls, n: int, shape_zyx: tuple[int, int, int], radius_range: tuple[float, float] = (3.0, 9.0), seed: int = 0
    ) -> SpherePhantom:
        """``n`` spheres placed at random inside a volume of ``shape_zyx``, clear of its faces."""
        rng = np.random.default_rng(seed)
        radii = rng.uniform(*radius_range, n)
        half = (np.array(shape_zyx[::-1], dtype=float) - 1.0) / 2.0
        lim = np.maximum(half[None, :] - radii[:, None] - 1.0, 0.0)
        centres = rng.uniform(-1.0, 1.0, (n, 3)) * lim
        densities = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.2, -1.0, 1.0)
        return cls(centres, radii, densities)

    def volume(self, shape_zyx: tuple[int, int, int]) -> NDArray[np.float32]:
        """The density sampled at voxel centres of a ``(z, y, x)`` volume centred on the origin."""
        nz, ny, nx = shape_zyx
        z = np.arange(nz) - (nz - 1) / 2.0
        y = np.arange(ny) - (ny - 1) / 2.0
        x = np.arange(nx) - (nx - 1) / 2.0
        vol = np.zeros(shape_zyx, dtype=np.float64)
        for (cx, cy, cz), r, rho in zip(self.centres, self.radii, self.densities):
            zs = slice(max(0, int(np.floor(cz - r + (nz - 1) / 2))), min(nz, int(np.ceil(cz + r + (nz - 1) / 2)) + 1))
            ys = slice(max(0, int(np.floor(cy - r + (ny - 1) / 2))), min(ny, int(np.ceil(cy + r + (ny - 1) / 2)) + 1))
            xs = slice(max(0, int(np.floor(cx - r + (nx - 1) / 2))), min(nx, int(np.ceil(cx + r + (nx - 1) / 2)) + 1))
            d2 = ((z[zs, None, None] - cz) ** 2 + (y[None, ys, None] - cy) ** 2 + (x[None, None, xs] - cx) ** 2) / r**2
            vol[zs, ys, xs] += rho * np.clip(1.0 - d2, 0.0, None) ** 2
        return vol.astype(np.float32)

    def project(
        self,
        tilt_angles_deg: NDArray[np.float64],
        image_shape: tuple[int, int],
        offsets_px: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float32]:
        """Exact projections ``(n_views, rows, cols)`` at the given tilts.

        ``offsets_px`` ``(n_views, 2)`` optionally moves the projection of the tilt axis in each view
        (x, y), to make misaligned series.
        """
        theta = np.radians(np.asarray(tilt_angles_deg, dtype=float))
        ny, nx = image_shape
        off = np.zeros((theta.size, 2)) if offsets_px is None else np.asarray(offsets_px, float)
        rows = np.arange(ny) - (ny - 1) / 2.0
        cols = np.arange(nx) - (nx - 1) / 2.0
        out = np.zeros((theta.size, ny, nx), dtype=np.float64)
        for j, t in enumerate(theta):
            u = self.centres[:, 0] * np.cos(t) + self.centres[:, 2] * np.sin(t) + off[j, 0]
            v = self.centres[:, 1] + off[j, 1]
            for uc, vc, r, rho in zip(u, v, self.radii, self.densities):
                ys = slice(max(0, int(np.floor(vc - r + (ny - 1) / 2))), min(ny, int(np.ceil(vc + r + (ny - 1) / 2)) + 1))
                xs = slice(max(0, int(np.floor(uc - r + (nx - 1) / 2))), min(nx, int(np.ceil(uc + r + (nx - 1) / 2)) + 1))
                a2 = r**2 - (rows[ys, None] - vc) ** 2 - (cols[None, xs] - uc) ** 2
                out[j, ys, xs] += rho * (16.0 / 15.0) * np.clip(a2, 0.0, None) ** 2.5 / r**4
        return out.astype(np.float32)

    def wedge_limited_volume(
        self, shape_zyx: tuple[int, int, int], tilt_range_deg: tuple[float, float]
    ) -> NDArray[np.float32]:
        """The phantom as a perfect reconstruction from ``tilt_range_deg`` would show it in ``shape_zyx``.

        The wedge is removed on a volume four times as thick and three times as wide, then cropped,
        so that the elongation the missing wedge causes does not wrap around the box.
        """
        nz, ny, nx = shape_zyx
        big = (4 * nz, ny, 3 * nx)
        vol = wedge_limited(self.volume(big), tilt_range_deg)
        z0 = (big[0] - nz) // 2
        x0 = (big[2] - nx) // 2
        return np.ascontiguousarray(vol[z0 : z0 + nz, :, x0 : x0 + nx])


def wedge_limited(volume: NDArray[np.float32], tilt_range_deg: tuple[float, float]) -> NDArray[np.float32]:
    """The volume with every Fourier component outside the measured tilt range removed.

    A view at tilt ``theta`` measures the central slice along ``(k_x, k_z) = k (cos theta, sin theta)``
    (all ``k_y``), so a component is kept if its direction in the ``k_x``-``k_z`` plane lies within
    ``tilt_range_deg`` (either sign of ``k``). The zero frequency is always kept.
    """
    f = np.fft.fftn(volume.astype(np.float64))
    kz = np.fft.fftfreq(volume.shape[0])[:, None, None]
    kx = np.fft.fftfreq(volume.shape[2])[None, None, :]
    phi = np.degrees(np.arctan2(kz, kx))
    phi = np.where(phi > 90.0, phi - 180.0, np.where(phi <= -90.0, phi + 180.0, phi))
    lo, hi = tilt_range_deg
    keep = (phi >= lo) & (phi <= hi) | ((kx == 0) & (kz == 0))
    return np.real(np.fft.ifftn(f * keep)).astype(np.float32)
