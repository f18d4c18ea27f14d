"""The local WBP of a slab of rows from only the rows of the views it reaches (`local_slab`), against the whole
volume made from all the rows: what `stream` needs to make a tomogram with local alignments in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from support.bba_local import bba_local_projection

from napari_tomoalign.reconstruction.local_blocks import ROWS
from napari_tomoalign.reconstruction.local_errors import local_kernel
from napari_tomoalign.reconstruction.local_rows import backproject_local_views
from napari_tomoalign.reconstruction.local_slab import backproject_local_slab, local_rows_needed
from napari_tomoalign.reconstruction.local_warp import kernel_arguments
from napari_tomoalign.reconstruction.wbp import angular_weights, full_filter, radial_filter


@pytest.fixture(scope="module")
def bba_half(imod_data):
    """BBa's local file at bin 2 (256 x 256 views, 61 of them) on band-limited noise, and its filter."""
    lp, tilts = bba_local_projection(imod_data)
    rng = np.random.default_rng(2)
    views = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(61, 256, 256))) * (np.hypot(
        *np.meshgrid(np.fft.fftfreq(256), np.fft.rfftfreq(256), indexing="ij")) < 0.3)).astype(np.float32)
    filt = full_filter(radial_filter(512), angular_weights(tilts).astype(np.float32))
    return kernel_arguments(lp, 2), views, filt


@pytest.mark.parametrize("shift", [(0.0, 0.0), (9.0, -14.0)])
def test_slabs_of_whole_blocks_from_their_rows_equal_the_whole_volume(bba_half, shift):
    (mats, grid), views, filt = bba_half
    if shift != (0.0, 0.0):  # a shifted volume (IMOD's SHIFT) moves the rows the slabs reach
        mats = mats.copy()
        mats[..., 3] -= mats[..., 0] * shift[0] + mats[..., 2] * shift[1]
        mats[..., 7] -= mats[..., 4] * shift[0] + mats[..., 6] * shift[1]
    n_z = 48
    kernel = local_kernel(mats, grid, n_z, (256, 256))
    assert kernel.kernel == "one-row"
    whole = np.empty((n_z, 256, 256), np.float32)
    backproject_local_views(views, filt, mats, grid, whole, 0, geometry=kernel.geometry)
    for y0 in range(0, 256, ROWS):
        r0, r1 = local_rows_needed(mats, grid, (y0, y0 + ROWS), n_z, 256, 256)
        assert r1 - r0 <= ROWS + 40  # 64 rows, the rows BBa's patches move them by and 2 x 8 of margin (82)
        part = np.empty((n_z, ROWS, 256), np.float32)
        sums = backproject_local_slab(np.ascontiguousarray(views[:, r0:r1]), filt, mats, grid, part, y0, 256, r0, kernel)
        assert np.all(np.isfinite(sums))
        w = whole[:, y0 : y0 + ROWS]  # the same but for the rounding of rows counted from another first row:
        assert np.sqrt(np.mean((part - w) ** 2)) <= 2e-4 * w.std()  # 3-6e-5; the kernel is 2-9e-2 off the exact one
        assert np.abs(part - w).max() <= 5e-3 * np.abs(w).max()


def test_the_rows_needed_cover_every_voxels_row_and_stop_at_the_views_edges(bba_half):
    (mats, grid), _, _ = bba_half
    first, stop = local_rows_needed(mats, grid, (0, 64), 48, 256, 256)
    assert first == 0 and 64 < stop < 128
    first, stop = local_rows_needed(mats, grid, (192, 256), 48, 256, 256)
    assert 128 < first < 192 and stop == 256
    first, stop = local_rows_needed(mats, grid, (100, 101), 48, 256, 256)
    assert first < 100 < stop and stop - first < 60
