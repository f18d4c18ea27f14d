"""The command line's jobs, GUI-free and typed: `align_to_folder`, `aligned_stack_to_file`,
`reconstruct_to_file` and `write_demo_inputs`. Each checks every input range before any heavy work:
options first, then files, then the solve. The image work (numba's warp, scipy's FFT) is imported by the
jobs that use it, so that ``tomoalign align`` starts without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .alignment.options import AlignmentOptions
from .errors import UsageError
from .io import MarkerTable, write_markers_csv
from .io.atomic import check_writable
from .jobs.align import FolderResult
from .jobs.facts import bead_diameter_px, check_job_numbers, pixel_size_nm
from .jobs.images import (
    AlignedStackJob,
    ImageResult,
    ReconstructJob,
    make_aligned_stack,
    make_tomogram,
)
from .jobs.solver_options import SolverSettings

if TYPE_CHECKING:
    from .reconstruction.reconstruct_job import ReconstructOptions


def align_to_folder(
    markers_path: str | os.PathLike[str],
    tilt_angles_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: AlignmentOptions | SolverSettings | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
    axis_z_shift_px: float | None = None,
    leave_out: bool = False,
    overwrite: bool = False,
    markers: MarkerTable | None = None,
    tilt_angles_deg: NDArray[np.float64] | None = None,
    inputs: dict | None = None,
    imod_com: str | os.PathLike[str] | None = None,
    local: bool = False,
    prexg: str | os.PathLike[str] | None = None,
) -> FolderResult:
    """Solve from a markers file and a tilt file and write every output into ``output_dir`` as one unit
    (`jobs.align.align_job`, then `jobs.align.run_align_job`).

    ``markers`` and ``tilt_angles_deg`` skip reading the files (the demo has them in memory). With
    ``imod_com``, the model is the ``tiltalign`` section of that IMOD command file (its full model:
    stretch, skew, X-tilt, groupings; `alignment.imod_align`) instead of ``options``. ``axis_z_shift_px``:
    None takes the command file's ``AxisZShift`` (0 without one).
    With ``local`` (or a command file with ``LocalAlignments 1``) IMOD's local alignments are solved after
    the global fit and written as IMOD's local file in the same unit (`local_jobs`). With ``prexg`` (etomo's
    ``.prexg`` for markers placed on the ``.preali``) the ``.xf`` is the raw stack's, as etomo's.
    Raises `UsageError`, `FileFormatError`, `AlignmentError` or `OverwriteError` for bad input.
    """
    from .jobs.align import align_job, run_align_job

    settings = options if isinstance(options, SolverSettings) else SolverSettings(options or AlignmentOptions())
    if axis_z_shift_px is not None:
        settings = replace(settings, axis_z_shift_px=float(axis_z_shift_px))
    job = align_job(markers_path, tilt_angles_path, settings, image_size=image_size, pixel_size_nm=pixel_size_nm,
                    imod_com=imod_com, leave_out=leave_out, local=local, prexg=prexg, markers=markers,
                    tilt_angles_deg=tilt_angles_deg, inputs=inputs)
    return run_align_job(job, output_dir, overwrite=overwrite)


def aligned_stack_to_file(
    stack_path: str | os.PathLike[str],
    alignment_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    binning: int = 1,
    interpolation: str = "linear",
    overwrite: bool = False,
    erase_gold_diameter_px: float | None = None,
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
) -> ImageResult:
    """Warp a raw stack by a saved alignment (as ``newstack -xform``) into an MRC file, view by view
    (`jobs.images.make_aligned_stack` of an `AlignedStackJob`).

    With ``erase_gold_diameter_px``, every bead of that diameter is first replaced by local background
    (as ``tomoalign run --erase-gold``), at the positions the alignment's model gives in every view.
    ``mode``: the output's (``"int16"``, ``"float32"``, ...); None keeps the input's integer mode, as newstack.
    ``alignment_dir``: what ``--alignment`` takes (`io.alignment_input`: an align folder, an IMOD set, another
    tool's file). ``size``: the aligned frame ``(x, y)`` in unbinned pixels (None: the raw frame, transposed for
    an axis nearer 90 degrees than 0; `reconstruction.frame`). ``pixel_size_nm``: the stack's, for a header
    that is wrong (as ``run --pixel-size-nm``; `jobs.facts.pixel_size_nm`).
    """
    job = AlignedStackJob(Path(stack_path), Path(alignment_dir), Path(output), binning, interpolation,
                          erase_gold_diameter_px, mode, size, pixel_size_nm)
    return make_aligned_stack(job, overwrite=overwrite)


def preali_note(stack_path: str | os.PathLike[str], alignment_dir: str | os.PathLike[str]) -> str | None:
    """A note when a raw ``.st`` is given an alignment made from etomo's fiducial model without its ``.prexg``: that
    ``.xf`` maps the ``.preali`` (the stack the model was clicked on), not the raw stack (new user's finding 11)."""
    import json

    from .io.errors import FileFormatError
    from .io.guarded import read_text_limited

    if Path(stack_path).suffix.lower() != ".st":
        return None
    try:
        info = json.loads(read_text_limited(Path(alignment_dir) / "alignment.json", "alignment", 256 * 2**20))
        inputs = info.get("inputs") or {}
    except (FileFormatError, OSError, ValueError, AttributeError):
        return None  # the alignment's own reader says what is wrong with it
    markers = str(inputs.get("markers", ""))
    from .io.imod_model import placed_on_preali

    if inputs.get("prexg") or not placed_on_preali(markers):
        return None  # given its .prexg, or tracked by `tomoalign track` on a raw stack: its .xf maps a raw stack
    from .io.mrc import open_tilt_series

    try:  # a stack of another view count is refused by the job: no note about its transforms before that
        if open_tilt_series(stack_path, find_tilts=False).n_views != len(info["views"]["tilt_angle_deg"]):
            return None
    except (FileFormatError, OSError, ValueError, KeyError, TypeError):
        return None
    return (f"warning: {Path(alignment_dir).name}'s .xf maps the stack {Path(markers).name} was made on (etomo's "
            f".preali), but {Path(stack_path).name} is a raw stack; align again with --prexg {Path(markers).stem}.prexg"
            " for it")


def alignment_notes(stack_path: str | os.PathLike[str], alignment: str | os.PathLike[str]) -> list[str]:
    """The lines said before an image job on ``alignment``: for an alignment without a run stamp, what was taken
    from where (a ``note:``, `io.alignment_input.read_alignment_for_stack`'s) and etomo's raw-stack ``.xf`` given
    for a ``.preali`` (`io.alignment_input.preali_warning`); the ``.preali`` warning of a folder (`preali_note`).
    An alignment that cannot be used says nothing here: the job refuses it, in one line."""
    from .io.alignment_input import preali_warning, read_alignment_for_stack
    from .io.errors import FileFormatError
    from .io.imod_set import is_stamped

    lines: list[str | None] = []
    try:
        if is_stamped(alignment) is None:
            lines += [read_alignment_for_stack(alignment, stack_path).provenance, preali_warning(alignment, stack_path)]
    except (FileFormatError, OSError, ValueError):
        pass
    return [line for line in (*lines, preali_note(stack_path, alignment)) if line]


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
    size: tuple[int, int] | None = None,
    pixel_size_nm: float | None = None,
) -> ImageResult:
    """Aligned stack and weighted back-projection ``(z, y, x)`` with the solved tilts, into an MRC file
    (`jobs.images.make_tomogram` of a `ReconstructJob`).

    The default thickness holds every marker with a margin (`jobs.facts.default_thickness_px`). ``local``:
    apply local alignments (True: the local file the alignment folder holds; or a file's path), as IMOD's
    ``tilt`` does. ``alignment_dir``: what ``--alignment`` takes (`io.alignment_input`: an align folder, an IMOD
    set, another tool's file). ``size``: the aligned frame ``(x, y)`` in unbinned pixels, whose width and length
    the tomogram takes (None: the raw frame, transposed for an axis nearer 90 degrees than 0). ``pixel_size_nm``:
    the stack's, for a header that is wrong (as ``run --pixel-size-nm``; `jobs.facts.pixel_size_nm`). The result's
    ``kernel`` says which back-projection kernel made the tomogram and why (`reconstruction.kernel_choice.KernelChoice`;
    its ``line()`` is what ``tomoalign reconstruct`` prints).
    """
    job = ReconstructJob(Path(stack_path), Path(alignment_dir), Path(output), binning, thickness, lowpass,
                         local if isinstance(local, bool) else Path(local), options, size, pixel_size_nm)
    return make_tomogram(job, overwrite=overwrite)


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
    true_xy: NDArray[np.float64] | None = None  # ``(n_views, n_beads, 2)`` every bead's noise-free raw position
    click_noise_px: float = 0.0


