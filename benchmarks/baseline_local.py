"""The local WBP as sessions 9, 11, 12 and 14 left it, kept as `bench_local.py`'s baselines.

Session 9's path is still in the package, as the fallback of the new one (`local_errors.choose_kernel`): its
error check (`local_blocks.block_errors`), its filter (`local_blocks.filtered_sheared_views`) and its block
kernel (`local_blocks.backproject_local_blocks`: blocks of 64 rows, each lane interpolated in column and
row). `local_wbp_s9` runs that path as `local_blocks.backproject_local_views` did in session 9, for a stack
binned already, into a volume made as the WBP makes it (`bp_kernels.volume_empty`: on a cache line).
`local_wbp_s12` runs session 12's: today's error check (`local_errors.choose_slabs`), every view filtered whole
first (`local_blocks.filtered_sheared_views`), then session 12's one-row kernel (`baseline_local_rows12.py`) on them.
`local_wbp_s11` runs session 11's: the same error check and filter as session 12's, then session 11's one-row kernel
(`baseline_local_rows.py`) with session 11's one slab for all views (the thickest of 16, 12, 8 and 4 sections
within the tolerance). `local_wbp_s14` runs session 14's: the same error check, the views filtered in bands, session
14's back-projection step (`baseline_local_rows14.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from napari_tomoalign.reconstruction.bp_fft import twiddles
from napari_tomoalign.reconstruction.bp_kernels import volume_empty
from napari_tomoalign.reconstruction.local_blocks import (
    backproject_local_blocks,
    blocks_suffice,
    filtered_sheared_views,
    view_shears,
)
from napari_tomoalign.reconstruction.local_errors import (
    BUDGET_SLAB,
    choose_slabs,
    measured_errors,
    row_shears,
    uniform_slab,
)

sys.path.insert(0, str(Path(__file__).parent))
import baseline_local_rows  # noqa: E402
import baseline_local_rows12  # noqa: E402
import baseline_local_rows14  # noqa: E402
import numba  # noqa: E402


def local_wbp_s9(views, filt, mats, grid, n_z):
    """Session 9's local WBP of the binned ``views`` (its block kernel; ``filt`` from `wbp.full_filter`)."""
    n_v, n_r, n_u = views.shape
    if not blocks_suffice(mats, grid, n_z, (n_u, n_r)):
        raise ValueError("session 9's blocks do not suffice here: it ran the exact voxel kernel")
    shear = view_shears(mats)
    q = filtered_sheared_views(views, shear, filt, *twiddles(filt.shape[1]))
    vol = volume_empty((n_z, n_r, n_u))
    backproject_local_blocks(q, shear, n_r, n_u, mats, grid, 0, vol)
    return vol


def local_wbp_s11(views, filt, mats, grid, n_z):
    """Session 11's local WBP of the binned ``views``: today's error check and filter, session 11's one-row kernel
    with one slab for all views."""
    n_v, n_r, n_u = views.shape
    pos, _, err = measured_errors(mats, grid, n_z, (n_u, n_r))
    slab = min(BUDGET_SLAB, uniform_slab(err, pos))  # session 11's SLABS went up to 16
    if slab < 2:
        raise ValueError("no slab is within its error here: session 11 ran another kernel")
    shear = row_shears(mats)
    q = filtered_sheared_views(views, shear, filt, *twiddles(filt.shape[1]))
    vol = volume_empty((n_z, n_r, n_u))
    baseline_local_rows.backproject_local_rows(q, shear, n_r, n_u, mats, grid, 0, vol, slab)
    return vol


def local_wbp_s12(views, filt, mats, grid, n_z):
    """Session 12's local WBP of the binned ``views``: today's error check, the views filtered whole, session 12's
    one-row kernel with a slab per group of views."""
    n_v, n_r, n_u = views.shape
    slabs = choose_slabs(mats, grid, n_z, (n_u, n_r))
    if slabs.min() < 2:
        raise ValueError("no slab is within its error here: session 12 ran another kernel")
    shear = row_shears(mats)
    q = filtered_sheared_views(views, shear, filt, *twiddles(filt.shape[1]))
    vol = volume_empty((n_z, n_r, n_u))
    baseline_local_rows12.backproject_local_rows(q, shear, n_r, n_u, mats, grid, 0, vol, slabs)
    return vol


def local_wbp_s14(views, filt, mats, grid, n_z):
    """Session 14's local WBP of the binned ``views``: today's error check, the views filtered in bands by each run
    of blocks, session 14's back-projection step (the cells of a slab made in numba, summed by numba's loop), one
    run per thread as `local_rows.backproject_local_views` runs them."""
    n_v, n_r, n_u = views.shape
    slabs = choose_slabs(mats, grid, n_z, (n_u, n_r))
    if slabs.min() < 2:
        raise ValueError("no slab is within its error here: session 14 ran another kernel")
    shear = row_shears(mats)
    vol = volume_empty((n_z, n_r, n_u))
    threads = max(1, numba.get_num_threads())
    baseline_local_rows14.backproject_local_bands(views, shear, filt, *twiddles(filt.shape[1]), mats, grid, 0, vol, slabs,
                                                  min(threads, -(-n_r // 64)))
    return vol
