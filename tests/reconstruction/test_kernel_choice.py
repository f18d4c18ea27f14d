"""Which kernel a WBP ran, and why (`kernel_choice.KernelChoice`): BBa's local file takes the one-row kernel with its
slabs, patches that differ much the block or the exact voxel kernel, IMOD's full model its X-axis tilt's kernel; the
record is the one the kernel ran on (the volume is the one `choose_geometry`'s answer makes), said in one line."""

import numpy as np
import pytest
from reconstruction.test_local_errors import tilted_patches
from support.bba_local import bba_local_projection
from support.full_model_reference import bba_like_model

from napari_tomoalign.reconstruction.bp_kernels import volume_empty
from napari_tomoalign.reconstruction.kernel_choice import KernelChoice
from napari_tomoalign.reconstruction.local_errors import SLAB_TOLERANCE_PX, choose_geometry, local_kernel
from napari_tomoalign.reconstruction.local_rows import backproject_local_views
from napari_tomoalign.reconstruction.local_warp import kernel_arguments
from napari_tomoalign.reconstruction.stream import AlignedRows, reconstruct_streamed
from napari_tomoalign.reconstruction.wbp import (
    angular_weights,
    binned_views,
    full_filter,
    radial_filter,
    weighted_back_projection,
)


def wbp_said(views, tilts, **kw):
    """The volume and the kernel `weighted_back_projection` says it ran."""
    said: list[KernelChoice] = []
    vol = weighted_back_projection(views, tilts, kernel_chosen=said.append, **kw)
    assert len(said) == 1
    return vol, said[0]


@pytest.fixture(scope="module")
def bba_local(imod_data):
    """BBa's local file as the benchmarks solve it (aligna.com's options, 5 x 5 patches) on a 512 x 512 stack, and
    the solved tilts."""
    return bba_local_projection(imod_data)


def test_bbas_local_file_says_the_one_row_kernel_and_its_slabs(bba_local):
    """BBa at bin 2 (256^2 x 64): the one-row kernel, unsheared, slabs as `choose_geometry` picks them, its slab
    error within `SLAB_TOLERANCE_PX`; the volume is the one the kernel makes on `choose_geometry`'s own answer."""
    lp, tilts = bba_local
    views = np.random.default_rng(0).normal(size=(tilts.size, 512, 512)).astype(np.float32)
    vol, kernel = wbp_said(views, tilts, thickness=128, binning=2, local=lp)
    mats, grid = kernel_arguments(lp, 2)
    shear, slabs = choose_geometry(mats, grid, 64, (256, 256))
    assert kernel.kernel == "one-row" and kernel.model == "local alignments" and not kernel.sheared
    assert kernel.name == "one-row (local alignments)"  # `batch`'s summary column
    assert np.array_equal(kernel.slab_per_view, slabs) and not shear.any()
    assert kernel.slabs == (slabs.min(), slabs.max()) and 4 <= slabs.min() < slabs.max() <= 48
    assert 0.01 < kernel.error_px <= SLAB_TOLERANCE_PX == kernel.limit_px
    lo, hi = kernel.slabs
    assert kernel.line() == (f"local alignments: one-row kernel, slabs of {lo}-{hi} sections (slab error"
                             f" {kernel.error_px:.2g} px, within 0.15)")
    filt = full_filter(radial_filter(512), angular_weights(tilts).astype(np.float32))
    ref = volume_empty((64, 256, 256))
    backproject_local_views(binned_views(views, np.arange(tilts.size), 2), filt, mats, grid, ref, 0)  # as before
    assert np.array_equal(vol, ref)


@pytest.mark.parametrize("shift, kind, sheared, measure, limit", [
    (0.05, "block", True, "position and slab error at 4 sections", 0.25),  # rows moving 0.044 px per section
    (1.0, "voxel", False, "position error", 0.25),  # patches 1 px apart: blocks beyond their limits
])
def test_patches_that_differ_say_the_block_or_the_voxel_kernel(shift, kind, sheared, measure, limit):
    """A 3 x 3 patch grid with an X-axis tilt of 2.5 deg: the block kernel on sheared views (no slab within its
    tolerance); shifted 1 px apart, the exact voxel kernel. Each line names the figure beyond its limit."""
    tilts = np.linspace(-60, 60, 9)
    lp = tilted_patches(9, 96, 80, shift_px=shift, x_tilt_deg=2.5 if kind == "block" else 0.0)
    views = np.random.default_rng(1).normal(size=(9, 80, 96)).astype(np.float32)
    _, kernel = wbp_said(views, tilts, thickness=24, local=lp)
    assert kernel == local_kernel(*kernel_arguments(lp, 1), 24, (96, 80))
    assert (kernel.kernel, kernel.sheared, kernel.measure, kernel.limit_px) == (kind, sheared, measure, limit)
    assert kernel.error_px > limit
    line = kernel.line()
    assert f"({measure} {kernel.error_px:.2g} px > {limit:g})" in line
    if kind == "block":
        assert line.startswith("local alignments: block kernel, sheared views, no slab within its limit")
    else:
        assert line.startswith("local alignments: exact voxel kernel, the patches differ too much for blocks")


def test_the_full_model_names_its_x_axis_tilt_and_kernel(tmp_path):
    """BBa-like X-axis tilt (2.07 +- 0.4 deg) and Z factors: `bp_full`'s exact kernel, the one-row kernel's lane drift
    beyond `full_as_local.ROUTE_LIMIT_PX`; 0.15 deg alone: the one-row kernel with its slabs. Streamed in slabs of
    rows, the same record, made once; the plain geometry says nothing."""
    tilts = np.arange(-60.0, 60.1, 3.0)
    views = np.random.default_rng(2).normal(size=(tilts.size, 64, 96)).astype(np.float32)
    x_tilt, zf = bba_like_model(tilts.size)
    _, exact = wbp_said(views, tilts, thickness=32, x_tilt_deg=x_tilt, z_factors=zf)
    assert exact.kernel == "exact" and exact.error_px > exact.limit_px == 0.05
    lo, hi = x_tilt.min(), x_tilt.max()
    assert exact.line().startswith(f"full model (X-axis tilt {lo:.3g} to {hi:.3g} deg (.xtilt minus XAXISTILT), Z factors):"
                                   " exact kernel, the one-row kernel would be off (")
    _, small = wbp_said(views, tilts, thickness=32, x_tilt_deg=0.15)
    assert small.kernel == "one-row" and small.error_px <= 0.05 and small.slabs[0] >= 4
    assert small.line().startswith("full model (X-axis tilt 0.15 deg (.xtilt minus XAXISTILT)): one-row kernel, slabs of ")
    res = reconstruct_streamed(AlignedRows(views, np.arange(tilts.size), 1), tilts, tmp_path / "s.mrc", thickness=32,
                               x_tilt_deg=0.15, slab=32)
    assert res.kernel == small and res.slab_rows == 32
    _, plain = wbp_said(views, tilts, thickness=32)
    assert plain.kernel == "plain" and plain.line() == "" and plain.name == "plain" and exact.name == "exact (full model)"
