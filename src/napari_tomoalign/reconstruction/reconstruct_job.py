"""The ``reconstruct`` job's IMOD-compatible options, and the streamed reconstruction of a solved alignment.

Options, as IMOD's ``tilt`` names them: ``--radial CUTOFF FALLOFF`` (``RADIAL``), ``--x-axis-tilt``
(``XAXISTILT``, subtracted from the alignment's own X-tilts as IMOD's ``tilt`` does: paste the
"X axis tilt needed" of the surface analysis; `positioning.wbp_x_tilts`), ``--offset`` (``OFFSET``, added to every tilt
angle), ``--shift X Z`` (``SHIFT``; IMOD's tomogram is upside down to
ours, so Z is negated for `wbp`: `positioning.wbp_shift`), ``--exclude-views`` (``EXCLUDELIST``, numbered from 1),
``--sirt-like N`` (the radial filter of N SIRT iterations), ``--mode`` and ``--scale ADD MULT``
(``MODE``, ``SCALE``; the default keeps a signed 16-bit input's mode, as ``newstack`` and ``tilt`` do),
``--memory`` (the slab is picked to stay within it; default 2 GiB, or half of what is available if less) and
``--level [1|2]`` (tomogram positioning: IMOD's surface analysis of the alignment's markers, applied
as etomo feeds ``AngleOffset``, ``XAXISTILT``, the thickness and the Z shift back).

This module imports only the standard library at load time, so that building the command line stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("int16", "float32", "uint16", "uint8", "int8")  # IMOD's modes 1, 2, 6, 0 (unsigned and signed bytes)
BYTES_HELP = ("; uint8 is IMOD's unsigned bytes (mode 0, its header flag saying so), read back as written here, in napari"
              " and in IMOD; mrcfile reads any mode 0 as int8: take its data .view('uint8')")


@dataclass(frozen=True)
class ReconstructOptions:
    """The options of `add_reconstruct_options` (module docstring); defaults change nothing."""

    radial: tuple[float, float] | None = None
    x_axis_tilt_deg: float = 0.0
    offset_deg: float = 0.0
    shift_px: tuple[float, float] | None = None
    exclude_views: str | None = None
    sirt_like: int | None = None
    mode: str | None = None
    scale: tuple[float, float] | None = None  # None: none for float32, chosen from the data for an integer mode
    memory_bytes: int | None = None
    level: int | None = None
    slices: tuple[int, int] | None = None  # IMOD's SLICE, unbinned rows from 0, both included (`subset`)
    width: int | None = None  # IMOD's WIDTH, unbinned pixels, centred
    log_offset: float | None = None  # IMOD's LOG
    extra: dict[str, Any] = field(default_factory=dict)


# The most iterations --sirt-like takes. The filter of k iterations is the ramp below about 1 / (2k) cycles per pixel
# and flat (unweighted back-projection) above: at 1000 it is flat within 5% over 99.7% of the frequencies of any padded
# line (1024 to 8192 px), so more iterations change nothing one could see; etomo's SIRT-like filters use 5 to 30.
MAX_SIRT_LIKE = 1000


def machine_memory_bytes() -> int | None:
    """All the memory this machine has, RAM and swap (``/proc/meminfo``; else the RAM ``sysconf`` gives), or None
    when neither says: no budget above it could ever be used."""
    try:
        with open("/proc/meminfo") as f:
            kib = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f if ":" in line)
                   if k in ("MemTotal", "SwapTotal")}
        if "MemTotal" in kib:
            return 1024 * (kib["MemTotal"] + kib.get("SwapTotal", 0))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def parse_memory(text: str) -> int:
    """``"2G"``, ``"1500M"``, ``"800000K"`` or bytes; a `ValueError` naming the form otherwise, or the machine's
    memory when the size is more than it has (`machine_memory_bytes`: a budget it could never use is a slip)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"--memory {text!r}: give a size such as 2G, 1500M or 800000K")
    size = int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))
    whole = machine_memory_bytes()
    if whole is not None and size > whole:
        raise ValueError(f"--memory {text.strip()}: this machine has {whole / 2**30:.1f} GiB in all (RAM and swap),"
                         f" so it could never use that; give at most {max(1, int(whole / 2**30))}G, or leave --memory"
                         " out (2G, or half of what is free)")
    return size


def memory_arg(text: str) -> int:
    """``--memory``'s type: `parse_memory`, its message as argparse's one line (which names the option)."""
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--memory ")) from None


