"""Synthetic FIB-milled lamella tilt series with known geometry, for patch tracking's tests and benchmark.

The specimen is a slab of biological-like texture (band-limited density at two scales plus dense
particles, in a few layers through the thickness) at 0.8-1 nm/px, 150-300 nm thick, pre-tilted about the
tilt axis. It carries a dark protective (platinum) layer along one edge, thickness stripes from milling
(curtaining) on its lower surface, and ends at the lamella's edges, so that vacuum enters the field at
high tilt. Every view is the projection of that one slab through the view's true geometry (the alignment
model: tilt, rotation of the tilt axis, magnification and shift; `simulation.beads.random_geometry`
supplies drift, rotation and magnification jitter and a few stage jumps of a tenth of the field), then a
small smooth non-rigid warp per view (beam-induced motion, which no rigid model follows) whose largest
displacement over the field is at most ``warp_px``. Stage jumps move a view by a tenth of the field (102 px
at 1024). Bright field, low dose: ``counts = I0 exp(-projected density)`` with Poisson noise, ``I0`` set so
that the view nearest 0 deg records ``counts`` per pixel on average through the specimen (the lamella away
from the protective layer); the slab darkens as ``1 / cos(tilt + pre-tilt)``.

`end_to_end_error` judges an alignment as the project does: known 3-D points projected through the true
geometry (the warp included: where the points really are in the images), mapped through the alignment's
``.xf`` and ``.tlt``, each point's 3-D position fitted, the RMS of what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..alignment.model import DX, DY, MAG, ROT, TILT
from ..conventions import image_centre
from .beads import random_geometry

PRESETS: dict[str, dict] = {
    # 150 nm at 1 nm/px, 30 counts/px at zero tilt, no jumps, no warp
    "easy": dict(pixel_size_nm=1.0, thickness_nm=150.0, counts=30.0, pretilt_deg=8.0, tilt_axis_deg=-4.0,
                 slab_mu=0.45, texture=0.5, protective=0.10, stripes=0.06, lamella_width=1.7, jumps=0,
                 warp_px=0.0, layers=5),
    # 300 nm at 0.8 nm/px, 5 counts/px, stage jumps of a tenth of the field, a warp of up to 3 px
    "hard": dict(pixel_size_nm=0.8, thickness_nm=300.0, counts=5.0, pretilt_deg=12.0, tilt_axis_deg=-4.0,
                 slab_mu=1.3, texture=0.5, protective=0.14, stripes=0.12, lamella_width=1.5, jumps=2,
                 warp_px=3.0, layers=7),
}


@dataclass
class LamellaSeries:
    """A rendered lamella series and its truth.

    Attributes
    ----------
    images
        ``(n_views, rows, cols)`` float32 counts.
    tilt_angles_deg
        ``(n_views,)`` nominal (stage) tilt angles: what a user knows.
    view_params
        ``(n_views, 5)`` the true (tilt rad, rotation rad, magnification, dx, dy) of `alignment.model`.
    points_xyz
        ``(n_points, 3)`` known 3-D points inside the slab (pixels from the volume centre, slab frame).
    true_xy
        ``(n_views, n_points, 2)`` where those points are in each raw view (warp included).
    dose_fraction
        ``(n_views,)`` mean transmitted counts through the slab relative to the zero-tilt view.
    """

    images: NDArray[np.float32]
    tilt_angles_deg: NDArray[np.float64]
    pixel_size_nm: float
    view_params: NDArray[np.float64]
    points_xyz: NDArray[np.float64]
    true_xy: NDArray[np.float64]
    dose_fraction: NDArray[np.float64]
    jump_views: NDArray[np.intp]
    params: dict = field(default_factory=dict)

    @property
    def tilt_axis_deg(self) -> float:
        return float(self.params["tilt_axis_deg"])


def _band_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Gaussian-filtered white noise of unit SD."""
    a = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (a / max(float(a.std()), 1e-12)).astype(np.float32)


