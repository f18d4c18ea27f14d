"""What ``--alignment`` takes (``aligned-stack``, ``reconstruct`` and their Python functions), read for the stack
it is applied to, by one function: `read_alignment_for_stack`.

- a ``tomoalign align`` folder (or its ``alignment.json`` or ``.xf``): read through its run stamp
  (`alignment.read_alignment_dir`), which refuses files of another run;
- an IMOD set (`imod_set`: ``NAME.xf`` + ``NAME.tlt`` and the files beside them, or a folder with one): what it
  lacks (image size, pixel size) from the stack's header, checked against its ``fid.xyz`` when there;
- another tool's alignment that ``convert`` reads (AreTomo ``.aln``, portal ``.json``, RELION ``tomograms.star``,
  Warp ``.xml``): the image size and pixel size it lacks from the stack's header, the views it leaves out restored
  to the stack's count with the nominal tilts of the stack's tilt file (`view_count.restore_views`).

An alignment whose view count differs from the stack's, or whose shifts move the image centre out of the stack's
images (an alignment of another stack or binning), is refused in one line. The result's ``provenance`` says, in
one line, what was taken from where (None for a stamped folder, which needs nothing from elsewhere).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..conventions import format_views
from .alignment import SavedAlignment, read_alignment_dir
from .errors import FileFormatError
from .imod_set import ImodSet, find_imod_set, is_stamped, read_imod_set

KNOWN_SUFFIXES = (".xf", ".tltxf", ".json", ".aln", ".star", ".xml")
TOOLS = {"aretomo": "an AreTomo", "cdp": "a CryoET Data Portal", "relion": "a RELION", "warp": "a Warp"}


def read_alignment_for_stack(path: str | os.PathLike[str], stack_path: str | os.PathLike[str]) -> SavedAlignment:
    """The alignment at ``path`` for the stack at ``stack_path`` (module docstring)."""
    folder = is_stamped(path)
    if folder is not None:
        return read_alignment_dir(folder)
    from .convert import detect_format
    from .mrc import open_tilt_series

    p = Path(path)
    if p.is_file() and p.suffix.lower() not in KNOWN_SUFFIXES:
        raise FileFormatError(f"{p}: not an alignment; give the output folder of 'tomoalign align', an IMOD NAME.xf"
                              " (NAME.tlt beside it) or a folder holding one, or an AreTomo .aln, a portal .json, a"
                              " RELION tomograms.star or a Warp .xml")
    fmt = detect_format_or_none(p) or detect_format(p)
    series = open_tilt_series(stack_path, strict_tilts=False, find_tilts=fmt != "imod")
    n, rows, cols = series.data.shape
    stack, stack_pix = Path(stack_path), (series.pixel_size_angstrom / 10.0 if series.pixel_size_angstrom else None)
    if fmt == "imod":
        saved = read_imod_set(path, image_size=(cols, rows), pixel_size_nm=stack_pix)
        s = find_imod_set(path)
        if len(saved.transforms) != n:
            raise FileFormatError(f"{s.xf}: {len(saved.transforms)} transforms but {stack.name} has {n} views;"
                                  " give the .xf made for this stack")
        where, note = s.xf, _imod_note(s, saved, stack, stack_pix)
        other_axis_warning(s.xf, stack)
    else:
        from .convert import read_any
        from .view_count import restore_views

        where = Path(path)
        saved = read_any(where, fmt, image_size=(cols, rows), pixel_size_nm=stack_pix)
        saved = restore_views(saved, where, n_views=n, nominal_deg=series.tilt_angles_deg,
                              how_tilts=f"a .rawtlt or .mdoc beside {stack.name}")
        note = _tool_note(where, fmt, saved, stack, series.tilt_source)
    if saved.pixel_size_nm and stack_pix and abs(saved.pixel_size_nm / stack_pix - 1.0) > 0.01:
        raise FileFormatError(f"{where}: the alignment was solved at {saved.pixel_size_nm:.4g} nm pixels, but"
                              f" {stack.name} has {stack_pix:.4g} nm; give the stack of that pixel size")
    _check_fits(where, saved, stack)
    return replace(saved, provenance=note)


def other_axis_warning(xf: Path, stack: Path) -> None:
    """Warn (`AlignmentWarning`) when an IMOD ``.xf`` is named for the other axis of the stack's dual-axis pair, as
    etomo names them (``BBb.xf`` for ``BBa.st``): an unstamped set records no images to check, but its name does
    (s16 new user: IMOD's BBb set was taken for BBa.st with only a note)."""
    a, b = xf.stem, stack.stem
    if len(a) == len(b) > 1 and a[:-1] == b[:-1] and {a[-1:].lower(), b[-1:].lower()} == {"a", "b"}:
        import warnings

        from ..errors import AlignmentWarning

        warnings.warn(f"{xf.name} is named for the other axis of {stack.name}'s dual-axis pair (etomo's {a[-1]} and"
                      f" {b[-1]}): give {b}.xf, if this is not meant", AlignmentWarning, stacklevel=3)


def preali_warning(path: str | os.PathLike[str], stack_path: str | os.PathLike[str]) -> str | None:
    """A warning when etomo's ``NAME.xf`` (the raw stack's transforms: ``.prexg`` x ``.tltxf``) is given for the
    prealigned ``.preali``, whose transforms are the ``NAME.tltxf`` beside it; None otherwise."""
    p, stack = Path(path), Path(stack_path)
    if stack.suffix.lower() != ".preali" or is_stamped(p) is not None or detect_format_or_none(p) != "imod":
        return None
    s = find_imod_set(p)
    if s.xf.suffix != ".xf" or not s.xf.with_suffix(".tltxf").is_file():
        return None
    return (f"warning: {s.xf.name} is etomo's transform of the raw stack ({s.stem}.st), but {stack.name} is"
            f" prealigned: give --alignment {s.xf.with_suffix('.tltxf')} for it, or the raw stack")


def detect_format_or_none(p: Path) -> str | None:
    """`convert.detect_format`'s answer (``imod`` for etomo's ``.tltxf``), or None where it has none."""
    from .convert import detect_format

    if p.suffix.lower() == ".tltxf":
        return "imod"
    try:
        return detect_format(p)
    except FileFormatError:
        return None


def _check_fits(where: Path, saved: SavedAlignment, stack: Path) -> None:
    """Refuse transforms whose shift moves the image centre out of the stack's images (another stack or binning)."""
    cols, rows = saved.image_size
    shift = np.abs(np.nan_to_num(saved.transforms[:, :, 2]))
    off = np.flatnonzero((shift[:, 0] > cols / 2) | (shift[:, 1] > rows / 2))
    if off.size:
        k = int(off[0])
        raise FileFormatError(f"{where}, view {k + 1}: a shift of {saved.transforms[k, 0, 2]:.1f}, "
                              f"{saved.transforms[k, 1, 2]:.1f} px moves the centre out of the {cols} x {rows} images"
                              f" of {stack.name}: an alignment of another stack or binning")


def _views(saved: SavedAlignment, why: str) -> str:
    left = np.flatnonzero(~saved.view_determined)
    return f"{saved.view_determined.sum()} of {saved.view_determined.size} views fitted" + (
        f" (views {format_views(left)} {why})" if left.size else "")


def _imod_note(s: ImodSet, saved: SavedAlignment, stack: Path, stack_pix: float | None) -> str:
    """One line: the IMOD set's files used, and what came from the stack's header."""
    fid = s.beside.get("fid.xyz")
    size = f"image size {saved.image_size[0]} x {saved.image_size[1]}"
    agrees = f" ({fid.name} agrees)" if fid else ""
    if stack_pix is not None:
        facts = f"{size} and pixel size {stack_pix:.4g} nm from {stack.name}'s header{agrees}"
    else:
        pix = f"pixel size {saved.pixel_size_nm:.4g} nm from {fid.name}" if fid and saved.pixel_size_nm else \
            "no pixel size (neither the header nor a fid.xyz gives one)"
        facts = f"{size} from {stack.name}'s header{agrees}, {pix}"
    used = [s.tlt.name] + [s.beside[k].name for k in (".xtilt", ".zfac") if k in s.beside] + [
        f"{s.beside['local.xf'].name} (applied with --local only)" for _ in [0] if "local.xf" in s.beside]
    views = _views(saved, "have unit transforms: left out")
    return f"note: {s.xf.name} is an IMOD alignment (no run stamp) read with {', '.join(used)}: {facts}, {views}"


def _tool_note(where: Path, fmt: str, saved: SavedAlignment, stack: Path, tilt_source: object) -> str:
    """One line: another tool's alignment, read for the stack's views, and what came from the stack."""
    left = np.flatnonzero(~saved.view_determined)
    tilts = f", at their tilts in {Path(str(tilt_source)).name}" if tilt_source and left.size else ""
    fitted = f"{saved.view_determined.sum()} fitted" + (f"; views {format_views(left)} left out{tilts}" if left.size
                                                           else "")
    return (f"note: {where.name} is {TOOLS[fmt]} alignment, read for the {saved.view_determined.size} views of"
            f" {stack.name} ({fitted}); the image size and pixel size it lacks from {stack.name}'s header")