def parse_view_list(text: str, n_views: int) -> list[int]:
    """0-based indices of an IMOD list of view numbers from 1 (``"1-3,7,60-61"``; `conventions.view_indices`,
    the one reader of such lists)."""
    from ..conventions import view_indices

    try:
        return view_indices(text, n_views, what="excluded view")
    except ValueError as exc:
        raise ValueError(f"--exclude-views {text!r}: {exc}") from None


def add_reconstruct_options(p: argparse.ArgumentParser) -> None:
    """The IMOD-compatible options of ``reconstruct`` (module docstring)."""
    p.add_argument("--radial", type=float, nargs=2, metavar=("CUTOFF", "FALLOFF"),
                   help="IMOD's RADIAL low-pass: cutoff and Gaussian falloff (a true sigma, as FalloffIsTrueSigma 1) in"
                        " cycles per binned pixel, as etomo's 0.35 0.035 (default: none, the ramp to Nyquist)")
    p.add_argument("--x-axis-tilt", type=float, default=0.0, metavar="DEG",
                   help="IMOD's XAXISTILT: the 'X axis tilt needed' of align's (or tiltalign's) surface analysis levels"
                        " the section; subtracted from the alignment's per-view X tilts (.xtilt), as IMOD's tilt does")
    p.add_argument("--offset", type=float, default=0.0, metavar="DEG", help="added to every tilt angle (OFFSET)")
    p.add_argument("--exclude-views", metavar="LIST", help="views to leave out, numbered from 1: 1-3,60")
    p.add_argument("--sirt-like", type=int, metavar="N",
                   help=f"the radial filter of N SIRT iterations, 1 to {MAX_SIRT_LIKE} (smoother; IMOD's"
                        " FakeSIRTiterations)")
    p.add_argument("--mode", choices=MODES,
                   help="output mode (default: the input's: bytes stay bytes, other integers int16, as tilt; else float32)"
                        + BYTES_HELP)
    p.add_argument("--scale", type=float, nargs=2, metavar=("ADD", "MULT"),
                   help="add, then multiply, before writing (IMOD's SCALE; default: none for float32; for an integer"
                        " mode the one that puts the middle slab's values in its range, printed)")
    p.add_argument("--memory", type=memory_arg, metavar="SIZE",
                   help="memory the whole process stays within, such as 4G (default: 2G, or half of what is available)")
    add_positioning_options(p)
    from .subset import add_subset_options

    add_subset_options(p)


def add_positioning_options(p: argparse.ArgumentParser, *, run: bool = False) -> None:
    """``--shift X Z`` and ``--level`` of ``reconstruct`` and ``run`` (which has no --offset nor --x-axis-tilt)."""
    p.add_argument("--shift", type=float, nargs=2, metavar=("X", "Z"),
                   help="IMOD's SHIFT: shift of the volume in X and Z, unbinned pixels; the same numbers keep the same slab"
                        " of the specimen as IMOD's tomogram after etomo's rotation about X (tilt's raw output is"
                        " upside down to ours); refused when the volume would miss every view")
    p.add_argument("--level", type=int, nargs="?", const=0, choices=(1, 2), metavar="SURFACES",
                   help="level the section from the markers (IMOD's surface analysis, 1 or 2 bead layers; default:"
                        " what the alignment analysed, recorded in alignment.json, else 2) and pick the thickness and Z"
                        " shift"
                        " that hold it; " + ("" if run else "--x-axis-tilt and --offset are then added to its values, ")
                        + "--thickness and --shift replace its choice")


def options_from_args(args: argparse.Namespace) -> ReconstructOptions:
    return ReconstructOptions(
        radial=tuple(args.radial) if args.radial else None, x_axis_tilt_deg=args.x_axis_tilt, offset_deg=args.offset,
        shift_px=tuple(args.shift) if args.shift else None, exclude_views=args.exclude_views, sirt_like=args.sirt_like,
        mode=args.mode, scale=tuple(args.scale) if args.scale else None, memory_bytes=args.memory, level=args.level,
        slices=args.slices, width=args.width, log_offset=args.log)


