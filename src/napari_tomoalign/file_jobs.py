"""The command line's jobs, GUI-free and typed: `align_to_folder`, `aligned_stack_to_file`,
`reconstruct_to_file` and `write_demo_inputs`. Each checks every input range before any heavy work:
options first, then files, then the solve. The image work (numba's warp, scipy's FFT) is imported by the
jobs that use it, so that ``tomoalign align`` starts without it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .alignment.errors import AlignmentWarning
from .alignment.options import MAX_THICKNESS_FACTOR, AlignmentOptions, check_job_numbers
from .alignment.result import Alignment
from .errors import UsageError
from .io import FileFormatError, MarkerTable, read_markers, read_tilt_angles, write_markers_csv
from .io.alignment import open_stack_and_alignment, output_names, write_alignment
from .io.atomic import atomic_path, check_writable

if TYPE_CHECKING:
    from .alignment.local import LocalAlignments
    from .reconstruction.reconstruct_job import ReconstructOptions


@dataclass
class FolderResult:
    """What `align_to_folder` solved and wrote."""

    alignment: Alignment
    paths: list[Path]
    leave_out: object | None = None
    local: LocalAlignments | None = None  # when local alignments were solved


def align_to_folder(
    markers_path: str | os.PathLike[str],
    tilt_angles_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: AlignmentOptions,
    *,
    image_size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
    axis_z_shift_px: float | None = 0.0,
    leave_out: bool = False,
    overwrite: bool = False,
    markers: MarkerTable | None = None,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    inputs: dict | None = None,
    imod_com: str | os.PathLike[str] | None = None,
    local: bool = False,
    prexg: str | os.PathLike[str] | None = None,
) -> FolderResult:
    """Solve from a markers file and a tilt file and write every output into ``output_dir`` as one unit.

    ``markers`` and ``tilt_angles_deg`` skip reading the files (the demo has them in memory). With
    ``imod_com``, the model is the ``tiltalign`` section of that IMOD command file (its full model:
    stretch, skew, X-tilt, groupings; `alignment.imod_align`) instead of ``options``, and an
    ``axis_z_shift_px`` of None takes the file's ``AxisZShift`` (else None means 0).
    With ``local`` (or a command file with ``LocalAlignments 1``) IMOD's local alignments are solved after
    the global fit and written as IMOD's local file in the same unit (`local_jobs`). With ``prexg`` (etomo's
    ``.prexg`` for markers placed on the ``.preali``) the ``.xf`` is the raw stack's, as etomo's.
    Raises `UsageError`, `FileFormatError`, `AlignmentError` or `OverwriteError` for bad input.
    """
    from .local_jobs import local_file_name, wants_local

    local = bool(local) or wants_local(imod_com)
    check_job_numbers(pixel_size_nm=pixel_size_nm, axis_z_shift_px=axis_z_shift_px or 0.0, image_size=image_size)
    if imod_com is not None and (leave_out or options != AlignmentOptions()):
        raise UsageError("--imod-com takes the model from the command file: leave out the model options"
                         " (--rotation, --tilt-axis, --robust, --leave-out, ...)")
    out = Path(output_dir)
    stem = Path(markers_path).stem
    extras = ([local_file_name(stem, imod_com)] if local else []) + ([f"{stem}.tltxf"] if prexg else [])
    for name in output_names(stem, full_model=imod_com is not None) + extras:
        check_writable(out / name, overwrite)
    if markers is None:
        markers = read_markers(markers_path)
    tilts = read_tilt_angles(tilt_angles_path) if tilt_angles_deg is None else tilt_angles_deg
    pre = _read_prexg(prexg, len(tilts)) if prexg is not None else None
    size = image_size or markers.image_size
    if size is None and Path(markers_path).suffix.lower() == ".csv":
        raise UsageError("--image-size W H is required for CSV markers (the file does not record it)")
    if size is None:
        raise UsageError(f"{markers_path}: the model's header gives no image size (its xmax or ymax is 0 or"
                         " negative); give --image-size W H")
    al = _solve(markers, tilts, size, options, pixel_size_nm, imod_com, global_only=local)
    if axis_z_shift_px is None:
        from .alignment.transforms import imod_axis_z_shift_px

        axis_z_shift_px = imod_axis_z_shift_px(al, 0.0)  # the file's AxisZShift (1000: the markers' z middle)
    sections, lo = {}, None
    if leave_out:
        from .alignment.leaveout import leave_out_error

        lo = leave_out_error(al)
        sections["leave_out"] = lo.to_dict()
    inputs = inputs or {"markers": str(markers_path), "tilt_angles": str(tilt_angles_path)}
    if imod_com is not None:
        inputs = {**inputs, "imod_com": str(imod_com)}
    local_file = None
    if local:
        from .io.imod_local import format_local
        from .local_jobs import solve_local

        job = solve_local(al, markers.view, markers.xy, tilts, stem, imod_com, axis_z_shift_px)
        sections["local_alignments"] = job.summary()
        local_file = (job.file_name, format_local(job.result.local_transforms))
    if prexg is not None:
        inputs = {**inputs, "prexg": str(prexg)}
    paths = write_alignment(al, out, stem, overwrite=overwrite, axis_z_shift_px=axis_z_shift_px, extra=inputs,
                            sections=sections, local=local_file, prexg=pre)
    return FolderResult(al, paths, lo, job.result if local else None)


def _read_prexg(path: str | os.PathLike[str], n_views: int) -> NDArray[np.float64]:
    """etomo's prealignment transforms, one per view of the tilt file."""
    from .io.imod import read_xf

    pre = read_xf(path)
    if len(pre) != n_views:
        raise UsageError(f"{path} has {len(pre)} transforms but there are {n_views} tilt angles; give the .prexg"
                         " of this tilt series")
    det = pre[:, 0, 0] * pre[:, 1, 1] - pre[:, 0, 1] * pre[:, 1, 0]
    if not np.all(np.isfinite(pre)) or np.any(np.abs(det) < 1e-3):
        raise UsageError(f"{path}: not a usable prealignment (a transform is not finite or not invertible)")
    return pre


