"""The local WBP's block kernel against an exact per-voxel reference (numpy and scipy's bilinear sampling):
every voxel projected with the bilinear blend of its four patch matrices, the view sampled there."""

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from napari_tomoalign.reconstruction.local_warp import (
    PAD,
    LocalProjection,
    backproject_local_blocks,
    kernel_arguments,
    sheared_views,
    view_shears,
)


def patch_geometry(n_views=9, nx=96, ny=80, seed=1, shift_px=0.5, x_tilt_deg=2.5):
    """A 3 x 3 patch grid over a ``nx`` x ``ny`` stack: IMOD's projection with an X-axis tilt, each patch with
    its own tilt increment (0.2 deg) and shift (``shift_px``), as a local file gives them."""
    rng = np.random.default_rng(seed)
    tilts = np.linspace(-60, 60, n_views)
    n_p = 9
    t = np.radians(tilts[None, :] + rng.normal(0, 0.2, (n_p, n_views)))
    f = np.radians(x_tilt_deg + rng.normal(0, 0.1, (n_p, n_views)))
    m = np.zeros((n_p, n_views, 2, 4))
    m[..., 0, 0] = np.cos(t)
    m[..., 0, 1] = np.sin(f) * np.sin(t)
    m[..., 0, 2] = np.cos(f) * np.sin(t)
    m[..., 1, 1] = np.cos(f)
    m[..., 1, 2] = -np.sin(f)
    m[..., :, 3] = rng.normal(0, shift_px, (n_p, n_views, 2))
    return LocalProjection(m, (3, 3), (-nx / 3.0, -ny / 3.0), (nx / 3.0, ny / 3.0)), tilts


def reference(views, lp, n_z):
    """``(n_z, ny, nx)``: each voxel's blended matrix applied to ``(x, y, z, 1)`` and the view sampled there
    (bilinear, zero outside), summed over views."""
    n_v, ny, nx = views.shape
    z, y, x = np.meshgrid(np.arange(n_z) - (n_z - 1) / 2, np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2,
                          indexing="ij")
    gx = np.clip((x - lp.start_px[0]) / lp.spacing_px[0], 0, lp.n_patches[0] - 1)
    gy = np.clip((y - lp.start_px[1]) / lp.spacing_px[1], 0, lp.n_patches[1] - 1)
    ix, iy = np.minimum(gx.astype(int), lp.n_patches[0] - 2), np.minimum(gy.astype(int), lp.n_patches[1] - 2)
    fx, fy = gx - ix, gy - iy
    out = np.zeros(x.shape)
    point = np.stack([x, y, z, np.ones_like(x)], axis=-1)
    for v in range(n_v):
        mats = lp.matrices[:, v]
        m = sum(w[..., None, None] * mats[(iy + dy) * lp.n_patches[0] + ix + dx]
                for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                                  (1, 1, fy * fx)))
        pos = np.einsum("...ij,...j->...i", m, point)
        coords = [pos[..., 1] + (ny - 1) / 2, pos[..., 0] + (nx - 1) / 2]
        out += map_coordinates(views[v].astype(float), coords, order=1, mode="constant", cval=0.0)
    return out


def ncc(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_block_kernel_matches_the_per_voxel_reference():
    """The block kernel follows the geometry at each block's middle row (module docstring of `local_warp`):
    patches whose shifts differ by 0.2 px over 32 px leave NCC 0.9995 against the exact reference (BBa's
    local file: 0.99995, ``benchmarks/bench_local.py``)."""
    lp, _ = patch_geometry(shift_px=0.2)
    rng = np.random.default_rng(3)
    views = gaussian_filter(rng.normal(size=(9, 80, 96)), (0, 2, 2)).astype(np.float32)
    n_z = 24
    mats, grid = kernel_arguments(lp, 1)
    shear = view_shears(mats)
    vol = np.empty((n_z, 80, 96), dtype=np.float32)
    backproject_local_blocks(sheared_views(views, shear, PAD), shear, 80, 96, mats, grid, 0, vol)
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert ncc(vol[inner], ref[inner]) > 0.999
    assert np.median(np.abs(vol - ref)[inner]) < 0.02 * np.abs(ref).max()
    # a sub-range of rows is the same rows of the whole
    part = np.empty((n_z, 20, 96), dtype=np.float32)
    backproject_local_blocks(sheared_views(views, shear, PAD), shear, 80, 96, mats, grid, 30, part)
    assert ncc(part, vol[:, 30:50]) > 0.999


def test_the_block_kernel_is_used_only_where_its_error_is_small():
    """`block_error_px` measures the block kernel's largest position error; beyond `BLOCK_TOLERANCE_PX` the
    WBP takes the exact per-voxel kernel (patches that differ a lot, such as test_local_truth's)."""
    from napari_tomoalign.reconstruction.local_warp import BLOCK_TOLERANCE_PX, block_error_px

    mild, _ = patch_geometry(shift_px=0.05)
    harsh, _ = patch_geometry(shift_px=1.0)
    errors = [block_error_px(*kernel_arguments(lp, 1), 24, (96, 80)) for lp in (mild, harsh)]
    assert errors[0] < BLOCK_TOLERANCE_PX < errors[1]
