"""The dose each view of a tilt series had before it was recorded (its pre-exposure), from SerialEM's ``.mdoc``.

RELION 5 weights each tilt by it (``rlnMicrographPreExposure``, e/A^2) in reconstruction, CTF refinement and
polishing; 0 for every view turns that weighting off. SerialEM writes, per section (``[ZValue = k]``, the
stack's view ``k``): ``PriorRecordDose`` in recent versions (exactly the pre-exposure), ``ExposureDose`` (the
view's own dose) and ``DateTime`` (when it was recorded). The pre-exposure is taken from ``PriorRecordDose``
when every section has it; otherwise it is the sum of the ``ExposureDose`` of the views recorded before, in the
order of ``DateTime`` (a dose-symmetric series is not recorded in stack order), else of ``ZValue``.
"""

from __future__ import annotations

import os
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from .errors import FileFormatError
from .guarded import require_regular_file
from .tilt_sources import MAX_MDOC_BYTES, mdoc_beside, mdoc_table


def stack_pre_exposure(stack_path: str | os.PathLike[str], n_views: int) -> NDArray[np.float64] | None:
    """`pre_exposure` from the ``.mdoc`` beside the raw stack (None without one, or one without doses; a broken
    one is passed over: the dose is an extra, not the alignment)."""
    mdoc = mdoc_beside(stack_path)
    if mdoc is None:
        return None
    try:
        return pre_exposure(mdoc, n_views)
    except FileFormatError:
        return None


def relion_dose_note(stack_path: str | os.PathLike[str] | None, give: str = "--stack") -> str | None:
    """The note a RELION hand-over needs when it names no stack or records no dose (None when it does both);
    ``give``: how the user gives the stack."""
    if stack_path is None:
        return ("note: the RELION tilt series names the stack NAME.mrc (after the tomogram) and records no dose"
                f" (pre-exposure 0 for every view: RELION's dose weighting off); give the raw stack ({give}), with its"
                " SerialEM .mdoc beside")
    from .mrc import open_tilt_series

    if stack_pre_exposure(stack_path, open_tilt_series(stack_path, find_tilts=False).n_views) is None:
        return (f"note: no dose in a SerialEM .mdoc beside {stack_path}: the RELION tilt series records pre-exposure 0"
                " for every view (RELION's dose weighting off)")
    return None


def pre_exposure(mdoc: str | os.PathLike[str], n_views: int) -> NDArray[np.float64] | None:
    """``(n_views,)`` e/A^2 each view of the stack had before it (module docstring), or None when the ``.mdoc``
    gives no dose or does not describe ``n_views`` views. `FileFormatError` for a file that is not an ``.mdoc``."""
    p = require_regular_file(mdoc, "SerialEM .mdoc")
    if p.stat().st_size > MAX_MDOC_BYTES:
        raise FileFormatError(f"{p}: {p.stat().st_size} bytes is too large for a SerialEM .mdoc")
    try:
        df = mdoc_table(p)
    except Exception as exc:  # noqa: BLE001 - mdocfile raises pydantic and parsing errors of many types
        raise FileFormatError(f"{p}: not a readable SerialEM .mdoc ({type(exc).__name__})") from None
    if "ZValue" not in df.columns or len(df) != n_views:
        return None
    try:
        z = df["ZValue"].to_numpy(dtype=float).astype(int)
    except (ValueError, TypeError):
        return None
    if sorted(z.tolist()) != list(range(n_views)):
        return None
    out = np.full(n_views, np.nan)
    prior = _numbers(df, "PriorRecordDose")
    if prior is not None:
        out[z] = prior
        return out
    dose = _numbers(df, "ExposureDose")
    if dose is None or not np.any(dose > 0):
        return None
    order = _recorded_order(df, z)
    out[z[order]] = np.concatenate([[0.0], np.cumsum(dose[order])[:-1]])
    return out


def _numbers(df, column: str) -> NDArray[np.float64] | None:
    """A column as finite, non-negative numbers in every section, or None."""
    if column not in df.columns:
        return None
    try:
        v = df[column].to_numpy(dtype=float)
    except (ValueError, TypeError):
        return None
    return v if np.all(np.isfinite(v)) and np.all(v >= 0) else None


def _recorded_order(df, z: NDArray[np.int_]) -> NDArray[np.int_]:
    """The sections in the order they were recorded: by ``DateTime`` when every one parses, else by ``ZValue``."""
    if "DateTime" in df.columns:
        try:
            when = [datetime.strptime(" ".join(str(t).split()), "%d-%b-%y %H:%M:%S") for t in df["DateTime"]]
            return np.array(sorted(range(len(when)), key=lambda k: (when[k], z[k])))
        except ValueError:
            pass
    return np.argsort(z, kind="stable")


def mdoc_mismatch_note(stack_path: str | os.PathLike[str], image_size: tuple[int, int],
                       pixel_size_angstrom: float | None) -> str | None:
    """A note when the ``.mdoc`` beside a stack describes other images (its ``ImageSize`` or ``PixelSpacing``
    before the sections): a stack binned since, or a file copied from another series, whose tilt angles and axis
    would be taken all the same. None when it agrees, or says nothing of them."""
    import re

    mdoc = mdoc_beside(stack_path)
    if mdoc is None:
        return None
    try:
        with open(require_regular_file(mdoc, "SerialEM .mdoc"), "rb") as f:
            head = f.read(65536).decode("utf-8", "replace").split("[ZValue", 1)[0]
    except (OSError, FileFormatError):
        return None
    size = re.search(r"^\s*ImageSize\s*=\s*(\d+)\s+(\d+)", head, re.MULTILINE)
    pix = re.search(r"^\s*PixelSpacing\s*=\s*([0-9.eE+-]+)", head, re.MULTILINE)
    theirs = (int(size.group(1)), int(size.group(2))) if size else None
    their_pix = float(pix.group(1)) if pix else None
    off_size = theirs is not None and theirs != tuple(image_size)
    off_pix = bool(their_pix and pixel_size_angstrom and abs(their_pix / pixel_size_angstrom - 1.0) > 0.02)
    if not (off_size or off_pix):
        return None
    said = " at ".join(x for x in (f"{theirs[0]} x {theirs[1]}" if theirs else "",
                                   f"{their_pix:g} A" if their_pix else "") if x)
    ours = " at ".join(x for x in (f"{image_size[0]} x {image_size[1]}",
                                   f"{pixel_size_angstrom:g} A" if pixel_size_angstrom else "") if x)
    return (f"note: {mdoc} describes images of {said}, the stack is {ours}: binned since, or another series' file?"
            " (its tilt angles and axis are used)")