def _particles(shape: tuple[int, int], per_mpx: float, radius: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Dense round particles (ribosome-like) as smooth discs of unit peak."""
    out = np.zeros(shape, dtype=np.float32)
    k = int(per_mpx * shape[0] * shape[1] / 1e6)
    out[rng.integers(0, shape[0], k), rng.integers(0, shape[1], k)] = 1.0
    out = ndimage.gaussian_filter(out, radius / 2.0)
    return out / max(float(out.max()), 1e-12)


@dataclass(frozen=True)
class _Slab:
    """Layers of density on a grid in slab coordinates (x across the axis, y along it), and where."""

    layers: NDArray[np.float32]  # (n_layers, gy, gx) density per pixel of thickness
    z: NDArray[np.float64]       # (n_layers,) heights (pixels from the mid-plane)
    dz: float
    origin: NDArray[np.float64]  # slab (x, y) of grid pixel (0, 0)
    specimen: NDArray[np.bool_]  # (gx,) columns of specimen: inside the lamella, off the protective layer


def _slab(p: dict, shape: tuple[int, int], rng: np.random.Generator) -> _Slab:
    ny, nx = shape
    t = p["thickness_nm"] / p["pixel_size_nm"]
    left, right = _lamella_edges(p, nx)
    gx, gy = int(2 * max(-left, right) + 0.3 * nx), int(1.5 * ny)
    origin = np.array([-(gx - 1) / 2.0, -(gy - 1) / 2.0])
    xs = origin[0] + np.arange(gx)
    inside = ((xs >= left) & (xs <= right))[None, :] & np.ones((gy, 1), dtype=bool)
    n = int(p["layers"])
    dz = t / n
    z = -t / 2 + dz * (np.arange(n) + 0.5)
    mu = p["slab_mu"] / t  # density per pixel of path: slab_mu through the whole thickness at zero tilt
    pix = p["pixel_size_nm"]
    layers = np.empty((n, gy, gx), dtype=np.float32)
    for k in range(n):
        tex = 0.6 * _band_noise((gy, gx), 2.0 / pix, rng) + 0.5 * _band_noise((gy, gx), 6.0 / pix, rng)
        tex += 2.5 * _particles((gy, gx), 900.0 * pix * pix, 12.0 / pix, rng)
        layers[k] = mu * np.clip(1.0 + p["texture"] * tex, 0.0, None)
    if p["stripes"]:  # curtaining on the lower surface: running across the axis (the milling direction)
        stripe = ndimage.gaussian_filter1d(rng.standard_normal(gy), 4.0 / pix)
        layers[0] *= (1.0 + p["stripes"] * n * stripe / max(float(stripe.std()), 1e-12)).clip(0.0)[:, None]
    if p["protective"]:  # the platinum layer on the front edge (along the axis): dark, weak texture
        band = (xs < left + p["protective"] * nx)[None, :] & np.ones((gy, 1), dtype=bool)
        pt = 3.2 / dz / 2 * (1.0 + 0.05 * _band_noise((gy, gx), 3.0, rng))
        layers[-1][band] += pt[band]
        layers[-2][band] += pt[band]
    layers *= inside[None]
    return _Slab(layers, z, dz, origin, (xs >= left + p["protective"] * nx) & (xs <= right))


def _lamella_edges(p: dict, nx: int) -> tuple[float, float]:
    """Slab x of the lamella's front edge (at the field's edge at zero tilt, under the protective layer)
    and of its far edge: beyond both is vacuum, which enters the field at high tilt."""
    left = -0.5 * nx
    return left, left + p["lamella_width"] * nx


def _warp_field(p: dict, shape: tuple[int, int], n_views: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``(n_views, 3, 4)`` coefficients of a smooth per-view displacement (x, y) with a peak of at most
    ``warp_px``: three plane waves of about one field's wavelength each (see `_warp_at`)."""
    out = np.zeros((n_views, 3, 4))
    if not p["warp_px"]:
        return out
    ny, nx = shape
    for j in range(n_views):
        k = rng.normal(0.0, 1.0, (3, 2)) * 2 * np.pi / (0.9 * max(nx, ny))
        out[j, :, :2] = k
        out[j, :, 2] = rng.uniform(0, 2 * np.pi, 3)
        out[j, :, 3] = rng.uniform(0, 2 * np.pi, 3)
    return out


