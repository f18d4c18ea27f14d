"""Synthetic gold-bead tilt series with known truth, for the tracking tests and benchmark.

The specimen is a 3-D density: a slab of stain or ice texture (Gaussian blobs at four scales, which
project exactly to Gaussians, none centred inside a bead), gold beads (hard spheres; their chords are integrated over 4 x 4
sub-pixels) and, optionally, a carbon film with an edge. Every view is the projection of that one
density through the view's true geometry (the alignment model: tilt, rotation of the tilt axis,
magnification and shift), so the background is consistent between views. Bright-field imaging:
``counts = I0 exp(-projected density)``, a detector blur, then Poisson (or, at high counts, Gaussian)
noise; the slab darkens as ``1 / cos(tilt)``.

Presets (``kind``):

- ``"plastic"``: 5 px beads (10 nm at 2 nm/px; sizes spread by 5 %, ``bead_size_cv``) on both surfaces,
  stained texture, high counts.
- ``"cryo"``: 10 nm gold at 0.8 nm/px (12.5 px), weak texture, a defocus fringe, ~25 counts per pixel
  (Poisson), the tilt axis near horizontal.
- ``"hard"``: plastic-like with clumps of 2-4 touching beads, beads that leave the field, two beads whose
  tracks cross, two views with a large jump, hot and dead pixels and a dark carbon edge.

Positions follow the project's conventions: x = column, y = row, the first pixel's centre at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numba
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from ..alignment.model import DX, DY, MAG, ROT, TILT, predict_all
from ..conventions import image_centre

PRESETS: dict[str, dict] = {
    "plastic": dict(pixel_size_nm=2.0, bead_diameter_px=5.0, beads_per_mpx=450.0, thickness_px=120.0,
                    bead_transmission=0.33, texture=0.10, counts=3000.0, blur_px=0.5, fringe=0.0,
                    tilt_axis_deg=-12.0, slab_density=0.25),
    "cryo": dict(pixel_size_nm=0.8, bead_diameter_px=12.5, beads_per_mpx=150.0, thickness_px=180.0,
                 bead_transmission=0.55, texture=0.035, counts=25.0, blur_px=0.6, fringe=0.7,
                 tilt_axis_deg=84.0, slab_density=0.1),
}
PRESETS["hard"] = dict(PRESETS["plastic"], clumps=(2, 3, 4, 2), crossing=True, jumps=2, hot_pixels=4e-4,
                       carbon=0.7)


@dataclass(frozen=True)
class BeadScene:
    """The 3-D specimen and the imaging: everything needed to render any view.

    ``bead_xyz`` ``(n_beads, 3)`` and ``blob_xyz`` ``(n_blobs, 3)`` are in pixels from the volume centre
    (x across the tilt axis, y along it, z through the section). ``view_params`` ``(n_views, 5)`` are the
    true per-view (tilt rad, rotation rad, magnification, dx, dy) of `alignment.model`.
    """

    shape: tuple[int, int]
    nominal_tilt_deg: NDArray[np.float64]
    view_params: NDArray[np.float64]
    bead_xyz: NDArray[np.float64]
    bead_radius_px: float
    bead_scale: NDArray[np.float64]
    bead_density: float
    blob_xyz: NDArray[np.float64]
    blob_sigma: NDArray[np.float64]
    blob_amp: NDArray[np.float64]
    clump: NDArray[np.intp]
    crossing: NDArray[np.intp]
    jump_views: NDArray[np.intp]
    params: dict = field(default_factory=dict)
    seed: int = 0


@dataclass
class BeadSeries:
    """A rendered series and its truth.

    Attributes
    ----------
    images
        ``(n_views, rows, cols)`` float32 counts.
    tilt_angles_deg
        ``(n_views,)`` nominal tilt angles (what a user knows).
    true_xy
        ``(n_views, n_beads, 2)`` true image (x, y) of every bead centre in every view.
    visible
        ``(n_views, n_beads)`` True where the whole bead lies inside the image.
    clump
        ``(n_beads,)`` clump number of beads in a clump of touching beads, -1 for single beads.
    """

    images: NDArray[np.float32]
    tilt_angles_deg: NDArray[np.float64]
    pixel_size_nm: float
    bead_diameter_px: float
    true_xy: NDArray[np.float64]
    visible: NDArray[np.bool_]
    clump: NDArray[np.intp]
    scene: BeadScene

    @property
    def tilt_axis_deg(self) -> float:
        return float(self.scene.params["tilt_axis_deg"])

    def isolated(self, view: int, distance_diameters: float = 2.0) -> NDArray[np.bool_]:
        """``(n_beads,)`` True for single beads with no other bead within this many diameters in ``view``."""
        xy = self.true_xy[view]
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        return (self.clump < 0) & (d.min(axis=1) > distance_diameters * self.bead_diameter_px)


def random_geometry(nominal_deg: NDArray[np.float64], tilt_axis_deg: float, size: int, rng: np.random.Generator,
                    jumps: int = 0) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """``(n_views, 5)`` view parameters like a real series', and the views given a large jump.

    Tilt errors of 0.2 deg, a rotation drift of +-0.5 deg, magnifications within 0.4 %, shifts that
    random-walk away from the minimum-tilt view (as stage drift does) and ``jumps`` single views moved by
    about a tenth of the field (stage backlash).
    """
    n = len(nominal_deg)
    ref = int(np.argmin(np.abs(nominal_deg)))
    vp = np.zeros((n, 5))
    tilt = nominal_deg + rng.normal(0, 0.2, n)
    tilt[ref] = nominal_deg[ref]
    vp[:, TILT] = np.radians(tilt)
    vp[:, ROT] = np.radians(tilt_axis_deg + np.linspace(-0.5, 0.5, n) + rng.normal(0, 0.05, n))
    vp[:, MAG] = 1.0 + rng.normal(0, 0.004, n)
    vp[ref, MAG] = 1.0
    step = rng.normal(0, 0.012 * size, (n, 2))
    order = np.argsort(nominal_deg)
    pos = int(np.flatnonzero(order == ref)[0])
    walk = np.zeros((n, 2))
    walk[order[pos + 1:]] = np.cumsum(step[order[pos + 1:]], axis=0)
    walk[order[:pos][::-1]] = np.cumsum(step[order[:pos][::-1]], axis=0)
    vp[:, [DX, DY]] = walk + rng.normal(0, 0.02 * size, 2)
    far = np.flatnonzero(np.abs(nominal_deg) > 10)
    jump_views = np.sort(rng.choice(far, size=min(jumps, len(far)), replace=False)).astype(np.intp)
    for j in jump_views:
        vp[j, [DX, DY]] += 0.1 * size * np.array([1.0, -0.7]) * rng.choice([-1.0, 1.0])
    return vp, jump_views


def view_params_from_xf(xf: NDArray[np.float64], tilt_angles_deg: NDArray[np.float64],
                        shift_scale: float = 1.0) -> NDArray[np.float64]:
    """``(n_views, 5)`` view parameters from IMOD ``.xf`` transforms ``(n_views, 2, 3)`` (raw to aligned).

    ``A = R(-alpha) / s`` and ``d = -A^-1 D``; shifts are multiplied by ``shift_scale`` (to reuse a
    512-pixel series' geometry on another image size).
    """
    xf = np.asarray(xf, dtype=float).reshape(-1, 2, 3)
    a = xf[:, :, :2]
    vp = np.zeros((len(xf), 5))
    vp[:, TILT] = np.radians(tilt_angles_deg)
    vp[:, ROT] = np.arctan2(a[:, 0, 1], a[:, 0, 0])
    vp[:, MAG] = 1.0 / np.sqrt(np.abs(np.linalg.det(a)))
    vp[:, [DX, DY]] = -np.einsum("vij,vj->vi", np.linalg.inv(a), xf[:, :, 2]) * shift_scale
    return vp


def _spread_points(n: int, half_extent: NDArray[np.float64], min_dist: float, rng) -> NDArray[np.float64]:
    """About ``n`` uniform 2-D points in ``[-half, half]`` with no two closer than ``min_dist``."""
    pts = rng.uniform(-1, 1, (int(n * 1.3) + 4, 2)) * half_extent
    drop = {j for i, j in cKDTree(pts).query_pairs(min_dist)}
    keep = np.array([k for k in range(len(pts)) if k not in drop], dtype=np.intp)
    return pts[keep[:n]]


def _place_beads(p: dict, shape, rng) -> tuple[NDArray, NDArray, NDArray]:
    """Bead centres ``(n, 3)``, clump numbers and crossing pairs (see the presets)."""
    ny, nx = shape
    d, t = p["bead_diameter_px"], p["thickness_px"]
    n = int(round(p["beads_per_mpx"] * nx * ny / 1e6))
    xy = _spread_points(n, np.array([0.55 * nx, 0.49 * ny]), 2.6 * d, rng)
    surface = np.where(rng.random(len(xy)) < 0.5, -1.0, 1.0)
    xyz = np.column_stack([xy, surface * (t / 2 - d / 2) + rng.normal(0, 0.02 * t, len(xy))])
    crossing = np.zeros((0, 2), dtype=np.intp)
    if p.get("crossing"):  # two beads on opposite surfaces whose tracks cross near -25 degrees
        a = np.array([0.2 * nx, -0.25 * ny, -t / 2 + d / 2])
        b = a + np.array([(t - d) * np.tan(np.radians(25.0)), 0.35 * d, t - d])
        near = np.hypot(*(xyz[:, :2] - (a[:2] + b[:2]) / 2).T) < 3 * d + abs(b[0] - a[0]) / 2
        xyz = np.vstack([xyz[~near], a, b])
        crossing = np.array([[len(xyz) - 2, len(xyz) - 1]], dtype=np.intp)
    clump = np.full(len(xyz), -1, dtype=np.intp)
    extra, extra_clump = [], []
    for c, size in enumerate(p.get("clumps", ())):  # touching beads around some of the single beads
        centre = xyz[c].copy()
        for k in range(1, size):
            ang = 2 * np.pi * k / max(size - 1, 1) + rng.uniform(0, 0.3)
            extra.append(centre + 1.02 * d * np.array([np.cos(ang), np.sin(ang), 0.0]))
            extra_clump.append(c)
        clump[c] = c
    if extra:
        xyz = np.vstack([xyz, extra])
        clump = np.concatenate([clump, extra_clump])
    return xyz, clump, crossing


def _texture(p: dict, shape, rng) -> tuple[NDArray, NDArray, NDArray]:
    """Gaussian blobs at four scales filling the slab: positions, sigmas and projected peak amplitudes."""
    ny, nx = shape
    area, t = (nx + 0.4 * nx) * ny, p["thickness_px"]
    xyz, sig, amp = [], [], []
    for sigma, per_px, weight in ((1.2, 1 / 22.0, 0.5), (2.5, 1 / 95.0, 0.8), (5.0, 1 / 390.0, 1.0),
                                  (10.0, 1 / 1600.0, 1.2)):
        k = int(area * per_px)
        xyz.append(np.column_stack([rng.uniform(-0.7 * nx, 0.7 * nx, k), rng.uniform(-0.5 * ny - 3 * sigma,
                                    0.5 * ny + 3 * sigma, k), rng.uniform(-t / 2, t / 2, k)]))
        sig.append(np.full(k, sigma))
        amp.append(p["texture"] * weight * rng.exponential(1.0, k) * rng.choice([1.0, 1.0, -0.6], k))
    return np.vstack(xyz), np.concatenate(sig), np.concatenate(amp)


def bead_scene(kind: str = "plastic", size: int | tuple[int, int] = 256, n_views: int = 41,
               tilt_range_deg: tuple[float, float] = (-60.0, 60.0), seed: int = 0,
               view_params: NDArray[np.float64] | None = None, nominal_tilt_deg: NDArray[np.float64] | None = None,
               **overrides) -> BeadScene:
    """Build the specimen and geometry of a preset (see the module docstring); ``overrides`` change any
    preset value (for example ``counts=50.0`` or ``clumps=(2, 2)``). ``view_params`` replaces the random
    geometry (for example `view_params_from_xf` of a real series), with ``nominal_tilt_deg`` the tilts a
    user would know (default: the true ones rounded to 0.1 degree)."""
    if kind not in PRESETS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(PRESETS)}")
    p = {**PRESETS[kind], **overrides, "kind": kind}
    shape = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    rng = np.random.default_rng(seed)
    nominal = np.linspace(*tilt_range_deg, n_views)
    jump_views = np.zeros(0, dtype=np.intp)
    if view_params is None:
        vp, jump_views = random_geometry(nominal, p["tilt_axis_deg"], max(shape), rng, p.get("jumps", 0))
    else:
        vp = np.asarray(view_params, dtype=np.float64)
        nominal = np.asarray(np.round(np.degrees(vp[:, TILT]), 1) if nominal_tilt_deg is None else nominal_tilt_deg,
                             dtype=np.float64)
        p["tilt_axis_deg"] = float(np.degrees(np.median(vp[:, ROT])))
    bead_xyz, clump, crossing = _place_beads(p, shape, rng)
    blob_xyz, blob_sigma, blob_amp = _texture(p, shape, rng)
    radius = p["bead_diameter_px"] / 2
    density = -np.log(p["bead_transmission"]) / (2 * radius)
    scale = np.clip(1.0 + p.get("bead_size_cv", 0.05) * rng.standard_normal(len(bead_xyz)), 0.7, 1.3)
    if len(bead_xyz) and len(blob_xyz):  # stain cannot sit inside the gold: no blob centred within a bead
        dist, near = cKDTree(bead_xyz).query(blob_xyz)
        keep = dist >= radius * scale[near]
        blob_xyz, blob_sigma, blob_amp = blob_xyz[keep], blob_sigma[keep], blob_amp[keep]
    return BeadScene(shape, nominal, vp, bead_xyz, radius, scale, density, blob_xyz, blob_sigma, blob_amp,
                     clump, crossing, jump_views, p, seed)


@numba.njit(cache=True, nogil=True)
def _splat_gaussians(img, xs, ys, sig, amp):  # pragma: no cover - compiled
    ny, nx = img.shape
    for k in range(xs.size):
        h = int(3.0 * sig[k]) + 1
        x0, x1 = max(int(xs[k]) - h, 0), min(int(xs[k]) + h + 2, nx)
        y0, y1 = max(int(ys[k]) - h, 0), min(int(ys[k]) + h + 2, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        inv = -0.5 / (sig[k] * sig[k])
        gx = np.empty(x1 - x0)
        for x in range(x0, x1):
            gx[x - x0] = np.exp(inv * (x - xs[k]) ** 2)
        for y in range(y0, y1):
            gy = amp[k] * np.exp(inv * (y - ys[k]) ** 2)
            for x in range(x0, x1):
                img[y, x] += gy * gx[x - x0]


@numba.njit(cache=True, nogil=True)
def _splat_spheres(img, xs, ys, radii, density):  # pragma: no cover - compiled
    """Add ``density * chord`` of hard spheres, each pixel averaged over 4 x 4 sub-pixels."""
    ny, nx = img.shape
    ss = 4
    for k in range(xs.size):
        radius = radii[k]
        r2 = radius * radius
        x0, x1 = max(int(xs[k] - radius) - 1, 0), min(int(xs[k] + radius) + 3, nx)
        y0, y1 = max(int(ys[k] - radius) - 1, 0), min(int(ys[k] + radius) + 3, ny)
        for y in range(y0, y1):
            for x in range(x0, x1):
                acc = 0.0
                for sy in range(ss):
                    dy = y - ys[k] + (sy + 0.5) / ss - 0.5
                    for sx in range(ss):
                        dx = x - xs[k] + (sx + 0.5) / ss - 0.5
                        q = r2 - dx * dx - dy * dy
                        if q > 0.0:
                            acc += np.sqrt(q)
                img[y, x] += density * 2.0 * acc / (ss * ss)


def _carbon(scene: BeadScene, j: int, ny: int, nx: int) -> NDArray[np.float64]:
    """Projected density of a carbon film under the section covering one side of a slanted edge."""
    vp = scene.view_params[j]
    c = image_centre((nx, ny))
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    px, py = xx - c[0] - vp[DX], yy - c[1] - vp[DY]
    ca, sa, s = np.cos(vp[ROT]), np.sin(vp[ROT]), vp[MAG]
    u, v = (ca * px + sa * py) / s, (-sa * px + ca * py) / s
    z = -scene.params["thickness_px"] / 2 - 4.0
    x = (u - z * np.sin(vp[TILT])) / np.cos(vp[TILT])
    dist = 0.9 * x + 0.44 * v - 0.28 * nx
    return scene.params["carbon"] / np.cos(vp[TILT]) * 0.5 * (1 + np.tanh(dist / 1.5))


def render_view(scene: BeadScene, j: int) -> NDArray[np.float32]:
    """View ``j`` of the scene as ``(rows, cols)`` float32 counts (deterministic for the scene's seed)."""
    ny, nx = scene.shape
    p = scene.params
    vp = scene.view_params[j : j + 1]
    c = image_centre((nx, ny))
    mass = np.full((ny, nx), p["slab_density"] / np.cos(vp[0, TILT]))
    blobs = predict_all(vp, scene.blob_xyz)[0] + c
    _splat_gaussians(mass, blobs[:, 0], blobs[:, 1], scene.blob_sigma * vp[0, MAG], scene.blob_amp)
    beads = predict_all(vp, scene.bead_xyz)[0] + c
    _splat_spheres(mass, beads[:, 0], beads[:, 1], scene.bead_radius_px * scene.bead_scale * vp[0, MAG],
                   scene.bead_density)
    if p.get("carbon"):
        mass += _carbon(scene, j, ny, nx)
    if p["fringe"]:  # under-focus: a bright fringe around dense objects
        mass += p["fringe"] * (mass - ndimage.gaussian_filter(mass, p.get("fringe_sigma_px", 2.0)))
    counts = p["counts"] * np.exp(-mass)
    counts = ndimage.gaussian_filter(counts, p["blur_px"])
    rng = np.random.default_rng([scene.seed, j, 7])
    if p["counts"] < 500:
        img = rng.poisson(counts).astype(np.float32)
    else:
        img = (counts + np.sqrt(counts) * rng.standard_normal(counts.shape)).astype(np.float32)
    if p.get("hot_pixels"):
        k = rng.random(img.shape) < p["hot_pixels"]
        img[k] = np.where(rng.random(int(k.sum())) < 0.8, 15.0 * p["counts"], 0.0)
    return img


def true_positions(scene: BeadScene) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``(n_views, n_beads, 2)`` true bead positions and ``(n_views, n_beads)`` visibility (whole bead in)."""
    ny, nx = scene.shape
    xy = predict_all(scene.view_params, scene.bead_xyz) + image_centre((nx, ny))
    r = scene.bead_radius_px * scene.bead_scale[None, :] * scene.view_params[:, MAG][:, None] + 1.0
    inside = (xy[..., 0] >= r) & (xy[..., 0] <= nx - 1 - r) & (xy[..., 1] >= r) & (xy[..., 1] <= ny - 1 - r)
    return xy, inside


def make_bead_series(kind: str = "plastic", size: int | tuple[int, int] = 256, n_views: int = 41,
                     tilt_range_deg: tuple[float, float] = (-60.0, 60.0), seed: int = 0, **overrides) -> BeadSeries:
    """Render a whole series of a preset in memory (see `bead_scene` for the arguments).

    About 0.1 s for 256 x 256 x 41; for stacks too large for memory, call `render_view` per view.
    """
    scene = bead_scene(kind, size, n_views, tilt_range_deg, seed, **overrides)
    images = np.stack([render_view(scene, j) for j in range(len(scene.view_params))])
    xy, visible = true_positions(scene)
    p = scene.params
    return BeadSeries(images, scene.nominal_tilt_deg.copy(), p["pixel_size_nm"], p["bead_diameter_px"], xy,
                      visible, scene.clump.copy(), scene)


def with_params(scene: BeadScene, **changes) -> BeadScene:
    """The same specimen and geometry with some imaging values changed (for example ``counts``)."""
    return replace(scene, params={**scene.params, **changes})
