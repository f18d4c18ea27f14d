"""IMOD's full model (X-axis tilt, Z factors) as a local geometry of identical patches, for the local WBP's one-row
kernel (`local_rows`), which is 4-5 times faster than the full model's own kernel (`bp_full`, which samples every
lane of a block in both column and row).

The full model maps a voxel to column ``u = A0 x + A1 y + A2 z + A3`` and row ``r = B1 y + B2 z + B3``
(`wbp.projection_coefficients`): one ``2 x 4`` matrix per view, the same everywhere, which is a local geometry
whose patches are all alike (`local_warp`). `backproject_full` takes the one-row kernel, on the unsheared views,
where every lane stays within `ROUTE_LIMIT_PX` of the exact position (`one_row_kernel_applies`: the lanes' column
drift within a group of lanes, and slabs of sections thin enough; an X-axis tilt up to about 0.2 degree with Z
factors of a few 1e-3), and the caller runs `bp_full` elsewhere. The choice is made on the whole views, whatever
rows a call holds, so that a tomogram made in slabs of rows (`stream`) takes the kernel and slabs the whole one
does; slabs of whole blocks of `ROWS` rows (as `stream.slab_rows` picks them) equal the whole to float32 rounding,
other slabs to the kernel's accuracy (its blocks start at each slab's first row).

Against `bp_full` (the exact bilinear kernel), 512 x 512 x 61 -> 128 of band-limited noise (RADIAL 0.35), one
thread (session 16, `benchmarks/bench_wbp_limit.py --full`): 0.15 +- 0.05 degree with a tenth of BBa's Z factors,
NCC 0.99927 in 0.22x the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from .bp_kernels import VIEW_GROUP
from .kernel_choice import PLAIN, KernelChoice, full_model_terms, slab_range
from .local_blocks import ROWS
from .local_errors import MEASURED_SLAB, SLABS, measured_errors
from .local_rows import backproject_local_views, thread_bytes_of

PATCH_GRID = (2, 2)  # the fewest patches `local_warp` blends between; all alike here
ROUTE_LIMIT_PX = 0.05  # the most a lane may read off the exact position here (the local WBP allows 0.25 and 0.15): on
# band-limited noise (RADIAL 0.35) an X-axis tilt of 0.2 deg gave an NCC against bp_full of 0.9997, 0.5 deg 0.998
_CHOSEN: dict[bytes, KernelChoice] = {}  # the last geometry's choice (`full_model_choice`)


def full_model_geometry(coef: NDArray[np.float64], n_rows_all: int, row0: int, n_held: int, n_x: int
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(mats, grid)`` of `local_rows.backproject_local_views` (as `local_warp.kernel_arguments` makes them) for the
    full model ``coef`` on views of ``n_rows_all`` rows of which rows ``row0 .. row0 + n_held`` are held.

    The local kernel centres a voxel's ``y`` on the held rows, the full model on all of them: ``y = y' + d`` with
    ``d = row0 + (n_held - 1) / 2 - (n_rows_all - 1) / 2``; the held row is the view's row less ``row0``, and the
    columns and rows are centred on the held views, so each matrix's last column takes ``A1 d`` and ``B1 d - row0``
    and loses the centres."""
    n_v = coef.shape[0]
    d = row0 + (n_held - 1) / 2.0 - (n_rows_all - 1) / 2.0
    m = np.zeros((PATCH_GRID[0] * PATCH_GRID[1], n_v, 8))
    m[:, :, 0], m[:, :, 1], m[:, :, 2] = coef[:, 0], coef[:, 1], coef[:, 2]
    m[:, :, 3] = coef[:, 3] + coef[:, 1] * d - (n_x - 1) / 2.0
    m[:, :, 5], m[:, :, 6] = coef[:, 4], coef[:, 5]
    m[:, :, 7] = coef[:, 6] + coef[:, 4] * d - row0 - (n_held - 1) / 2.0
    grid = np.array([PATCH_GRID[0], PATCH_GRID[1], -n_x / 2.0, -n_held / 2.0, float(n_x), float(n_held)])
    return m, grid


def full_model_choice(coef: NDArray[np.float64], n_rows_all: int, n_x: int, n_z: int) -> KernelChoice:
    """The full model's kernel (`kernel_choice.KernelChoice`): the one-row kernel on the unsheared whole views, each
    group's slab the thickest within `ROUTE_LIMIT_PX`, where every lane is (`one_row_kernel_applies`); else `bp_full`'s
    exact one. Kept for the next call with the same geometry (the slabs of rows of one tomogram: the check is made
    once, not once per slab)."""
    key = np.asarray(coef, dtype=np.float64).tobytes() + np.array([n_rows_all, n_x, n_z]).tobytes()
    if key not in _CHOSEN:
        _CHOSEN.clear()
        mats, grid = full_model_geometry(coef, n_rows_all, 0, n_rows_all, n_x)
        pos, ext, err = measured_errors(mats, grid, n_z, (n_x, n_rows_all), np.zeros(coef.shape[0]))
        slabs = np.zeros(coef.shape[0], dtype=np.int64)
        for g in range(0, slabs.size, VIEW_GROUP):  # the thickest slab within the limit, per group of views
            peak = float(err[0, g : g + VIEW_GROUP].max())
            slabs[g : g + VIEW_GROUP] = next((t for t in SLABS if peak * t / MEASURED_SLAB <= ROUTE_LIMIT_PX), 0)
        _CHOSEN[key] = _record(slabs, pos + ext, err)
    return _CHOSEN[key]


