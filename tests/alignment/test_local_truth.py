"""Local alignments against known truth: a simulated series whose geometry varies across the field.

- The solve: one region of the specimen moves on its own from view to view (a smooth field of random
  per-view shifts, as beam-induced motion does). The global model cannot follow it; the patches can:
  their residuals drop and the shifts of the patch in that region follow the true motion.
- The back-projection: a stack aligned with known local geometry (per patch tilt increments, turns
  and shifts, blended between patch centres as IMOD's ``tilt`` blends them). The WBP with the local
  file puts every bead back at its true 3-D position; the global WBP does not.
"""

import numpy as np
import pytest

from napari_tomoalign.alignment.local import local_alignments
from napari_tomoalign.alignment.local_options import LocalOptions
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.io.imod_local import LocalTransforms
from napari_tomoalign.reconstruction.local_warp import local_projection
from napari_tomoalign.reconstruction.wbp import weighted_back_projection

SIZE = 256


def _spread_points(rng, n, half, gap):
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform(-half, half, 2)
        if all(np.hypot(*(p - q)) >= gap for q in pts):
            pts.append(p)
    return np.array(pts)


def _moving_region_series(seed=1, n_views=41, n_beads=60, motion_px=1.5, noise_px=0.05):
    """Observations of beads on two surfaces; beads left of centre move by ``weight * jitter_j`` in view j."""
    rng = np.random.default_rng(seed)
    tilts = np.linspace(-60.0, 60.0, n_views)
    xy = _spread_points(rng, n_beads, SIZE / 2 - 24, 16)
    xyz = np.column_stack([xy, np.where(rng.random(n_beads) < 0.5, -25.0, 25.0) + rng.normal(0, 2, n_beads)])
    weight = np.exp(-((xyz[:, 0] + SIZE / 4) ** 2 + xyz[:, 1] ** 2) / (2 * (SIZE / 4) ** 2))
    jitter = rng.normal(0, motion_px, (n_views, 2))
    th = np.radians(tilts)[:, None]
    u = xyz[:, 0] * np.cos(th) + xyz[:, 2] * np.sin(th) + jitter[:, :1] * weight
    v = xyz[:, 1] + jitter[:, 1:] * weight
    alpha = np.radians(-8.0 + rng.normal(0, 0.2, n_views))[:, None]
    shift = rng.normal(0, 4, (n_views, 2))
    c = (SIZE - 1) / 2
    pos = np.stack([np.cos(alpha) * u - np.sin(alpha) * v + shift[:, :1] + c,
                    np.sin(alpha) * u + np.cos(alpha) * v + shift[:, 1:] + c], axis=-1)
    obs = pos + rng.normal(0, noise_px, pos.shape)
    view = np.repeat(np.arange(n_views), n_beads)
    marker = np.tile(np.arange(n_beads), n_views)
    return tilts, view, marker, obs.reshape(-1, 2), jitter, weight, alpha[:, 0]


def test_patches_follow_a_moving_region():
    tilts, view, marker, xy, jitter, weight, alpha = _moving_region_series()
    al = align_markers(view, marker, xy, tilts, (SIZE, SIZE), warn=False)
    opts = LocalOptions(n_patches=(3, 3), fix_xyz=True, codes={"tilt": 5, "rotation": 3, "magnification": 3},
                        groupings={"tilt": 5.0, "rotation": 6.0, "magnification": 7.0})
    la = local_alignments(view, marker, xy, tilts, al, opts)
    assert la.mean_residual_px < 0.8 * al.mean_residual_px
    # The left-middle patch sits on the moving region: its per-view shifts, taken back to the specimen
    # frame, follow the true motion there (the global shifts follow the field's mean).
    patch = next(p for p in la.patches if (p.patch.ix, p.patch.iy) == (0, 1))
    d = patch.view_params[:, 3:5] - al.full_params[:, 3:5]
    ca, sa = np.cos(alpha), np.sin(alpha)
    d_specimen = np.stack([ca * d[:, 0] + sa * d[:, 1], -sa * d[:, 0] + ca * d[:, 1]], axis=1)
    true = jitter - jitter.mean(axis=0)
    for k in (0, 1):
        assert np.corrcoef(d_specimen[:, k], true[:, k])[0, 1] > 0.9


