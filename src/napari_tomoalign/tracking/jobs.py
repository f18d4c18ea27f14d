"""The jobs behind ``tomoalign track`` and ``tomoalign run``: from a raw stack to markers, and on to an
alignment, an aligned stack and a tomogram, every intermediate written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..alignment.options import AlignmentOptions
from ..alignment.result import Alignment
from ..errors import UsageError
from ..io.atomic import check_writable
from ..io.mrc import open_tilt_series
from ..io.tilts import read_tilt_angles
from .beads import diameter_px_from_nm
from .diameter import resolve_diameter
from .pipeline import track_beads
from .result import TrackingResult, write_bead_quality_csv, write_tracked_markers

Progress = Callable[[str, int, int, str], None]
MARKER_SUFFIXES = (".csv", ".fid", ".mod")


@dataclass(frozen=True)
class TrackedStack:
    """A tracking run and where its markers went."""

    result: TrackingResult
    markers_path: Path
    pixel_size_nm: float | None
    tilt_source: str


def _diameter_px(diameter_nm: float | str | None, diameter_px: float | str | None, pixel_nm: float | None,
                 stack: Path) -> float:
    if (diameter_nm is None) == (diameter_px is None):
        raise UsageError("give the bead diameter once: --bead-diameter-nm D or --bead-diameter-px D")
    if diameter_px is not None:
        diameter_px = float(diameter_px)
        if not (np.isfinite(diameter_px) and 2.0 <= diameter_px <= 200.0):
            raise UsageError(f"--bead-diameter-px must be from 2 to 200 pixels, not {diameter_px}")
        return float(diameter_px)
    if not pixel_nm:
        raise UsageError(f"{stack} records no pixel size, so a diameter in nm cannot be converted; give"
                         " --bead-diameter-px instead")
    assert diameter_nm is not None
    return diameter_px_from_nm(float(diameter_nm), pixel_nm)


def track_to_file(
    stack_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    tilt_angles_path: str | os.PathLike[str] | None = None,
    bead_diameter_nm: float | str | None = None,
    bead_diameter_px: float | str | None = None,
    tilt_axis_deg: float | None = None,
    n_beads: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    threads: int | None = None,
    clumps: str = "skip",
    dark: bool = True,
) -> TrackedStack:
    """Find and track the gold beads of a raw stack and write the markers (``.csv``, ``.fid`` or ``.mod``).

    The tilt angles come from ``tilt_angles_path``, else from beside the stack (IMOD's order). Raises
    `UsageError` or `FileFormatError` for bad input, `BeadFindingError` when no beads can be told apart.
    ``threads`` caps the threads of the tracking (a batch worker asks for one). A diameter of ``"auto"``
    is measured; a given one is checked against the beads and adapted (`diameter.resolve_diameter`).
    ``clumps`` ``"track"`` tracks the beads of clumps too; ``dark`` False for bright beads.
    """
    out = Path(output)
    if out.suffix.lower() not in MARKER_SUFFIXES:
        raise UsageError(f"--output must end in .csv, .fid or .mod, not {out.name!r}")
    if n_beads is not None and not 3 <= n_beads <= 100_000:
        raise UsageError(f"--beads must be from 3 to 100000, not {n_beads}")
    check_writable(out, overwrite)
    series = open_tilt_series(stack_path, find_tilts=tilt_angles_path is None)
    if tilt_angles_path is not None:
        tilts, source = read_tilt_angles(tilt_angles_path), str(tilt_angles_path)
    elif series.tilt_angles_deg is not None:
        tilts, source = series.tilt_angles_deg, str(series.tilt_source)
    else:
        raise UsageError(f"{stack_path}: no tilt angles beside it; give --tilt-angles FILE (.rawtlt or .tlt)")
    if len(tilts) != series.n_views:
        raise UsageError(f"{tilt_angles_path or source} has {len(tilts)} tilt angles but {stack_path} has"
                         f" {series.n_views} views")
    pixel_nm = series.pixel_size_angstrom / 10.0 if series.pixel_size_angstrom else None
    auto = "auto" in (bead_diameter_nm, bead_diameter_px)
    d_px = None if auto else _diameter_px(bead_diameter_nm, bead_diameter_px, pixel_nm, Path(stack_path))
    rows, cols = series.data.shape[1:]
    if d_px is not None and bead_diameter_nm is not None and not 1.5 <= d_px <= min(rows, cols) / 4:
        raise UsageError(f"--bead-diameter-nm {bead_diameter_nm:g} is {d_px:.1f} px at the header's {pixel_nm:g} nm/px,"
                         f" which does not fit {cols} x {rows} images: gold is usually 5-20 nm (not Angstrom);"
                         " check the number and the pixel size, or give --bead-diameter-px")
    d_px = resolve_diameter(series.data, tilts, d_px, pixel_nm, "nm" if bead_diameter_nm is not None else "px", dark)
    result = track_beads(series.data, tilts, d_px, tilt_axis_deg=tilt_axis_deg, n_beads=n_beads, progress=progress,
                         threads=threads, clumps=clumps, dark=dark)
    hint = _diameter_hint(series.data[result.seed_view], result, d_px, pixel_nm)
    if result.n_beads == 0 or result.alignment is None:
        raise UsageError(f"no beads could be tracked in {stack_path}" + (f"; {hint}" if hint else
                         "; check the bead diameter and the tilt angles"))
    if hint:
        result.warnings.append(f"warning: {hint}")
    write_tracked_markers(out, result, n_views=series.n_views, overwrite=overwrite)
    write_bead_quality_csv(out.with_name(out.stem + "_beads.csv"), result, overwrite=overwrite)
    return TrackedStack(result, out, pixel_nm, source)


POOR_RMS_PX = 1.0  # a tracking whose alignment fits worse than this (working pixels) is checked against the size


def _diameter_hint(view: np.ndarray, result: TrackingResult, d_px: float, pixel_nm: float | None) -> str | None:
    """When the tracking came out poor, whether the beads measure another size than the one given (in
    one line that says what to give instead); None when it came out well or the size is not the cause."""
    from .binned import working_binning
    from .diameter import DiameterError, measure_bead_diameter

    al = result.alignment
    if result.n_beads and al is not None and al.rms_residual_px <= POOR_RMS_PX * working_binning(d_px, view.shape):
        return None
    try:  # on a copy binned for the size given, again and again from there
        measured = measure_bead_diameter(view, d_px)
    except DiameterError:
        return None
    if 0.75 <= measured / d_px <= 1.33:
        return None
    if pixel_nm:
        return (f"the beads measure about {measured:.1f} px ({measured * pixel_nm:.1f} nm) across, not the "
                f"{d_px:.1f} px given; try --bead-diameter-nm {measured * pixel_nm:.1f}")
    return f"the beads measure about {measured:.1f} px across, not {d_px:.1f}; try --bead-diameter-px {measured:.1f}"


def run_options(tilt_axis_deg: float | None) -> AlignmentOptions:
    """The alignment `tomoalign run` makes from tracked markers: robust, so that a mistracked point does
    not pull the solution, with the axis estimated (near the given angle, if any)."""
    return AlignmentOptions(tilt_axis_deg=tilt_axis_deg, robust=True)


def erase_gold_to_file(stack_path: str | os.PathLike[str], alignment: Alignment, bead_diameter_px: float,
                       output: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``stack_path`` with every fitted bead replaced by local background (as IMOD's ``ccderaser
    -fid``), view by view: the beads' positions come from the alignment's model, so beads are erased in
    views where they were not tracked too."""
    from ..io.atomic import atomic_path
    from ..io.mrc import MrcStreamWriter
    from ..reconstruction.erase import bead_positions, erase_radius_px, erase_view

    series = open_tilt_series(stack_path, find_tilts=False)
    out = check_writable(output, overwrite)
    view, xy = bead_positions(alignment)
    rng = np.random.default_rng(0)
    radius = erase_radius_px(bead_diameter_px)
    with atomic_path(out, overwrite) as tmp:
        writer = MrcStreamWriter(tmp, series.data.shape, np.float32, series.pixel_size_angstrom)
        try:
            for j in range(series.n_views):
                writer.write(erase_view(series.data[j], xy[view == j], radius, rng))
            writer.close()
        except BaseException:
            writer.abort()
            raise
    return out
