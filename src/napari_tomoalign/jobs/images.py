"""The image jobs: an aligned stack (as ``newstack -xform``) and a tomogram (weighted back-projection, as
IMOD's ``tilt``) from a raw stack and a saved alignment folder (``tomoalign aligned-stack`` and
``reconstruct``), as typed jobs. Each checks its numbers, then the files, before any heavy work; the image
work (numba's warp, scipy's FFT) is imported by the job that uses it. The default thickness, the bead
diameter and the gold erasure are `jobs.facts`' and `reconstruction.erase.GoldEraser`'s.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..conventions import nm_from_angstrom, view_number
from ..errors import AlignmentWarning, UsageError
from ..io.atomic import atomic_path, check_writable
from ..io.errors import FileFormatError
from ..io.modes import tomogram_mode
from ..reconstruction.reconstruct_job import MODES
from .facts import MAX_THICKNESS_FACTOR, check_bead_diameter_px, check_job_numbers, default_thickness_px

if TYPE_CHECKING:
    from ..reconstruction.frame import FrameSize
    from ..reconstruction.reconstruct_job import ReconstructOptions

PIXEL_SIZE_TOLERANCE = 0.01  # a stack whose pixel size differs more from the alignment's is another stack


@dataclass
class ImageResult:
    """What `aligned_stack_to_file` or `reconstruct_to_file` wrote: ``shape`` is (sections, rows, cols)."""

    path: Path
    shape: tuple[int, int, int]
    voxel_size_angstrom: float | None
    n_views_used: int
    surfaces: Any = None  # reconstruct --level: the `positioning.SurfaceAnalysis` it levelled from
    levelled: Any = None  # reconstruct --level: the `positioning.Levelling` applied
    notes: tuple[str, ...] = ()  # what was applied, one line each (`reconstruct_job.tomogram_notes`)
    warnings: tuple[str, ...] = ()  # what may be wrong with the result, one line each
    kernel: Any = None  # a tomogram's: the kernel that back-projected it, and why (`reconstruction.kernel_choice`)


@dataclass(frozen=True)
class AlignedStackJob:
    """A raw stack warped by a saved alignment into ``output``, binned by ``binning``, with ``interpolation``
    (linear or cubic); with ``erase_gold_diameter_px`` every bead is first replaced by local background, where
    the alignment's model puts it in each view (a ``.prexg`` of the alignment undone)."""

    stack: Path
    alignment_dir: Path
    output: Path
    binning: int = 1
    interpolation: str = "linear"
    erase_gold_diameter_px: float | None = None
    mode: str | None = None  # None: the input's integer mode, else float32 (as newstack keeps it)
    size: tuple[int, int] | None = None  # the aligned frame (x, y), unbinned (None: `frame.frame_size`'s choice)
    pixel_size_nm: float | None = None  # the stack's pixel size when its header is wrong (`facts.pixel_size_nm`)


def make_aligned_stack(job: AlignedStackJob, *, overwrite: bool = False) -> ImageResult:
    """Warp the job's stack view by view into an MRC file (``tomoalign aligned-stack``)."""
    from ..io.mrc import MrcStreamWriter
    from ..reconstruction.frame import frame_size_of
    from ..reconstruction.warp import INTERPOLATIONS, warp_view

    check_job_numbers(binning=job.binning, pixel_size_nm=job.pixel_size_nm)
    if job.interpolation not in INTERPOLATIONS:
        raise UsageError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {job.interpolation!r}")
    out = check_writable(job.output, overwrite)
    series, saved, pix = open_stack_and_alignment(job.stack, job.alignment_dir, job.binning, job.pixel_size_nm)
    frame = frame_size_of(saved, job.size)
    erase = _gold_eraser(job.alignment_dir, job.erase_gold_diameter_px, series.n_views, tuple(saved.image_size))
    shape = (series.n_views, *frame.shape(job.binning))
    check_frame(frame, job.binning)
    voxel = pix * job.binning if pix else None
    mode = output_mode(series.data.dtype, job.mode)
    with atomic_path(out, overwrite) as tmp:
        w = MrcStreamWriter(tmp, shape, mode, voxel)
        try:
            for j in range(series.n_views):
                raw = erase(j, series.data[j]) if erase else series.data[j]
                view = warp_view(raw, saved.transforms[j], binning=job.binning, interpolation=job.interpolation,
                                 out_shape=shape[1:])
                check_finite_view(job.stack, j, view)
                w.write(in_mode(view, mode))
            w.close()
        except BaseException:
            w.abort()
            raise
    from .blank_views import blank_views_note

    blank = blank_views_note(saved)  # views filled blank, said with why (s15 new user)
    return ImageResult(out, shape, voxel, int(saved.view_determined.sum()),
                       notes=(*((blank,) if blank else ()), *frame_notes(frame, job.binning)))


