"""The job behind ``tomoalign track --patches`` and ``tomoalign run --patches``: a raw stack to patch
tracks (written as markers, with a per-contour table), the same contract as bead tracking."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..io.atomic import atomic_open, check_writable
from ..io.errors import FileFormatError
from ..io.imod_model import PATCHES_ON
from ..io.markers import write_imod_model, write_markers_csv
from ..reconstruction.input_checks import REPLACE, check_finite_views
from ._patch_result import PatchTrackingResult
from .jobs import MARKER_SUFFIXES, Progress, open_stack_with_tilts
from .outputs import check_output_folder
from .patches import PatchOptions, track_patches


@dataclass(frozen=True)
class PatchTrackedStack:
    """A patch-tracking run and where its markers went."""

    result: PatchTrackingResult
    markers_path: Path
    pixel_size_nm: float | None
    tilt_source: str


def parse_length(text: str | None) -> tuple[int, int]:
    """``--length N[,OVERLAP]``: views per contour piece and views shared (default 16,4; the overlap
    defaults to a quarter of N, at most 4)."""
    if text is None:
        return 16, 4
    head, _, tail = str(text).partition(",")
    try:
        n = int(head)
        ov = int(tail) if tail else min(4, n // 4)
    except ValueError:
        raise UsageError(f"--length takes N or N,OVERLAP (views), not {text!r}") from None
    return n, ov


def patch_options(patch_size: int | None = None, overlap: float | None = None, length: str | None = None,
                  shape: tuple[int, int] | None = None) -> PatchOptions:
    """`PatchOptions` from the command line's values, checked against images of ``shape`` (UsageError)."""
    n, ov = parse_length(length)
    opt = PatchOptions(patch_size=patch_size, overlap=PatchOptions.overlap if overlap is None else float(overlap), length=n,
                       length_overlap=ov)
    if shape is not None:
        try:
            opt.check(shape)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return opt


def track_patches_to_file(
    stack_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    tilt_angles_path: str | os.PathLike[str] | None = None,
    tilt_axis_deg: float | None = None,
    patch_size: int | None = None,
    overlap: float | None = None,
    length: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    threads: int | None = None,
) -> PatchTrackedStack:
    """Track patches through a raw stack and write the contours (``.csv``, ``.fid`` or ``.mod``) and
    ``<stem>_patches.csv`` beside them. Raises `UsageError` for bad input and `PatchTrackingError` for a
    series with too little texture or patches that disagree."""
    out = Path(output)
    if out.suffix.lower() not in MARKER_SUFFIXES:
        raise UsageError(f"--output must end in .csv, .fid or .mod, not {out.name!r}")
    table_path = out.with_name(out.stem + "_patches.csv")
    check_writable(out, overwrite)
    check_writable(table_path, overwrite)
    check_output_folder(out)  # a folder that refuses files, before the tracking too
    series, tilts, source = open_stack_with_tilts(stack_path, tilt_angles_path)
    opt = patch_options(patch_size, overlap, length, series.data.shape[1:])
    try:  # before any work: the view, numbered from 1, in one line
        check_finite_views(series.data, what=f"stack {Path(stack_path).name}", remedy=REPLACE)
    except ValueError as exc:
        raise FileFormatError(f"{stack_path}: {exc}") from None
    result = track_patches(series.data, tilts, tilt_axis_deg=tilt_axis_deg, options=opt, progress=progress,
                           threads=threads)
    if out.suffix.lower() == ".csv":
        write_markers_csv(out, result.markers, overwrite=overwrite)
    else:
        write_imod_model(out, result.markers, n_views=series.n_views, overwrite=overwrite,
                         name=PATCHES_ON + Path(stack_path).name,
                         pixel_size_nm=series.pixel_size_angstrom / 10.0 if series.pixel_size_angstrom else None)
    write_patch_table(table_path, result, overwrite=overwrite)
    pixel_nm = series.pixel_size_angstrom / 10.0 if series.pixel_size_angstrom else None
    return PatchTrackedStack(result, out, pixel_nm, source)


def write_patch_table(path: str | os.PathLike[str], result: PatchTrackingResult, overwrite: bool = False) -> None:
    """One row per contour piece: marker, patch, x0, y0 (the patch centre on the start view), n_views,
    first_view, last_view, mean_residual_px, n_flagged."""
    t = result.markers
    k = len(result.patch_of) + 1
    mk = t.marker  # the alignment keeps the table's row order
    count = np.bincount(mk, minlength=k)
    first = np.full(k, np.iinfo(np.intp).max)
    last = np.full(k, -1)
    np.minimum.at(first, mk, t.view)
    np.maximum.at(last, mk, t.view)
    resid = np.nan_to_num(result.residual_px)
    mean = np.bincount(mk, resid, minlength=k) / np.maximum(count, 1)
    flagged = np.bincount(mk, result.flagged, minlength=k).astype(int)
    with atomic_open(path, overwrite=overwrite) as f:
        f.write("marker,patch,x0,y0,n_views,first_view,last_view,mean_residual_px,n_flagged\n")
        for m, patch in enumerate(result.patch_of, start=1):
            x0, y0 = result.centres[patch]
            f.write(f"{m},{patch + 1},{x0:.1f},{y0:.1f},{count[m]},{first[m]},{last[m]},{mean[m]:.4f},{flagged[m]}\n")


def wants_patches(args) -> bool:
    """Whether the command line asked for patch tracking; patch options without ``--patches`` are an error."""
    given = [f"--{name.replace('_', '-')}" for name in ("patch_size", "overlap", "length")
             if getattr(args, name, None) is not None]
    if given and not args.patches:
        raise UsageError(f"{', '.join(given)} only go with --patches (patch tracking, no gold)")
    return bool(args.patches)


def track_patches_cli(args, output: Path, progress: Progress) -> PatchTrackedStack:
    """`track_patches_to_file` with the command line's arguments."""
    return track_patches_to_file(args.stack, output, tilt_angles_path=args.tilt_angles, tilt_axis_deg=args.tilt_axis,
                                 patch_size=args.patch_size, overlap=args.overlap, length=args.length,
                                 overwrite=args.force, progress=progress)
