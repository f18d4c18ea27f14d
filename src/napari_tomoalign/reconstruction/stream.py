"""Any size in bounded memory: the WBP streamed in slabs of rows, as IMOD's ``tilt`` reads the lines a
slab needs and writes the slab.

For each slab of output rows (slices), the rows of the aligned views that the slab reaches are made
(warped from the raw stack, `WarpedRows`, or read from aligned views in memory or a memory-mapped
``.ali``, `AlignedRows`), filtered and back-projected (`wbp.backproject_views`), and the slab is
written into the MRC file at its place in every section; the header's statistics are summed on the
way and written last. The raw stack is read with plain file reads, never memory-mapped, so the
process holds only the slab, the rows it needs and one view's band of raw rows: peak memory is set
by the slab (`slab_rows` picks it from ``memory_bytes``), not by the volume.

The result equals `wbp.weighted_back_projection` of `warp.aligned_stack` (to float32 rounding; for the full
model by the one-row kernel, with slabs of whole blocks of rows: `full_as_local`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..io.atomic import atomic_path, check_writable
from ..io.checked_stack import native_dtype, truncated_while_read
from ..io.mrc import unsigned_bytes
from .bp_kernels import BLOCK, volume_empty
from .input_checks import check_finite_view
from .kernel_choice import PLAIN, KernelChoice
from .local_blocks import ROWS
from .local_warp import LocalProjection
from .output_scale import integer_scale, scale_window, slab_spans, window_scale
from .reconstruct_job import MODES
from .slab_geometry import SlabGeometry
from .slab_writer import SlabWriter
from .warp import bin_image, pull_matrix, warp_with_matrix
from .wbp import angular_weights, full_filter, radial_filter

PROCESS_BYTES = 192 * 2**20  # the interpreter, numpy, scipy and the compiled kernels, resident (182 MiB measured:
# VmRSS after the imports and a first WBP; 320 MiB before asked a 512^2 run for 394 MiB where it peaks at 281 MB)


class RawStack:
    """An MRC stack read a band of rows at a time with plain file reads (no memory map)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with mrcfile.open(self.path, header_only=True, permissive=True) as m:
            h = m.header
            self.shape = (int(h.nz), int(h.ny), int(h.nx))
            kind = np.uint8 if unsigned_bytes(h) else mrcfile.utils.dtype_from_mode(h.mode)
            self.dtype = np.dtype(kind).newbyteorder(m.header.mode.dtype.byteorder)
            self.offset = 1024 + int(h.nsymbt)
        need = self.offset + int(np.prod(self.shape)) * self.dtype.itemsize
        if self.path.stat().st_size < need:
            raise ValueError(f"{self.path}: the file is shorter than its header says ({need} bytes); it is truncated")

    def rows(self, view: int, first: int, stop: int) -> NDArray:
        """``(stop - first, cols)`` rows of one view."""
        _, ny, nx = self.shape
        with open(self.path, "rb") as f:
            f.seek(self.offset + ((view * ny + first) * nx) * self.dtype.itemsize)
            a = np.fromfile(f, dtype=self.dtype, count=(stop - first) * nx)
        if a.size < (stop - first) * nx:  # the file shrank after it was opened
            raise truncated_while_read(self.path, view)
        native = native_dtype(self.dtype)
        return (a if native is None else a.astype(native)).reshape(stop - first, nx)


