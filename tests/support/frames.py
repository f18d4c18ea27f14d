"""A non-square tilt series whose specimen fills the raw field, with its true alignment written as an IMOD set
(``NAME.st``, ``NAME.xf``, ``NAME.tlt``): the aligned frame's truth (`reconstruction.frame`).

The ``.xf`` turns each view by ``-axis_deg`` (IMOD's rotation angle) and shifts it a little, so that the tilt
axis is vertical; a point ``(x, y, z)`` (pixels from the aligned frame's centre, z from the tilt axis) is at
``(x cos t + z sin t, y)`` from the aligned centre in view ``t``, and at ``A^-1 (that - D) + c_raw`` in the raw
view. The points are drawn uniformly over the raw field at zero tilt, so the raw field is filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_tomoalign.conventions import image_centre
from napari_tomoalign.io.imod import read_xf, write_xf
from napari_tomoalign.io.mrc import write_mrc


@dataclass
class FrameSeries:
    stack: Path
    xf_path: Path
    xyz: np.ndarray  # (n, 3) from the aligned centre (x, y) and the tilt axis (z), pixels
    raw_size: tuple[int, int]
    transforms: np.ndarray
    tilts: np.ndarray


def rotation(deg: float) -> np.ndarray:
    r = np.radians(deg)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def frame_series(folder: Path, raw_size=(160, 96), axis_deg: float = 84.0, n_points: int = 160,
                 tilts: np.ndarray | None = None, seed: int = 0, sigma: float = 1.2, shift_px: float = 2.0
                 ) -> FrameSeries:
    """Write the series into ``folder`` (the module docstring; tilts -60 to 60 degrees every 4 by default); the
    points fill the raw field."""
    tilts = np.arange(-60.0, 61.0, 4.0) if tilts is None else np.asarray(tilts, dtype=float)
    rng = np.random.default_rng(seed)
    nx, ny = raw_size
    a = rotation(-axis_deg)
    xf = np.zeros((tilts.size, 2, 3))
    xf[:, :, :2] = a
    xf[:, :, 2] = rng.uniform(-shift_px, shift_px, (tilts.size, 2))
    c_raw = image_centre(raw_size)
    j0 = int(np.argmin(np.abs(tilts)))
    raw0 = np.column_stack([rng.uniform(0, nx - 1, n_points), rng.uniform(0, ny - 1, n_points)])
    xy = (raw0 - c_raw) @ a.T + xf[j0, :, 2]  # zero tilt: x, y from the aligned centre
    z = rng.uniform(-6.0, 6.0, n_points)
    xyz = np.column_stack([xy, z])
    ainv = np.linalg.inv(a)
    stack = np.zeros((tilts.size, ny, nx), np.float32)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for j, t in enumerate(np.radians(tilts)):
        al = np.column_stack([xyz[:, 0] * np.cos(t) + xyz[:, 2] * np.sin(t), xyz[:, 1]])
        raw = (al - xf[j, :, 2]) @ ainv.T + c_raw
        for px, py in raw:
            if -3 * sigma < px < nx - 1 + 3 * sigma and -3 * sigma < py < ny - 1 + 3 * sigma:
                x0, x1 = max(0, int(px - 4 * sigma)), min(nx, int(px + 4 * sigma) + 2)
                y0, y1 = max(0, int(py - 4 * sigma)), min(ny, int(py + 4 * sigma) + 2)
                stack[j, y0:y1, x0:x1] += np.exp(-((xx[y0:y1, x0:x1] - px) ** 2 + (yy[y0:y1, x0:x1] - py) ** 2)
                                                 / (2 * sigma**2))
    path = folder / "odd.st"
    write_mrc(path, stack, 2.17)
    write_xf(folder / "odd.xf", xf)
    np.savetxt(folder / "odd.tlt", tilts, fmt="%.2f")
    return FrameSeries(path, folder / "odd.xf", xyz, (nx, ny), read_xf(folder / "odd.xf"), tilts)  # as written


def inside_raw_field(s: FrameSeries, margin: float = 0.0) -> np.ndarray:
    """Points whose zero-tilt position lies inside the raw view (all of them, by construction)."""
    j0 = int(np.argmin(np.abs(s.tilts)))
    a = s.transforms[j0, :, :2]
    raw = (s.xyz[:, :2] - s.transforms[j0, :, 2]) @ np.linalg.inv(a).T + image_centre(s.raw_size)
    nx, ny = s.raw_size
    return np.all((raw >= -margin) & (raw <= np.array([nx - 1, ny - 1]) + margin), axis=1)


def in_tomogram(xyz: np.ndarray, vol: np.ndarray, binning: int = 1) -> np.ndarray:
    """Points whose (x, y) from the frame's centre fall in a voxel column of ``vol`` ``(z, y, x)`` (a voxel
    reaching half a voxel either side of its centre), binned by ``binning``."""
    n_z, ny, nx = vol.shape
    c = image_centre((nx, ny))
    ix, iy = xyz[:, 0] / binning + c[0], xyz[:, 1] / binning + c[1]
    return (ix >= -0.5) & (ix <= nx - 0.5) & (iy >= -0.5) & (iy <= ny - 0.5)


def field_fraction(s: FrameSeries, frame_size: tuple[int, int], n: int = 200_000) -> float:
    """The fraction of the raw field (at zero tilt) that a frame of ``frame_size`` (x, y) holds: the truth
    the fraction of points in the tomogram estimates."""
    rng = np.random.default_rng(7)
    nx, ny = s.raw_size
    j0 = int(np.argmin(np.abs(s.tilts)))
    raw = np.column_stack([rng.uniform(0, nx - 1, n), rng.uniform(0, ny - 1, n)])
    xy = (raw - image_centre(s.raw_size)) @ s.transforms[j0, :, :2].T + s.transforms[j0, :, 2]
    half = np.asarray(frame_size, dtype=float) / 2.0
    return float(np.mean(np.all(np.abs(xy) <= half, axis=1)))


def peak_at(xyz: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """For each point on the tomogram, the largest density in its 3 x 3 columns (every section)."""
    n_z, ny, nx = vol.shape
    c = image_centre((nx, ny))
    out = np.full(len(xyz), np.nan)
    for k, (x, y, _) in enumerate(xyz):
        ix, iy = int(round(x + c[0])), int(round(y + c[1]))
        if 0 <= ix < nx and 0 <= iy < ny:
            out[k] = float(vol[:, max(0, iy - 1):iy + 2, max(0, ix - 1):ix + 2].max())
    return out