def check_options(options: ReconstructOptions, *, lowpass: float | None = None) -> None:
    """`errors.UsageError` naming the option whose value cannot be right, before any file is read."""
    from ..errors import UsageError
    from .subset import check_subset_options

    def bad(cond: bool, message: str) -> None:
        if cond:
            raise UsageError(message)

    check_subset_options(options.slices, options.width, options.log_offset)
    if options.radial is not None:
        cut, fall = options.radial
        bad(not (math.isfinite(cut) and 0 < cut <= 0.5),
            f"--radial {cut:g} {fall:g}: the cutoff must be in (0, 0.5] cycles per binned pixel (0.5 is Nyquist)")
        bad(not (math.isfinite(fall) and 0 <= fall <= 0.5),
            f"--radial {cut:g} {fall:g}: the falloff (a Gaussian's sigma) must be from 0 to 0.5 cycles per binned pixel")
        bad(lowpass is not None, "give --radial or --lowpass, not both (--lowpass F is --radial F 0.05)")
    bad(not (math.isfinite(options.x_axis_tilt_deg) and abs(options.x_axis_tilt_deg) < 90),
        f"--x-axis-tilt {options.x_axis_tilt_deg:g}: give an angle strictly between -90 and 90 degrees")
    bad(not math.isfinite(options.offset_deg), f"--offset {options.offset_deg:g}: give a finite angle in degrees")
    bad(options.shift_px is not None and not all(math.isfinite(v) for v in options.shift_px),
        "--shift X Z: give finite shifts in unbinned pixels")
    bad(options.sirt_like is not None and options.sirt_like < 1,
        f"--sirt-like {options.sirt_like}: give the number of SIRT iterations to mimic, at least 1")
    bad(options.sirt_like is not None and options.sirt_like > MAX_SIRT_LIKE,
        f"--sirt-like {options.sirt_like}: give at most {MAX_SIRT_LIKE} iterations (by then the filter is flat, an"
        " unweighted back-projection, at all but the lowest frequencies; etomo's SIRT-like filters use 5 to 30)")
    add, mult = options.scale or (0.0, 1.0)
    bad(not (math.isfinite(add) and math.isfinite(mult) and mult != 0),
        f"--scale {add:g} {mult:g}: give a finite ADD and a finite, non-zero MULT")

def reconstruct_alignment(stack_path: str | os.PathLike[str], saved: Any, alignment_dir: str | os.PathLike[str],
                          out: Path, *, binning: int, thickness: int | None, lowpass: float | None,
                          options: ReconstructOptions, voxel_angstrom: float | None, overwrite: bool,
                          aligned: Any = None, frame: Any = None, local_file: Path | None = None,
                          stack_pixel_nm: float | None = None) -> dict:
    """The streamed WBP of a raw stack with a saved alignment (`io.alignment.SavedAlignment`), into ``out``.

    ``aligned``: the stack's views already aligned and binned by ``binning``, as `warp.warp_view` makes them
    from the raw view (``run`` makes them in its one pass over the stack); otherwise each slab's rows are
    warped from the raw stack (`stream.WarpedRows`, the same warp). Either way one geometry and one order
    (bin the raw view, then warp it), so ``run``'s tomogram is ``reconstruct``'s on the same folder.

    ``frame``: the aligned frame (`frame.FrameSize`; None: `frame.frame_size_of` the alignment, transposed for an
    axis near 90 degrees), whose width and length the tomogram takes.

    ``local_file``: local alignments to apply (IMOD's local file, its pixels scaled from the alignment's to the stack's
    ``stack_pixel_nm``), at the plan's tilts and X-axis tilts, streamed as the global WBP is (`stream`, `local_slab`).

    Returns what was done: the output's shape, mode, slab rows, views used, clipped voxels and, with
    ``--level``, the surface analysis (`positioning.SurfaceAnalysis.as_dict`, and the object as ``surfaces``)
    and the levelling (``levelled``: a `positioning.Levelling` of what was applied); ``kernel``, the kernel that
    back-projected it and why (`kernel_choice.KernelChoice`).
    """
    import numpy as np

    from ..errors import UsageError
    from ..io.modes import tomogram_mode
    from .stream import AlignedRows, RawStack, WarpedRows, reconstruct_streamed
    from .tomogram_plan import plan_tomogram

    check_options(options, lowpass=lowpass)
    raw = RawStack(stack_path)
    if frame is None:
        from .frame import frame_size_of

        frame = frame_size_of(saved)
    plan = plan_tomogram(saved, alignment_dir, thickness=thickness, options=options, width=frame.size[0])
    mode = tomogram_mode(raw.dtype, options.mode)  # (a byte run's tomogram was int16: helper nits s14)
    radial = options.radial if options.radial is not None else ((lowpass, 0.05) if lowpass else None)
    views = plan.views
    source: Any = WarpedRows(raw, np.asarray(saved.transforms)[views], views, binning, frame.shape(binning)) \
        if aligned is None else AlignedRows(aligned, views, binning, binned=True)
    if options.log_offset is not None:
        from .subset import log_source

        span = getattr(source, "value_range", None) or (float(np.min(aligned)), float(np.max(aligned)))
        source = log_source(source, options.log_offset, span)
    from .subset import binned_columns, binned_rows

    rows = binned_rows(options.slices, frame.size[1], binning)
    columns = binned_columns(options.width, frame.size[0], binning)
    local = None if local_file is None else _local_projection(local_file, saved, plan, raw.shape, binning,
                                                               stack_pixel_nm)
    try:
        res = reconstruct_streamed(
            source, plan.tilts, out, thickness=plan.thickness, memory_bytes=options.memory_bytes, output_dtype=mode,
            scale=options.scale, voxel_size_angstrom=voxel_angstrom,
            weighting="sirt-like" if options.sirt_like else "ramp", sirt_iterations=options.sirt_like or 10,
            radial=radial, x_tilt_deg=plan.x_tilt, z_factors=plan.z_factors, tilt_offset_deg=plan.offset_deg,
            shift_px=plan.shift_px, rows=rows, columns=columns, overwrite=overwrite, local=local)
    except ValueError as exc:  # options out of range, too little memory: the user's to fix
        raise UsageError(str(exc)) from None
    info = dict(plan.info, surfaces=plan.surfaces, levelled=plan.levelled)
    info.update(shape=res.shape, mode=res.dtype, slab_rows=res.slab_rows, n_views=int(views.size),
                clipped=res.clipped, z_factors=_any(plan.z_factors) and local is None,  # the local file's own apply
                scale=res.scale, levels=res.levels,
                x_tilts=_any(saved.x_tilts_deg), kernel=res.kernel)
    return info


