"""The jobs, GUI-free and typed, under the names the front ends have used: what the dock runs in its worker
(`run_alignment`: a `jobs.preview.PreviewJob`, the alignment then the aligned stack and a preview tomogram
in memory) and, from `file_jobs`, what the command line runs (`align_to_folder`, `aligned_stack_to_file`,
`reconstruct_to_file`, `write_demo_inputs`). The jobs themselves live in `jobs`.

Progress is reported as ``progress(stage, done, total, text)`` and work stops with `Cancelled` when
``should_stop()`` returns true, between iterations, views or stages.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .alignment.options import AlignmentOptions
from .alignment.result import Alignment
from .file_jobs import (
    DemoInputs,
    FolderResult,
    ImageResult,
    align_to_folder,
    aligned_stack_to_file,
    reconstruct_to_file,
    write_demo_inputs,
)
from .jobs.facts import preview_binning
from .jobs.preview import JobStep, PipelineResult, PreviewJob, run_preview
from .jobs.solver_options import SolverSettings

__all__ = ["DemoInputs", "FolderResult", "ImageResult", "JobStep", "PipelineResult", "PreviewJob", "align_to_folder",
           "aligned_stack_to_file", "preview_binning", "preview_job", "reconstruct_to_file", "run_alignment",
           "run_preview", "warm_up", "write_demo_inputs"]

Progress = Callable[[str, int, int, str], None]


def preview_job(
    images: NDArray | None,
    view: NDArray[np.intp],
    marker: NDArray[np.int64],
    xy: NDArray[np.float64],
    tilt_angles_deg: NDArray[np.float64],
    image_size: tuple[int, int],
    options: AlignmentOptions | SolverSettings | None = None,
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
    imod_com: str | os.PathLike[str] | None = None,
    stem: str = "markers",
    inputs: dict | None = None,
) -> PreviewJob:
    """The `PreviewJob` of marker observations in memory (`run_alignment` documents the arguments)."""
    from pathlib import Path

    from .io.markers import MarkerTable
    from .jobs.align import AlignJob

    settings = options if isinstance(options, SolverSettings) else SolverSettings(options or AlignmentOptions())
    if imod_com is not None:  # the command file's options replace ``options``
        settings = SolverSettings(AlignmentOptions(), settings.axis_z_shift_px)
    table = MarkerTable(np.asarray(view), np.asarray(marker), np.asarray(xy, dtype=float),
                        (int(image_size[0]), int(image_size[1])))
    align = AlignJob(table, np.asarray(tilt_angles_deg, dtype=float), table.image_size,  # type: ignore[arg-type]
                     settings, pixel_size_nm, Path(imod_com) if imod_com is not None else None,
                     bool(leave_out) and imod_com is None, stem=stem, inputs=dict(inputs or {}))
    return PreviewJob(align, images, name, only_markers_in_every_view, make_aligned_stack, make_tomogram,
                      tomogram_thickness_px, tomogram_binning, start)


def run_alignment(images: NDArray | None, view: NDArray[np.intp], marker: NDArray[np.int64], xy: NDArray[np.float64],
                  tilt_angles_deg: NDArray[np.float64], image_size: tuple[int, int],
                  options: AlignmentOptions | SolverSettings | None = None, *, threads: int | None = None,
                  progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                  **kw) -> PipelineResult:
    """Solve the alignment, then warp ``images`` and back-project them (each step optional): `run_preview`
    of `preview_job`.

    ``images`` is ``(n_views, rows, cols)`` (a memory map is fine), or None to solve only. ``start``
    warm-starts the solve from a previous solution; ``leave_out`` adds the leave-out errors.
    ``threads`` caps the compiled loops, BLAS and FFT threads (a GUI keeps a core for itself).
    ``imod_com``: solve IMOD's full model with the tiltalign options of that align.com instead of ``options``
    (``start`` and ``leave_out`` do not apply to it); its ``AxisZShift`` places the transforms.
    """
    job = preview_job(images, view, marker, xy, tilt_angles_deg, image_size, options, **kw)
    return run_preview(job, threads=threads, progress=progress, should_stop=should_stop)


def warm_up() -> None:
    """Load every compiled kernel once on a tiny problem (loading them from numba's cache holds the
    GIL for a moment; a GUI calls this in a background thread when it starts, not during Align)."""
    from .compute import compiled_kernels
    from .simulation.sample import make_sample_tilt_series

    s = make_sample_tilt_series(n_views=9, size=64, n_beads=8, thickness_px=16.0, n_texture=0, image_noise=0.0,
                                misclick=False)
    with compiled_kernels():  # a tiny problem would take the plain-numpy loops
        run_alignment(s.images, s.view, s.marker, s.xy, s.tilt_angles_deg, (64, 64), AlignmentOptions(),
                      tomogram_thickness_px=16)
