"""The jobs, GUI-free and typed: what the dock widget runs in its worker (`run_alignment`: align, then
the aligned stack and a preview tomogram, in memory) and what the command line runs (`align_to_folder`,
`aligned_stack_to_file`, `reconstruct_to_file`, `write_demo_inputs`), which check every input range
before any heavy work: options first, then files, then the solve.

Progress is reported as ``progress(stage, done, total, text)`` and work stops with `Cancelled` when
``should_stop()`` returns true, between iterations, views or stages.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .alignment._lm import Cancelled
from .alignment.errors import AlignmentWarning
from .alignment.options import MAX_THICKNESS_FACTOR, AlignmentOptions, UsageError, check_job_numbers
from .alignment.result import Alignment
from .alignment.solver import align_markers
from .alignment.transforms import imod_transforms
from .io import FileFormatError, MarkerTable, read_markers, read_tilt_angles, write_markers_csv
from .io.alignment import open_stack_and_alignment, output_names, write_alignment
from .io.atomic import atomic_path, check_writable
from .reconstruction.compare import markers_in_every_view
from .reconstruction.warp import aligned_stack
from .reconstruction.wbp import weighted_back_projection

if TYPE_CHECKING:
    from .alignment.leaveout import LeaveOutError

Progress = Callable[[str, int, int, str], None]


class JobStep(str, Enum):
    """The steps of the GUI's job after the solve (whose stages are `alignment.stages.Stage`), as progress
    reports and timings name them."""

    LEAVE_OUT, ALIGNED_STACK, TOMOGRAM = "leave-out", "aligned stack", "tomogram"


@dataclass
class PipelineResult:
    """An alignment and what was made from it. ``timings_s`` holds the wall time of each step."""

    name: str
    alignment: Alignment
    transforms: NDArray[np.float64]
    aligned: NDArray[np.float32] | None
    tomogram: NDArray[np.float32] | None
    tomogram_binning: int
    markers_used: NDArray[np.int64]
    leave_out: LeaveOutError | None = None  # when asked for
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """What the solver left out or noticed: the alignment's own warnings (their one route to a GUI)."""
        return list(self.alignment.warnings)


def preview_binning(image_shape: tuple[int, int], target: int = 256) -> int:
    """The smallest binning that brings the larger image side to ``target`` pixels or fewer."""
    return max(1, int(np.ceil(max(image_shape) / target)))


