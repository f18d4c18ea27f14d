"""The jobs, GUI-free and typed: what the dock widget runs in its worker (`run_alignment`: align, then
the aligned stack and a preview tomogram, in memory), and, from `file_jobs`, what the command line runs
(`align_to_folder`, `aligned_stack_to_file`, `reconstruct_to_file`, `write_demo_inputs`).

Progress is reported as ``progress(stage, done, total, text)`` and work stops with `Cancelled` when
``should_stop()`` returns true, between iterations, views or stages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .alignment.options import AlignmentOptions
from .alignment.result import Alignment
from .alignment.solver import align_markers
from .alignment.transforms import imod_transforms
from .errors import Cancelled
from .file_jobs import (
    DemoInputs,
    FolderResult,
    ImageResult,
    align_to_folder,
    aligned_stack_to_file,
    reconstruct_to_file,
    write_demo_inputs,
)
from .reconstruction.compare import markers_in_every_view

if TYPE_CHECKING:
    from .alignment.leaveout import LeaveOutError

__all__ = ["DemoInputs", "FolderResult", "ImageResult", "JobStep", "PipelineResult", "align_to_folder",
           "aligned_stack_to_file", "preview_binning", "reconstruct_to_file", "run_alignment", "warm_up",
           "write_demo_inputs"]

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
    imod_com: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PipelineResult:
    """Solve the alignment, then warp ``images`` and back-project them (each step optional).

    ``images`` is ``(n_views, rows, cols)`` (a memory map is fine), or None to solve only. ``start``
    warm-starts the solve from a previous solution; ``leave_out`` adds the leave-out errors.
    ``threads`` caps the compiled loops, BLAS and FFT threads (a GUI keeps a core for itself).
    ``imod_com``: solve IMOD's full model with the tiltalign options of that align.com instead of ``options``
    (`alignment.imod_align`; ``start`` and ``leave_out`` do not apply to it).
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
                leave_out=leave_out, start=start, imod_com=imod_com, progress=progress, should_stop=should_stop,
            )
    def report(stage: str, done: int, total: int, text: str) -> None:
        _ = progress(stage, done, total, text) if progress is not None else None

    view, marker, xy = np.asarray(view), np.asarray(marker), np.asarray(xy, dtype=float)
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
    al = _solve(view, marker, xy, tilt_angles_deg, image_size, options, pixel_size_nm, imod_com, start,
                solver_progress, should_stop)
    leave_out = leave_out and imod_com is None
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


def _solve(view, marker, xy, tilts, size, options: AlignmentOptions, pixel_size_nm: float | None, imod_com,
           start: Alignment | None, progress, should_stop) -> Alignment:
    """The solve of `run_alignment`: the default model with ``options``, or an align.com's full model."""
    if imod_com is not None:
        from .alignment.imod_align import align_markers_imod

        return align_markers_imod(view, marker, xy, tilts, size, imod_com, pixel_size_nm=pixel_size_nm,
                                  progress=progress, should_stop=should_stop)
    return align_markers(view, marker, xy, tilts, size, options, pixel_size_nm=pixel_size_nm, progress=progress,
                         should_stop=should_stop, start=start, warn=False)


def _images(images, al: Alignment, xf, make_tomogram: bool, binning: int, thickness: int | None, report,
            should_stop, timings: dict[str, float]):
    """The aligned stack and (if asked) the preview tomogram of `run_alignment`."""
    from .reconstruction.warp import aligned_stack
    from .reconstruction.wbp import weighted_back_projection

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
    from .alignment._backend import compiled_kernels
    from .simulation.sample import make_sample_tilt_series

    s = make_sample_tilt_series(n_views=9, size=64, n_beads=8, thickness_px=16.0, n_texture=0, image_noise=0.0,
                                misclick=False)
    with compiled_kernels():  # a tiny problem would take the plain-numpy loops
        run_alignment(s.images, s.view, s.marker, s.xy, s.tilt_angles_deg, (64, 64), AlignmentOptions(),
                      tomogram_thickness_px=16)
