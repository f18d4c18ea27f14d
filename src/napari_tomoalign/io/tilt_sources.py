"""Where a tilt series' angles come from, looked for in this order (the result says which was used):

1. a sibling tilt file with the same stem, as IMOD names them: a raw stack (``.st``, ``.mrc``, ...) and a
   marker file take the nominal ``.rawtlt`` before the solved ``.tlt``; an aligned stack (``.ali``)
   takes the solved ``.tlt`` before the ``.rawtlt`` (see `sibling_tilt_file`);
2. a SerialEM ``.mdoc`` (``stack.st.mdoc`` or ``stack.mdoc``), by ``ZValue``;
3. the MRC extended header: FEI (``FEI1``/``FEI2``, field ``Alpha tilt``) or SerialEM (``SERI``, the
   first short of each section, in hundredths of a degree, when ``nreal`` has bit 1).

Views stay in file order even when the angles are not sorted; the angles say which view is which.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import FileFormatError
from .guarded import require_regular_file
from .tilts import read_tilt_angles

MAX_MDOC_BYTES = 4 * 1024 * 1024


def mdoc_table(path: Path) -> Any:
    """mdocfile's table of a SerialEM ``.mdoc``, without the library's logged warning on the fields it does not
    know (SerialEM's own ``ImageSize``: "Unknown fields will be preserved" printed before every run's output)."""
    import logging

    import mdocfile

    log = logging.getLogger("mdocfile")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return mdocfile.read(path)
    finally:
        log.setLevel(level)


def read_mdoc_tilts(path: str | os.PathLike[str], n_views: int | None = None) -> NDArray[np.float64]:
    """Tilt angles from a SerialEM ``.mdoc``, ordered by ``ZValue``."""
    p = require_regular_file(path, "SerialEM .mdoc")  # a FIFO or a device would block or never end
    try:
        if p.stat().st_size > MAX_MDOC_BYTES:  # mdocfile parses ~1 ms a section: 4 MiB is ~2 s, 20x a real one
            raise FileFormatError(f"{p}: {p.stat().st_size} bytes is too large for a SerialEM .mdoc (limit "
                                  f"{MAX_MDOC_BYTES}); give the tilt angles as a .tlt file")
        df = mdoc_table(p)
    except FileFormatError:
        raise
    except FileNotFoundError:
        raise FileFormatError(f"{p}: no such .mdoc file") from None
    except Exception as exc:  # mdocfile raises pydantic and parsing errors of many types
        raise FileFormatError(f"{p}: not a readable SerialEM .mdoc ({type(exc).__name__})") from None
    if "TiltAngle" not in df.columns or "ZValue" not in df.columns:
        raise FileFormatError(f"{p}: the .mdoc has no [ZValue] sections with TiltAngle")
    try:
        df = df.dropna(subset=["ZValue", "TiltAngle"])
        z = df["ZValue"].to_numpy(dtype=float)
        t = df["TiltAngle"].to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise FileFormatError(f"{p}: the .mdoc ZValue or TiltAngle entries are not numbers") from None
    if z.size == 0 or not np.all(np.isfinite(t)) or np.any(np.abs(t) >= 90):
        raise FileFormatError(f"{p}: the .mdoc tilt angles are missing or outside (-90, 90) degrees")
    if len(set(z.tolist())) != z.size or not np.array_equal(np.sort(z), np.arange(z.size)):
        raise FileFormatError(f"{p}: the .mdoc ZValues are not 0..{z.size - 1} once each")
    if n_views is not None and z.size != n_views:
        raise FileFormatError(f"{p}: the .mdoc has {z.size} sections but the stack has {n_views} views")
    out = np.empty(z.size)
    out[z.astype(int)] = t
    return out


def extended_header_tilts(mrc: Any) -> tuple[NDArray[np.float64] | None, str | None]:
    """Tilt angles from an FEI or SerialEM extended header, or ``(None, None)``."""
    h = mrc.header
    n = int(h.nz)
    exttyp = bytes(h.exttyp).decode("ascii", errors="replace")
    try:
        if exttyp in ("FEI1", "FEI2"):
            ext = mrc.indexed_extended_header
            if ext is not None and "Alpha tilt" in ext.dtype.names and len(ext) >= n:
                t = np.asarray(ext["Alpha tilt"][:n], dtype=float)
                if np.all(np.isfinite(t)) and np.all(np.abs(t) < 90) and np.ptp(t) > 0:
                    return t, f"extended header ({exttyp})"
        elif exttyp == "SERI":
            # IMOD's header keeps nint (bytes per section) and nreal (flags) as shorts at bytes 128 and 130.
            order = h.dtype.fields["nx"][0].str[0]  # '<' or '>', as the file is
            nint, nreal = np.frombuffer(h.tobytes()[128:132], dtype=order + "i2")
            raw = np.frombuffer(mrc.extended_header.tobytes(), dtype=np.uint8)
            if int(nreal) & 1 and nint >= 2 and raw.size >= int(nint) * n:
                t = raw[: int(nint) * n].reshape(n, int(nint))[:, :2].copy().view(order + "i2").ravel() / 100.0
                if np.all(np.abs(t) < 90) and np.ptp(t) > 0:
                    return t.astype(float), "extended header (SerialEM)"
    except (ValueError, TypeError, KeyError):
        pass
    return None, None


ALIGNED_SUFFIXES = (".ali",)


def sibling_tilt_file(path: str | os.PathLike[str]) -> Path | None:
    """The tilt-angle file beside ``path`` that IMOD would use for it, or None.

    An aligned stack (``.ali``) was made with the solved angles, so it takes ``stem.tlt`` first;
    anything else (a raw ``.st``/``.mrc`` stack, a ``.fid`` or CSV of markers clicked on one) takes
    the nominal ``stem.rawtlt`` first, so that a stack reopened after an alignment is not realigned
    from the angles that alignment solved.
    """
    p = Path(path)
    order = (".tlt", ".rawtlt") if p.suffix.lower() in ALIGNED_SUFFIXES else (".rawtlt", ".tlt")
    for suffix in order:
        cand = p.with_suffix(suffix)
        if cand.is_file():
            return cand
    return None


_MDOC_AXIS = re.compile(r"Tilt\s*axis\s*angle\s*=\s*([-+]?\d+(?:\.\d*)?)", re.IGNORECASE)


def mdoc_beside(stack_path: str | os.PathLike[str]) -> Path | None:
    """The SerialEM ``.mdoc`` beside a stack (``NAME.st.mdoc`` or ``NAME.mdoc``), or None."""
    p = Path(stack_path)
    return next((c for c in (p.with_name(p.name + ".mdoc"), p.with_suffix(".mdoc")) if c.is_file()), None)


def mdoc_sections(mdoc: str | os.PathLike[str]) -> int | None:
    """The number of sections (``[ZValue = ...]``) of a SerialEM ``.mdoc``; None when it cannot be read or has none
    (its title lines only: it says nothing of the views)."""
    try:
        path = require_regular_file(mdoc, "SerialEM .mdoc")
        if os.path.getsize(path) > MAX_MDOC_BYTES:
            return None
        with open(path, "rb") as f:
            return f.read().count(b"[ZValue") or None
    except (OSError, FileFormatError):
        return None


def mdoc_tilt_axis(stack_path: str | os.PathLike[str], n_views: int | None = None) -> tuple[float, str] | None:
    """SerialEM's "Tilt axis angle" (a title line of the ``.mdoc`` beside the stack) and that file, or None. It is
    the microscope's axis, which the markers cannot tell from the axis + 180 (the mirror tomogram). With ``n_views``,
    None too for an ``.mdoc`` whose sections are not the stack's views: another series' file, whose axis would pick
    the hand of the tomogram (new user's finding, session 13; `other_series_mdoc_note` says it)."""
    p = Path(stack_path)
    for cand in (p.with_name(p.name + ".mdoc"), p.with_suffix(".mdoc")):
        if not cand.is_file():
            continue
        try:
            with open(require_regular_file(cand, "SerialEM .mdoc"), "rb") as f:
                head = f.read(65536).decode("utf-8", "replace")  # the title lines come before the sections
        except (OSError, FileFormatError):
            return None
        if n_views is not None and mdoc_sections(cand) not in (None, n_views):
            return None
        m = _MDOC_AXIS.search(head)
        angle = float(m.group(1)) if m else float("nan")
        return (angle, str(cand)) if np.isfinite(angle) and abs(angle) <= 360.0 else None
    return None


def other_series_mdoc_note(stack_path: str | os.PathLike[str], n_views: int) -> str | None:
    """A note when the ``.mdoc`` beside the stack has another number of sections than the stack has views: it is
    not used, for the tilt axis either (`mdoc_tilt_axis`)."""
    p = Path(stack_path)
    mdoc = mdoc_beside(p)
    n = None if mdoc is None else mdoc_sections(mdoc)
    if n is None or n == n_views:
        return None
    return (f"note: {mdoc} has {n} sections but {p.name} has {n_views} views: another series' file (or the stack"
            " was cut since); not used, for the tilt axis either")


def find_tilt_angles(path: Path, n_views: int, mrc=None) -> tuple[NDArray[np.float64] | None, str | None]:
    """Tilt angles for the stack at ``path`` from the first source that has them (module docstring)."""
    cand = sibling_tilt_file(path)
    if cand is not None:
        t = read_tilt_angles(cand)
        if t.size != n_views:
            raise FileFormatError(f"{cand} has {t.size} tilt angles but {path.name} has {n_views} views")
        return t, str(cand)
    for cand in (path.with_name(path.name + ".mdoc"), path.with_suffix(".mdoc")):
        if cand.is_file():
            return read_mdoc_tilts(cand, n_views), str(cand)
    if mrc is not None:
        return extended_header_tilts(mrc)
    return None, None


def read_tilt_file(path: str | os.PathLike[str], n_views: int | None = None) -> NDArray[np.float64]:
    """Angles from a tilt file the user named: a ``.tlt``/``.rawtlt`` or a SerialEM ``.mdoc``.

    A path that does not exist is an error (a mistyped name must not fall back silently to other
    angles), and so is a count that does not match ``n_views`` when it is given.
    """
    p = Path(path)
    if not p.exists():  # (a FIFO, a device or a folder: the readers say what it is)
        raise FileFormatError(f"{p}: no such tilt-angle file; check the name, or clear the field")
    t = read_mdoc_tilts(p, n_views) if p.suffix.lower() == ".mdoc" else read_tilt_angles(p)
    if n_views is not None and t.size != n_views:
        raise FileFormatError(f"{p} has {t.size} tilt angles but the stack has {n_views} views")
    return t
