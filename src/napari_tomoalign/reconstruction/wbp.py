"""Weighted back-projection (WBP) of an aligned tilt series.

Geometry (``alignment-model.md``): the aligned views have the tilt axis vertical (along y) through
the image centre. Slice ``y`` of the specimen is reconstructed from the projections
``u = x cos(theta) + z sin(theta)``, with ``x`` and ``z`` measured from the tilt axis and ``u`` from
the centre column of the view. The volume is returned as ``(z, y, x)`` so that napari shows x-y
sections, with z = 0 at the first section and the tilt axis at the middle one.

Each projection row is filtered by the discrete ramp (the band-limited Ram-Lak filter, which gets the
zero frequency right), weighted by the angular interval of its view, optionally with a Gaussian
low-pass or a SIRT-like radial filter that mimics a few SIRT iterations (Zeng, 2012) for a cleaner
preview. The filter and the back-projection run one block of slices at a time, in cache
(`bp_kernels`): for a given (z, x, view) the detector position is the same in every slice, so the
inner loop runs over y and vectorises.

IMOD's full model is honoured as its ``tilt`` does with ``XAXISTILT``/``XTILTFILE`` and
``ZFACTORFILE``: a voxel ``(x, y, z)`` (from the volume's centre) is projected to::

    u = x cos t + (y sin f + z cos f) sin t + z xzf,    r = y cos f - z sin f + z yzf

with ``t`` the view's tilt, ``f`` its X-axis tilt and ``(xzf, yzf)`` its Z factors. With local
alignments (`local_warp`) the position depends on the slice too, and a separate kernel samples each
view in both x and y.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from ..conventions import view_number
from ..errors import Cancelled
from .bp_fft import twiddles
from .bp_full import wbp_blocks_full
from .bp_kernels import BLOCK, view_sums, volume_empty, wbp_blocks
from .full_as_local import backproject_full, full_model_kernel
from .input_checks import check_finite_views, check_tilts_below_90
from .kernel_choice import KernelChoice
from .local_errors import local_kernel
from .local_rows import backproject_local_views
from .local_warp import LocalProjection, kernel_arguments
from .warp import bin_image

WEIGHTINGS = ("ramp", "sirt-like")


def angular_weights(tilt_angles_deg: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each view's share of the angular range, in radians (half the distance to its two neighbours).

    The two end views get half their one interval, plus the same again outward, so that a uniform
    series weighs every view equally.
    """
    t = np.radians(np.asarray(tilt_angles_deg, dtype=float))
    if t.size == 1:
        return np.array([np.pi])
    order = np.argsort(t)
    ts = t[order]
    gaps = np.diff(ts)
    w = np.empty_like(ts)
    w[1:-1] = (gaps[:-1] + gaps[1:]) / 2.0
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def radial_filter(
    n_pad: int,
    *,
    weighting: str = "ramp",
    sirt_iterations: int = 10,
    lowpass_cutoff: float | None = None,
    lowpass_falloff: float = 0.05,
) -> NDArray[np.float64]:
    """The ``rfft`` filter of length ``n_pad // 2 + 1`` applied to every projection row.

    ``lowpass_cutoff`` and ``lowpass_falloff`` are in cycles per pixel (0.5 is Nyquist): the filter is
    kept to the cutoff and falls off beyond it as a Gaussian of that sigma, as IMOD's radial filter.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
    n = np.arange(n_pad)
    n = np.where(n > n_pad // 2, n - n_pad, n)
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = n % 2 == 1
    h[odd] = -1.0 / (np.pi * n[odd]) ** 2
    ramp = np.real(np.fft.rfft(h))
    freq = np.fft.rfftfreq(n_pad)
    if weighting == "sirt-like":
        if sirt_iterations < 1:
            raise ValueError(f"sirt_iterations must be at least 1, not {sirt_iterations}")
        # SIRT with step a after k iterations passes (1 - (1 - a r)^k) of each frequency, with r the
        # ramp; a = 1 / max(r) keeps the step stable. Divided by a k it matches the ramp at low frequency.
        a = 1.0 / ramp.max()
        ramp = (1.0 - (1.0 - a * ramp) ** sirt_iterations) / (a * sirt_iterations)
    if lowpass_cutoff is not None:
        if not 0.0 < lowpass_cutoff <= 0.5:
            raise ValueError(f"lowpass cutoff must be in (0, 0.5] cycles/pixel, not {lowpass_cutoff}")
        beyond = np.clip(freq - lowpass_cutoff, 0.0, None)
        ramp = ramp * np.exp(-0.5 * (beyond / max(lowpass_falloff, 1e-6)) ** 2)
    return ramp


def weighted_back_projection(
    aligned: NDArray,
    tilt_angles_deg: NDArray[np.float64],
    *,
    thickness: int,
    binning: int = 1,
    weighting: str = "ramp",
    sirt_iterations: int = 10,
    lowpass_cutoff: float | None = None,
    lowpass_falloff: float = 0.05,
    rows: tuple[int, int] | None = None,
    use_view: NDArray[np.bool_] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    local: LocalProjection | None = None,
    x_tilt_deg: float | NDArray[np.float64] | None = None,
    z_factors: NDArray[np.float64] | None = None,
    shift_px: tuple[float, float] = (0.0, 0.0),
    kernel_chosen: Callable[[KernelChoice], None] | None = None,
) -> NDArray[np.float32]:
    """Reconstruct ``(z, y, x)`` from an aligned stack ``(n_views, rows, cols)`` by WBP.

    Parameters
    ----------
    aligned
        The aligned stack (tilt axis vertical through the centre); a memory map is read a block of rows
        at a time.
    tilt_angles_deg
        The tilt of each view; use the solved angles of the alignment, not the nominal ones.
    thickness
        Thickness of the volume in pixels of ``aligned`` (before binning); the output has
        ``thickness // binning`` sections.
    binning
        Integer binning in x and y, done on the views before filtering.
    weighting, sirt_iterations, lowpass_cutoff, lowpass_falloff
        See `radial_filter`; frequencies are in cycles per *binned* pixel.
    rows
        Optional ``(first, stop)`` range of binned rows (slices) to reconstruct; all by default. A NaN or
        infinite pixel of a view used is refused (naming the view); in the plain geometry and the local
        one-row kernel's only in the rows the volume reaches, which the kernel checks as it reads them.
    use_view
        Optional ``(n_views,)`` mask; views set False (for example undetermined by the fit) are left out.
    progress, should_stop
        ``progress(done, total)`` as blocks of slices are done; `Cancelled` is raised when
        ``should_stop()`` is true.
    local
        Local alignments (`local_warp.local_projection`, made for this stack's unbinned size): each voxel
        is projected with the local geometry of the patches around it, as IMOD's ``tilt`` does with a
        ``LOCALFILE``. The rows of the views filtered are those the volume's rows reach through it (all of
        them for the block and voxel kernels, `local_errors.choose_slabs`).
    x_tilt_deg
        The X-axis tilt ``f``, one value or one per view: tiltalign's X-tilt, its ``.xtilt`` file as it is.
        IMOD's ``XAXISTILT`` is *subtracted* from that (`positioning.wbp_x_tilts`), as IMOD's ``tilt`` does.
    z_factors
        ``(n_views, 2)`` IMOD's ``(xzfac, yzfac)`` per view (its ``.zfac`` file), per unbinned pixel of z.
    shift_px
        ``(x, z)`` shift of the volume in unbinned pixels (IMOD's ``SHIFT``): the output holds the
        specimen at ``x - shift_x``, ``z - shift_z``; with ``local`` too (`local_warp.LocalProjection.shifted`).
    kernel_chosen
        Called once the volume is made, with the kernel that made it and why (`kernel_choice.KernelChoice`, chosen
        once: `local_errors.local_kernel` with ``local``, else `full_as_local.full_model_kernel`).
    """
    aligned_shape = np.shape(aligned)
    if len(aligned_shape) != 3:
        raise ValueError(f"the aligned stack must be 3-D (views, rows, cols), not {len(aligned_shape)}-D")
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    if tilts.shape != (aligned_shape[0],):
        raise ValueError(f"{tilts.size} tilt angles for a stack of {aligned_shape[0]} views; they must match")
    if int(binning) != binning or binning < 1:
        raise ValueError(f"binning must be a positive integer, not {binning}")
    binning = int(binning)
    n_z = int(thickness) // binning
    if n_z < 1:
        raise ValueError(f"thickness {thickness} gives no sections at binning {binning}")
    keep = np.ones(tilts.size, bool) if use_view is None else np.asarray(use_view, bool)
    views = np.flatnonzero(keep)
    if views.size == 0:
        raise ValueError("no views to reconstruct from")
    if not np.all(np.isfinite(tilts[views])):  # a view left out may have none (undetermined by the fit: NaN)
        raise ValueError("a tilt angle is NaN or infinite; give the solved or nominal angle of every view")
    check_tilts_below_90(tilts, views)
    n_y, n_x = aligned_shape[1] // binning, aligned_shape[2] // binning
    y0, y1 = (0, n_y) if rows is None else (max(0, int(rows[0])), min(n_y, int(rows[1])))
    if y1 <= y0:
        raise ValueError(f"row range {rows} is empty for {n_y} rows")
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    filt = radial_filter(n_pad, weighting=weighting, sirt_iterations=sirt_iterations,
                         lowpass_cutoff=lowpass_cutoff, lowpass_falloff=lowpass_falloff)
    weights = angular_weights(tilts[views]).astype(np.float32)
    if local is not None:  # the local kernels sum the rows they read: only a stack not in float32 is checked first
        if type(aligned) is not np.ndarray or aligned.dtype != np.float32:
            check_finite_views(aligned, views, what="aligned stack")
        vol = volume_empty((n_z, y1 - y0, n_x))
        mats, grid = kernel_arguments(local.subset(views).shifted(shift_px), binning)
        stack = binned_views(aligned, views, binning)
        kernel = local_kernel(mats, grid, n_z, stack.shape[:0:-1])
        refuse_non_finite(aligned, views, backproject_local_views(stack, full_filter(filt, weights), mats, grid, vol, y0,
                                                                  progress, should_stop, kernel.geometry))
        if kernel_chosen is not None:
            kernel_chosen(kernel)
        return vol
    coef = projection_coefficients(tilts, (n_y, n_x), n_z, binning=binning, x_tilt_deg=x_tilt_deg,
                                   z_factors=z_factors, shift_px=shift_px)[views]
    if not checked_as_read(aligned, coef, n_y):
        check_finite_views(aligned, doubtful_views(aligned, views), what="aligned stack")
    vol = volume_empty((n_z, y1 - y0, n_x))
    stack = binned_views(aligned, views, binning)
    kernel = full_model_kernel(coef, stack.shape[1], stack.shape[2], n_z, x_tilt_deg=x_tilt_deg, z_factors=z_factors,
                               views=views)
    sums = backproject_views(stack, full_filter(filt, weights), coef, vol, y0, progress, should_stop, kernel=kernel)
    if sums is not None:
        refuse_non_finite(aligned, views, sums)
    if kernel_chosen is not None:
        kernel_chosen(kernel)
    return vol


def refuse_non_finite(aligned: NDArray, views: NDArray[np.intp], sums: NDArray[np.float64]) -> None:
    """Raise ValueError naming the view of ``aligned`` whose rows read by a kernel summed (``sums``, one per
    ``views``) to NaN or infinity: a NaN or infinite pixel in a row the volume reaches."""
    if not np.all(np.isfinite(sums)):
        bad = views[~np.isfinite(sums)]
        check_finite_views(aligned, bad, what="aligned stack")  # names the view (and says why)
        raise ValueError(f"view {view_number(int(bad[0]))} of the aligned stack gives NaN or infinite values")


def projection_coefficients(
    tilt_angles_deg: NDArray[np.float64],
    shape: tuple[int, int],
    n_z: int,
    *,
    binning: int = 1,
    x_tilt_deg: float | NDArray[np.float64] | None = None,
    z_factors: NDArray[np.float64] | None = None,
    shift_px: tuple[float, float] = (0.0, 0.0),
) -> NDArray[np.float64]:
    """``(n_views, 7)`` the map from a voxel to its place in each (binned) view, for `bp_kernels`.

    A voxel ``(x, y, z)`` from the volume's centre (binned pixels; ``shape`` the binned ``(rows, cols)``)
    goes to column ``u = A0 x + A1 y + A2 z + A3`` and row ``r = B1 y + B2 z + B3`` of the view (columns
    ``A0..A3, B1..B3``); the formula is the module docstring's, with the volume's shift folded in.
    """
    t = np.radians(np.asarray(tilt_angles_deg, dtype=float))
    n = t.size
    f = np.radians(np.broadcast_to(np.asarray(0.0 if x_tilt_deg is None else x_tilt_deg, dtype=float), (n,)))
    zf = np.zeros((n, 2)) if z_factors is None else np.asarray(z_factors, dtype=float)
    if zf.shape != (n, 2) or not np.all(np.isfinite(zf)):
        raise ValueError(f"Z factors must be finite, two per view for {n} views, not of shape {zf.shape}")
    if not np.all(np.isfinite(f)) or np.any(np.abs(f) >= np.pi / 2):
        raise ValueError("the X-axis tilt must be finite and within +-90 degrees")
    n_y, n_x = shape
    coef = np.empty((n, 7))
    coef[:, 0] = np.cos(t)
    coef[:, 1] = np.sin(f) * np.sin(t)
    coef[:, 2] = np.cos(f) * np.sin(t) + zf[:, 0]
    coef[:, 3] = (n_x - 1) / 2.0
    coef[:, 4] = np.cos(f)
    coef[:, 5] = zf[:, 1] - np.sin(f)
    coef[:, 6] = (n_y - 1) / 2.0
    sx, sz = (float(v) / binning for v in shift_px)
    coef[:, 3] -= coef[:, 0] * sx + coef[:, 2] * sz
    coef[:, 6] -= coef[:, 5] * sz
    return coef


def full_filter(filt: NDArray[np.float64], weights: NDArray[np.float32]) -> NDArray[np.float32]:
    """``(n_views, n_pad)`` the ``rfft`` filter spread over all ``n_pad`` frequencies, times each view's
    weight, over ``n_pad`` (the inverse FFT of `bp_kernels` is unscaled)."""
    n_pad = 2 * (filt.size - 1)
    k = np.arange(n_pad)
    whole = filt[np.minimum(k, n_pad - k)]
    return np.ascontiguousarray(np.asarray(weights, np.float64)[:, None] * whole[None, :] / n_pad, dtype=np.float32)


def checked_as_read(aligned: NDArray, coef: NDArray[np.float64], n_rows_all: int) -> bool:
    """Whether the plain kernel's sums of the rows it reads (`backproject_views`) stand for the finite check:
    the plain geometry on a float32 array in memory. Any other input is looked at first (`doubtful_views`):
    a memory map view by view, a float64 beyond float32 before its cast."""
    return type(aligned) is np.ndarray and aligned.dtype == np.float32 and plain_geometry(coef, n_rows_all)


def doubtful_views(aligned: NDArray, views: NDArray[np.intp]) -> NDArray[np.intp]:
    """The ``views`` that `check_finite_views` must look at: for a float32 array in memory, those whose sum (one
    pass, on all the threads) is not finite; otherwise all of them (a memory map is read one view at a time)."""
    if type(aligned) is not np.ndarray or aligned.dtype != np.float32:
        return views
    return views[~np.isfinite(view_sums(aligned, views))]


def binned_views(aligned: NDArray, views: NDArray[np.intp], binning: int) -> NDArray:
    """The views to use, binned, as an array the kernels read (the input itself when nothing changes)."""
    a = aligned
    if (binning == 1 and isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
            and views.size == a.shape[0]):
        return a
    first = bin_image(aligned[views[0]], binning)
    out = np.empty((views.size, *first.shape), dtype=np.float32)
    out[0] = first
    for k, j in enumerate(views[1:], start=1):
        out[k] = bin_image(aligned[j], binning)
    return out


def backproject_views(
    stack: NDArray,
    filt: NDArray[np.float32],
    coef: NDArray[np.float64],
    vol: NDArray[np.float32],
    row_first: int,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    stack_row0: int = 0,
    n_rows_all: int | None = None,
    kernel: KernelChoice | None = None,
) -> NDArray[np.float64] | None:
    """Filter and back-project the views ``stack`` ``(n_views, rows, cols)`` into ``vol`` ``(n_z, n_rows, cols)``.

    The views have ``n_rows_all`` rows (default: all held) of which ``stack`` holds those from
    ``stack_row0`` (all the rows the volume's rows reach: `rows_needed`); the volume's row ``k`` is
    view row ``row_first + k``. ``filt`` from `full_filter`, ``coef`` from `projection_coefficients` (a
    row per view of ``stack``). The work goes in chunks of blocks so that ``progress`` and
    ``should_stop`` are heard. In the plain geometry (`plain_geometry`) the kernel sums each view's rows as
    it reads them, and the float64 sums are returned: one that is not finite means a NaN or infinite pixel
    in that view, and the work stopped there. The full model goes to the local WBP's one-row kernel where it is
    within its limits (`full_as_local`), which sums the rows it reads too; else to its own kernel (`bp_full`), and
    ``None`` is returned (the caller checks the views first). ``kernel``: `full_model_kernel`'s answer for these
    arguments, when the caller has it (made once for the slabs of a tomogram).
    """
    n_z, n_rows, n_x = vol.shape
    n_all = stack.shape[1] if n_rows_all is None else int(n_rows_all)
    if stack.shape[2] != n_x:
        raise ValueError(f"the volume is {n_x} wide but the views are {stack.shape[2]}")
    wr, wi = twiddles(filt.shape[1])
    if kernel is None:
        kernel = full_model_kernel(coef, n_all, n_x, n_z)
    plain = kernel.kernel == "plain"
    sums = np.zeros(stack.shape[0]) if plain else None
    if plain:
        zc = np.arange(n_z) - (n_z - 1) / 2.0
        base = zc[:, None] * coef[None, :, 2] + (coef[:, 3] - coef[:, 0] * (n_x - 1) / 2.0)[None, :]
        cos_t = np.ascontiguousarray(coef[:, 0])
    elif kernel.kernel == "one-row":  # the full model by the local one-row kernel: 4-5x faster
        return backproject_full(stack, filt, coef, vol, row_first, n_all, stack_row0, progress, should_stop, kernel)
    chunk = BLOCK * max(1, numba.get_num_threads()) * 4
    for c0 in range(0, n_rows, chunk):
        if should_stop is not None and should_stop():
            raise Cancelled("reconstruction cancelled")
        part = vol[:, c0 : c0 + chunk]
        if sums is not None:
            wbp_blocks(stack, filt, wr, wi, base, cos_t, part, row_first + c0 - stack_row0, numba.get_num_threads(),
                       sums)
            if not np.all(np.isfinite(sums)):
                return sums
        else:
            wbp_blocks_full(stack, filt, wr, wi, coef, (n_x - 1) / 2.0, (n_z - 1) / 2.0, part, row_first + c0,
                            n_all, stack_row0, numba.get_num_threads())
        if progress is not None:
            progress(min(n_rows, c0 + chunk), n_rows)
    return sums


def plain_geometry(coef: NDArray[np.float64], n_rows_all: int) -> bool:
    """Whether the map ``coef`` (`projection_coefficients`) keeps every voxel in its own row of the views (no
    X-axis tilt, no Z factors), so that the plain kernel (`bp_kernels.wbp_blocks`) applies."""
    return bool(np.all(coef[:, 1] == 0.0) and np.all(coef[:, 4] == 1.0) and np.all(coef[:, 5] == 0.0)
                and np.all(coef[:, 6] == (n_rows_all - 1) / 2.0))


def rows_needed(coef: NDArray[np.float64], rows: tuple[int, int], n_z: int, n_rows_all: int) -> tuple[int, int]:
    """``(first, stop)`` the view rows that the volume's rows ``rows`` reach with the geometry ``coef``."""
    cy, cz = (n_rows_all - 1) / 2.0, (n_z - 1) / 2.0
    y = np.array([rows[0], rows[1] - 1], dtype=float) - cy
    z = np.array([-cz, n_z - 1 - cz])
    r = coef[:, None, None, 4] * y[None, :, None] + coef[:, None, None, 5] * z[None, None, :] + coef[:, None, None, 6]
    return max(0, int(np.floor(r.min()))), min(n_rows_all, int(np.floor(r.max())) + 2)