def _record(slabs: NDArray[np.int64], drift: float, err: NDArray[np.float64]) -> KernelChoice:
    """`full_model_choice`'s record from the lanes' ``drift`` and the slab errors (`measured_errors`): how far the
    one-row kernel reads off the exact position, or the figure that refused it."""
    if drift <= ROUTE_LIMIT_PX and slabs.min() >= 2:
        off = max(drift, float(np.max(err[0] * slabs / MEASURED_SLAB)))
        return KernelChoice("one-row", "full model", slab_range(slabs), False, off, ROUTE_LIMIT_PX, "off by",
                            shear=np.zeros(slabs.size), slab_per_view=slabs)
    if drift > ROUTE_LIMIT_PX:
        return KernelChoice("exact", "full model", error_px=drift, limit_px=ROUTE_LIMIT_PX, measure="lane drift")
    thin = SLABS[-1]
    return KernelChoice("exact", "full model", error_px=float(err[0].max()) * thin / MEASURED_SLAB,
                        limit_px=ROUTE_LIMIT_PX, measure=f"slab error at {thin} sections")


def full_model_kernel(coef: NDArray[np.float64], n_rows_all: int, n_x: int, n_z: int, *,
                      x_tilt_deg: float | NDArray[np.float64] | None = None,
                      z_factors: NDArray[np.float64] | None = None, views: NDArray[np.intp] | None = None
                      ) -> KernelChoice:
    """The kernel `wbp.backproject_views` takes for the map ``coef`` (`wbp.projection_coefficients`) on views of
    ``n_rows_all`` rows and ``n_x`` columns into ``n_z`` sections: the plain one (`wbp.plain_geometry`), else the full
    model's (`full_model_choice`), named with the ``x_tilt_deg`` and ``z_factors`` of the ``views`` used."""
    from .wbp import plain_geometry  # wbp calls this module

    if plain_geometry(coef, n_rows_all):
        return PLAIN
    pick = slice(None) if views is None else views
    xt = x_tilt_deg if x_tilt_deg is None or np.ndim(x_tilt_deg) == 0 else np.asarray(x_tilt_deg)[pick]
    return replace(full_model_choice(coef, n_rows_all, n_x, n_z),
                   terms=full_model_terms(xt, None if z_factors is None else np.asarray(z_factors)[pick]))


def one_row_kernel_applies(coef: NDArray[np.float64], n_rows_all: int, n_x: int, n_z: int) -> bool:
    """Whether `backproject_full` takes the one-row kernel for this geometry: on the unsheared views (a shear would
    be centred on the rows a call holds, and slabs of rows would differ by its interpolation), each lane within
    `ROUTE_LIMIT_PX` of where the exact kernel reads (the lanes' column drift within a group, and slabs of sections
    thin enough)."""
    return full_model_choice(coef, n_rows_all, n_x, n_z).kernel == "one-row"


def backproject_full(stack: NDArray, filt: NDArray[np.float32], coef: NDArray[np.float64], vol: NDArray[np.float32],
                     row_first: int, n_rows_all: int, stack_row0: int,
                     progress: Callable[[int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     kernel: KernelChoice | None = None) -> NDArray[np.float64]:
    """`wbp.backproject_views` with the full model ``coef`` by the one-row kernel (``kernel``, default
    `full_model_choice`, must take it): ``stack`` holds rows ``stack_row0 ..`` of views of ``n_rows_all`` rows; the
    volume's row ``k`` is view row ``row_first + k``. Returns the float64 sums of the rows read
    (`local_rows.backproject_local_views`)."""
    n_x = stack.shape[2]
    mats, grid = full_model_geometry(coef, n_rows_all, stack_row0, stack.shape[1], n_x)
    if kernel is None:
        kernel = full_model_choice(coef, n_rows_all, n_x, vol.shape[0])
    if kernel.kernel != "one-row":
        raise ValueError("the full model's one-row kernel does not apply here: take bp_full's")
    return backproject_local_views(stack, filt, mats, grid, vol, row_first - stack_row0, progress, should_stop,
                                   kernel.geometry)


def thread_bytes(coef: NDArray[np.float64], n_x: int, n_z: int, kernel: KernelChoice) -> int:
    """What each thread of the one-row kernel holds where it runs (``kernel``, `full_model_kernel`'s) for the full
    model ``coef`` (binned; 0 for the plain geometry or `bp_full`): `local_rows.thread_bytes_of` a block of `ROWS`
    rows and those its rows move by over the sections and along the block."""
    if kernel.kernel != "one-row":
        return 0
    spread = float(np.max(np.abs(coef[:, 5]))) * n_z + float(np.max(np.abs(coef[:, 4] - 1.0))) * ROWS
    return thread_bytes_of(coef.shape[0], n_x, ROWS + int(np.ceil(spread)))
