"""The local WBP's choice of kernel: the lines each voxel column follows at a section, how far a slab of
sections read from one section's lines is from them (`slab_errors`), and `choose_slabs`, which takes a slab of
`SLABS` per group of views within its tolerance, the block kernel (`local_blocks`) or the exact voxel kernel.

A voxel at section ``z`` of a slab reads the rows resampled for the voxel column that meets its column at
the slab's middle section ``zs`` (`local_rows`); those differ from its own by the slope of the row along that
column (the X-axis tilt, the patches' rotations) times ``z - zs``. `slab_errors` measures it per view; it is
largest at the high tilts (BBa: 0.169 px over slabs of 16 at 64 deg, 0.03 at 30 deg, 0.005 at 8 deg).
`group_slabs` gives each group of views a slab within `SLAB_TOLERANCE_PX` (and, with the block kernel's
error, `local_blocks.BLOCK_TOLERANCE_PX`), thick at the low tilts and thin at the high ones, with no more
squared error over the views than one slab for all; the block kernel where no slab is (an X-axis tilt of
3 degrees or more: its rows move by 0.05 px per section), and the exact voxel kernel where the blocks are not
within their limits.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from .bp_kernels import VIEW_GROUP
from .kernel_choice import KernelChoice, slab_range
from .local_blocks import BLOCK_TOLERANCE_PX, ERROR_X_STEP, EXTRAPOLATION_LIMIT_PX, GROUP, ROWS, view_shears
from .local_check import check_blocks_parts, lines_at

SLAB_TOLERANCE_PX = 0.15  # the largest position error a slab may add to the block kernel's (binned pixels)
SHEAR_NEGLIGIBLE_PX = 0.02  # a shear that moves a group's lanes less than this (each way) is not applied
SLABS = (48, 24, 16, 12, 8, 4)  # the slabs tried, thickest first (each divides `local_rows.Z_CHUNK`): thinner ones
# resample more than the block kernel saves
MEASURED_SLAB = 16  # `slab_errors` measures at this thickness and scales to the others
BUDGET_SLAB = 16  # `group_slabs` spends no more squared error than one slab for all of at most this (session 11's)
SLAB_NEGLIGIBLE_PX = 0.01  # a group's slab error below this is not counted in `group_slabs`' budget
JM = (ROWS - 1) / 2.0  # the middle lane of a block


@numba.njit(cache=True, fastmath=True, nogil=True)
def view_lines(geo, v, zs, lines):  # pragma: no cover - compiled
    """`lines_at` of view ``v`` of ``geo`` (`fit_block`'s)."""
    lines_at(geo[:, :, v].T, zs, lines)


@numba.njit(inline="always", nogil=True)
def at_column(lines, c, x):  # pragma: no cover - compiled
    """``(x, t)``: the voxel columns ``x, x + 1`` whose middle-lane columns bracket ``c`` (from ``x`` on, which
    the caller advances), and the fraction ``t`` of ``c`` between them (beyond the ends: extrapolated)."""
    n_x = lines.shape[1]
    while x < n_x - 2 and lines[0, x + 1] <= c:
        x += 1
    s0, s1 = lines[0, x], lines[0, x + 1]
    return x, (c - s0) / (s1 - s0) if s1 != s0 else 0.0


def row_shears(mats: NDArray[np.float64]) -> NDArray[np.float64]:
    """`local_blocks.view_shears`, or zero where it would move the lanes of a group of `GROUP` by less than
    `SHEAR_NEGLIGIBLE_PX` each way (BBa's local file: 0.011 px): the lanes follow their drift anyway, and the
    shear's interpolation smooths the views (NCC against the exact kernel 0.99578 with it, 0.99584 without)."""
    shear = view_shears(mats)
    return np.zeros_like(shear) if np.abs(shear).max() * GROUP / 2 <= SHEAR_NEGLIGIBLE_PX else shear


def measured_errors(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int],
                    shear: NDArray[np.float64] | None = None) -> tuple[float, float, NDArray[np.float64]]:
    """``(position, extrapolation, slab errors)`` (`local_blocks.block_errors`; per view at slabs of
    `MEASURED_SLAB`, the largest and the sum of squares, ``[2, view]``) over all blocks of rows of a volume of
    ``n_z`` sections on a binned ``size`` ``(nx, ny)``, with the views sheared by ``shear`` (default `row_shears`);
    on numba's threads, a run of blocks each (`local_check.check_blocks_parts`)."""
    nx, ny = size
    parts = max(1, min(numba.get_num_threads(), -(-ny // ROWS)))
    sh = row_shears(mats) if shear is None else shear
    pos, ext, err = check_blocks_parts(mats, grid, sh, n_z, nx, ny, ERROR_X_STEP, MEASURED_SLAB, parts)
    return float(pos), float(ext), err


def slab_errors(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]
                ) -> NDArray[np.float64]:
    """For each thickness of `SLABS` (sections), the largest row error (binned pixels) that reading the line
    resampled at a slab's middle section adds to the block kernel's fitted line (module docstring), over a
    volume of ``n_z`` sections on a binned ``size`` ``(nx, ny)``, the largest over the views. Measured at slabs of
    `MEASURED_SLAB` at every `ERROR_X_STEP`-th voxel column, every view, the first and last section of every
    slab and the first and last lane of every block; the error grows as ``z - zs`` does (the row's slope along
    a column of the resampled views), so a slab ``k`` times thinner or thicker has ``k`` times less or more of
    it (measured on BBa's local file at bin 1, 8 and 4 sections: 0.084 and 0.038 px, against 0.169 / 2 and
    0.169 / 4; 48 sections, view by view: at most 3 % more than 3 times the error at 16, at 58 deg)."""
    err = measured_errors(mats, grid, n_z, size)[2][0]
    return np.array([err.max() * t / MEASURED_SLAB for t in SLABS])


@numba.njit(cache=True, nogil=True)
def _pick(cost, sq, ok, lam):  # pragma: no cover - compiled
    """Per group of views, the index in `SLABS` that minimises its resampling (``cost``: its views over the
    slab) plus ``lam`` times its squared slab error (``sq``), among those allowed (``ok``); and the sum of the
    groups' squared errors there."""
    got = np.zeros(cost.shape[1], dtype=np.int64)
    total = 0.0
    for g in range(cost.shape[1]):
        best = np.inf
        for i in range(cost.shape[0]):
            score = cost[i, g] + lam * sq[i, g] if ok[i, g] else np.inf
            if score < best:
                best, got[g] = score, i
        total += sq[got[g], g]
    return got, total


@numba.njit(cache=True, nogil=True)
def _least_within(cost, sq, ok, budget):  # pragma: no cover - compiled
    """`_pick` with the smallest ``lam`` (bisection, 60 steps) whose squared error is within ``budget``: compiled,
    it was 1.4 ms of Python per WBP (3 % of the local WBP at bin 2)."""
    got, total = _pick(cost, sq, ok, 0.0)
    if total > budget:
        lo, hi = 0.0, 1.0
        while _pick(cost, sq, ok, hi)[1] > budget:
            hi *= 4.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if _pick(cost, sq, ok, mid)[1] > budget:
                lo = mid
            else:
                hi = mid
        got = _pick(cost, sq, ok, hi)[0]
    return got


def uniform_slab(err: NDArray[np.float64], pos: float) -> int:
    """The thickest of `SLABS` whose error (``err`` from `measured_errors`, scaled) is within `SLAB_TOLERANCE_PX`
    and, with the block error ``pos``, `local_blocks.BLOCK_TOLERANCE_PX` for every view; 1 where none is."""
    worst = err[0].max()
    return next((t for t in SLABS if worst * t / MEASURED_SLAB <= min(SLAB_TOLERANCE_PX, BLOCK_TOLERANCE_PX - pos)), 1)


def group_slabs(err: NDArray[np.float64], pos: float) -> NDArray[np.int64]:
    """The sections per slab of each view (the same for each group of `bp_kernels.VIEW_GROUP` views, which the
    kernel resamples together) from the views' slab errors at `MEASURED_SLAB` (``err``: `measured_errors`' largest and
    sum of squares per view) and the block error ``pos``; all 1 where no slab is within `SLAB_TOLERANCE_PX` for
    some group.

    Every group's slab is within the tolerance (as the one slab for all views was in session 11), and the
    views' summed squared slab error is no larger than with session 11's one slab for all views (the thickest
    of at most `BUDGET_SLAB` sections within the tolerance): so the low tilts' views (little error: their rows
    move little along a column) take thicker slabs, paid for by thinner ones at the high tilts, and the volume
    stays as close to the exact kernel as with one slab for all (BBa, 128 sections, against the exact voxel
    kernel: NCC 0.99985962 at bin 1, 0.99985958 with 12 sections for all; 0.99978699 at bin 2, 0.99978655; 64
    sections at bin 1: 0.99987629, 0.99987328 with 16 for all). Among those, the slabs that resample least:
    each group minimises its views over its slab plus ``lam`` times its squared error, ``lam`` the smallest
    within the budget (bisection). Per view instead of per group would resample 4 % less on BBa; groups sorted
    by error, 3 %. A group whose error is within `SLAB_NEGLIGIBLE_PX` is not counted: where no view has more, all
    take the thickest slab."""
    n_v = err.shape[1]
    starts = range(0, n_v, VIEW_GROUP)
    peak = np.array([err[0, i : i + VIEW_GROUP].max() for i in starts])
    scale = np.array(SLABS, dtype=float)[:, None] / MEASURED_SLAB
    ok = (peak * scale <= SLAB_TOLERANCE_PX) & (pos + peak * scale <= BLOCK_TOLERANCE_PX)
    if not ok.any(axis=0).all():
        return np.ones(n_v, dtype=np.int64)
    sq = np.array([err[1, i : i + VIEW_GROUP].sum() for i in starts]) * scale**2
    sq[peak * scale <= SLAB_NEGLIGIBLE_PX] = 0.0  # no geometry to follow (no X-axis tilt, no rotation): free
    cost = np.array([min(VIEW_GROUP, n_v - i) for i in starts]) / np.array(SLABS, dtype=float)[:, None]
    uniform = SLABS.index(min(BUDGET_SLAB, uniform_slab(err, pos)))
    budget = sq[uniform].sum() * (1 + 1e-9)
    got = _least_within(cost, sq, ok, budget)
    return np.repeat(np.array(SLABS, dtype=np.int64)[got], VIEW_GROUP)[:n_v]


def slabs_of(pos: float, ext: float, err: NDArray[np.float64]) -> NDArray[np.int64]:
    """`choose_slabs`' answer from the errors `measured_errors` gives: all 0 for the exact voxel kernel where the
    blocks are not within their limits (position ``pos``, extrapolation ``ext``), else `group_slabs`."""
    if pos > BLOCK_TOLERANCE_PX or ext > EXTRAPOLATION_LIMIT_PX:
        return np.zeros(err.shape[1], dtype=np.int64)
    return group_slabs(err, pos)


def choose_slabs(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int],
                 shear: NDArray[np.float64] | None = None) -> NDArray[np.int64]:
    """The sections per slab of `backproject_local_rows` for each view (`group_slabs`); all 1 for the block kernel
    (`local_blocks.backproject_local_blocks`) where no slab is within its tolerance, all 0 for the exact voxel
    kernel where the blocks are not within their limits either (`local_blocks.blocks_suffice`); the views sheared by
    ``shear`` (default `row_shears`)."""
    return slabs_of(*measured_errors(mats, grid, n_z, size, shear))


def local_kernel(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]
                 ) -> KernelChoice:
    """The kernel of the local WBP and its arguments (`kernel_choice.KernelChoice`: ``shear``, ``slab_per_view``),
    with the figure that decided it: the views unsheared where the one-row kernel is within its limits on them
    (`choose_slabs` with no shear), else `row_shears` and `choose_slabs` with it (none for the exact voxel kernel).

    The one-row kernel follows each lane's column drift itself (`local_group`), so the shear, which interpolates
    every view once more before the filter, only smooths them there: an X-axis tilt of 0.8 deg (a drift of 0.19 px
    over a group of lanes at 60 deg) gave an NCC against the exact voxel kernel of 0.99742 sheared and 0.99954
    not (session 16, 256^2 x 61 -> 64 of smoothed noise). The block kernel's lanes share a cell: it keeps it."""
    used = none = np.zeros(mats.shape[1])
    figures = measured_errors(mats, grid, n_z, size, none)
    slabs = slabs_of(*figures)
    shear = row_shears(mats)
    if slabs.min() < 2 and shear.any():
        figures = measured_errors(mats, grid, n_z, size, shear)
        slabs = slabs_of(*figures)
        used = none if slabs.min() == 0 else shear
    return kernel_record(used, slabs, *figures)