def frame_notes(frame: FrameSize, binning: int = 1) -> tuple[str, ...]:
    """The output line's note on the aligned frame when it was transposed or given (`--size`)."""
    return (f"aligned frame {frame.describe(binning)}",) if frame.transposed or frame.given else ()


def check_frame(frame: FrameSize, binning: int) -> None:
    """A frame of less than one binned pixel (a ``--size`` smaller than ``--bin``) refused in one line."""
    if min(frame.binned_size(binning)) < 1:
        raise UsageError(f"--size {frame.size[0]},{frame.size[1]} is less than one binned pixel (--bin {binning})")


def _gold_eraser(alignment_dir: str | os.PathLike[str], diameter_px: float | None, n_views: int,
                 image_size: tuple[int, int]):
    """The `GoldEraser` of a saved alignment for beads of ``diameter_px``, or None without a diameter."""
    if diameter_px is None:
        return None
    from ..reconstruction.erase import GoldEraser
    from .align import patch_source

    try:
        import json

        from ..io.guarded import read_text_limited

        record = json.loads(read_text_limited(Path(alignment_dir) / "alignment.json", "alignment", 256 * 2**20))
        markers = str((record.get("inputs") or {}).get("markers", ""))
    except (OSError, ValueError, AttributeError, FileFormatError):
        markers = ""  # an IMOD set, or a record the reader refuses for itself
    if patch_source(markers):
        raise UsageError(f"{alignment_dir} aligns patches of the specimen, not gold: there are no beads to erase;"
                         " leave out --erase-gold")

    return GoldEraser.from_folder(alignment_dir, check_bead_diameter_px(diameter_px, image_size), n_views)


@dataclass(frozen=True)
class ReconstructJob:
    """A weighted back-projection ``(z, y, x)`` of a raw stack with a saved alignment, binned by ``binning``:
    ``thickness`` in unbinned pixels (None: `facts.default_thickness_px`), ``lowpass`` in cycles per binned
    pixel, ``local`` the local alignments to apply (True: the folder's own local file; or a file's path)."""

    stack: Path
    alignment_dir: Path
    output: Path
    binning: int = 1
    thickness: int | None = None
    lowpass: float | None = None
    local: Path | bool = False
    options: ReconstructOptions | None = None  # IMOD's tilt options (radial, x-axis tilt, level, mode, memory, ...)
    size: tuple[int, int] | None = None  # the aligned frame (x, y), unbinned (None: `frame.frame_size`'s choice)
    pixel_size_nm: float | None = None  # the stack's pixel size when its header is wrong (`facts.pixel_size_nm`)


