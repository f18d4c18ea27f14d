"""AreTomo3 ``.aln`` alignment files: write this package's alignment, read AreTomo's (parsed with ``alnfile``).

Conventions, as AreTomo2/3 write the file (``CSaveAlignFile``) and as ``alnfile.df_to_xf`` and
``cryoet-alignment`` turn it into IMOD's ``.xf``:

- ``# RawSize = nx ny nz``: the raw stack the alignment refers to, unbinned; TX and TY are in its
  pixels (AreTomo aligns a binned copy but records full-size pixels). No Angstrom anywhere.
- One row per kept view, in tilt order (AreTomo's frame order); views left out have no row and a
  ``# DarkFrame = frame section tilt`` line instead. The layouts in use, and how each is read:

  ========================================  ===================================================================
  writer                                    columns
  ========================================  ===================================================================
  AreTomo3 now (``CSaveAlignFile``)         DarkFrame: 0-based frame in tilt order, 1-based raw section.
                                            SEC: 1-based raw section of the row.
  early AreTomo3 (``alnfile``'s real file)  DarkFrame: frame, frame (both 0-based). SEC: 0-based index among
                                            the views kept (0 .. rows - 1), rows in tilt order.
  AreTomo2 (``MrcUtil/CSaveAlignFile``,     DarkFrame: 0-based frame, 0-based raw section (its IMOD exclude
  no ``AlphaOffset`` line)                  list adds 1). SEC: the row's section index, read as 0-based raw
                                            (or as the row above). No ``AlphaOffset``/``BetaOffset`` line.
  ``cryoet-alignment`` and others           DarkFrame: 0-based raw section, 0. SEC: 1-based raw section.
  ``tomoalign`` before this change          DarkFrame: frame, 0-based raw section. SEC: 0-based raw section.
  ========================================  ===================================================================

  A file without an ``# AlphaOffset`` line is AreTomo2's: its dark sections are 0-based. Otherwise dark
  frames are read as AreTomo3's own loader does (``CDarkFrames::bZeroBased``/``ToOneBased``): if the
  first line's two numbers are equal or any section is 0, the sections are rebuilt as frame + 1; the raw
  view is then section - 1. A row's raw view is SEC - 1 when those are exactly the views not dark (AreTomo3
  now), else SEC when those are (0-based sections), else the SEC-th view not dark (0-based index among
  the kept views). When no rule fits, the dark frames' second number is tried as a 0-based, then 1-based
  raw section (the old ``tomoalign`` layout of a stack not in tilt order); anything else is refused.
  This writer writes what AreTomo3 writes now (first layout).
  ``cryoet-alignment`` 0.2.0 reads the first DarkFrame number as the raw section and ignores SEC (rows
  taken in stack order), so it reads AreTomo3's files, and these, right only for a stack in tilt order.
- ``ROT``: the tilt-axis angle in degrees from the image y axis, counter-clockwise (IMOD's and this
  package's sense): the raw image is rotated by ``-ROT`` to bring the axis onto y.
- ``TX, TY``: the raw-frame shift ``T`` in ``raw = R(ROT) (aligned - c) + T + c``, i.e. the raw
  image is shifted by ``-T`` and then rotated by ``-ROT`` about the centre ``c``; IMOD's ``.xf`` is
  ``A = R(-ROT)``, ``D = -A T``, as ``alnfile.df_to_xf`` and ``cryoet-alignment`` convert it (no centre
  offset between ``.aln`` and ``.xf``). RELION's AreTomo importer copies ``TX, TY`` x pixel size into its
  shifts, and so does `io.relion`: the two hand-overs agree.
- ``TILT``: the tilt angle used for reconstruction, with any ``AlphaOffset`` already added (AreTomo3
  writes it so); same sign as IMOD's ``.tlt``.
- ``GMAG``: AreTomo always writes 1 and its readers ignore it. This package writes each view's
  magnification ``s`` there (``raw = s R(ROT) (aligned - c) + T + c``) and reads it back, so its own
  round trip is exact; AreTomo itself would use ``s = 1`` (a `MagnificationLoss` warning says how
  far that moves the image corners). ``SMEAN SFIT SCALE BASE`` are written as AreTomo does (1 1 1 0).

AreTomo writes ``TILT`` with 2 decimals and ``TX``/``TY`` with 3, which moves projected points by up
to 0.05 px; this writer keeps more decimals in the same columns (AreTomo reads them with ``%f``).
``BetaOffset`` (a tilt about x) and local (patch) alignments have no equivalent here: a non-zero
``BetaOffset`` is refused, patches are ignored with a warning (and not parsed: a file of millions of
patch lines costs no more than its size to read). Sizes and indices are checked (`io.limits`) before
anything is allocated from them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .alignment import SavedAlignment
from .atomic import atomic_open
from .convert import raw_shifts, rotation_and_magnification, transforms_from, warn_magnification
from .errors import FileFormatError
from .guarded import read_text_limited
from .limits import MAX_PATCHES, MAX_VIEWS, count, finite, image_size, view_indices, why
from .limits import pixel_size_nm as checked_pixel_size

HEADER = "# AreTomo Alignment / Priims bprmMn"
COLUMNS = "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"


class PatchesIgnored(UserWarning):
    """An ``.aln`` file's local (patch) alignments were not read; only the global alignment was."""


