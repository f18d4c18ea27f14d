"""The preview job: the dock's Align. An `AlignJob` solved in memory, then the aligned stack and a binned,
low-passed preview tomogram (`facts.preview_binning`, `facts.PREVIEW_LOWPASS`, `facts.default_thickness_px`),
placed with the axis Z shift the job resolves, so that the dock, its *Save alignment* and ``tomoalign
align`` give the same transforms for the same input.

Progress is reported as ``progress(stage, done, total, text)`` and work stops with `Cancelled` when
``should_stop()`` returns true, between iterations, views or stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AlignmentError, Cancelled
from . import facts
from .align import AlignJob, solve
from .threads import honours_threads

if TYPE_CHECKING:
    from ..alignment.leaveout import LeaveOutError
    from ..alignment.result import Alignment

Progress = Callable[[str, int, int, str], None]


class JobStep(str, Enum):
    """The steps of the preview job after the solve (whose stages are `alignment.stages.Stage`), as progress
    reports and timings name them."""

    LEAVE_OUT, ALIGNED_STACK, TOMOGRAM = "leave-out", "aligned stack", "tomogram"


@dataclass(frozen=True)
class PreviewJob:
    """The dock's Align: ``align`` (the observations and how to solve them), the images ``(n_views, rows,
    cols)`` (a memory map is fine; None solves only) and what to make of them. ``start`` warm-starts the
    default model's solve from a previous solution."""

    align: AlignJob
    images: Any = None
    name: str = "alignment"
    only_markers_in_every_view: bool = False
    make_aligned_stack: bool = True
    make_tomogram: bool = True
    tomogram_thickness_px: int | None = None
    tomogram_binning: int | None = None
    start: Alignment | None = None


@dataclass
class PipelineResult:
    """An alignment and what was made from it. ``timings_s`` holds the wall time of each step;
    ``axis_z_shift_px`` is the shift ``transforms`` were placed with, ``job`` the job that made it (its
    *Save alignment* writes with them)."""

    name: str
    alignment: Alignment
    transforms: NDArray[np.float64]
    aligned: NDArray[np.float32] | None
    tomogram: NDArray[np.float32] | None
    tomogram_binning: int
    markers_used: NDArray[np.int64]
    leave_out: LeaveOutError | None = None  # when asked for
    timings_s: dict[str, float] = field(default_factory=dict)
    axis_z_shift_px: float = 0.0
    job: PreviewJob | None = None
    frame: Any = None  # the aligned stack's frame (`reconstruction.frame.FrameSize`), when one was made
    kernel: Any = None  # the tomogram's kernel and why (`reconstruction.kernel_choice.KernelChoice`), when one was made

    @property
    def warnings(self) -> list[str]:
        """What the solver left out or noticed: the alignment's own warnings (their one route to a GUI)."""
        return list(self.alignment.warnings)


def _every_view_only(job: AlignJob) -> AlignJob:
    """The job with only the markers seen in every view."""
    from ..reconstruction.compare import markers_in_every_view

    m = job.markers
    keep_ids = markers_in_every_view(m.view, m.marker, len(job.tilt_angles_deg))
    if keep_ids.size == 0:
        raise AlignmentError("no marker is seen in every view; untick 'markers in every view only'")
    keep = np.isin(m.marker, keep_ids)
    return replace(job, markers=type(m)(m.view[keep], m.marker[keep], m.xy[keep], m.image_size, m.source))


@honours_threads
def run_preview(job: PreviewJob, *, threads: int | None = None, progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None) -> PipelineResult:
    """Solve the job's alignment, then warp its images and back-project them (each step optional).

    ``threads`` caps the compiled loops, BLAS and FFT threads (a GUI keeps a core for itself).
    """
    def report(stage: str, done: int, total: int, text: str) -> None:
        _ = progress(stage, done, total, text) if progress is not None else None

    ajob = _every_view_only(job.align) if job.only_markers_in_every_view else job.align
    ajob.check()
    limit = ajob.options.max_iterations

    def solver_progress(stage: str, iteration: int, cost: float) -> None:
        report(stage, iteration, limit, f"{stage} stage, iteration {iteration}")

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    al = solve(ajob, start=job.start if ajob.imod_com is None else None, progress=solver_progress,
               should_stop=should_stop)
    timings["solve"] = time.perf_counter() - t0
    lo = None
    if ajob.leave_out:
        from ..alignment.leaveout import leave_out_error

        report(JobStep.LEAVE_OUT.value, 0, 1, "leave-out error")
        t0 = time.perf_counter()
        lo = leave_out_error(al)
        timings[JobStep.LEAVE_OUT.value] = time.perf_counter() - t0
    shift = ajob.axis_z_shift(al)
    from ..alignment.transforms import imod_transforms

    xf = imod_transforms(al, shift)
    if ajob.prexg is not None:  # markers of the .preali, images of the raw stack: the raw stack's (as its .xf)
        from ..io.prealignment import raw_transforms

        xf = np.where(np.isfinite(xf), raw_transforms(ajob.prexg, xf), xf)  # an unsolved view stays unsolved
    ali = tomo = frame = kernel = None
    binning = 1
    images = job.images
    if images is not None and (job.make_aligned_stack or job.make_tomogram):
        binning = (job.tomogram_binning or facts.preview_binning(images.shape[1:])) if job.make_tomogram else 1
        ali, tomo, frame, kernel = _images(job, al, xf, shift, binning, report, should_stop, timings)
        if not job.make_aligned_stack:
            ali = None
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled")
    # the result keeps its job without the images or the warm start: a closed layer's stack is not held alive
    return PipelineResult(job.name, al, xf, ali, tomo, binning, np.unique(ajob.markers.marker), lo, timings, shift,
                          replace(job, align=ajob, images=None, start=None), frame, kernel)