def make_tomogram(job: ReconstructJob, *, overwrite: bool = False) -> ImageResult:
    """The job's tomogram into an MRC file (``tomoalign reconstruct``)."""
    from ..reconstruction.frame import frame_size_of

    binning, thickness, local = job.binning, job.thickness, job.local
    given = thickness  # with --level, the markers pick the thickness unless it is given
    check_job_numbers(binning=job.binning, thickness=job.thickness, lowpass=job.lowpass, pixel_size_nm=job.pixel_size_nm)
    if job.options is not None:  # the options' own errors before "already exists" (s16 new user: two round trips)
        from ..reconstruction.reconstruct_job import check_options

        check_options(job.options, lowpass=job.lowpass)
    out = check_writable(job.output, overwrite)
    series, saved, pix = open_stack_and_alignment(job.stack, job.alignment_dir, binning, job.pixel_size_nm)
    rows, cols = series.data.shape[1:]
    frame = frame_size_of(saved, job.size)
    check_frame(frame, binning)
    guessed: tuple[str, ...] = ()
    if thickness is None:
        thickness = default_thickness_px((cols, rows), saved.marker_z_extent_px)
        if saved.marker_z_extent_px is None and (job.options is None or job.options.level is None):
            # another tool's alignment (AreTomo's .aln, RELION's star): no markers to size the section (new user's
            # finding R, session 12: both gold layers of a 180 px section fell outside, without a word)
            guessed = (f"thickness {thickness} px, a quarter of the image: the alignment has no markers to size the"
                       " section; give --thickness",)
    if thickness < binning:
        raise UsageError(f"--thickness {thickness} is less than one binned pixel (--bin {binning})")
    if thickness > MAX_THICKNESS_FACTOR * max(rows, cols):
        raise UsageError(f"--thickness {thickness} is more than {MAX_THICKNESS_FACTOR} x the image size "
                         f"({cols} x {rows}); give the specimen's thickness in unbinned pixels")
    local_file = None
    if local:  # the local alignments' file: the folder's own, or the one given
        from ..local_jobs import check_local_file, find_local_file

        folder = saved.folder or job.alignment_dir  # an IMOD set's folder when its .xf was given
        local_file = find_local_file(folder, saved.local_file) if local is True else check_local_file(
            local, folder, saved.local_file)
    # streamed in slabs of rows, in bounded memory, with the full model or local alignments and IMOD's options
    from ..reconstruction.reconstruct_job import ReconstructOptions, reconstruct_alignment, tomogram_notes

    options = job.options or ReconstructOptions()
    options = replace(options, mode=tomogram_mode(series.data.dtype, options.mode))  # bytes stay bytes, as tilt
    voxel_a = pix * binning if pix else None
    info = reconstruct_alignment(job.stack, saved, job.alignment_dir, out, binning=binning,
                                 thickness=given if options.level is not None else thickness, lowpass=job.lowpass,
                                 options=options, voxel_angstrom=voxel_a, overwrite=overwrite, frame=frame,
                                 local_file=local_file, stack_pixel_nm=nm_from_angstrom(pix))
    notes, warnings = tomogram_notes(info)
    return ImageResult(out, tuple(info["shape"]), voxel_a, info["n_views"], info["surfaces"], info["levelled"],
                       frame_notes(frame, binning) + guessed + tuple(notes), tuple(warnings), info["kernel"])


OUTPUT_MODES = MODES  # IMOD's modes, one list (`reconstruct_job.MODES`)


def output_mode(input_dtype, asked: str | None) -> np.dtype:
    """The mode of an image derived view by view from an input (an aligned stack, as ``newstack -mode``):
    ``asked``, else the input's own integer mode, else float32."""
    if asked is not None:
        if asked not in OUTPUT_MODES:
            raise UsageError(f"--mode {asked!r}: give one of {', '.join(OUTPUT_MODES)}")
        return np.dtype(asked)
    d = np.dtype(input_dtype).newbyteorder("=")
    return d if d.kind in "iu" and d.name in OUTPUT_MODES else np.dtype(np.float32)


def in_mode(image: NDArray, dtype: np.dtype) -> NDArray:
    """``image`` in ``dtype``: an integer mode is rounded and clipped to its range (cubic overshoot, a scale)."""
    if dtype.kind not in "iu":
        return image
    info = np.iinfo(dtype)
    return np.clip(np.rint(image), info.min, info.max).astype(dtype)


def check_finite_view(stack_path, j: int, view: NDArray) -> None:
    if not np.isfinite(np.sum(view, dtype=np.float64)):
        raise FileFormatError(f"{stack_path}: view {view_number(j)} holds NaN or infinite pixels; the aligned view"
                              " would be undefined")


def check_memory(need_bytes: int, what: str) -> None:
    """Refuse work whose arrays would not fit in the memory that is available now."""
    from ..compute import available_memory_bytes

    avail = available_memory_bytes()
    if avail is None:
        return
    if need_bytes > 0.8 * avail:
        raise UsageError(f"{what} needs {need_bytes / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB are available; "
                         "bin more (--bin) or make it thinner (--thickness)")


def load_image_kernels(binning: int, dtype: Any = np.float32) -> None:
    """Load the compiled kernels an image step calls (numba's cache: the warp of a raw view, whole and binned,
    and the back-projection), by running them on one thread on a tiny stack; `jobs.run` calls it on a second
    core while the tracking runs. The raw view is read-only and of the stack's ``dtype``, as a view of the raw
    stack is."""
    from ..reconstruction.warp import warp_view
    from ..reconstruction.wbp import weighted_back_projection
    from .threads import thread_limit

    with thread_limit(1):
        raw = np.zeros((136 * binning, 16 * binning), dtype=dtype)  # rows for two chunks of blocks
        raw.flags.writeable = False
        xf = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        warp_view(raw, xf)
        views = np.stack([warp_view(raw, xf, binning=binning)] * 3)
        for rows in (views, views[:, :8]):  # a volume in chunks of rows and in one (a view shorter than a chunk)
            weighted_back_projection(np.ascontiguousarray(rows), np.array([-30.0, 0.0, 30.0]), thickness=4)