def _solve(markers: MarkerTable, tilts: NDArray[np.float64], size: tuple[int, int], options: AlignmentOptions,
           pixel_size_nm: float | None, imod_com: str | os.PathLike[str] | None,
           global_only: bool = False) -> Alignment:
    """The alignment of `align_to_folder`: the default model with ``options``, or an IMOD command file's."""
    from .alignment._threads import blas_threads_for

    ids = np.sort(markers.marker)
    n_markers = int(np.count_nonzero(np.diff(ids))) + 1 if len(ids) else 0  # (np.unique would load numpy.ma)
    # BLAS threads for the whole solve, the axis estimate included: waking a second thread for a small
    # problem's matrices costs more than the work (and far more on a busy machine).
    with blas_threads_for(5 * len(tilts), n_markers, len(markers.view)), warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # Alignment.warnings lists them
        if imod_com is not None:
            from .alignment.imod_align import align_markers_imod

            return align_markers_imod(markers.view, markers.marker, markers.xy, tilts, size, imod_com,
                                      pixel_size_nm=pixel_size_nm, global_only=global_only)
        from .alignment.solver import align_markers

        return align_markers(markers.view, markers.marker, markers.xy, tilts, size, options,
                             pixel_size_nm=pixel_size_nm)


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
    erase_gold_diameter_px: float | None = None,
) -> ImageResult:
    """Warp a raw stack by a saved alignment (as ``newstack -xform``) into an MRC file, view by view.

    With ``erase_gold_diameter_px``, every bead of that diameter is first replaced by local background
    (as ``tomoalign run --erase-gold``), at the positions the alignment's model gives in every view.
    """
    from .io.mrc import MrcStreamWriter
    from .reconstruction.warp import INTERPOLATIONS, warp_view

    check_job_numbers(binning=binning)
    if interpolation not in INTERPOLATIONS:
        raise UsageError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {interpolation!r}")
    out = check_writable(output, overwrite)
    series, saved, pix = open_stack_and_alignment(stack_path, alignment_dir, binning)
    erase = _gold_eraser(alignment_dir, erase_gold_diameter_px)
    shape = (series.n_views, series.data.shape[1] // binning, series.data.shape[2] // binning)
    voxel = pix * binning if pix else None
    with atomic_path(out, overwrite) as tmp:
        w = MrcStreamWriter(tmp, shape, np.float32, voxel)
        try:
            for j in range(series.n_views):
                raw = erase(j, series.data[j]) if erase else series.data[j]
                view = warp_view(raw, saved.transforms[j], binning=binning, interpolation=interpolation,
                                 out_shape=shape[1:])
                _check_finite_view(stack_path, j, view)
                w.write(view)
            w.close()
        except BaseException:
            w.abort()
            raise
    return ImageResult(out, shape, voxel, int(saved.view_determined.sum()))


def _gold_eraser(alignment_dir: str | os.PathLike[str], diameter_px: float | None):
    """``erase(j, image)`` that replaces the beads of view ``j`` by background, or None without a diameter."""
    if diameter_px is None:
        return None
    if not (np.isfinite(diameter_px) and 1.0 <= diameter_px <= 200.0):
        raise UsageError(f"the bead diameter must be 1 to 200 pixels, not {diameter_px:g}")
    from .io.bead_positions import read_bead_positions
    from .reconstruction.erase import erase_radius_px, erase_view

    view, xy = read_bead_positions(alignment_dir)
    radius = erase_radius_px(diameter_px)
    rng = np.random.default_rng(0)
    return lambda j, image: erase_view(image, xy[view == j], radius, rng)


def reconstruct_to_file(
    stack_path: str | os.PathLike[str],
    alignment_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    binning: int = 1,
    thickness: int | None = None,
    lowpass: float | None = None,
    overwrite: bool = False,
    local: str | os.PathLike[str] | bool = False,
    options: ReconstructOptions | None = None,
) -> ImageResult:
    """Aligned stack and weighted back-projection ``(z, y, x)`` with the solved tilts, into an MRC file.

    The default thickness holds every marker with a margin (`default_thickness_px`). ``local``: apply local
    alignments (True: the local file the alignment folder holds; or a file's path), as IMOD's ``tilt`` does.
    """
    from .io.mrc import write_mrc
    from .reconstruction.warp import warp_view
    from .reconstruction.wbp import weighted_back_projection

    check_job_numbers(binning=binning, thickness=thickness, lowpass=lowpass)
    out = check_writable(output, overwrite)
    series, saved, pix = open_stack_and_alignment(stack_path, alignment_dir, binning)
    rows, cols = series.data.shape[1:]
    given = thickness  # with --level, the markers pick the thickness unless it is given
    thickness = thickness if thickness is not None else default_thickness_px(rows, cols, saved.marker_z_extent_px)
    if thickness < binning:
        raise UsageError(f"--thickness {thickness} is less than one binned pixel (--bin {binning})")
    if thickness > MAX_THICKNESS_FACTOR * max(rows, cols):
        raise UsageError(f"--thickness {thickness} is more than {MAX_THICKNESS_FACTOR} x the image size "
                         f"({cols} x {rows}); give the specimen's thickness in unbinned pixels")
    if not local:  # streamed in slabs of rows, in bounded memory, with the full model and IMOD's options
        from .reconstruction.reconstruct_job import ReconstructOptions, reconstruct_alignment

        voxel_a = pix * binning if pix else None
        info = reconstruct_alignment(stack_path, saved, alignment_dir, out, binning=binning,
                                     thickness=given if options is not None and options.level else thickness,
                                     lowpass=lowpass, options=options or ReconstructOptions(), voxel_angstrom=voxel_a,
                                     overwrite=overwrite)
        return ImageResult(out, tuple(info["shape"]), voxel_a, info["n_views"])
    ny, nx = rows // binning, cols // binning
    need = 4 * nx * ny * (2 * series.n_views + thickness // binning)
    _check_memory(need, "the reconstruction")
    ali = np.empty((series.n_views, ny, nx), dtype=np.float32)
    for j in range(series.n_views):
        warp_view(series.data[j], saved.transforms[j], binning=binning, out=ali[j])
        _check_finite_view(stack_path, j, ali[j])
    lp = None
    if local:
        from .local_jobs import find_local_file, local_projection_for

        path = find_local_file(alignment_dir, saved.local_file) if local is True else Path(local)
        lp = local_projection_for(path, saved.tilt_angles_deg, saved.x_tilts_deg, (nx, ny), saved.pixel_size_nm,
                                  pix / 10.0 if pix else None, binning)
    vol = weighted_back_projection(ali, saved.tilt_angles_deg, thickness=thickness // binning,
                                   use_view=saved.view_determined, lowpass_cutoff=lowpass, local=lp)
    del ali
    voxel = pix * binning if pix else None
    write_mrc(out, vol, voxel, overwrite=overwrite)
    return ImageResult(out, tuple(vol.shape), voxel, int(saved.view_determined.sum()))


def default_thickness_px(rows: int, cols: int, marker_z_extent_px: float | None) -> int:
    """A quarter of the image, or more where the markers need it: every marker inside with a margin of 10%
    of their depth plus 16 pixels on each side (an even number, as IMOD's tilt likes)."""
    quarter = max(rows, cols) // 4
    if marker_z_extent_px is None:
        return quarter
    need = 2.0 * (1.1 * marker_z_extent_px + 16.0)
    return int(min(max(quarter, 2 * int(np.ceil(need / 2.0))), MAX_THICKNESS_FACTOR * max(rows, cols)))


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


def erase_gold_diameter_px(stack: str | os.PathLike[str], erase_gold: bool, diameter_nm: float | None,
                           diameter_px: float | None) -> float | None:
    """The bead diameter in pixels for ``--erase-gold`` (nm through the stack's pixel size), else None."""
    given = [a for a in (diameter_nm, diameter_px) if a is not None]
    if not erase_gold:
        if given:
            raise UsageError("--bead-diameter-nm/--bead-diameter-px are for --erase-gold; add it, or leave them out")
        return None
    if len(given) != 1:
        raise UsageError("--erase-gold needs the bead size: give one of --bead-diameter-nm D or --bead-diameter-px D")
    if diameter_px is not None:
        return float(diameter_px)
    from .io.mrc import open_tilt_series

    pix_a = open_tilt_series(stack, find_tilts=False).pixel_size_angstrom
    if not pix_a:
        raise UsageError(f"{stack} records no pixel size; give --bead-diameter-px instead of -nm")
    return 10.0 * float(diameter_nm) / pix_a  # type: ignore[arg-type]
