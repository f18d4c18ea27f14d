"""The run job: a raw tilt series to a tomogram, as ``tomoalign run`` and ``batch``'s run path make it.

One tracking (`tracking.jobs.track_to_file`), whose last robust fit is the alignment when the job's
options are the tracker's own (`tracking.jobs.run_options`: nothing is solved twice); an ``align.com``
solves IMOD's full model (and its local alignments) from the tracked markers instead, as etomo's
alignment step. Then one pass over the stack: each raw view is read once, its gold erased (if asked),
warped once into the aligned stack, and binned for the weighted back-projection.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from .solver_options import DEFAULTS, SolverSettings

if TYPE_CHECKING:
    from ..alignment.result import Alignment
    from ..tracking.jobs import TrackedStack, TrackJob
    from .align import AlignJob, FolderResult

DEFAULT_BIN = 2  # the tomogram's binning


@dataclass(frozen=True)
class RunJob:
    """A raw stack to markers, an alignment, an aligned stack and a tomogram, each written into ``output_dir``.

    ``settings``: the solver's options (the default: `tracking.jobs.run_options` of the tilt axis, robust);
    ``imod_com``: IMOD's full model from that align.com instead (the settings' tilt axis then only guides the
    tracking, and their axis Z shift, when given, replaces the file's). ``thickness`` in unbinned pixels (None:
    `facts.default_thickness_px`). ``pixel_size_nm`` (None: the header's) converts a diameter in nm.
    """

    stack: Path
    output_dir: Path
    bead_diameter_nm: float | str | None = None  # "auto": measured
    bead_diameter_px: float | str | None = None
    tilt_angles_path: Path | None = None
    settings: SolverSettings | None = None
    imod_com: Path | None = None
    n_beads: int | None = None
    binning: int = DEFAULT_BIN
    thickness: int | None = None
    erase_gold: bool = False
    pixel_size_nm: float | None = None
    name: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    patches: bool = False  # no gold: track patches of the specimen (`tracking.patches`) instead of beads
    patch_size: int | None = None
    patch_overlap: float | None = None
    patch_length: str | None = None  # "N[,OVERLAP]" views per contour
    clumps: str = "skip"  # "track": the beads of clumps of touching beads too
    dark: bool = True  # False for bright beads
    ali_mode: str | None = None  # the aligned stack's mode (None: the input's integer mode, else float32)
    memory_bytes: int | None = None  # the tomogram's streaming budget, as reconstruct --memory (None: its default)
    seed_view: int | None = None  # 0-based view to find the beads on (None: the minimum tilt not blank)
    size: tuple[int, int] | None = None  # the aligned frame (x, y), unbinned (None: `reconstruction.frame`'s choice)
    shift_px: tuple[float, float] | None = None  # IMOD's SHIFT x z of the tomogram, unbinned (reconstruct --shift)
    level: int | None = None  # reconstruct --level: 0 (what align analysed), 1 or 2 surfaces; None: not levelled

    def __post_init__(self) -> None:
        from .facts import check_job_numbers

        check_job_numbers(binning=self.binning, thickness=self.thickness, pixel_size_nm=self.pixel_size_nm)
        from ..reconstruction.reconstruct_job import ReconstructOptions, check_options

        check_options(ReconstructOptions(shift_px=self.shift_px, level=self.level))  # before the tracking
        if self.ali_mode is not None:
            from .images import output_mode

            output_mode(np.float32, self.ali_mode)  # a bad mode is refused before the work
        if self.patches and self.erase_gold:
            raise UsageError("--erase-gold needs gold: with --patches there are no beads to erase")
        if self.imod_com is not None and self.settings is not None and set(self.settings.given) - {
                "tilt_axis", "axis_z_shift", "exclude_views"}:
            raise UsageError("--imod-com takes the model from the command file: leave out the model options (the"
                             " tilt axis only guides the tracking)")
        from ..local_jobs import local_options, wants_local

        if wants_local(self.imod_com):  # its local patch grid too, before the tracking
            local_options(self.imod_com)

    @property
    def stem(self) -> str:
        return self.name or Path(self.stack).stem

    def tilt_axis_deg(self) -> float | None:
        return self.settings.options.tilt_axis_deg if self.settings is not None else None

    def solver_settings(self) -> SolverSettings:
        """The settings of the alignment: the job's, else the tracker's own (robust, near the tilt axis); with an
        align.com, none (the command file holds the model)."""
        from ..tracking.jobs import run_options

        if self.imod_com is not None:
            return SolverSettings(DEFAULTS, self.settings.axis_z_shift_px if self.settings is not None else None)
        return self.settings if self.settings is not None else SolverSettings(run_options(None))

    def track_job(self) -> TrackJob:
        """The tracking of the run (`tracking.jobs.TrackJob`), its markers in ``output_dir/<stem>.fid``."""
        from ..tracking.jobs import TrackJob

        return TrackJob(Path(self.stack), Path(self.output_dir) / f"{self.stem}.fid", self.tilt_angles_path,
                        self.bead_diameter_nm, self.bead_diameter_px, self.tilt_axis_deg(), self.n_beads,
                        self.pixel_size_nm, self.clumps, self.dark, self.seed_view,
                        self.settings.excluded_views if self.settings is not None else ())

    def output_names(self) -> list[str]:
        """The files the run writes besides ``alignment/``."""
        n = self.stem
        quality = f"{n}_patches.csv" if self.patches else f"{n}_beads.csv"
        return [f"{n}.fid", quality, f"{n}_markers.csv", f"{n}.ali", f"{n}_bin{self.binning}.rec",
                *([f"{n}_erased.mrc"] if self.erase_gold else [])]


@dataclass
class RunResult:
    """What `run_job` made: the tracking, the alignment folder's result, the image files and the times."""

    tracked: TrackedStack
    folder: FolderResult
    align_job: AlignJob
    aligned_stack: Path
    tomogram: Path
    erased: Path | None
    timings_s: dict[str, float]
    frame: Any = None  # the aligned frame of the .ali and the tomogram (`reconstruction.frame.FrameSize`)
    surfaces: Any = None  # --level: the surface analysis levelled from (`positioning.SurfaceAnalysis`)
    levelled: Any = None  # --level: what was applied (`positioning.Levelling`)
    tomogram_warnings: tuple[str, ...] = ()  # what may be wrong with the tomogram (a shift that holds no marker)
    kernel: Any = None  # the kernel that back-projected the tomogram, and why (`reconstruction.kernel_choice`)

    def frame_note(self) -> str | None:
        """The output line's note on the aligned frame when it was transposed or given (`images.frame_notes`)."""
        from .images import frame_notes

        notes = frame_notes(self.frame) if self.frame is not None else ()
        return notes[0] if notes else None

    @property
    def alignment(self) -> Alignment:
        return self.folder.alignment


def run_job(job: RunJob, *, overwrite: bool = False, progress: Any = None, threads: int | None = None) -> RunResult:
    """Track, align, then the aligned stack and the tomogram in one pass over the stack (module docstring); the
    output folder is held for the whole run (`tracking.outputs.run_lock`)."""
    from ..tracking.outputs import run_lock

    with run_lock(Path(job.output_dir)):
        return _run_held(job, overwrite, progress, threads)


def _run_held(job: RunJob, overwrite: bool, progress: Any, threads: int | None) -> RunResult:
    from ..io.atomic import check_inside, check_writable
    from ..io.imod_set import RUN_ALIGNMENT
    from ..io.markers import write_markers_csv
    from ..tracking.jobs import run_track_job
    from .run_checks import check_alignment_folder, check_budget, check_disk_space
    from .threads import thread_limit

    out = Path(job.output_dir)
    check_inside(out, out / RUN_ALIGNMENT)  # a linked alignment/ never takes the unit out of the folder
    for name in job.output_names():
        check_writable(out / name, overwrite)
    check_alignment_folder(out / RUN_ALIGNMENT, job, overwrite)
    if job.memory_bytes is not None:
        check_budget(job)
    check_disk_space(job)  # before the tracking: the image step reserves its files' space only after it
    if overwrite:  # the earlier run's files kept as NAME~ first: a stopped run never leaves two runs' files
        from ..io.earlier_run import drop_older_backups, other_series_names, retire_earlier_run

        other = other_series_names(out, job.stem)  # another series' run: its files go aside too
        retire_earlier_run(out, job.output_names() + other, job.stem)
    timings: dict[str, float] = {}
    with thread_limit(threads), _beside(job, threads, progress) as (progress, prebinned):
        t0 = time.perf_counter()
        tracked = _track(job, overwrite, progress) if job.patches else run_track_job(
            job.track_job(), overwrite=overwrite, progress=progress, threads=threads)
        write_markers_csv(out / f"{job.stem}_markers.csv", tracked.result.markers, overwrite=overwrite)
        timings["track"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ajob, folder = _align(job, tracked, overwrite)
        timings["align"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ali, rec, erased, frame, info = _images(job, ajob, folder, getattr(tracked.result, "bead_diameter_px", 0.0),
                                                overwrite, prebinned())
        timings["images"] = time.perf_counter() - t0
    if overwrite:  # finished: the run before last's backups are not needed any more
        drop_older_backups(out, job.output_names() + other)
    return RunResult(tracked, folder, ajob, ali, rec, erased, timings, frame, info.get("surfaces"), info.get("levelled"),
                     tuple(info.get("shift_warnings", ())), info.get("kernel"))


@contextmanager
def _beside(job: RunJob, threads: int | None, progress: Any) -> Iterator[tuple[Any, Any]]:
    """What the image step can do before the alignment, done on a second core while the tracking runs on one,
    from the tracker's second view on (by then its own kernels are loaded: numba's loads take turns): its
    compiled kernels loaded (the warps and the back-projection: numba's cache, 0.2-0.5 s) and the raw views
    binned for the tomogram (`_prebin`). Yields the progress callback that starts it and a function that
    returns the binned views (None: the image step bins them itself). Only for bead tracking (one thread),
    when the caller set no cap on the threads and there is a second core."""
    from ..tracking._spread import threadsafe_loops

    if threads is not None or job.patches or (os.cpu_count() or 1) < 2 or not threadsafe_loops():
        yield progress, lambda: None
        return
    from concurrent.futures import ThreadPoolExecutor

    from ..io.mrc import open_tilt_series
    from .images import load_image_kernels

    try:
        dtype = open_tilt_series(job.stack, find_tilts=False).data.dtype
    except Exception:  # noqa: BLE001 - the tracking opens it next and says what is wrong
        yield progress, lambda: None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="kernels") as pool:
        started: list[Any] = []

        def heard(stage: str, done: int, total: int, text: str) -> None:
            if not started and stage == "track" and done >= 3:
                started.append(pool.submit(load_image_kernels, job.binning, dtype))
                started.append(pool.submit(_prebin, job))
            if progress is not None:
                progress(stage, done, total, text)

        def prebinned() -> Any:
            if len(started) < 2 or started[1].exception() is not None:
                return None
            return started[1].result()

        yield heard, prebinned


def _prebin(job: RunJob) -> Any:
    """The raw views binned by the job's binning, as `warp_view` bins them before the warp (None when there is
    nothing to gain or the views are erased first); on one thread."""
    from ..io.mrc import open_tilt_series
    from ..reconstruction.warp import bin_image
    from .images import check_memory
    from .threads import thread_limit

    b = job.binning
    if b < 2 or job.erase_gold:
        return None
    data = open_tilt_series(job.stack, find_tilts=False).data
    n, rows, cols = data.shape
    check_memory(4 * (rows // b) * (cols // b) * 3 * n, "the binned views")
    out = np.empty((n, rows // b, cols // b), dtype=np.float32)
    with thread_limit(1):
        for j in range(n):
            out[j] = bin_image(data[j], b)
    return out


def _track(job: RunJob, overwrite: bool, progress: Any) -> Any:
    """Patch tracking (no gold) into ``output_dir/<stem>.fid``: `tracking.patches` through its file job."""
    from ..tracking._patch_jobs import track_patches_to_file

    return track_patches_to_file(job.stack, Path(job.output_dir) / f"{job.stem}.fid",
                                 tilt_angles_path=job.tilt_angles_path, tilt_axis_deg=job.tilt_axis_deg(),
                                 patch_size=job.patch_size, overlap=job.patch_overlap, length=job.patch_length,
                                 overwrite=overwrite, progress=progress)


def _align(job: RunJob, tracked: Any, overwrite: bool) -> tuple[AlignJob, FolderResult]:
    """The alignment of the tracked markers, written into ``alignment/``: the tracker's last robust fit when
    the job asks for the tracker's options, else a solve (an align.com's full model, or other options)."""
    from ..io.imod_set import RUN_ALIGNMENT
    from ..local_jobs import wants_local
    from ..reconstruction.positioning import in_one_layer
    from ..tracking.jobs import run_options
    from .align import AlignJob, run_align_job, solve, surface_analysis

    result = tracked.result
    table = result.markers
    if result.alignment is None or table.image_size is None:
        raise UsageError(f"{job.stack}: the tracked beads could not be aligned; check the bead diameter and the"
                         " tilt angles")
    settings = job.solver_settings()
    tilts = result.alignment.nominal_tilt_angles_deg
    from ..io.mrc import open_tilt_series
    from ..io.stack_sample import stack_sample

    inputs = {"stack": str(job.stack), "markers": "patch tracking" if job.patches else "tracked",
              "tilt_angles": tracked.tilt_source, **job.inputs,
              "stack_sample": stack_sample(open_tilt_series(job.stack, find_tilts=False).data)}
    if job.imod_com is not None:
        inputs["imod_com"] = str(job.imod_com)
        from ..io.imod_com import check_rotation_angle  # a stale RotationAngle: the other axis branch

        check_rotation_angle(job.imod_com, result.alignment.tilt_axis_deg)
    ajob = AlignJob(table, tilts, table.image_size, settings, tracked.pixel_size_nm, job.imod_com,
                    local=wants_local(job.imod_com), stem=job.stem, inputs=inputs)
    ajob.check()
    same = job.imod_com is None and settings.options == run_options(job.tilt_axis_deg()) and not (
        settings.excluded_views)
    al = replace(result.alignment, pixel_size_nm=tracked.pixel_size_nm) if same else solve(ajob)
    from ..alignment.validation import tilt_file_mismatch
    from ..conventions import view_number
    from ..tracking.jobs import misfit_message

    misfit = None if job.patches else misfit_message(result, tilts, tracked.tilt_source, job.stack)
    if misfit:  # before anything is written (`misfit_message`)
        raise UsageError(misfit)
    off = tilt_file_mismatch(al.tilt_angles_deg, tilts, al.view_determined)
    if off is not None:  # before anything is written: the tomogram would be made with tilts the views do not have
        raise UsageError(f"the solved tilt angles differ from the given ones by up to {off[0]:.1f} deg (view"
                         f" {view_number(off[1])}): {tracked.tilt_source} does not match the views of {job.stack}"
                         " (another series', or another order?); give this stack's tilt angles, in its order")
    surfaces = None if job.patches else surface_analysis(ajob, al, ajob.axis_z_shift(al))
    if surfaces is not None and in_one_layer(surfaces):  # said before the files: alignment.json and batch carry it
        al.warnings.append("the beads lie in one layer (gold on one face), which says nothing of the"
                           " section's thickness: the tomogram is centred on them and may cut the section or hold"
                           " resin; look at it, then give run (or reconstruct) --level --thickness T --shift 0 Z to hold it")
    return ajob, run_align_job(ajob, Path(job.output_dir) / RUN_ALIGNMENT, overwrite=overwrite, alignment=al,
                               surfaces=surfaces)


def _images(job: RunJob, ajob: AlignJob, folder: FolderResult, diameter_px: float, overwrite: bool,
            prebinned: Any = None) -> tuple[Path, Path, Path | None, Any, dict]:
    """The aligned stack and the tomogram in one pass over the stack, their aligned frame and what the tomogram's
    plan found (`run_images.run_images`)."""
    from .run_images import run_images

    return run_images(job, ajob, folder, diameter_px, overwrite, prebinned)


def run_to_folder(
    stack: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    bead_diameter_nm: float | None = None,
    bead_diameter_px: float | None = None,
    tilt_angles_path: str | os.PathLike[str] | None = None,
    tilt_axis_deg: float | None = None,
    imod_com: str | os.PathLike[str] | None = None,
    n_beads: int | None = None,
    binning: int | None = None,
    thickness_px: int | None = None,
    erase_gold: bool = False,
    pixel_size_nm: float | None = None,
    patches: bool = False,
    clumps: str = "skip",
    dark: bool = True,
    ali_mode: str | None = None,
    memory_bytes: int | None = None,
    seed_view: int | None = None,
    shift_px: tuple[float, float] | None = None,
    level: int | None = None,
    exclude_views: tuple[int, ...] = (),
    overwrite: bool = False,
    progress: Any = None,
    threads: int | None = None,
) -> RunResult:
    """``tomoalign run`` from Python: track the beads of a raw ``stack`` (one of ``bead_diameter_nm`` and
    ``bead_diameter_px``; or, with ``patches``, patches of the specimen), align them (robustly, near
    ``tilt_axis_deg``; or with IMOD's full model from ``imod_com``), and write the aligned stack and a tomogram
    binned by ``binning`` (default: as the command line, 2 or to about 1024 px wide) into ``output_dir``. The
    rest as the command line's options (`RunJob`): ``clumps`` (``--clumps``), ``dark`` (``--polarity``),
    ``ali_mode`` (``--mode``), ``memory_bytes`` (``--memory``), ``seed_view`` (``--seed-view``, but 0-based),
    ``shift_px`` and ``level`` (``--shift``, ``--level``), ``exclude_views`` (``--exclude-views``, but 0-based)."""
    from ..tracking.binned import stack_tomogram_binning
    from ..tracking.jobs import run_options

    if binning is None:
        binning = stack_tomogram_binning(stack)[0]
    job = RunJob(Path(stack), Path(output_dir), bead_diameter_nm, bead_diameter_px,
                 Path(tilt_angles_path) if tilt_angles_path is not None else None,
                 SolverSettings(run_options(tilt_axis_deg), given=("exclude_views",) if exclude_views else (),
                                excluded_views=tuple(exclude_views)), Path(imod_com) if imod_com is not None else None,
                 n_beads, binning, thickness_px, erase_gold, pixel_size_nm, patches=patches, clumps=clumps,
                 dark=dark, ali_mode=ali_mode, memory_bytes=memory_bytes, seed_view=seed_view, shift_px=shift_px,
                 level=level)
    return run_job(job, overwrite=overwrite, progress=progress, threads=threads)


__all__ = ["DEFAULT_BIN", "RunJob", "RunResult", "run_job", "run_to_folder"]