def _local_projection(path: Path, saved: Any, plan: Any, raw_shape: tuple[int, int, int], binning: int,
                      stack_pixel_nm: float | None) -> Any:
    """The local file's `local_warp.LocalProjection` for the plan's views, binned by ``binning``: at the solved tilts plus
    the plan's offset and its X-axis tilts (the views left out take no part); the patches are placed in the raw-sized
    frame about the centre the aligned frame shares (`local_jobs.local_projection_for`)."""
    import numpy as np

    from ..local_jobs import local_projection_for

    n = len(saved.transforms)
    x_tilt = np.zeros(n)
    x_tilt[plan.views] = plan.x_tilt
    tilts = np.asarray(saved.tilt_angles_deg, float) + plan.offset_deg
    lp = local_projection_for(path, tilts, x_tilt, (raw_shape[2] // binning, raw_shape[1] // binning),
                              saved.pixel_size_nm, stack_pixel_nm, binning)
    return lp.subset(plan.views)


def _any(values) -> bool:
    """Whether the full model's per-view ``values`` (an ``.xtilt`` or ``.zfac``, or None) move anything: all zero
    (an X-axis tilt left at 0 by tiltalign, as BBa's) applies nothing, and the notes do not say it was applied."""
    return values is not None and bool((values != 0).any())


def tomogram_notes(info: dict) -> tuple[list[str], list[str]]:
    """What `reconstruct_alignment` did that a user must know: (notes, warnings). The full model's files applied
    (IMOD's ``tilt`` names its XTILTFILE and ZFACTORFILE); an integer mode's scale, clipped voxels, and a volume
    left with too few grey levels to hold the specimen (a ``--scale`` too small)."""
    full = [name for name, on in (("X-axis tilts (.xtilt)", info["x_tilts"]), ("Z factors (.zfac)", info["z_factors"]))
            if on]
    notes = [f"applied the alignment's {' and '.join(full)}, as IMOD's tilt does"] if full else []
    warnings = list(info.get("shift_warnings", ()))  # no marker in a shifted volume (`shift_check`)
    if info["levels"]:
        add, mult = info["scale"]
        notes.append(f"{info['mode']} values: (density {'-' if add < 0 else '+'} {abs(add):.6g}) x {mult:.6g} (IMOD's"
                     " SCALE; --scale to choose)")
        if info["clipped"]:
            notes.append(f"{info['clipped']} voxels beyond the {info['mode']} range were clipped")
        if info["levels"] < 64:
            warnings.append(f"warning: the tomogram holds only {info['levels']} grey levels in {info['mode']}; give a"
                            " larger --scale MULT, or --mode float32")
    return notes, warnings