def run_alignment(
    images: NDArray | None,
    view: NDArray[np.intp],
    marker: NDArray[np.int64],
    xy: NDArray[np.float64],
    tilt_angles_deg: NDArray[np.float64],
    image_size: tuple[int, int],
    options: AlignmentOptions,
    *,
    name: str = "alignment",
    only_markers_in_every_view: bool = False,
    pixel_size_nm: float | None = None,
    make_aligned_stack: bool = True,
    make_tomogram: bool = True,
    tomogram_thickness_px: int | None = None,
    tomogram_binning: int | None = None,
    leave_out: bool = False,
    start: Alignment | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PipelineResult:
    """Solve the alignment, then warp ``images`` and back-project them (each step optional).

    ``images`` is ``(n_views, rows, cols)`` (a memory map is fine), or None to solve only. ``start``
    warm-starts the solve from a previous solution; ``leave_out`` adds the leave-out errors.
    ``threads`` caps the compiled loops, BLAS and FFT threads (a GUI keeps a core for itself).
    """
    if threads is not None:
        from threadpoolctl import threadpool_limits

        from .alignment._threads import compiled_threads

        with compiled_threads(threads), threadpool_limits(threads):
            return run_alignment(
                images, view, marker, xy, tilt_angles_deg, image_size, options, name=name,
                only_markers_in_every_view=only_markers_in_every_view, pixel_size_nm=pixel_size_nm,
                make_aligned_stack=make_aligned_stack, make_tomogram=make_tomogram,
                tomogram_thickness_px=tomogram_thickness_px, tomogram_binning=tomogram_binning,
                leave_out=leave_out, start=start, progress=progress, should_stop=should_stop,
            )
    def report(stage: str, done: int, total: int, text: str) -> None:
        if progress is not None:
            progress(stage, done, total, text)

    view = np.asarray(view)
    marker = np.asarray(marker)
    xy = np.asarray(xy, dtype=float)
    if only_markers_in_every_view:
        keep_ids = markers_in_every_view(view, marker, len(tilt_angles_deg))
        if keep_ids.size == 0:
            from .alignment.errors import AlignmentError

            raise AlignmentError("no marker is seen in every view; untick 'markers in every view only'")
        keep = np.isin(marker, keep_ids)
        view, marker, xy = view[keep], marker[keep], xy[keep]
    timings: dict[str, float] = {}

    def solver_progress(stage: str, iteration: int, cost: float) -> None:
        report(stage, iteration, options.max_iterations, f"{stage} stage, iteration {iteration}")

    t0 = time.perf_counter()
    al = align_markers(view, marker, xy, tilt_angles_deg, image_size, options, pixel_size_nm=pixel_size_nm,
                       progress=solver_progress, should_stop=should_stop, start=start, warn=False)
    timings["solve"] = time.perf_counter() - t0
    lo = None
    if leave_out:
        from .alignment.leaveout import leave_out_error

        report(JobStep.LEAVE_OUT.value, 0, 1, "leave-out error")
        t0 = time.perf_counter()
        lo = leave_out_error(al)
        timings[JobStep.LEAVE_OUT.value] = time.perf_counter() - t0
    xf = imod_transforms(al)
    ali = tomo = None
    binning = 1
    if images is not None and (make_aligned_stack or make_tomogram):
        binning = (tomogram_binning or preview_binning(images.shape[1:])) if make_tomogram else 1
        ali, tomo = _images(images, al, xf, make_tomogram, binning, tomogram_thickness_px, report, should_stop,
                            timings)
        if not make_aligned_stack:
            ali = None
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled")
    return PipelineResult(name, al, xf, ali, tomo, binning, np.unique(marker), timings_s=timings,
                          leave_out=lo)


def _images(images, al: Alignment, xf, make_tomogram: bool, binning: int, thickness: int | None, report,
            should_stop, timings: dict[str, float]):
    """The aligned stack and (if asked) the preview tomogram of `run_alignment`."""
    if images.shape[0] != al.n_views:
        raise ValueError(f"the image stack has {images.shape[0]} views but there are {al.n_views} tilt angles")
    n = images.shape[0]
    t0 = time.perf_counter()
    ali = aligned_stack(images, xf, should_stop=should_stop,
                        progress=lambda d, t: report(JobStep.ALIGNED_STACK.value, d, t, f"aligned view {d} of {t}"))
    timings[JobStep.ALIGNED_STACK.value] = time.perf_counter() - t0
    tomo = None
    if make_tomogram:
        thickness = thickness or _default_thickness(al, images.shape[1:])
        t0 = time.perf_counter()
        tomo = weighted_back_projection(
            ali, al.tilt_angles_deg, thickness=thickness, binning=binning, use_view=al.view_determined,
            lowpass_cutoff=0.35, progress=lambda d, t: report(JobStep.TOMOGRAM.value, d, t, f"filtered view {d} of {n}"),
            should_stop=should_stop,
        )
        timings[JobStep.TOMOGRAM.value] = time.perf_counter() - t0
    return ali, tomo


def _default_thickness(al: Alignment, shape: tuple[int, int]) -> int:
    """Twice the markers' Z extent plus a margin, within [64, the image size] pixels."""
    z = al.xyz_px[al.marker_included, 2]
    extent = float(np.ptp(z)) if z.size else 0.0
    return int(np.clip(2.0 * extent + 64.0, 64.0, max(shape)))


def warm_up() -> None:
    """Load every compiled kernel once on a tiny problem (loading them from numba's cache holds the
    GIL for a moment; a GUI calls this in a background thread when it starts, not during Align)."""
    from .simulation.sample import make_sample_tilt_series

    s = make_sample_tilt_series(n_views=9, size=64, n_beads=8, thickness_px=16.0, n_texture=0, image_noise=0.0,
                                misclick=False)
    run_alignment(s.images, s.view, s.marker, s.xy, s.tilt_angles_deg, (64, 64), AlignmentOptions(),
                  tomogram_thickness_px=16)


# --- The command line's jobs ------------------------------------------------------------------------


@dataclass
class FolderResult:
    """What `align_to_folder` solved and wrote."""

    alignment: Alignment
    paths: list[Path]
    leave_out: object | None = None


def align_to_folder(
    markers_path: str | os.PathLike[str],
    tilt_angles_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: AlignmentOptions,
    *,
    image_size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
    axis_z_shift_px: float = 0.0,
    leave_out: bool = False,
    overwrite: bool = False,
    markers: MarkerTable | None = None,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    inputs: dict | None = None,
) -> FolderResult:
    """Solve from a markers file and a tilt file and write every output into ``output_dir`` as one unit.

    ``markers`` and ``tilt_angles_deg`` skip reading the files (the demo has them in memory).
    Raises `UsageError`, `FileFormatError`, `AlignmentError` or `OverwriteError` for bad input.
    """
    check_job_numbers(pixel_size_nm=pixel_size_nm, axis_z_shift_px=axis_z_shift_px, image_size=image_size)
    out = Path(output_dir)
    stem = Path(markers_path).stem
    for name in output_names(stem):
        check_writable(out / name, overwrite)
    if markers is None:
        markers = read_markers(markers_path)
    tilts = read_tilt_angles(tilt_angles_path) if tilt_angles_deg is None else tilt_angles_deg
    size = image_size or markers.image_size
    if size is None and Path(markers_path).suffix.lower() == ".csv":
        raise UsageError("--image-size W H is required for CSV markers (the file does not record it)")
    if size is None:
        raise UsageError(f"{markers_path}: the model's header gives no image size (its xmax or ymax is 0 or"
                         " negative); give --image-size W H")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # Alignment.warnings lists them
        al = align_markers(markers.view, markers.marker, markers.xy, tilts, size, options,
                           pixel_size_nm=pixel_size_nm)
    sections, lo = {}, None
    if leave_out:
        from .alignment.leaveout import leave_out_error

        lo = leave_out_error(al)
        sections["leave_out"] = lo.to_dict()
    inputs = inputs or {"markers": str(markers_path), "tilt_angles": str(tilt_angles_path)}
    paths = write_alignment(al, out, stem, overwrite=overwrite, axis_z_shift_px=axis_z_shift_px, extra=inputs,
                            sections=sections)
    return FolderResult(al, paths, lo)


@dataclass
class ImageResult:
    """What `aligned_stack_to_file` or `reconstruct_to_file` wrote: ``shape`` is (sections, rows, cols)."""

    path: Path
    shape: tuple[int, int, int]
    voxel_size_angstrom: float | None
    n_views_used: int


def aligned_stack_to_file(
    stack_path: str | os.PathLike[str],
    alignment_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    binning: int = 1,
    interpolation: str = "linear",
    overwrite: bool = False,
) -> ImageResult:
    """Warp a raw stack by a saved alignment (as ``newstack -xform``) into an MRC file, view by view."""
    from .io.mrc import MrcStreamWriter
    from .reconstruction.warp import INTERPOLATIONS, warp_view

    check_job_numbers(binning=binning)
    if interpolation not in INTERPOLATIONS:
        raise UsageError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    out = check_writable(output, overwrite)
    series, saved, pix = open_stack_and_alignment(stack_path, alignment_dir, binning)
    shape = (series.n_views, series.data.shape[1] // binning, series.data.shape[2] // binning)
    voxel = pix * binning if pix else None
    with atomic_path(out, overwrite) as tmp:
        w = MrcStreamWriter(tmp, shape, np.float32, voxel)
        try:
            for j in range(series.n_views):
                view = warp_view(series.data[j], saved.transforms[j], binning=binning, interpolation=interpolation,
                                 out_shape=shape[1:])
                _check_finite_view(stack_path, j, view)
                w.write(view)
            w.close()
        except BaseException:
            w.abort()
            raise
    return ImageResult(out, shape, voxel, int(saved.view_determined.sum()))


def reconstruct_to_file(
    stack_path: str | os.PathLike[str],
    alignment_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    binning: int = 1,
    thickness: int | None = None,
    lowpass: float | None = None,
    overwrite: bool = False,
) -> ImageResult:
    """Aligned stack and weighted back-projection ``(z, y, x)`` with the solved tilts, into an MRC file."""
    from .io.mrc import write_mrc
    from .reconstruction.warp import warp_view

    check_job_numbers(binning=binning, thickness=thickness, lowpass=lowpass)
    out = check_writable(output, overwrite)
    series, saved, pix = open_stack_and_alignment(stack_path, alignment_dir, binning)
    rows, cols = series.data.shape[1:]
    thickness = thickness if thickness is not None else max(rows, cols) // 4
    if thickness < binning:
        raise UsageError(f"--thickness {thickness} is less than one binned pixel (--bin {binning})")
    if thickness > MAX_THICKNESS_FACTOR * max(rows, cols):
        raise UsageError(f"--thickness {thickness} is more than {MAX_THICKNESS_FACTOR} x the image size "
                         f"({cols} x {rows}); give the specimen's thickness in unbinned pixels")
    ny, nx = rows // binning, cols // binning
    need = 4 * nx * ny * (2 * series.n_views + thickness // binning)
    _check_memory(need, "the reconstruction")
    ali = np.empty((series.n_views, ny, nx), dtype=np.float32)
    for j in range(series.n_views):
        warp_view(series.data[j], saved.transforms[j], binning=binning, out=ali[j])
        _check_finite_view(stack_path, j, ali[j])
    vol = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=thickness // binning,
                                   use_view=saved.view_determined, lowpass_cutoff=lowpass)
    del ali
    voxel = pix * binning if pix else None
    write_mrc(out, vol, voxel, overwrite=overwrite)
    return ImageResult(out, tuple(vol.shape), voxel, int(saved.view_determined.sum()))


def _check_finite_view(stack_path, j: int, view: NDArray) -> None:
    if not np.isfinite(np.sum(view, dtype=np.float64)):
        raise FileFormatError(f"{stack_path}: view {j} holds NaN or infinite pixels; the aligned view would be"
                              " undefined")


def _check_memory(need_bytes: int, what: str) -> None:
    """Refuse work whose arrays would not fit in the memory that is available now."""
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return
    if need_bytes > 0.8 * avail:
        raise UsageError(f"{what} needs {need_bytes / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB are available; "
                         "bin more (--bin) or make it thinner (--thickness)")


@dataclass
class DemoInputs:
    """The sample tilt series written by `write_demo_inputs`, and its markers and angles in memory."""

    stack: Path
    markers: Path
    tilt_angles: Path
    table: MarkerTable
    tilt_angles_deg: NDArray[np.float64]
    pixel_size_nm: float
    n_beads: int


def write_demo_inputs(output_dir: str | os.PathLike[str], seed: int = 1, *, overwrite: bool = False,
                      products: tuple[str, ...] = ()) -> DemoInputs:
    """Make the sample tilt series (images and clicked markers) and write it: ``sample.mrc``,
    ``sample_markers.csv`` and ``sample.rawtlt``. ``products`` are further names checked first."""
    from .io.mrc import write_mrc
    from .io.tilts import write_tilt_angles
    from .simulation.sample import make_sample_tilt_series

    check_job_numbers(seed=seed)
    out = Path(output_dir)
    stack, markers, tilts = out / "sample.mrc", out / "sample_markers.csv", out / "sample.rawtlt"
    for p in (stack, markers, tilts, *(out / n for n in products)):
        check_writable(p, overwrite)
    s = make_sample_tilt_series(seed=seed)
    n_views, rows, cols = s.images.shape
    table = MarkerTable(s.view, s.marker, s.xy, (cols, rows), "simulated")
    write_mrc(stack, s.images, 10.0 * s.pixel_size_nm, overwrite=overwrite)
    write_markers_csv(markers, table, overwrite=overwrite)
    write_tilt_angles(tilts, s.tilt_angles_deg, overwrite=overwrite)
    return DemoInputs(stack, markers, tilts, table, s.tilt_angles_deg, s.pixel_size_nm, len(np.unique(s.marker)))
