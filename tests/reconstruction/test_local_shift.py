"""The local WBP's shift (IMOD's SHIFT with a LOCALFILE; `local_warp.LocalProjection.shifted`): with every patch the
global geometry, the local volume is the global WBP's shifted volume (whose SHIFT matches IMOD's); with real patches,
an integer shift translates the unshifted local volume, patches and all."""

import numpy as np
from scipy.ndimage import gaussian_filter

from napari_tomoalign.reconstruction.local_warp import LocalProjection
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


def _patches(tilts, nx, ny, seed=0, jitter=0.0):
    """A 3 x 3 patch grid of the global projection at ``tilts``, each patch's tilt and shift jittered by ``jitter``."""
    rng = np.random.default_rng(seed)
    t = np.radians(tilts[None, :] + rng.normal(0, jitter, (9, tilts.size)))
    m = np.zeros((9, tilts.size, 2, 4))
    m[..., 0, 0], m[..., 0, 2], m[..., 1, 1] = np.cos(t), np.sin(t), 1.0
    m[..., :, 3] = rng.normal(0, 3 * jitter, (9, tilts.size, 2))
    return LocalProjection(m, (3, 3), (-nx / 3.0, -ny / 3.0), (nx / 3.0, ny / 3.0))


def _views(n, ny, nx):
    rng = np.random.default_rng(1)
    return np.stack([gaussian_filter(rng.normal(size=(ny, nx)), 1.5) for _ in range(n)]).astype(np.float32)


def _seen_by_every_view(tilts, n_z, nx, shift, margin=2.0):
    """``(n_z, nx)`` the voxels whose specimen point lies inside every view, ``margin`` pixels from its edges (the
    two kernels treat the views' edges each its own way)."""
    z = np.arange(n_z)[:, None] - (n_z - 1) / 2.0 - shift[1]
    x = np.arange(nx)[None, :] - (nx - 1) / 2.0 - shift[0]
    t = np.radians(tilts)[:, None, None]
    return np.all(np.abs(x * np.cos(t) + z * np.sin(t)) < (nx - 1) / 2.0 - margin, axis=0)


def test_the_global_geometry_in_patches_gives_the_global_shifted_volume():
    tilts = np.linspace(-60, 60, 25)
    views = _views(25, 40, 64)
    lp = _patches(tilts, 64, 40)
    for shift in ((0.0, 0.0), (6.0, -10.0), (-13.5, 7.25)):
        glob = weighted_back_projection(views, tilts, thickness=32, shift_px=shift)
        local = weighted_back_projection(views, tilts, thickness=32, shift_px=shift, local=lp)
        seen = _seen_by_every_view(tilts, 32, 64, shift)
        assert seen.sum() > 400
        np.testing.assert_allclose(local.transpose(0, 2, 1)[seen], glob.transpose(0, 2, 1)[seen],
                                   atol=1e-4 * np.abs(glob).max())


def test_an_integer_shift_translates_the_local_volume_patches_and_all():
    tilts = np.linspace(-60, 60, 25)
    views = _views(25, 40, 64)
    lp = _patches(tilts, 64, 40, jitter=0.5)
    base = weighted_back_projection(views, tilts, thickness=48, local=lp)
    sx, sz = 6, -8  # voxel (x, z) of the shifted volume holds the specimen at (x - sx, z - sz)
    moved = weighted_back_projection(views, tilts, thickness=48, local=lp, shift_px=(sx, sz))
    inner = moved[12:-12, :, 10:-10]
    want = base[12 - sz : 48 - 12 - sz, :, 10 - sx : 64 - 10 - sx]
    np.testing.assert_allclose(inner, want, atol=2e-3 * np.abs(base).max())
    assert np.abs(moved - base).max() > 0.1 * np.abs(base).max()