def _warp_at(coef: NDArray[np.float64], amp: float, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    wx = np.zeros_like(x, dtype=np.float64)
    wy = np.zeros_like(x, dtype=np.float64)
    for kx, ky, px, py in coef:
        ph = kx * x + ky * y
        wx = wx + np.sin(ph + px)
        wy = wy + np.sin(ph + py)
    return amp / 3.0 * wx, amp / 3.0 * wy


def _warp_amplitudes(coef: NDArray[np.float64], amp: NDArray[np.float64], shape: tuple[int, int]) -> NDArray[np.float64]:
    """The per-view amplitude for `_warp_at` whose largest displacement over the field (and a margin of a
    tenth of it, where drift carries the specimen's points) is ``amp``."""
    ny, nx = shape
    yy, xx = np.mgrid[-0.6 * ny:0.6 * ny:65j, -0.6 * nx:0.6 * nx:65j]
    peak = np.array([np.hypot(*_warp_at(c, 1.0, xx, yy)).max() for c in coef])
    return np.where(peak > 0, amp / np.maximum(peak, 1e-12), 0.0)


def _jumps_of(vp: NDArray[np.float64], stepped: NDArray[np.float64], jumps: NDArray[np.intp],
              length: float) -> NDArray[np.float64]:
    """``vp`` with each jump (``vp - stepped`` at the jump views) set to ``length`` px in its direction."""
    out = vp.copy()
    for j in jumps:
        d = vp[j, [DX, DY]] - stepped[j, [DX, DY]]
        out[j, [DX, DY]] = stepped[j, [DX, DY]] + d * (length / max(float(np.hypot(*d)), 1e-12))
    return out


def _geometry(p: dict, nominal: NDArray[np.float64], size: int,
              rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """`random_geometry`'s views with its jumps made a tenth of the field long (it draws a jump of
    ``0.1 size (1, -0.7)``, 0.122 of the field)."""
    twin = np.random.default_rng()
    twin.bit_generator.state = rng.bit_generator.state
    stepped, _ = random_geometry(nominal, p["tilt_axis_deg"], size, twin, 0)
    vp, jumps = random_geometry(nominal, p["tilt_axis_deg"], size, rng, int(p["jumps"]))
    return _jumps_of(vp, stepped, jumps, 0.1 * size), jumps


def _dose_scale(p: dict, slab: _Slab, th: float) -> float:
    """``I0 / counts``: one over the mean of ``exp(slab_mu - mass)`` over the specimen away from the
    protective layer at effective tilt ``th`` (so that the mean recorded count there is ``counts``)."""
    mass = np.zeros(slab.layers.shape[1:], dtype=np.float64)
    for layer, z in zip(slab.layers, slab.z):
        mass += ndimage.shift(layer, (0.0, z * np.tan(th)), order=1, mode="nearest")
    mass *= slab.dz / np.cos(th)
    return 1.0 / float(np.mean(np.exp(p["slab_mu"] - mass[:, slab.specimen])))


def _effective_tilt(p: dict, vp: NDArray[np.float64]) -> float:
    return float(vp[TILT] + np.radians(p["pretilt_deg"]))


def _render(p: dict, slab: _Slab, vp: NDArray[np.float64], coef, amp: float, shape, rng,
            i0: float) -> NDArray[np.float32]:
    """One view: the slab's layers projected at the view's geometry, warped, as Poisson counts of mean
    ``i0 exp(slab_mu - mass)``."""
    ny, nx = shape
    c = image_centre((nx, ny))
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    wx, wy = _warp_at(coef, amp, xx - c[0], yy - c[1])
    px, py = xx - wx - c[0] - vp[DX], yy - wy - c[1] - vp[DY]
    ca, sa, s = np.cos(vp[ROT]), np.sin(vp[ROT]), vp[MAG]
    u, v = (ca * px + sa * py) / s, (-sa * px + ca * py) / s
    th = _effective_tilt(p, vp)
    rows = v - slab.origin[1]
    mass = np.zeros((ny, nx), dtype=np.float32)
    for layer, z in zip(slab.layers, slab.z):
        cols = (u - z * np.sin(th)) / np.cos(th) - slab.origin[0]
        mass += ndimage.map_coordinates(layer, [rows, cols], order=1, mode="constant", cval=0.0, output=np.float32)
    mass *= np.float32(slab.dz / np.cos(th))
    counts = i0 * np.exp(np.float32(p["slab_mu"]) - mass)
    return rng.poisson(counts).astype(np.float32)


def _project(p: dict, vp: NDArray[np.float64], coef, amp: float, xyz: NDArray[np.float64], shape) -> NDArray:
    """Raw image positions ``(n, 2)`` of slab points in one view, the warp included (one fixed-point step)."""
    ny, nx = shape
    th = _effective_tilt(p, vp)
    u = xyz[:, 0] * np.cos(th) + xyz[:, 2] * np.sin(th)
    ca, sa, s = np.cos(vp[ROT]), np.sin(vp[ROT]), vp[MAG]
    q = np.column_stack([s * (ca * u - sa * xyz[:, 1]) + vp[DX], s * (sa * u + ca * xyz[:, 1]) + vp[DY]])
    pos = q.copy()
    for _ in range(3):
        wx, wy = _warp_at(coef, amp, pos[:, 0], pos[:, 1])
        pos = q + np.column_stack([wx, wy])
    return pos + image_centre((nx, ny))


def make_lamella_series(kind: str = "easy", size: int = 256, n_views: int = 41,
                        tilt_range_deg: tuple[float, float] = (-60.0, 60.0), seed: int = 0, n_points: int = 400,
                        **overrides) -> LamellaSeries:
    """Render a lamella series of a preset (``"easy"`` or ``"hard"``; ``overrides`` change any preset value,
    for example ``counts=10.0``). About 1.5 s for 256 x 256 x 41, 20 s for 1024 x 1024 x 41."""
    if kind not in PRESETS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(PRESETS)}")
    p = {**PRESETS[kind], **overrides, "kind": kind}
    shape = (int(size), int(size))
    rng = np.random.default_rng(seed)
    nominal = np.linspace(*tilt_range_deg, n_views)
    vp, jumps = _geometry(p, nominal, size, rng)
    slab = _slab(p, shape, rng)
    coef = _warp_field(p, shape, n_views, rng)
    amp = p["warp_px"] * rng.uniform(0.4, 1.0, n_views) if p["warp_px"] else np.zeros(n_views)
    amp = _warp_amplitudes(coef, amp, shape)
    ref = int(np.argmin(np.abs(nominal)))
    i0 = p["counts"] * _dose_scale(p, slab, _effective_tilt(p, vp[ref]))
    images = np.empty((n_views, *shape), dtype=np.float32)
    for j in range(n_views):
        images[j] = _render(p, slab, vp[j], coef[j], float(amp[j]), shape, np.random.default_rng([seed, j, 3]),
                            i0)
    t = p["thickness_nm"] / p["pixel_size_nm"]
    left = _lamella_edges(p, size)[0] + p["protective"] * size
    pts = np.column_stack([rng.uniform(left + 0.05 * size, 0.45 * size, n_points),
                           rng.uniform(-0.45, 0.45, n_points) * size, rng.uniform(-0.4, 0.4, n_points) * t])
    true_xy = np.stack([_project(p, vp[j], coef[j], float(amp[j]), pts, shape) for j in range(n_views)])
    th = vp[:, TILT] + np.radians(p["pretilt_deg"])
    dose = np.exp(-p["slab_mu"] * (1.0 / np.cos(th) - 1.0 / np.cos(th[np.argmin(np.abs(nominal))])))
    return LamellaSeries(images, nominal, p["pixel_size_nm"], vp, pts, true_xy, dose, jumps, p)


def end_to_end_error(xf: NDArray[np.float64], tilts_deg: NDArray[np.float64], image_size: tuple[int, int],
                     true_xy: NDArray[np.float64], views: NDArray[np.intp] | None = None) -> float:
    """RMS (px) of known points mapped through an alignment's ``.xf`` ``(n_views, 2, 3)`` and ``.tlt``, each
    point's 3-D position fitted: ``x' = X cos(t) + Z sin(t)``, ``y' = Y`` in the aligned frame (tilt axis
    vertical through the centre). ``true_xy`` ``(n_views, n_points, 2)`` are the points' raw positions;
    ``views`` limits the figure to some views (views the alignment left undetermined, NaN, are skipped)."""
    xf = np.asarray(xf, dtype=float).reshape(-1, 2, 3)
    n = len(xf)
    sel = np.arange(n) if views is None else np.asarray(views, dtype=np.intp)
    sel = sel[np.all(np.isfinite(xf[sel].reshape(len(sel), -1)), axis=1) & np.isfinite(np.asarray(tilts_deg)[sel])]
    c = image_centre(image_size)
    raw = true_xy[sel] - c  # (v, p, 2)
    al = np.einsum("vij,vpj->vpi", xf[sel, :, :2], raw) + xf[sel, None, :, 2]
    t = np.radians(np.asarray(tilts_deg, dtype=float)[sel])
    a = np.column_stack([np.cos(t), np.sin(t)])  # (v, 2)
    coef, *_ = np.linalg.lstsq(a, al[..., 0], rcond=None)  # (2, p): X and Z of every point
    rx = a @ coef - al[..., 0]
    ry = al[..., 1] - al[..., 1].mean(axis=0)
    return float(np.sqrt(np.mean(rx**2 + ry**2)))
