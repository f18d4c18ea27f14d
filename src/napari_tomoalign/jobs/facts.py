"""Each fact a job derives from its inputs, stated once: every front end (the command line, the Python
API, ``batch``, ``run`` and the dock) asks these functions and nothing else.

- **Axis Z shift** (`axis_z_shift_px`): the one given, else the ``AxisZShift`` of the align.com the
  alignment was solved with (the middle of the markers' Z range for ``AxisZShift 1000``), else 0.
- **Default thickness** (`default_thickness_px`): a quarter of the larger image side, or more where the
  markers need it: every marker inside with a margin of 10% of their depth plus 16 pixels on each side (an
  even number, as IMOD's ``tilt`` likes), at most `MAX_THICKNESS_FACTOR` times the larger side. The same
  for ``reconstruct``, ``run``, ``batch`` and the dock's preview.
- **Bead diameter** (`bead_diameter_px`, `check_bead_diameter_px`): one range, `BEAD_DIAMETER_PX`, and a
  bead no wider than a quarter of the image's smaller side; nm converts through the pixel size (nm).
- **Pixel size** (`pixel_size_nm`): the one given, else the header's (Å, through
  `conventions.nm_from_angstrom`); unknown is None.
- **Ranges** of a job's numbers (`check_job_numbers`: pixel size, axis Z shift, image size, binning,
  thickness, low-pass, seed), checked before any file is read, each error naming its option.
- **Preview** (`preview_binning`, `PREVIEW_LOWPASS`): the dock's tomogram binned to about 256 pixels,
  low-passed at 0.35 cycles per binned pixel.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..conventions import nm_from_angstrom
from ..errors import UsageError

if TYPE_CHECKING:
    from ..alignment.result import Alignment

MAX_THICKNESS_FACTOR = 4  # a tomogram at most this many times as thick as the image's larger side
MAX_BINNING = 1024
BEAD_DIAMETER_PX = (1.5, 200.0)  # the bead diameters, in pixels, that tracking and erasing take
PREVIEW_TARGET_PX = 256  # the dock's preview tomogram: binned until its larger side is at most this
PREVIEW_LOWPASS = 0.35  # cycles per binned pixel


def axis_z_shift_px(al: Alignment, given_px: float | None = None) -> float:
    """The axis Z shift (pixels) an alignment's outputs are placed with: ``given_px`` when not None, else
    the alignment's own (`Alignment.axis_z_shift_px`: the ``AxisZShift`` of the align.com it was solved with,
    its markers' Z middle for 1000; the options' for the default model)."""
    return float(al.axis_z_shift_px) if given_px is None else float(given_px)


def marker_z_extent_px(al: Alignment, axis_z_shift: float) -> float | None:
    """The largest |z| of the solved markers about the tilt axis (as their ``fid.xyz`` gives it), or None."""
    from ..alignment.transforms import aligned_marker_positions

    z = aligned_marker_positions(al, axis_z_shift)[al.marker_included, 2]
    z = z[np.isfinite(z)]
    return float(np.max(np.abs(z))) if z.size else None


def default_thickness_px(image_size: tuple[int, int], marker_z_extent: float | None) -> int:
    """The default tomogram thickness in unbinned pixels for images of ``(width, height)`` whose markers
    reach ``marker_z_extent`` pixels from the tilt axis (None: unknown, a quarter of the image)."""
    side = max(int(image_size[0]), int(image_size[1]))
    quarter = side // 4
    if marker_z_extent is None:
        return max(quarter, 1)
    need = 2.0 * (1.1 * float(marker_z_extent) + 16.0)
    return int(min(max(quarter, 2 * int(np.ceil(need / 2.0))), MAX_THICKNESS_FACTOR * side))


def check_bead_diameter_px(diameter_px: float, image_size: tuple[int, int] | None = None, *,
                           what: str = "--bead-diameter-px") -> float:
    """``diameter_px`` when it is a bead diameter this project handles; a `UsageError` naming ``what``."""
    lo, hi = BEAD_DIAMETER_PX
    d = float(diameter_px)
    if not (math.isfinite(d) and lo <= d <= hi):
        raise UsageError(f"{what} must be from {lo:g} to {hi:g} pixels, not {diameter_px:g}")
    if image_size is not None and d > min(image_size) / 4:
        raise UsageError(f"{what}: a bead of {d:.1f} px does not fit {image_size[0]} x {image_size[1]} images (at most"
                         f" a quarter of the smaller side); check the number and the pixel size")
    return d


def bead_diameter_px(diameter_nm: float | None, diameter_px: float | None, pixel_size_nm_: float | None, *,
                     image_size: tuple[int, int] | None = None, where: str = "the stack",
                     pixel_source: str = "the header's") -> float:
    """The bead diameter in pixels from exactly one of ``diameter_nm`` (through the pixel size, nm) and
    ``diameter_px``, checked against `BEAD_DIAMETER_PX` and the image size. ``pixel_source`` says in a
    message where the pixel size came from."""
    if (diameter_nm is None) == (diameter_px is None):
        raise UsageError("give the bead diameter once: --bead-diameter-nm D or --bead-diameter-px D")
    if diameter_px is not None:
        return check_bead_diameter_px(diameter_px, image_size)
    nm = float(diameter_nm)  # type: ignore[arg-type]
    if not (math.isfinite(nm) and nm > 0):
        raise UsageError(f"--bead-diameter-nm must be a positive number of nm, not {diameter_nm:g}")
    if not pixel_size_nm_:
        raise UsageError(f"{where} records no pixel size, so a diameter in nm cannot be converted; give"
                         " --bead-diameter-px instead, or the pixel size (--pixel-size-nm)")
    d = nm / float(pixel_size_nm_)
    try:
        return check_bead_diameter_px(d, image_size, what=f"--bead-diameter-nm {nm:g}")
    except UsageError:
        raise UsageError(f"--bead-diameter-nm {nm:g} is {d:.1f} px at {pixel_source} {pixel_size_nm_:g} nm/px,"
                         " which does not fit"
                         + (f" {image_size[0]} x {image_size[1]} images" if image_size else " a bead's range")
                         + ": gold is usually 5-20 nm (not Angstrom); check the number and the pixel size, or give"
                         " --bead-diameter-px") from None


def pixel_size_nm(given_nm: float | None, header_angstrom: float | None) -> float | None:
    """The pixel size in nm: the one given, else the header's (Å); None when neither is known. One given that
    differs from the header's by more than 1 % is used, and said (a typo here scales every output)."""
    header = nm_from_angstrom(header_angstrom)
    if given_nm is None:
        return header
    if header is not None and abs(float(given_nm) / header - 1.0) > 0.01:
        import warnings

        warnings.warn(f"the stack's header says {header:.4g} nm/px; using {float(given_nm):.4g} nm/px as given "
                      "(--pixel-size-nm): every output is scaled by it", UserWarning, stacklevel=2)
    return float(given_nm)