__all__ = ["OUTPUT_MODES", "AlignedStackJob", "ImageResult", "ReconstructJob", "check_finite_view",
           "check_frame", "check_memory", "frame_notes", "in_mode", "load_image_kernels", "make_aligned_stack",
           "make_tomogram", "output_mode"]


def open_stack_and_alignment(stack_path: str | os.PathLike[str], alignment_dir: str | os.PathLike[str],
                             binning: int = 1, pixel_size_nm: float | None = None):
    """``(TiltSeries, SavedAlignment, pixel size in A or None)`` for making an aligned stack or a tomogram:
    the stack must have the alignment's image size, views and pixel size, and be at least ``binning`` pixels
    wide. The stack's pixel size is `facts.pixel_size_nm`'s: ``pixel_size_nm`` when given (a header that is
    wrong, as ``run --pixel-size-nm`` takes it), else the header's. An alignment whose solve did not converge
    is used, with a warning."""
    from ..io.alignment_input import read_alignment_for_stack
    from ..io.imod_set import is_stamped
    from ..io.mrc import open_tilt_series

    saved = read_alignment_for_stack(alignment_dir, stack_path)  # a tomoalign folder, or an IMOD set for this stack
    if not saved.converged:
        warnings.warn(f"{alignment_dir}: the solve that wrote this alignment did not converge; its transforms are"
                      " used as they are (align again, with more iterations)", AlignmentWarning, stacklevel=2)
    if Path(stack_path).suffix.lower() == ".ali":  # IMOD's tilt reads the .ali; these warp the raw stack
        raise FileFormatError(f"{stack_path} is an aligned stack (.ali), which would be aligned twice: give the raw"
                              " stack the alignment maps (the .st; etomo's .preali for its .tltxf)")
    series = open_tilt_series(stack_path, find_tilts=False)  # the alignment has the tilts
    rows, cols = series.data.shape[1:]
    checked = None if Path(alignment_dir).suffix.lower() == ".xf" else is_stamped(alignment_dir)  # an .xf: "anyway"
    if checked is not None and (cols, rows) == tuple(saved.image_size) and series.n_views == len(saved.transforms):
        from ..io.stack_sample import other_stack_warning

        other = other_stack_warning(checked, series.data, stack_path)  # the folder, however it was named (s16 new user)
        if other is not None:
            warnings.warn(other, AlignmentWarning, stacklevel=2)
    if (cols, rows) != tuple(saved.image_size):
        raise FileFormatError(f"{stack_path} is {cols} x {rows} but the alignment was solved for "
                              f"{saved.image_size[0]} x {saved.image_size[1]} images")
    if series.n_views != len(saved.transforms):
        raise FileFormatError(f"{stack_path} has {series.n_views} views but the alignment has "
                              f"{len(saved.transforms)}")
    if binning > min(rows, cols):
        raise FileFormatError(f"--bin {binning} is larger than the image ({cols} x {rows}) of {stack_path}")

    from .facts import pixel_size_nm as stack_pixel_size_nm

    stack_nm = stack_pixel_size_nm(pixel_size_nm, series.pixel_size_angstrom)  # the one rule (warns when it differs)
    if pixel_size_nm is not None and saved.provenance is not None and saved.pixel_size_nm:
        saved = replace(saved, pixel_size_nm=float(pixel_size_nm))  # an IMOD set took the header's pixel size
    solved_nm = saved.pixel_size_nm or None
    if stack_nm and solved_nm and abs(stack_nm / solved_nm - 1.0) > PIXEL_SIZE_TOLERANCE:
        said = "was given" if pixel_size_nm is not None else "has"
        raise FileFormatError(f"{stack_path} {said} {stack_nm:.4g} nm pixels but the alignment was solved at "
                              f"{solved_nm:.4g} nm; give the stack the markers were placed on, or, if this is it and"
                              f" its header is wrong, --pixel-size-nm {solved_nm:.4g}")
    pix = 10.0 * stack_nm if stack_nm else (10.0 * solved_nm if solved_nm else None)
    return series, saved, pix