def _images(job: PreviewJob, al: Alignment, xf, shift: float, binning: int, report, should_stop,
            timings: dict[str, float]):
    """The aligned stack and (if asked) the preview tomogram, their frame (`reconstruction.frame`: transposed
    for an axis near 90 degrees, as ``aligned-stack`` and ``reconstruct`` make it). An aligned stack larger than
    `aligned_views.LAZY_BYTES` is made view by view when shown (`AlignedViews`), and the tomogram from views
    warped binned, as ``reconstruct --bin`` makes them: a 4096^2 series took the dock to 7.5 GB. Without an
    aligned stack asked for (the dock makes its own `AlignedViews`), the tomogram's views are warped binned too. And the
    tomogram's kernel (`reconstruction.kernel_choice.KernelChoice`; None without a tomogram)."""
    from ..reconstruction.aligned_views import LAZY_BYTES, AlignedViews
    from ..reconstruction.frame import frame_size
    from ..reconstruction.warp import aligned_stack, bin_centred
    from ..reconstruction.wbp import weighted_back_projection

    images = job.images
    if images.shape[0] != al.n_views:
        raise ValueError(f"the image stack has {images.shape[0]} views but there are {al.n_views} tilt angles")
    n = images.shape[0]
    t0 = time.perf_counter()
    used = np.asarray(al.view_determined, bool)
    frame = frame_size((images.shape[2], images.shape[1]), xf[used] if used.any() else xf)
    lazy = (4 * n * int(np.prod(frame.shape())) > LAZY_BYTES or not job.make_aligned_stack) and (
        binning > 1 or not job.make_tomogram)
    warped = None if lazy and not job.make_tomogram else aligned_stack(
        images, xf, binning=binning if lazy else 1, out_shape=frame.shape(binning if lazy else 1),
        should_stop=should_stop, progress=lambda d, t: report(JobStep.ALIGNED_STACK.value, d, t, f"aligned view {d} of"
                                                                                                     f" {t}"))
    ali = AlignedViews(images, xf, frame.shape()) if lazy else warped
    timings[JobStep.ALIGNED_STACK.value] = time.perf_counter() - t0
    tomo, chosen = None, list[Any]()
    if job.make_tomogram and warped is not None:
        rows, cols = images.shape[1:]
        thickness = job.tomogram_thickness_px or facts.default_thickness_px((cols, rows),
                                                                              facts.marker_z_extent_px(al, shift))
        t0 = time.perf_counter()
        x_tilt, z_fac = full_model_geometry(al)
        # the one binning rule (`warp.bin_centred`); views warped binned are binned already
        centred = binning > 1 and (lazy or any(v % binning for v in frame.size))
        tomo = weighted_back_projection(
            warped if lazy else bin_centred(warped, binning) if centred else warped, al.tilt_angles_deg,
            thickness=thickness // binning if centred else thickness, binning=1 if centred else binning,
            use_view=al.view_determined,
            lowpass_cutoff=facts.PREVIEW_LOWPASS, x_tilt_deg=x_tilt, z_factors=z_fac,
            progress=lambda d, t: report(JobStep.TOMOGRAM.value, d, t, f"filtered view {d} of {n}"),
            should_stop=should_stop, kernel_chosen=chosen.append,
        )
        timings[JobStep.TOMOGRAM.value] = time.perf_counter() - t0
    return ali, tomo, frame, chosen[0] if chosen else None


def save_result(result: PipelineResult, directory: Any, stem: str, *, overwrite: bool = False,
                extra: dict[str, Any] | None = None, sections: dict[str, Any] | None = None) -> list:
    """Write a preview's alignment as ``tomoalign align`` does (`align.write_outputs`, with the job's axis Z
    shift and ``.prexg``; ``sections`` as `run_align_job` adds them to ``alignment.json``, for example its
    ``surface_analysis``): the dock's *Save alignment*."""
    from .align import write_outputs

    if result.job is None:
        from ..io.alignment import write_alignment

        return write_alignment(result.alignment, directory, stem, overwrite=overwrite,
                               axis_z_shift_px=result.axis_z_shift_px, extra=extra, sections=sections)
    return write_outputs(result.job.align, result.alignment, directory, overwrite=overwrite, stem=stem, extra=extra,
                         sections=sections)


__all__ = ["JobStep", "PipelineResult", "PreviewJob", "run_preview", "save_result"]


def full_model_geometry(al: Alignment) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """The X-axis tilts and Z factors the WBP applies (as `reconstruct` applies the folder's ``.xtilt`` and
    ``.zfac``), or None where the alignment has none (the default model keeps the fast plain kernel)."""
    from ..alignment.transforms import x_tilts_deg, z_factors

    xt, zf = np.nan_to_num(x_tilts_deg(al)), np.nan_to_num(z_factors(al))
    return (xt if np.any(xt) else None), (zf if al.settings.from_com and np.any(zf) else None)

