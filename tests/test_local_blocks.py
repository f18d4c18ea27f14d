"""The local WBP in blocks (patch transforms interpolated along each block) against the voxel-by-voxel kernel."""

import numpy as np
import pytest
import scipy.fft
from scipy import ndimage

from napari_tomoalign.io.imod_local import LocalTransforms
from napari_tomoalign.reconstruction.local_warp import backproject_local, kernel_arguments, local_projection
from napari_tomoalign.reconstruction.wbp import angular_weights, radial_filter, weighted_back_projection


def voxel_by_voxel(stack, tilts, lp, n_z, binning):
    """Every row filtered (scipy), then `backproject_local`: the kernel before the blocks."""
    n_v, ny, nx = stack.shape[0], stack.shape[1] // binning, stack.shape[2] // binning
    binned = stack.reshape(n_v, ny, binning, nx, binning).mean(axis=(2, 4))
    n_pad = int(2 ** np.ceil(np.log2(2 * nx)))
    half = (n_pad - nx) // 2
    padded = np.concatenate([binned, np.repeat(binned[:, :, -1:], half, 2),
                             np.repeat(binned[:, :, :1], n_pad - nx - half, 2)], 2)
    filt = radial_filter(n_pad) * angular_weights(tilts)[:, None, None]
    rows = scipy.fft.irfft(scipy.fft.rfft(padded, axis=2) * filt, n=n_pad, axis=2)[:, :, :nx].astype(np.float32)
    mats, grid = kernel_arguments(lp, binning)
    vol = np.empty((n_z, ny, nx), np.float32)
    backproject_local(rows, mats, grid, 0, vol)
    return vol


@pytest.mark.parametrize("binning", [1, 2])
def test_blocks_match_the_voxel_kernel(binning):
    rng = np.random.default_rng(5)
    size, n_views, thick = 160, 31, 64
    tilts = np.linspace(-60.0, 60.0, n_views)
    n_p = 9
    inc = np.repeat(rng.uniform(-3.0, 3.0, (n_p, 1)), n_views, axis=1) + rng.normal(0, 0.3, (n_p, n_views))
    turn = np.radians(rng.normal(0, 0.6, (n_p, n_views)))
    xf = np.zeros((n_p, n_views, 2, 3))
    xf[..., 0, 0], xf[..., 0, 1], xf[..., 1, 0], xf[..., 1, 1] = np.cos(turn), -np.sin(turn), np.sin(turn), np.cos(turn)
    xf[..., 2] = rng.normal(0, 1.5, (n_p, n_views, 2))
    xt = rng.normal(0, 0.5, (n_p, n_views))
    zf = rng.normal(0, 0.01, (n_p, n_views, 2))
    lt = LocalTransforms((3, 3), (40, 40), (40, 40), 10.0, inc, xf, xt, zf)
    lp = local_projection(lt, tilts, (size, size), x_tilt_deg=np.full(n_views, 1.0))
    stack = ndimage.gaussian_filter(rng.normal(size=(n_views, size, size)), (0, 2, 2)).astype(np.float32)
    ref = voxel_by_voxel(stack, tilts, lp, thick // binning, binning)
    got = weighted_back_projection(stack, tilts, thickness=thick, binning=binning, local=lp)
    assert got.shape == ref.shape
    scale = np.abs(ref).max()
    # The blend is taken every 8 rows, not at every row: positions differ by ~1e-3 px, which flips a view in or
    # out for a few voxels at the volume's x edges.
    d = np.abs(got - ref)
    assert np.percentile(d, 99) < 5e-3 * scale and d[:, :, 6:-6].max() < 0.1 * scale
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9999
    part = weighted_back_projection(stack, tilts, thickness=thick, binning=binning, local=lp, rows=(20, 60 // binning))
    dp = np.abs(part - got[:, 20 : 60 // binning])  # other blocks, so other pieces: the same approximation
    assert np.percentile(dp, 99) < 5e-3 * scale
