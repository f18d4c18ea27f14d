"""The align job: marker observations to an alignment and the files of ``tomoalign align``.

`align_job` builds an `AlignJob` from files (the file boundary: IMOD's half pixel, Å and the ``.prexg``
are read there), `solve` solves it (the default model with its `AlignmentOptions`, or IMOD's full model with
an ``align.com``), `write_outputs` writes it with the axis Z shift the job resolves (`AlignJob.axis_z_shift`),
and `run_align_job` does all three with the leave-out errors and local alignments the job asks for. The
command line, the Python API, ``batch`` and the dock (its Align and *Save alignment*) call these.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..alignment.options import AlignmentOptions
from ..errors import AlignmentWarning, UsageError
from . import facts
from .facts import check_job_numbers
from .solver_options import DEFAULTS, SolverSettings

if TYPE_CHECKING:
    from ..alignment.local import LocalAlignments
    from ..alignment.result import Alignment
    from ..io.markers import MarkerTable
    from ..reconstruction.positioning import SurfaceAnalysis


@dataclass(frozen=True)
class AlignJob:
    """One alignment: the observations, their tilts and image size, and how to solve and write them.

    ``settings`` holds the default model's options and the axis Z shift (None: the align.com's, else 0);
    with ``imod_com`` the model is that command file's ``tiltalign`` section instead. ``prexg``: etomo's
    prealignment of the stack the markers were placed on (the ``.xf`` written is then the raw stack's).
    ``stem`` names the files; ``inputs`` is what ``alignment.json`` records of where the inputs came from.
    """

    markers: MarkerTable
    tilt_angles_deg: NDArray[np.float64]
    image_size: tuple[int, int]
    settings: SolverSettings = field(default_factory=lambda: SolverSettings(DEFAULTS))
    pixel_size_nm: float | None = None
    imod_com: Path | None = None
    leave_out: bool = False
    local: bool = False
    prexg: NDArray[np.float64] | None = None
    stem: str = "markers"
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> AlignmentOptions:
        return self.settings.options

    def check(self) -> None:
        """Every range and consistency check that needs no solve (`UsageError` naming the option)."""
        z = self.settings.axis_z_shift_px
        check_job_numbers(pixel_size_nm=self.pixel_size_nm, axis_z_shift_px=0.0 if z is None else z,
                          image_size=self.image_size)
        if self.imod_com is not None and (self.leave_out or self.settings.any_model_option
                                          or self.options != DEFAULTS):
            raise UsageError("--imod-com takes the model from the command file: leave out the model options"
                             " (--rotation, --tilt-axis, --robust, --leave-out, ...)")
        self.settings.check_views(len(self.tilt_angles_deg))
        if self.local:  # the local options too, before the global solve
            from ..local_jobs import local_options

            local_options(self.imod_com)

    def fitted_markers(self) -> MarkerTable:
        """The observations in the fit: the markers without those of ``--exclude-views`` (any model; the
        solver leaves a view without points out and gives it its mapped values, as tiltalign's ExcludeList)."""
        excluded = self.settings.excluded_views
        if not excluded or self.imod_com is not None:  # an align.com's exclusions go into its settings
            return self.markers
        from dataclasses import replace as replaced

        keep = ~np.isin(self.markers.view, excluded)
        m = self.markers
        return replaced(m, view=m.view[keep], marker=m.marker[keep], xy=m.xy[keep])

    def axis_z_shift(self, al: Alignment) -> float:
        """The axis Z shift the outputs of ``al`` are placed with (`facts.axis_z_shift_px`)."""
        return facts.axis_z_shift_px(al, self.settings.axis_z_shift_px)

    def output_names(self) -> list[str]:
        """Every file `run_align_job` writes."""
        from ..io.alignment import output_names

        extras = ([self.local_file_name()] if self.local else []) + ([f"{self.stem}.tltxf"] if self.prexg is not None
                                                                     else [])
        return output_names(self.stem, full_model=self.imod_com is not None) + extras

    def local_file_name(self) -> str:
        from ..local_jobs import local_file_name

        return local_file_name(self.stem, self.imod_com)


def align_job(
    markers_path: str | os.PathLike[str],
    tilt_angles_path: str | os.PathLike[str],
    settings: SolverSettings | AlignmentOptions | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
    imod_com: str | os.PathLike[str] | None = None,
    leave_out: bool = False,
    local: bool = False,
    prexg: str | os.PathLike[str] | None = None,
    markers: MarkerTable | None = None,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    inputs: dict[str, Any] | None = None,
) -> AlignJob:
    """The `AlignJob` of a markers file and a tilt file (``markers`` and ``tilt_angles_deg``: already read).

    Checks the numbers first, then reads the files. ``local`` is on by itself for a command file with
    ``LocalAlignments 1``.
    """
    from ..io import read_markers
    from ..io.tilt_sources import read_tilt_file
    from ..local_jobs import wants_local

    if not isinstance(settings, SolverSettings):
        settings = SolverSettings(settings or DEFAULTS)
    check_job_numbers(pixel_size_nm=pixel_size_nm, image_size=image_size)
    if markers is None:
        markers = read_markers(markers_path)
    tilts = read_tilt_file(tilt_angles_path) if tilt_angles_deg is None else np.asarray(tilt_angles_deg, float)
    if markers.n_views is not None and len(tilts) != markers.n_views:
        raise UsageError(f"{tilt_angles_path or 'the tilt angles'} holds {len(tilts)} tilt angles but {markers.source}"
                         f" was made on a {markers.n_views}-view stack; give the tilt file of that tilt series")
    pre = read_prexg(prexg, len(tilts)) if prexg is not None else None
    if image_size is not None and markers.image_size is not None and \
            tuple(int(v) for v in image_size) != tuple(int(v) for v in markers.image_size):
        w, h = markers.image_size
        raise UsageError(f"{markers.source} records an image size of {w} x {h}, not {image_size[0]} x {image_size[1]}:"
                         " leave out --image-size (it is for CSV markers), or give the markers of that stack")
    size = image_size or markers.image_size
    if size is None and Path(markers_path).suffix.lower() == ".csv":
        raise UsageError("--image-size W H is required for CSV markers (the file does not record it)")
    if size is None:
        raise UsageError(f"{markers_path}: the model's header gives no image size (its xmax or ymax is 0 or"
                         " negative); give --image-size W H")
    recorded = dict(inputs or {"markers": str(markers_path), "tilt_angles": str(tilt_angles_path)})
    for key, value in (("imod_com", imod_com), ("prexg", prexg)):
        if value is not None:
            recorded[key] = str(value)
    from ..io.markers import series_stem  # BBa.fid, BBa_markers.csv: BBa (IMOD's names)

    if pixel_size_nm is None:  # the pixel size a model records (tomoalign track writes it, as IMOD's pixsize)
        pixel_size_nm = markers.pixel_size_nm
    job = AlignJob(markers, tilts, (int(size[0]), int(size[1])), settings, pixel_size_nm,
                   Path(imod_com) if imod_com is not None else None, bool(leave_out),
                   bool(local) or wants_local(imod_com), pre, series_stem(markers_path), recorded)
    job.check()
    return job


def read_prexg(path: str | os.PathLike[str], n_views: int) -> NDArray[np.float64]:
    """etomo's prealignment transforms, one per view of the tilt file."""
    from ..io.imod import read_xf

    pre = read_xf(path)
    if len(pre) != n_views:
        raise UsageError(f"{path} has {len(pre)} transforms but there are {n_views} tilt angles; give the .prexg"
                         " of this tilt series")
    det = pre[:, 0, 0] * pre[:, 1, 1] - pre[:, 0, 1] * pre[:, 1, 0]
    if not np.all(np.isfinite(pre)) or np.any(np.abs(det) < 1e-3):
        raise UsageError(f"{path}: not a usable prealignment (a transform is not finite or not invertible)")
    return pre


def prealigned_note(markers: str | os.PathLike[str], stack: str | os.PathLike[str] | None = None) -> str | None:
    """What to tell a user who aligns markers placed on a ``.preali`` (`io.imod_model.placed_on_preali`: etomo's
    fiducial model) without its ``.prexg``: the ``.xf`` is for that stack. The command line says it after ``align``
    (no stack); the dock when it shows the alignment on a raw ``.st`` with no ``.prexg`` in step 1 (as
    `file_jobs.preali_note` warns ``reconstruct`` of one). None otherwise."""
    from ..io.imod_model import placed_on_preali

    if not placed_on_preali(markers):
        return None
    if stack is None:
        return ("note: the .xf applies to the stack the model was made on; for etomo's fiducial model that is"
                " the .preali (give --prexg FILE for the raw .st's, as etomo's)")
    if Path(stack).suffix.lower() != ".st":
        return None
    return (f"{Path(markers).name} was placed on the .preali (etomo's fiducial model): this alignment, its aligned"
            f" stack and its tomogram are for that stack, not for {Path(stack).name}; open the .preali as the tilt"
            " series, or align with tomoalign align --prexg FILE for the raw stack")


def solve(job: AlignJob, *, start: Alignment | None = None, progress: Callable[[str, int, float], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> Alignment:
    """The job's alignment: the default model with its options (warm-started from ``start``), or the
    full model of its ``align.com`` (global only when the job solves local alignments after it); views it
    found out of order are named among its warnings (`with_order_note`)."""
    return with_order_note(_solve(job, start, progress, should_stop))


def with_order_note(al: Alignment) -> Alignment:
    """``al`` with a warning naming views whose solved tilts are another view's given one (`facts.views_out_of_order`:
    swapped views, recovered by the fit), once."""
    from dataclasses import replace

    from .facts import views_out_of_order

    note = views_out_of_order(al)
    if note is None or note in al.warnings:
        return al
    return replace(al, warnings=[*al.warnings, note])


def _solve(job: AlignJob, start: Alignment | None, progress: Callable[[str, int, float], None] | None,
           should_stop: Callable[[], bool] | None) -> Alignment:
    from ..compute import blas_threads_for

    m = job.fitted_markers()
    ids = np.sort(m.marker)
    n_markers = int(np.count_nonzero(np.diff(ids))) + 1 if len(ids) else 0  # (np.unique would load numpy.ma)
    # BLAS threads for the whole solve, the axis estimate included: waking a second thread for a small
    # problem's matrices costs more than the work (and far more on a busy machine).
    with blas_threads_for(5 * len(job.tilt_angles_deg), n_markers, len(m.view)), warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)  # Alignment.warnings lists them
        if job.imod_com is not None:
            from ..alignment.solver import align_markers_imod

            return align_markers_imod(m.view, m.marker, m.xy, job.tilt_angles_deg, job.image_size, job.imod_com,
                                      pixel_size_nm=job.pixel_size_nm, global_only=job.local, progress=progress,
                                      should_stop=should_stop, excluded_views=job.settings.excluded_views)
        from ..alignment.solver import align_markers

        return align_markers(m.view, m.marker, m.xy, job.tilt_angles_deg, job.image_size, job.options,
                             pixel_size_nm=job.pixel_size_nm, start=start, warn=False, progress=progress,
                             should_stop=should_stop, excluded_views=job.settings.excluded_views)


@dataclass
class FolderResult:
    """What `run_align_job` solved and wrote."""

    alignment: Alignment
    paths: list[Path]
    leave_out: object | None = None
    local: LocalAlignments | None = None  # when local alignments were solved
    axis_z_shift_px: float = 0.0
    surfaces: SurfaceAnalysis | None = None  # IMOD's surface analysis of the markers (`surface_analysis`)


def write_outputs(job: AlignJob, al: Alignment, directory: str | os.PathLike[str], *, overwrite: bool = False,
                  stem: str | None = None, extra: dict[str, Any] | None = None, sections: dict[str, Any] | None = None,
                  local: tuple[str, str] | None = None) -> list[Path]:
    """Write ``al`` (solved from ``job``) as ``tomoalign align`` does, with the job's axis Z shift and
    ``.prexg``: the one writer of the command line, ``batch``, ``run`` and the dock's *Save alignment*."""
    from ..io.alignment import write_alignment

    return write_alignment(al, directory, stem or job.stem, overwrite=overwrite, axis_z_shift_px=job.axis_z_shift(al),
                           extra={**job.inputs, **(extra or {})}, sections=sections, local=local, prexg=job.prexg)


def run_align_job(job: AlignJob, output_dir: str | os.PathLike[str], *, overwrite: bool = False,
                  alignment: Alignment | None = None, surfaces: SurfaceAnalysis | None = None) -> FolderResult:
    """Solve ``job`` (unless ``alignment`` is its solution already), with its leave-out errors and local
    alignments, and write every output into ``output_dir`` as one unit. ``surfaces``: the solution's surface
    analysis when the caller made it already (`surface_analysis`; `run` says from it whether the beads lie in one
    layer)."""
    from ..io.atomic import check_writable

    out = Path(output_dir)
    for name in job.output_names():
        check_writable(out / name, overwrite)
    al = with_order_note(alignment) if alignment is not None else solve(job)  # `run`'s: the tracker's fit
    from ..alignment.validation import check_tilts_in_range

    check_tilts_in_range(al.tilt_angles_deg, al.view_determined)  # no file would hold them: said, nothing written
    shift = job.axis_z_shift(al)
    sections: dict[str, Any] = {}
    lo = local_result = local_file = None
    if job.leave_out:
        from ..alignment.leaveout import leave_out_error
        from ..io.alignment_record import leave_out_to_dict

        lo = leave_out_error(al)
        sections["leave_out"] = leave_out_to_dict(lo)
    if job.local:
        from ..io.imod_local import format_local
        from ..local_jobs import solve_local

        fitted = job.fitted_markers()
        lj = solve_local(al, fitted.view, fitted.xy, job.tilt_angles_deg, job.stem, job.imod_com, shift)
        sections["local_alignments"] = lj.summary()
        local_file, local_result = (lj.file_name, format_local(lj.result.local_transforms)), lj.result
    surfaces = surfaces if surfaces is not None else surface_analysis(job, al, shift)
    if surfaces is not None:
        sections["surface_analysis"] = surfaces.as_dict()
    paths = write_outputs(job, al, out, overwrite=overwrite, sections=sections, local=local_file)
    return FolderResult(al, paths, lo, local_result, shift, surfaces)


DEFAULT_SURFACES = 2  # without an align.com: a plane per bead layer (see `surface_analysis`)


def patch_markers(markers: MarkerTable) -> bool:
    """Whether the markers are patches of the specimen (``run --patches``, or a model ``track --patches`` wrote)."""
    return patch_source(markers.source)


def patch_source(source: str) -> bool:
    """Whether markers from ``source`` (a file, or what a run records: ``patch tracking``) are patches, not gold."""
    if source == "patch tracking":
        return True
    if Path(source).suffix.lower() not in (".fid", ".mod"):
        return False
    from ..io.imod_model import PATCHES_ON, model_name

    return (model_name(source) or "").startswith(PATCHES_ON)


def surface_analysis(job: AlignJob, al: Alignment, axis_z_shift_px: float) -> SurfaceAnalysis | None:
    """IMOD's surface analysis (`reconstruction.positioning`) of the solved markers as ``fid.xyz`` holds them:
    with an align.com, as its ``SurfacesToAnalyze`` (0 or none: no analysis, as tiltalign) and ``AngleOffset``
    ask; without one, two surfaces (one when fewer than 6 markers are solved, none below 3).

    Two by default because the thickness and the Z position of the section, which ``reconstruct --level``
    uses, come only from two planes; on a single layer of beads the two planes are nearly one and the
    averaged tilt change and X-axis tilt are those of the one-plane fit (printed first in the report).
    Patches (no gold) fill the section's depth rather than lying on its faces: one plane for them."""
    from ..alignment.transforms import aligned_marker_positions
    from ..io.table import IMOD_PIXEL_OFFSET
    from ..reconstruction.positioning import analyse_surfaces

    surfaces, offset = (1 if patch_markers(job.markers) else DEFAULT_SURFACES), 0.0
    if job.imod_com is not None:
        from ..io.imod_com import read_com_section

        entries = read_com_section(job.imod_com)
        try:
            surfaces = int(float((entries.get("SurfacesToAnalyze") or ["0"])[0].split()[0]))
            offset = float((entries.get("AngleOffset") or ["0"])[0].split()[0])
        except (ValueError, IndexError):
            raise UsageError(f"{job.imod_com}: SurfacesToAnalyze and AngleOffset must be numbers") from None
        if surfaces not in (1, 2):
            return None
    xyz = aligned_marker_positions(al, axis_z_shift_px)[al.marker_included]
    xyz = np.round(xyz[np.all(np.isfinite(xyz), axis=1)] + [IMOD_PIXEL_OFFSET, IMOD_PIXEL_OFFSET, 0.0], 2)
    for n in (surfaces, 1) if job.imod_com is None else (surfaces,):
        try:
            return analyse_surfaces(xyz, n, angle_offset_deg=offset)
        except ValueError:
            continue
    return None


__all__ = ["DEFAULT_SURFACES", "AlignJob", "FolderResult", "align_job", "prealigned_note", "read_prexg",
           "run_align_job", "solve", "surface_analysis", "write_outputs"]