def kernel_record(shear: NDArray[np.float64], slabs: NDArray[np.int64], pos: float, ext: float,
                  err: NDArray[np.float64]) -> KernelChoice:
    """`local_kernel`'s record of the kernel ``slabs`` says (`choose_slabs`) from the errors it was chosen on
    (`measured_errors`): the slab error of the one-row kernel; for the block kernel, that of the thinnest slab beyond
    its limit; for the voxel kernel, the blocks' position error or extrapolation beyond theirs."""
    kind, thin = int(slabs.min()), SLABS[-1]

    def record(kernel: str, error: float, limit: float, measure: str) -> KernelChoice:
        return KernelChoice(kernel, "local alignments", slab_range(slabs) if kind >= 2 else (0, 0), bool(shear.any()),
                            float(error), limit, measure, shear=shear, slab_per_view=slabs)

    if kind == 0:
        if pos > BLOCK_TOLERANCE_PX:
            return record("voxel", pos, BLOCK_TOLERANCE_PX, "position error")
        return record("voxel", ext, EXTRAPOLATION_LIMIT_PX, "extrapolation")
    if kind == 1:
        e = float(err[0].max()) * thin / MEASURED_SLAB
        if e > SLAB_TOLERANCE_PX:
            return record("block", e, SLAB_TOLERANCE_PX, f"slab error at {thin} sections")
        return record("block", pos + e, BLOCK_TOLERANCE_PX, f"position and slab error at {thin} sections")
    return record("one-row", np.max(err[0] * slabs / MEASURED_SLAB), SLAB_TOLERANCE_PX, "slab error")


def choose_geometry(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]
                    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``(shear, slabs)`` of `local_kernel` (its docstring says how they are chosen)."""
    return local_kernel(mats, grid, n_z, size).geometry


def choose_kernel(mats: NDArray[np.float64], grid: NDArray[np.float64], n_z: int, size: tuple[int, int]) -> int:
    """The kernel `choose_slabs` takes: its thinnest slab (sections) for `backproject_local_rows`, 1 for the block
    kernel, 0 for the exact voxel kernel."""
    return int(choose_slabs(mats, grid, n_z, size).min())