@dataclass
class WarpedRows:
    """Rows of the aligned, binned views, warped from the raw stack on demand (as `warp.warp_view`)."""

    raw: RawStack | NDArray
    transforms: NDArray[np.float64]  # (n_views, 2, 3) of the views to use
    views: NDArray[np.intp]
    binning: int = 1
    out_shape: tuple[int, int] | None = None  # binned (rows, cols) of the aligned frame (`frame.FrameSize.shape`)

    def __post_init__(self) -> None:
        n = self.raw.shape
        self.raw_shape = (n[1] // self.binning, n[2] // self.binning)
        self.shape = self.raw_shape if self.out_shape is None else (int(self.out_shape[0]), int(self.out_shape[1]))
        stats = np.empty((self.views.size, 3))
        for k, j in enumerate(self.views):  # one view held at a time (`raw_band_bytes`)
            v = bin_image(self._whole_view(j), self.binning)
            stats[k] = float(v.mean()), float(v.min()), float(v.max())
            del v
        self.fill = stats[:, 0]
        self.value_range = (float(stats[:, 1].min()), float(stats[:, 2].max()))  # of the binned views (--log's floor)

    def _whole_view(self, j: int) -> NDArray:
        """View ``j`` (0-based), checked: a NaN or infinite pixel is refused before any slab is made."""
        view = self._view_rows(j, 0, self.raw.shape[1])
        name = f"stack {self.raw.path.name}" if isinstance(self.raw, RawStack) else "stack"
        check_finite_view(view, int(j), what=name)
        return view

    def _view_rows(self, j: int, first: int, stop: int) -> NDArray:
        if isinstance(self.raw, RawStack):
            return self.raw.rows(int(j), first, stop)
        return np.asarray(self.raw[j, first:stop])

    def rows(self, first: int, stop: int) -> NDArray[np.float32]:
        """``(n_views, stop - first, cols)`` binned aligned rows ``first..stop``."""
        nx = self.shape[1]
        ny_raw = self.raw_shape[0]
        b = self.binning
        out = np.empty((self.views.size, stop - first, nx), dtype=np.float32)
        for k, j in enumerate(self.views):
            xf = self.transforms[k]
            if not np.all(np.isfinite(xf)):
                out[k] = self.fill[k]
                continue
            m = pull_matrix(np.asarray(xf, dtype=float), self.raw_shape, self.shape, b, self.raw.shape[1:])
            corners = np.array([[0, first], [nx - 1, first], [0, stop - 1], [nx - 1, stop - 1]], dtype=float)
            sy = corners @ m[1, :2] + m[1, 2]
            r0 = min(max(0, int(np.floor(sy.min()))), ny_raw - 1)
            r1 = max(min(ny_raw, int(np.floor(sy.max())) + 2), r0 + 1)
            band = bin_image(self._view_rows(j, r0 * b, r1 * b), b)
            mb = m.copy()
            mb[:, 2] += m[:, 1] * first
            mb[1, 2] -= r0
            if band.shape[0] < 2:  # one row: pad so that the kernel can interpolate
                band = np.vstack([band, band])
            warp_with_matrix(band, mb, out[k], float(self.fill[k]))
            del band  # not held while the next view's band is read (`raw_band_bytes`)
        return out


@dataclass
class AlignedRows:
    """Rows of aligned views already made (in memory, or a memory-mapped ``.ali``), binned on demand; with
    ``binned``, the views are binned by ``binning`` already (as `warp.warp_view` makes them from raw views)."""

    aligned: NDArray
    views: NDArray[np.intp]
    binning: int = 1
    binned: bool = False

    def __post_init__(self) -> None:
        b = 1 if self.binned else self.binning
        self.shape = (self.aligned.shape[1] // b, self.aligned.shape[2] // b)

    def rows(self, first: int, stop: int) -> NDArray[np.float32]:
        if self.binned:
            a = self.aligned
            if (first, stop) == (0, a.shape[1]) and self.views.size == a.shape[0] and np.array_equal(
                    self.views, np.arange(a.shape[0])) and isinstance(a, np.ndarray) and a.dtype == np.float32 \
                    and a.flags.c_contiguous:  # all of it (run's one slab): read as it is, not copied (43 MB at 1024^2)
                return a
            return np.ascontiguousarray(a[self.views, first:stop], dtype=np.float32)
        b = self.binning
        out = np.empty((self.views.size, stop - first, self.shape[1]), dtype=np.float32)
        for k, j in enumerate(self.views):
            out[k] = bin_image(np.asarray(self.aligned[j, first * b : stop * b]), b)[:, : self.shape[1]]
        return out


def raw_band_bytes(source: Any) -> int:
    """The most one view's band of raw rows holds at once while `WarpedRows` warps it (0 for aligned views): at worst
    the whole raw view (a slab's rows reach them all when the axis is near 90 degrees), read in its stored type, made
    a type the kernels take when it is not one (`io.checked_stack.native_dtype`), and binned to float32 (a copy at bin 1
    unless it is float32 already; ``1 / b**2`` of the pixels at bin b). The raw view is counted once: at bin b the
    band is ``b**2`` times the binned pixels, not ``b**4`` (it was counted as 6 bytes per binned column times ``b**2``
    per raw row: 12 bytes per raw pixel of int16 at bin 2, where 3 are held)."""
    raw = getattr(source, "raw", None)
    if raw is None:
        return 0
    dtype = np.dtype(getattr(raw, "dtype", np.float32))
    b = int(source.binning)
    native = native_dtype(dtype)
    per_pixel = float(dtype.itemsize + (native.itemsize if native is not None else 0))
    kept = native if native is not None else dtype
    per_pixel += 4.0 / (b * b) if b > 1 else (0.0 if kept == np.float32 else 4.0)
    _, rows, cols = raw.shape
    return int(np.ceil(rows * cols * per_pixel))


def slab_rows(memory_bytes: int, n_views: int, shape: tuple[int, int], n_z: int, out_itemsize: int,
              raw_band_bytes: int, thread_bytes: int = 0) -> int:
    """Rows per slab that keep the process within ``memory_bytes`` (at least one block of rows); each thread's
    buffers are the plain kernel's or ``thread_bytes`` (the full model's one-row kernel: `full_as_local.thread_bytes`),
    whichever is larger."""
    ny, nx = shape
    threads = max(1, numba.get_num_threads())
    per_thread = max(6 * n_views * nx * BLOCK, thread_bytes)
    fixed = PROCESS_BYTES + raw_band_bytes + threads * per_thread + 64 * 2**20 + 3 * out_itemsize * nx * ny
    per_row = 4 * n_z * nx + 4 * n_views * nx
    rows = (memory_bytes - fixed) // per_row
    if rows < BLOCK:
        need = (fixed + BLOCK * per_row) / 2**20
        given = f"{memory_bytes / 2**20:.0f} MiB" if memory_bytes >= 2**20 else (
            f"{memory_bytes} bytes (--memory takes a size such as 2G or 1500M; a number alone is bytes)")  # s15, s16 users
        raise ValueError(f"{given} is too little memory for this reconstruction; it needs at least {need:.0f} MiB (give"
                         " more with --memory, or bin more)")
    unit = BLOCK * threads
    return int(min(ny, max(BLOCK, (rows // unit) * unit if rows >= unit else (rows // BLOCK) * BLOCK)))


DEFAULT_BUDGET = 2 * 2**30  # slabs this size already stream a 4096^2 x 61 bin-1 tomogram at full speed (bench_stream)


def available_memory_bytes() -> int:
    """The default budget: 2 GiB, or half of what the system has available now (``MemAvailable``) when that is less.
    Half of all there was took 7.2 GB on a shared machine for a 2048^2 x 380 tomogram that ran as fast in 1.8 GB
    (new user s14): more than the slabs need buys nothing, and takes it from everyone else."""
    from ..compute import available_memory_bytes as available

    whole = available()
    return DEFAULT_BUDGET if whole is None else min(DEFAULT_BUDGET, whole // 2)


@dataclass(frozen=True)
class StreamResult:
    path: Path
    shape: tuple[int, int, int]
    slab_rows: int
    dtype: str
    clipped: int  # voxels clipped to the integer output mode's range
    scale: tuple[float, float] = (0.0, 1.0)  # (add, multiply) applied before writing: given, or `integer_scale`'s
    levels: int = 0  # an integer output's grey levels used (max - min + 1), 0 for float32
    kernel: KernelChoice = PLAIN  # the kernel that back-projected it, and why (`full_as_local.full_model_kernel`)


def _span(part: tuple[int, int] | None, n: int, what: str) -> tuple[int, int]:
    """``part`` ``(first, stop)`` within ``range(n)`` (None: all of it); a `ValueError` when it is empty."""
    lo, hi = (0, n) if part is None else (max(0, int(part[0])), min(n, int(part[1])))
    if hi <= lo:
        raise ValueError(f"{what} range {part} is empty for {n} {what}s")
    return lo, hi


def _check_sizes(n_z: int, thickness: int, binning: int, output_dtype: Any) -> None:
    """A `ValueError` for a thickness under one binned section, or an output mode that is not IMOD's."""
    if n_z < 1:
        raise ValueError(f"thickness {thickness} gives no sections at binning {binning}")
    if str(np.dtype(output_dtype)) not in MODES:
        raise ValueError(f"output mode must be one of {', '.join(MODES)}, not {output_dtype}")


def _view_filters(nx: int, tilt_angles_deg: ArrayLike, weighting: str, sirt_iterations: int,
                  radial: tuple[float, float] | None) -> NDArray[np.float32]:
    """Each view's filter (`wbp.full_filter`): the weighting with IMOD's ``RADIAL``, over rows padded to a power of
    two at least twice ``nx``, times the view's angular weight."""
    n_pad = int(2 ** np.ceil(np.log2(2 * nx)))
    cutoff, falloff = radial if radial is not None else (None, 0.05)
    return full_filter(radial_filter(n_pad, weighting=weighting, sirt_iterations=sirt_iterations,
                                     lowpass_cutoff=cutoff, lowpass_falloff=falloff),
                       angular_weights(np.asarray(tilt_angles_deg, dtype=float)).astype(np.float32))


def reconstruct_streamed(
    source: WarpedRows | AlignedRows,
    tilt_angles_deg: NDArray[np.float64],
    out_path: str | os.PathLike[str],
    *,
    thickness: int,
    memory_bytes: int | None = None,
    output_dtype: str | np.dtype = "float32",
    scale: tuple[float, float] | None = None,
    voxel_size_angstrom: float | None = None,
    weighting: str = "ramp",
    sirt_iterations: int = 10,
    radial: tuple[float, float] | None = None,
    x_tilt_deg: float | NDArray[np.float64] | None = None,
    z_factors: NDArray[np.float64] | None = None,
    tilt_offset_deg: float = 0.0,
    shift_px: tuple[float, float] = (0.0, 0.0),
    rows: tuple[int, int] | None = None,
    columns: tuple[int, int] | None = None,
    slab: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    local: LocalProjection | None = None,
) -> StreamResult:
    """Weighted back-projection of ``source``'s views into the MRC file ``out_path``, a slab of rows at a time.

    ``tilt_angles_deg`` (and ``x_tilt_deg``, ``z_factors``) are per view of ``source`` (its ``views``);
    ``thickness`` and ``shift_px`` are in unbinned pixels; ``radial`` is IMOD's ``RADIAL`` (cutoff,
    falloff) in cycles per binned pixel; ``tilt_offset_deg`` is added to every angle (IMOD's ``OFFSET``).
    ``memory_bytes`` (default: half the memory available) bounds the process; ``output_dtype`` and
    ``scale`` (add, then multiply: IMOD's ``SCALE``) set what is written; integer modes are rounded and
    clipped, and without a ``scale`` the middle rows set one (`output_scale`), whatever the slab. ``rows``:
    only these output rows (a slab by hand, or IMOD's ``SLICE``), written as a volume of their own; ``columns``:
    only these output columns (IMOD's ``WIDTH``; the slab is back-projected whole, then cut);
    ``slab``: rows per slab, instead of what ``memory_bytes`` allows. ``local``: the local alignments of ``source``'s
    views (`local_warp.LocalProjection` in its binned pixels, with their tilts, offset and X-axis tilts: ``x_tilt_deg``,
    ``z_factors`` and ``tilt_offset_deg`` are then not used), each slab made from the rows it reaches (`local_slab`).
    """
    b, (ny, nx), n_z = source.binning, source.shape, int(thickness) // source.binning
    _check_sizes(n_z, thickness, b, output_dtype)
    y_lo, y_hi = _span(rows, ny, "row")
    tilts = np.asarray(tilt_angles_deg, dtype=float) + float(tilt_offset_deg)
    geo = SlabGeometry.of(tilts, (ny, nx), n_z, b, x_tilt_deg, z_factors, shift_px, local)
    filt = _view_filters(nx, tilt_angles_deg, weighting, sirt_iterations, radial)
    dtype = np.dtype(output_dtype)
    if scale is None and dtype.kind == "f":
        scale = (0.0, 1.0)
    memory = available_memory_bytes() if memory_bytes is None else int(memory_bytes)
    n_rows = slab_rows(memory, tilts.size, (y_hi - y_lo, nx), n_z, dtype.itemsize, raw_band_bytes(source),
                       geo.per_thread) if slab is None else int(slab)
    if n_rows < 1:
        raise ValueError(f"a slab must hold at least one row, not {slab}")
    if local is not None and slab is None and n_rows > ROWS:  # whole blocks of the local kernels: the whole's
        n_rows -= n_rows % ROWS
    check_writable(out_path, overwrite)
    x_lo, x_hi = _span(columns, nx, "column")

    def made(y0: int, y1: int) -> NDArray[np.float32]:
        """Output rows ``y0 .. y1``: the rows of the views they reach, filtered and back-projected."""
        r0, r1 = geo.rows_needed(y0, y1)
        views = source.rows(r0, r1)
        vol = volume_empty((n_z, y1 - y0, nx))
        geo.back_project(views, filt, vol, y0, r0, should_stop)
        del views
        return vol if columns is None else vol[:, :, x_lo:x_hi]

    w = _write_slabs(made, out_path, (n_z, y_hi - y_lo, x_hi - x_lo), (y_lo, y_hi), n_rows, dtype, scale,
                     voxel_size_angstrom, overwrite, progress)
    levels = int(w.hi - w.lo) + 1 if dtype.kind in "iu" else 0
    return StreamResult(Path(out_path), w.shape, n_rows, str(dtype), w.clipped, w.scale, levels, geo.kernel)


def _write_slabs(made: Callable[[int, int], NDArray[np.float32]], out_path: str | os.PathLike[str],
                 shape: tuple[int, int, int], span: tuple[int, int], n_rows: int, dtype: np.dtype,
                 scale: tuple[float, float] | None, voxel_size_angstrom: float | None, overwrite: bool,
                 progress: Callable[[int, int], None] | None) -> SlabWriter:
    """The output rows ``span`` made slab by slab (``made``) into ``out_path`` (atomically), an integer mode's scale taken
    from the middle rows (`output_scale`): their slab first, or made first with thinner slabs. Returns the writer."""
    y_lo, y_hi = span
    window = scale_window(y_lo, y_hi) if scale is None else None
    if window is not None and window[1] - window[0] > n_rows:
        scale = window_scale(made, window, n_rows, dtype)
        window = None
    done = 0
    with atomic_path(out_path, overwrite) as tmp:
        w = SlabWriter(tmp, shape, dtype, voxel_size_angstrom, scale or (0.0, 1.0))
        try:
            for y0, y1 in slab_spans(y_lo, y_hi, n_rows, window):
                vol = made(y0, y1)
                if window is not None and scale is None:
                    scale = w.scale = integer_scale(vol[:, window[0] - y0 : window[1] - y0], dtype)
                w.write_rows(y0 - y_lo, vol)
                del vol
                done += y1 - y0
                if progress is not None:
                    progress(done, y_hi - y_lo)
            w.close()
        except BaseException:
            w.f.close()
            raise
    return w
