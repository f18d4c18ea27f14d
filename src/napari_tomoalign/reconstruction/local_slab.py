"""The local WBP of a slab of rows from only the rows of the views it reaches, so that `stream` makes a tomogram
with local alignments in bounded memory, as it makes the global one.

The local kernels (`local_rows.backproject_local_views`) take views whose rows are all held and centre a voxel's
``y`` and a view's rows on them. Holding rows ``row0 .. row0 + n_held`` of views of ``n_rows_all`` rows moves both
centres by ``d = row0 + (n_held - 1) / 2 - (n_rows_all - 1) / 2``: a voxel's true ``y`` is the held one plus ``d`` and
its true centred row is the held one plus ``d``, so each patch matrix takes ``M[:, 1] d`` into its shifts and its row
shift loses ``d``, and the patch grid's first centre in y moves by ``-d`` (`held_rows_geometry`; what
`full_as_local.full_model_geometry` does for the full model's matrices). The rows a slab reaches
(`local_rows_needed`) bound every patch's map over the slab's box: a voxel blends the maps of the patches around
it with weights that sum to one, and each map is affine, so its rows lie between the patches' extremes at the box's
corners; `MARGIN_ROWS` more each way cover what the kernels interpolate and fit beyond them.

The kernel and its slabs of sections are chosen once on the whole views (`local_errors.local_kernel`), so every slab of
rows takes the whole tomogram's. Slabs of whole blocks of `local_blocks.ROWS` rows then equal the whole volume but for
the float32 rounding of the rows' positions, counted from another first row (BBa's local file at bin 2: an RMS
difference of 3-6e-5 of the volume's standard deviation, where the one-row kernel itself is 2-9e-2 off the exact voxel
kernel; the slab that holds the views' first row is equal to the bit), and where the views are sheared, to the
shear's interpolation (centred on the rows held).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .kernel_choice import KernelChoice
from .local_blocks import ROWS
from .local_rows import backproject_local_views, thread_bytes_of

MARGIN_ROWS = 8  # rows held beyond those a slab's voxels project to (the kernels interpolate one row on, and their
# bands ask `local_band.MARGIN` = 3 more)


def held_rows_geometry(mats: NDArray[np.float64], grid: NDArray[np.float64], n_rows_all: int, row0: int,
                       n_held: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(mats, grid)`` (`local_warp.kernel_arguments`' for views of ``n_rows_all`` rows) for views of which only rows
    ``row0 .. row0 + n_held`` are held (module docstring)."""
    d = row0 + (n_held - 1) / 2.0 - (n_rows_all - 1) / 2.0
    m = mats.copy()
    m[..., 3] += mats[..., 1] * d
    m[..., 7] += mats[..., 5] * d - d
    g = np.asarray(grid, dtype=np.float64).copy()
    g[3] -= d
    return m, g


def local_rows_needed(mats: NDArray[np.float64], grid: NDArray[np.float64], rows: tuple[int, int], n_z: int,
                      n_rows_all: int, n_x: int) -> tuple[int, int]:
    """``(first, stop)``: the rows of the views (of ``n_rows_all`` rows) that the volume's rows ``rows`` (view rows; ``n_z``
    sections, ``n_x`` columns) reach through the local geometry ``mats``, ``grid``, with `MARGIN_ROWS` more each way."""
    cy = (n_rows_all - 1) / 2.0
    xc = np.array([-(n_x - 1) / 2.0, (n_x - 1) / 2.0])
    yc = np.array([rows[0], rows[1] - 1], dtype=float) - cy
    zc = np.array([-(n_z - 1) / 2.0, (n_z - 1) / 2.0])
    x, y, z = (a.ravel() for a in np.meshgrid(xc, yc, zc, indexing="ij"))
    r = mats[..., 4, None] * x + mats[..., 5, None] * y + mats[..., 6, None] * z + mats[..., 7, None] + cy
    return max(0, int(np.floor(r.min())) - MARGIN_ROWS), min(n_rows_all, int(np.floor(r.max())) + 2 + MARGIN_ROWS)


def local_thread_bytes(mats: NDArray[np.float64], grid: NDArray[np.float64], n_x: int, n_z: int, n_rows_all: int,
                       kernel: KernelChoice) -> int:
    """What each thread of the local WBP holds where it runs (`stream.slab_rows`' ``per_thread``): the one-row kernel's
    band and resampled rows (`local_rows.thread_bytes_of`) for the rows a block of `ROWS` rows reaches. The block and
    voxel kernels (patches too different for the one-row kernel) filter the held rows whole first: a copy of the
    slab's views' rows that ``per_thread`` does not count (about 6 % of a slab at 61 views and 1000 sections)."""
    first, stop = local_rows_needed(mats, grid, (0, min(ROWS, n_rows_all)), n_z, n_rows_all, n_x)
    return thread_bytes_of(mats.shape[1], n_x, stop - first)


def backproject_local_slab(views: NDArray[np.float32], filt: NDArray[np.float32], mats: NDArray[np.float64],
                           grid: NDArray[np.float64], vol: NDArray[np.float32], row_first: int, n_rows_all: int,
                           stack_row0: int, kernel: KernelChoice,
                           should_stop: Callable[[], bool] | None = None) -> NDArray[np.float64]:
    """``vol`` (its row ``k`` the views' row ``row_first + k``) from ``views``, which hold rows ``stack_row0 ..`` of views
    of ``n_rows_all`` rows (at least `local_rows_needed` of the volume's rows), with the whole views' local geometry
    ``mats``, ``grid`` and its ``kernel`` (`local_errors.local_kernel` of them). Returns the float64 sums of the rows read
    (`local_rows.backproject_local_views`)."""
    m, g = held_rows_geometry(mats, grid, n_rows_all, stack_row0, views.shape[1])
    return backproject_local_views(views, filt, m, g, vol, row_first - stack_row0, None, should_stop, kernel.geometry)