def preview_binning(image_shape: tuple[int, int], target: int = PREVIEW_TARGET_PX) -> int:
    """The smallest binning that brings the larger image side to ``target`` pixels or fewer."""
    return max(1, int(np.ceil(max(image_shape) / target)))


def check_job_numbers(
    *, pixel_size_nm: float | None = None, axis_z_shift_px: float = 0.0, image_size: tuple | None = None,
    binning: int = 1, thickness: int | None = None, lowpass: float | None = None, seed: int = 0,
) -> None:
    """Range checks of the jobs' numbers, before any file is read (`UsageError` naming the option)."""
    def bad(cond: bool, message: str) -> None:
        if cond:
            raise UsageError(message)

    bad(pixel_size_nm is not None and not (np.isfinite(pixel_size_nm) and 0 < pixel_size_nm < 1e6),
        f"--pixel-size-nm must be a positive number of nanometres, not {pixel_size_nm}")
    bad(not (np.isfinite(axis_z_shift_px) and abs(axis_z_shift_px) <= 1e6),
        f"--axis-z-shift must be a finite number of pixels (at most 1e6 in size), not {axis_z_shift_px}")
    bad(image_size is not None and not (len(image_size) == 2 and all(1 <= v <= 1_000_000 for v in image_size)),
        f"--image-size must be two whole numbers from 1 to 1000000, not {image_size}")
    bad(not 1 <= binning <= MAX_BINNING, f"--bin must be a whole number from 1 to {MAX_BINNING}, not {binning}")
    bad(thickness is not None and not 1 <= thickness <= 10_000_000,
        f"--thickness must be a positive number of pixels, not {thickness}")
    bad(lowpass is not None and not (np.isfinite(lowpass) and 0 < lowpass <= 0.5),
        f"--lowpass must be a cutoff in (0, 0.5] cycles per binned pixel (0.5 is Nyquist), not {lowpass}")
    bad(not 0 <= seed < 2**63, f"--seed must be a whole number from 0 to 2**63 - 1, not {seed}")


