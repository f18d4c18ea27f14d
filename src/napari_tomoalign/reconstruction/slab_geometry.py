"""Where a slab of output rows falls in the views, for `stream`: through IMOD's global or full model (one map per view,
`wbp.projection_coefficients`) or through local alignments (`local_slab`), with the kernel chosen once on the whole
views, so that every slab takes the whole tomogram's, and the rows each slab reaches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .full_as_local import full_model_kernel, thread_bytes
from .kernel_choice import KernelChoice
from .local_errors import local_kernel
from .local_slab import backproject_local_slab, local_rows_needed, local_thread_bytes
from .local_warp import LocalProjection, kernel_arguments
from .wbp import backproject_views, projection_coefficients, rows_needed


@dataclass
class SlabGeometry:
    """Where a slab's voxels fall in the views: IMOD's global or full model (``coef``, `wbp.projection_coefficients`)
    or local alignments (``mats``, ``grid``, `local_warp.kernel_arguments` of the whole views), with the kernel chosen
    once for every slab and what each of its threads holds (`slab_rows`' ``per_thread``)."""

    n_z: int
    shape: tuple[int, int]
    kernel: KernelChoice
    per_thread: int
    coef: NDArray[np.float64] | None = None
    mats: NDArray[np.float64] | None = None
    grid: NDArray[np.float64] | None = None

    @classmethod
    def of(cls, tilts: NDArray[np.float64], shape: tuple[int, int], n_z: int, b: int, x_tilt_deg: Any, z_factors: Any,
           shift_px: tuple[float, float], local: LocalProjection | None) -> SlabGeometry:
        ny, nx = shape
        if local is None:
            coef = projection_coefficients(tilts, shape, n_z, binning=b, x_tilt_deg=x_tilt_deg, z_factors=z_factors,
                                           shift_px=shift_px)
            kernel = full_model_kernel(coef, ny, nx, n_z, x_tilt_deg=x_tilt_deg, z_factors=z_factors)
            return cls(n_z, shape, kernel, thread_bytes(coef, nx, n_z, kernel), coef=coef)
        mats, grid = kernel_arguments(local.shifted((shift_px[0] / b, shift_px[1] / b)), 1)
        kernel = local_kernel(mats, grid, n_z, (nx, ny))
        return cls(n_z, shape, kernel, local_thread_bytes(mats, grid, nx, n_z, ny, kernel), mats=mats, grid=grid)

    def rows_needed(self, y0: int, y1: int) -> tuple[int, int]:
        """The rows of the views that the output rows ``y0 .. y1`` reach."""
        ny, nx = self.shape
        if self.coef is not None:
            return rows_needed(self.coef, (y0, y1), self.n_z, ny)
        assert self.mats is not None and self.grid is not None
        return local_rows_needed(self.mats, self.grid, (y0, y1), self.n_z, ny, nx)

    def back_project(self, views: NDArray[np.float32], filt: NDArray[np.float32], vol: NDArray[np.float32], y0: int,
                     r0: int, should_stop: Callable[[], bool] | None) -> None:
        """``vol`` (output rows from ``y0``) from ``views``, which hold the views' rows from ``r0``."""
        ny = self.shape[0]
        if self.coef is not None:
            backproject_views(views, filt, self.coef, vol, y0, None, should_stop, stack_row0=r0, n_rows_all=ny,
                              kernel=self.kernel)
        else:
            assert self.mats is not None and self.grid is not None
            backproject_local_slab(views, filt, self.mats, self.grid, vol, y0, ny, r0, self.kernel, should_stop)
