"""Local alignments in the back-projection, as IMOD's ``tilt`` applies a ``LOCALFILE``.

For every patch ``p`` and view ``j`` a tomogram point ``(x, y, z)`` (centred pixels of the aligned
stack; z from the tilt axis) is projected with the patch's angles (global tilt and X-tilt plus the
file's increments; Z factors optionally) and moved by the patch's refinement transform into the
globally aligned stack (`../shared/docs/imod-full-model.md`, section 4.4)::

    proj = [x cos t + (y sin f + z cos f) sin t + z xzf,  y cos f - z sin f + z yzf]
    pos  = A proj + D                                      (about the image centre)

This is linear in ``(x, y, z, 1)``, so each patch and view is one ``2 x 4`` matrix
(`LocalProjection`). A voxel takes the bilinear blend of the matrices of the four patch centres around
its ``(x, y)`` (clamped at the grid's edges; z plays no part), and the blend is linear in z: per voxel
column and view it is a fixed position plus a z slope. The back-projection then samples the filtered
view at that position with bilinear interpolation in both x and y, since a local transform moves
points across rows as well.

The fast back-projections are `local_rows` (one row per volume row, in slabs of sections) and `local_blocks`
(blocks of rows); `backproject_local` here is the exact kernel, voxel by voxel, which the WBP takes where
the blocks' position error would be too large (`local_errors.choose_kernel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from ..io.imod_local import LocalTransforms


@dataclass(frozen=True)
class LocalProjection:
    """Per patch and view, the matrix of the module docstring, and where the patch centres lie.

    Attributes
    ----------
    matrices
        ``(n_patches, n_views, 2, 4)``: ``[x, y, z, 1]`` (centred pixels of the aligned stack) to the
        centred position in the globally aligned stack; patches X fastest.
    n_patches
        ``(nX, nY)``.
    start_px, spacing_px
        First patch centre (x, y), centred pixels of the aligned stack, and the spacing of centres.
    """

    matrices: NDArray[np.float64]
    n_patches: tuple[int, int]
    start_px: tuple[float, float]
    spacing_px: tuple[float, float]

    def subset(self, views: NDArray[np.intp]) -> LocalProjection:
        return LocalProjection(self.matrices[:, views], self.n_patches, self.start_px, self.spacing_px)

    def shifted(self, shift_px: tuple[float, float]) -> LocalProjection:
        """The geometry of a volume shifted by ``(x, z)`` pixels of the aligned stack (`wbp`'s ``shift_px``, IMOD's
        ``SHIFT`` with z negated: the volume's voxel ``(x, y, z)`` holds the specimen's ``(x - sx, y, z - sz)``).
        Each matrix takes the specimen's point, ``M [x - sx, y, z - sz, 1]``, and the patch centres move with the
        specimen (a voxel blends the patches around the specimen point it holds); z plays no part in the blend."""
        sx, sz = (float(v) for v in shift_px)
        if sx == 0.0 and sz == 0.0:
            return self
        mats = self.matrices.copy()
        mats[..., 3] -= mats[..., 0] * sx + mats[..., 2] * sz
        return LocalProjection(mats, self.n_patches, (self.start_px[0] + sx, self.start_px[1]), self.spacing_px)


def local_projection(
    lt: LocalTransforms,
    tilt_angles_deg: NDArray[np.float64],
    image_size: tuple[int, int],
    *,
    x_tilt_deg: NDArray[np.float64] | None = None,
    use_z_factors: bool = True,
    local_scale: float = 1.0,
) -> LocalProjection:
    """The `LocalProjection` of a local alignment file for an aligned stack of ``image_size`` ``(nx, ny)``.

    Parameters
    ----------
    lt
        The local file (`io.imod_local.read_local_transforms`, or ``LocalAlignments.local_transforms``).
    tilt_angles_deg, x_tilt_deg
        ``(n_views,)`` the global solved tilts (and X-tilts, default 0) the increments add to.
    use_z_factors
        Apply the file's Z factors when it has them (the default). IMOD's ``tilt`` applies them only when
        it is also given a global Z-factor file; this WBP has no global Z factors, and without them a
        patch with stretch or skew misplaces points by up to ``z`` times about 1e-3.
    local_scale
        The local file's pixel size over the aligned stack's (IMOD's ``LOCALSCALE``): 0.5 for a stack
        binned by 2 relative to the alignment. Patch centres and transform shifts are scaled by it.
    """
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    if tilts.shape != (lt.n_views,):
        raise ValueError(f"{tilts.size} tilt angles for a local file of {lt.n_views} views; they must match")
    if min(lt.n_patches) < 2:
        raise ValueError(f"a local file needs at least 2 patches per axis to interpolate, not {lt.n_patches}")
    xt = np.zeros_like(tilts) if x_tilt_deg is None else np.asarray(x_tilt_deg, dtype=float)
    t = np.radians(tilts[None, :] + lt.tilt_increment_deg)
    f = np.radians(xt[None, :] + (lt.x_tilt_increment_deg if lt.x_tilt_increment_deg is not None else 0.0))
    zf = lt.z_factors if (use_z_factors and lt.z_factors is not None) else np.zeros(t.shape + (2,))
    proj = np.zeros(t.shape + (2, 4))
    proj[..., 0, 0] = np.cos(t)
    proj[..., 0, 1] = np.sin(f) * np.sin(t)
    proj[..., 0, 2] = np.cos(f) * np.sin(t) + zf[..., 0]
    proj[..., 1, 1] = np.cos(f)
    proj[..., 1, 2] = -np.sin(f) + zf[..., 1]
    mats = lt.transforms[..., :2] @ proj
    mats[..., 3] += lt.transforms[..., 2] * local_scale
    half = np.asarray(image_size, dtype=float) / 2.0
    start = (lt.start[0] * local_scale - half[0], lt.start[1] * local_scale - half[1])
    return LocalProjection(mats, lt.n_patches, start, (lt.spacing[0] * local_scale, lt.spacing[1] * local_scale))


def kernel_arguments(lp: LocalProjection, binning: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The kernel's ``(n_patches, n_views, 8)`` matrices and grid ``(nX, nY, x0, y0, dx, dy)`` in binned pixels."""
    mats = lp.matrices.copy()
    mats[..., 3] /= binning  # x, y, z are binned as the output is, so only the shift changes
    grid = np.array([lp.n_patches[0], lp.n_patches[1], lp.start_px[0] / binning, lp.start_px[1] / binning,
                     lp.spacing_px[0] / binning, lp.spacing_px[1] / binning])
    return np.ascontiguousarray(mats.reshape(mats.shape[0], mats.shape[1], 8)), grid


@numba.njit(inline="always")
def _cell(g, n):  # pragma: no cover - compiled
    """Lower grid index and fraction of position ``g`` on a grid of ``n`` nodes, clamped to the edges."""
    g = min(max(g, 0.0), n - 1.0)
    i = min(int(g), n - 2)
    return i, g - i


@numba.njit(inline="always")
def row_geometry(mats, grid, v, y, cx, cr, cz, cu, u0, du, r0, dr, x_step=1):  # pragma: no cover - compiled
    """For one row ``y`` (centred) and view ``v``: the position ``(u0[i], r0[i])`` at z = 0 (view pixels) of
    voxel column ``x = i x_step`` and its change per section ``(du, dr)``, from the bilinear blend of the
    four patch matrices around it (module docstring)."""
    nx_p, ny_p = int(grid[0]), int(grid[1])
    iy, fy = _cell((y - grid[3]) / grid[5], ny_p)
    row = np.empty((nx_p, 8))  # the matrices blended in y, one per patch column of the grid
    for ix in range(nx_p):
        p = iy * nx_p + ix
        for k in range(8):
            row[ix, k] = (1 - fy) * mats[p, v, k] + fy * mats[p + nx_p, v, k]
    for x in range(u0.size):
        xc = x * x_step - cx
        ix, fx = _cell((xc - grid[2]) / grid[4], nx_p)
        a, b = row[ix], row[ix + 1]
        du[x] = (1 - fx) * a[2] + fx * b[2]
        dr[x] = (1 - fx) * a[6] + fx * b[6]
        u0[x] = ((1 - fx) * a[0] + fx * b[0]) * xc + ((1 - fx) * a[1] + fx * b[1]) * y + (1 - fx) * a[3] + fx * b[3] \
            + cu - du[x] * cz
        r0[x] = ((1 - fx) * a[4] + fx * b[4]) * xc + ((1 - fx) * a[5] + fx * b[5]) * y + (1 - fx) * a[7] + fx * b[7] \
            + cr - dr[x] * cz


@numba.njit(inline="always")
def _z_range(a0, d, top, lo, hi):  # pragma: no cover - compiled
    """Narrow ``[lo, hi]`` to the z where ``a0 + d z`` lies in ``[0, top]``."""
    if d > 1e-12:
        return max(lo, -a0 / d), min(hi, (top - a0) / d)
    if d < -1e-12:
        return max(lo, (top - a0) / d), min(hi, -a0 / d)
    if a0 < 0.0 or a0 > top:
        return lo, -1.0
    return lo, hi


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def backproject_local(views, mats, grid, row0, vol):  # pragma: no cover - compiled
    """``vol[z, y, x] = sum over views of views[v](position of (x, y, z))`` with local geometry, voxel by voxel
    (exact; `local_blocks.backproject_local_blocks` is the fast kernel where the geometry allows it).

    ``views`` ``(n_views, n_rows, n_cols)`` are the filtered views (all rows, binned), ``mats`` and
    ``grid`` come from `kernel_arguments`, ``row0`` is the first row of the full volume in ``vol``.
    For each voxel column the z range whose positions fall inside the view is found first, so that
    the inner loop has no test.
    """
    n_v, n_r, n_u = views.shape
    n_z, n_y, n_x = vol.shape
    nx_p, ny_p = int(grid[0]), int(grid[1])
    cx, cr, cz, cu = (n_x - 1) / 2.0, (n_r - 1) / 2.0, (n_z - 1) / 2.0, (n_u - 1) / 2.0
    for yy in numba.prange(n_y):
        y = yy + row0 - cr
        iy, fy = _cell((y - grid[3]) / grid[5], ny_p)
        acc = np.zeros((n_x, n_z), dtype=np.float32)
        m = np.empty(8)
        for v in range(n_v):
            img = views[v]
            for x in range(n_x):
                xc = x - cx
                ix, fx = _cell((xc - grid[2]) / grid[4], nx_p)
                p00 = iy * nx_p + ix
                w00, w01, w10, w11 = (1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx
                for k in range(8):
                    m[k] = (w00 * mats[p00, v, k] + w01 * mats[p00 + 1, v, k] + w10 * mats[p00 + nx_p, v, k]
                            + w11 * mats[p00 + nx_p + 1, v, k])
                du, dr = m[2], m[6]
                u0 = m[0] * xc + m[1] * y + m[3] + cu - du * cz
                r0 = m[4] * xc + m[5] * y + m[7] + cr - dr * cz
                lo, hi = _z_range(u0, du, n_u - 1.0, 0.0, n_z - 1.0)
                lo, hi = _z_range(r0, dr, n_r - 1.0, lo, hi)
                row = acc[x]
                for z in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
                    u = u0 + du * z
                    r = r0 + dr * z
                    iu = min(max(int(u), 0), n_u - 2)
                    ir = min(max(int(r), 0), n_r - 2)
                    fu = np.float32(u - iu)
                    fr = np.float32(r - ir)
                    a = img[ir, iu] + fu * (img[ir, iu + 1] - img[ir, iu])
                    b = img[ir + 1, iu] + fu * (img[ir + 1, iu + 1] - img[ir + 1, iu])
                    row[z] += a + fr * (b - a)
        for z in range(n_z):
            for x in range(n_x):
                vol[z, yy, x] = acc[x, z]