def _render(positions, shape, sigma=1.3):
    """``(n_views, ny, nx)`` images with a Gaussian bead at each ``(n_views, n_beads, 2)`` position."""
    img = np.zeros((len(positions),) + shape, np.float32)
    off = np.arange(-5, 6)
    for j, pts in enumerate(positions):
        for x, y in pts:
            ix, iy = int(round(x)), int(round(y))
            g = np.exp(-((off[None, :] + ix - x) ** 2 + (off[:, None] + iy - y) ** 2) / (2 * sigma**2))
            img[j, iy - 5 : iy + 6, ix - 5 : ix + 6] += g
    return img


def _peak_centroid(vol, guess):
    """Sub-voxel position (x, y, z), centred, of the brightest blob within 5 voxels of ``guess``."""
    nz, ny, nx = vol.shape
    c = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2])
    i = np.round(guess + c).astype(int)
    win = vol[i[2] - 5 : i[2] + 6, i[1] - 5 : i[1] + 6, i[0] - 5 : i[0] + 6]
    k = np.array(np.unravel_index(np.argmax(win), win.shape)) + i[::-1] - 5
    blob = (vol[k[0] - 3 : k[0] + 4, k[1] - 3 : k[1] + 4, k[2] - 3 : k[2] + 4] - 0.5 * win.max()).clip(0)
    zz, yy, xx = np.mgrid[-3:4, -3:4, -3:4]
    return np.array([(blob * xx).sum(), (blob * yy).sum(), (blob * zz).sum()]) / blob.sum() + k[::-1] - c


@pytest.mark.parametrize("binning", [1, 2])
def test_local_wbp_puts_beads_back_where_they_are(binning):
    rng = np.random.default_rng(3)
    size, n_views, thick = 192, 41, 96
    tilts = np.linspace(-60.0, 60.0, n_views)
    grid = np.stack(np.meshgrid(np.linspace(-64, 64, 5), np.linspace(-64, 64, 5)), -1).reshape(-1, 2)
    xyz = np.column_stack([grid + rng.uniform(-4, 4, grid.shape), np.tile([-30.0, 30.0], 13)[:25]])
    # Known local geometry on a 3 x 3 grid: per patch a tilt increment, per patch and view a small turn
    # and shift of the refinement transform.
    n_p = 9
    inc = np.repeat(rng.uniform(-3.5, 3.5, (n_p, 1)), n_views, axis=1) + rng.normal(0, 0.3, (n_p, n_views))
    turn = np.radians(rng.normal(0, 0.6, (n_p, n_views)))
    xf = np.zeros((n_p, n_views, 2, 3))
    xf[..., 0, 0], xf[..., 0, 1], xf[..., 1, 0], xf[..., 1, 1] = np.cos(turn), -np.sin(turn), np.sin(turn), np.cos(turn)
    xf[..., 2] = rng.normal(0, 1.0, (n_p, n_views, 2))
    lt = LocalTransforms((3, 3), (48, 48), (48, 48), 10.0, inc, xf)
    lp = local_projection(lt, tilts, (size, size))
    # Where the beads land: the same blend of patch matrices the back-projection uses.
    gx = np.clip((xyz[:, 0] - lp.start_px[0]) / lp.spacing_px[0], 0, 2)
    gy = np.clip((xyz[:, 1] - lp.start_px[1]) / lp.spacing_px[1], 0, 2)
    ix, iy = np.minimum(gx.astype(int), 1), np.minimum(gy.astype(int), 1)
    fx, fy = gx - ix, gy - iy
    h = np.column_stack([xyz, np.ones(len(xyz))])
    pos = np.zeros((n_views, len(xyz), 2))
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        m = lp.matrices[(iy + dy) * 3 + ix + dx]  # (beads, views, 2, 4)
        pos += w[None, :, None] * np.einsum("bvij,bj->vbi", m, h)
    stack = _render(pos + (size - 1) / 2, (size, size))
    glob = weighted_back_projection(stack, tilts, thickness=thick, binning=binning)
    loc = weighted_back_projection(stack, tilts, thickness=thick, binning=binning, local=lp)
    err = {}
    for name, vol in (("global", glob), ("local", loc)):
        found = np.array([_peak_centroid(vol, p / binning) for p in xyz]) * binning
        err[name] = np.linalg.norm(found - xyz, axis=1)
    assert np.mean(err["local"]) < 0.25 * binning
    assert np.mean(err["global"]) > 3 * np.mean(err["local"])