def demo_truth_line(demo: DemoInputs, folder: str | os.PathLike[str]) -> str:
    """The demo's alignment judged against the simulation's truth, end to end (`lamella.end_to_end_error`): every
    bead's true raw position through the written ``.xf`` and ``.tlt``, each bead's 3-D position fitted; the RMS of
    what is left (new user's finding, session 13: the demo never said how close it came to what it knows)."""
    from .io.alignment import read_alignment_dir
    from .simulation.lamella import end_to_end_error

    if demo.true_xy is None:
        return "the demo's truth was not kept"
    saved = read_alignment_dir(folder)
    e2e = end_to_end_error(saved.transforms, saved.tilt_angles_deg, saved.image_size, demo.true_xy)
    return (f"against the simulation's truth: every bead's true position through the .xf and .tlt fits one 3-D point"
            f" within {e2e:.3f} px RMS (the clicks had {demo.click_noise_px:g} px of noise, and one mis-click)")


def write_demo_inputs(output_dir: str | os.PathLike[str], seed: int = 0, *, overwrite: bool = False,
                      products: tuple[str, ...] = ()) -> DemoInputs:
    """Make the sample tilt series (images and clicked markers) and write it: ``sample.mrc``,
    ``sample_markers.csv`` and ``sample.rawtlt``. ``products`` are further names checked first."""
    from .conventions import angstrom_from_nm
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
    write_mrc(stack, s.images, angstrom_from_nm(s.pixel_size_nm), overwrite=overwrite)
    write_markers_csv(markers, table, overwrite=overwrite)
    write_tilt_angles(tilts, s.tilt_angles_deg, overwrite=overwrite)
    return DemoInputs(stack, markers, tilts, table, s.tilt_angles_deg, s.pixel_size_nm, len(np.unique(s.marker)),
                      s.truth.true_xy, float(s.truth.noise_px))


def erase_gold_diameter_px(stack: str | os.PathLike[str], erase_gold: bool, diameter_nm: float | None,
                           diameter_px: float | None) -> float | None:
    """The bead diameter in pixels for ``--erase-gold`` (nm through the stack's pixel size), else None."""
    if not erase_gold:
        if diameter_nm is not None or diameter_px is not None:
            raise UsageError("--bead-diameter-nm/--bead-diameter-px are for --erase-gold; add it, or leave them out")
        return None
    if diameter_nm is None and diameter_px is None:
        raise UsageError("--erase-gold needs the bead size: give one of --bead-diameter-nm D or --bead-diameter-px D")
    pix = None
    if diameter_nm is not None:
        from .io.mrc import open_tilt_series

        pix = pixel_size_nm(None, open_tilt_series(stack, find_tilts=False).pixel_size_angstrom)
    return bead_diameter_px(diameter_nm, diameter_px, pix, where=str(stack))