__all__ = ["BEAD_DIAMETER_PX", "MAX_BINNING", "MAX_THICKNESS_FACTOR", "check_job_numbers", "PREVIEW_LOWPASS",
           "PREVIEW_TARGET_PX", "axis_z_shift_px", "bead_diameter_px", "check_bead_diameter_px",
           "default_thickness_px", "marker_z_extent_px", "pixel_size_nm", "preview_binning"]


def views_out_of_order(al: Alignment, max_named: int = 4) -> str | None:
    """Views whose solved tilt lands on the angle given for another view (within 0.3 of the tilt step, and at
    least 0.7 of a step from their own): views swapped in the stack against the tilt file, which the free
    per-view tilt recovers silently (new user s13: views 10 and 11 swapped, solved -29.9 / -33.1 against the
    given -33 / -30, and nothing said). One line naming them (up to ``max_named`` views, numbered from 1), or
    None. Many views off is another series' tilt file, said elsewhere (`validation.tilt_file_mismatch`)."""
    given = np.asarray(al.nominal_tilt_angles_deg, dtype=float)
    solved = np.asarray(al.tilt_angles_deg, dtype=float)
    ok = np.asarray(al.view_determined, bool) & np.isfinite(solved) & np.isfinite(given)
    diffs = np.abs(np.diff(np.sort(given[np.isfinite(given)])))
    step = float(np.median(diffs[diffs > 0])) if np.any(diffs > 0) else 0.0
    if step <= 0 or ok.sum() < 3:
        return None
    like: dict[int, int] = {}
    for k in np.flatnonzero(ok).tolist():
        j = int(np.argmin(np.abs(given - solved[k])))
        if j != k and abs(solved[k] - given[j]) <= 0.3 * step and abs(solved[k] - given[k]) >= 0.7 * step:
            like[k] = j
    if not like or len(like) > max(max_named, ok.sum() // 4):  # none, or the whole file: not a swap
        return None
    parts = []
    for i, j in sorted(like.items())[:max_named]:
        if like.get(j) == i and j < i:
            continue  # the pair was named from its first view
        if like.get(j) == i:
            parts.append(f"views {i + 1} and {j + 1} solved at {solved[i]:.1f} and {solved[j]:.1f} deg where"
                         f" {given[i]:.1f} and {given[j]:.1f} were given (swapped in the stack?)")
        else:
            parts.append(f"view {i + 1} solved at {solved[i]:.1f} deg, the angle given for view {j + 1}")
    return ("views out of order against the tilt angles: " + "; ".join(parts) + "; the alignment follows the images"
            " (the .tlt holds the solved angles), but check the stack's order")