MAX_ALN_BYTES = 64 * 1024 * 1024


def write_aln(saved: SavedAlignment, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``saved`` as an AreTomo3 ``.aln`` file, as AreTomo3 writes it now; return its path."""
    p = Path(path)
    alpha, s = rotation_and_magnification(saved.transforms)
    ok = saved.view_determined & np.isfinite(alpha)
    warn_magnification(s[ok], saved.image_size, "AreTomo (which ignores GMAG)")
    t = raw_shifts(saved.transforms)
    nx, ny = saved.image_size
    tilts = np.asarray(saved.tilt_angles_deg, dtype=float)
    n = len(tilts)
    order = np.argsort(tilts, kind="stable")  # AreTomo's frames: the views in tilt order
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    with atomic_open(p, overwrite=overwrite) as f:
        f.write(f"{HEADER}\n# RawSize = {nx} {ny} {n}\n# NumPatches = 0\n")
        for i in order[~ok[order]]:
            f.write(f"# DarkFrame =  {rank[i]:4d} {i + 1:4d} {tilts[i]:8.2f}\n")
        f.write("# AlphaOffset =     0.00\n# BetaOffset =     0.00\n")
        f.write(COLUMNS + "\n")
        for i in order[ok[order]]:
            f.write(f"{i + 1:5d}  {alpha[i]:10.6f}  {s[i]:9.6f}  {t[i, 0]:10.4f}  {t[i, 1]:10.4f}     1.00     1.00"
                    f"     1.00     0.00  {tilts[i]:9.4f}\n")
    return p


def _parse(path: Path):
    try:
        from alnfile.data_model import AlnData
    except ImportError:  # pragma: no cover - depends on the install
        raise FileFormatError("reading AreTomo .aln files needs the 'alnfile' package: pip install alnfile") from None
    text = read_text_limited(path, "AreTomo .aln", MAX_ALN_BYTES)
    if "# RawSize" not in text or "# SEC" not in text:
        raise FileFormatError(f"{path}: not an AreTomo alignment file (no '# RawSize' or '# SEC' line)")
    head, sep, local = text.partition("# Local Alignment")
    if "# AreTomo Alignment" not in head:  # alnfile needs the first line
        head = f"{HEADER}\n{head}"
    n_local = sum(1 for line in local.splitlines() if line.strip()) if sep else 0
    aretomo2 = "# AlphaOffset" not in head
    for key in ("# NumPatches", "# AlphaOffset", "# BetaOffset"):  # older files lack these; alnfile needs them
        if key not in head:
            head = head.replace("# SEC", f"{key} = 0\n# SEC", 1)
    try:
        return AlnData.from_string(head), n_local, aretomo2
    except (ValueError, IndexError, TypeError) as exc:
        raise FileFormatError(f"{path}: not a readable AreTomo .aln file ({why(exc)})") from None


def _dark_candidates(aln, aretomo2: bool) -> list[tuple[list[int], int]]:
    """``(sections, base)`` readings of the dark frames, the likeliest first: AreTomo2's 0-based sections, or
    as AreTomo3's ``CLoadAlignFile`` reads them (``CDarkFrames::bZeroBased``: then section = frame + 1); then
    the second number 0- and 1-based."""
    frames = [d.section_idx for d in aln.DarkFrames]
    secs = [d.val2 for d in aln.DarkFrames]
    zero_based = bool(frames) and (frames[0] == secs[0] or 0 in secs)
    first = (secs, 0) if aretomo2 else ([f + 1 for f in frames], 1) if zero_based else (secs, 1)
    out = [first]
    for other in ((secs, 0), (secs, 1)):
        if [v + 1 - other[1] for v in other[0]] not in [[v + 1 - b for v in c] for c, b in out]:
            out.append(other)
    return out


def _row_views(secs: list[int], kept: list[int]) -> list[int] | None:
    """Each row's raw view from its SEC (see the module docstring for the layouts), or None if none fits."""
    if sorted(s - 1 for s in secs) == kept:
        return [s - 1 for s in secs]  # AreTomo3 now: 1-based raw sections
    if sorted(secs) == kept:
        return secs  # 0-based raw sections
    if sorted(secs) == list(range(len(kept))):
        return [kept[s] for s in secs]  # 0-based index among the kept views (AreTomo2)
    return None


def _views(aln, nz: int, p: Path, aretomo2: bool) -> tuple[NDArray[np.intp], list[int]]:
    """The dark frames' raw views and each row's raw view: the first reading of the dark frames
    (`_dark_candidates`) under which the SEC column numbers exactly the views not dark."""
    secs = [int(r.sec) for r in aln.GlobalAlignments]
    first_error: FileFormatError | None = None
    for cand, base in _dark_candidates(aln, aretomo2):
        try:
            dark = view_indices(cand, p, "DarkFrame section", base=base, n_views=nz)
        except FileFormatError as exc:
            first_error = first_error or exc
            continue
        kept = sorted(set(range(nz)) - {int(v) for v in dark})
        if len(secs) != len(kept):
            raise FileFormatError(f"{p}: {len(secs)} alignment rows for {nz} views with {len(dark)} dark frames")
        rows = _row_views(secs, kept)
        if rows is not None:
            return dark, rows
    if first_error is not None:
        raise first_error
    raise FileFormatError(f"{p}: the SEC column ({', '.join(map(str, secs[:6]))}{' ...' if len(secs) > 6 else ''}) "
                          "does not number the views that are not dark frames, 0- or 1-based; check the file")


def read_aln(path: str | os.PathLike[str], *, pixel_size_nm: float | None = None) -> SavedAlignment:
    """Read an AreTomo ``.aln`` file into per-view transforms and tilts (see the module docstring)."""
    p = Path(path)
    pixel_size_nm = checked_pixel_size(pixel_size_nm)
    aln, n_local, aretomo2 = _parse(p)
    nx, ny = image_size(aln.RawSize[:2], p)
    nz = count(aln.RawSize[2], p, "RawSize section count", MAX_VIEWS, 1)
    if not abs(aln.BetaOffset) < 0.005:
        raise FileFormatError(f"{p}: BetaOffset {aln.BetaOffset} (a tilt about x) cannot be represented here")
    patches = count(aln.NumPatches, p, "NumPatches", MAX_PATCHES)
    if n_local != patches * len(aln.GlobalAlignments):  # AreTomo writes one line per patch and aligned view
        raise FileFormatError(f"{p}: the header's NumPatches = {patches} means {patches * len(aln.GlobalAlignments)}"
                              f" local alignment lines ({patches} per view), but the file holds {n_local}; check it")
    if n_local:
        warnings.warn(f"{p}: {n_local} local (patch) alignment lines are ignored; only the global alignment is read",
                      PatchesIgnored, stacklevel=2)
    dark, index = _views(aln, nz, p, aretomo2)
    dark_tilts = finite(np.array([d.angle for d in aln.DarkFrames], dtype=float), p, "DarkFrame tilt", 360.0)
    rows = list(aln.GlobalAlignments)
    num = finite(np.array([[r.rot, r.gmag, r.tx, r.ty, r.tilt] for r in rows], dtype=float).reshape(-1, 5), p,
                 "an alignment value", 1e7)
    if np.any(np.abs(num[:, 4]) > 90.0):
        raise FileFormatError(f"{p}: a TILT beyond ±90°; check the file")
    alpha, s, shift = np.full(nz, np.nan), np.full(nz, np.nan), np.full((nz, 2), np.nan)
    tilts = np.zeros(nz)
    tilts[dark] = dark_tilts
    alpha[index], shift[index], tilts[index] = num[:, 0], num[:, 2:4], num[:, 4]
    s[index] = np.where(num[:, 1] > 0, num[:, 1], 1.0)
    determined = np.isfinite(alpha)
    xf = np.full((nz, 2, 3), np.nan)
    xf[determined] = transforms_from(alpha[determined], s[determined], shift[determined])
    return SavedAlignment(xf, tilts, determined, (nx, ny), pixel_size_nm)
