"""AreTomo3 ``.aln`` alignment files: write this package's alignment, read AreTomo's (parsed with ``alnfile``).

Conventions, as AreTomo2/3 write the file (``CSaveAlignFile``) and as ``alnfile.df_to_xf`` and
``cryoet-alignment`` turn it into IMOD's ``.xf``:

- ``# RawSize = nx ny nz``: the raw stack the alignment refers to, unbinned; TX and TY are in its
  pixels (AreTomo aligns a binned copy but records full-size pixels). No Angstrom anywhere.
- One row per kept view; views left out are ``# DarkFrame = k i tilt`` lines and have no row (``k``:
  0-based index in tilt order, ``i``: 0-based index in the raw stack, which RELION's importer reads).
  ``SEC`` is the view's 0-based index in the raw stack (RELION's importer checks ``0 <= SEC < nz``);
  rows are in stack order.
- ``ROT``: the tilt-axis angle in degrees from the image y axis, counter-clockwise (IMOD's and this
  package's sense): the raw image is rotated by ``-ROT`` to bring the axis onto y.
- ``TX, TY``: the raw-frame shift ``T`` in ``raw = R(ROT) (aligned - c) + T + c``, i.e. the raw
  image is shifted by ``-T`` and then rotated by ``-ROT`` about the centre ``c``; IMOD's ``.xf`` is
  ``A = R(-ROT)``, ``D = -A T``. ``c`` is IMOD's centre (``nx / 2`` in IMOD's half-pixel
  coordinates, ``(nx - 1) / 2`` here), as those two converters take it (they apply no centre
  offset between ``.aln`` and ``.xf``). RELION's AreTomo importer copies ``TX, TY`` x pixel size into
  its shifts without the half pixel between that centre and its own (``io.relion``), so for even
  sizes the two readings of one ``.aln`` differ by 0.5 px; AreTomo's own code was not at hand to
  settle which centre it uses.
- ``TILT``: the tilt angle used for reconstruction, with any ``AlphaOffset`` already added (AreTomo3
  writes it so); same sign as IMOD's ``.tlt``.
- ``GMAG``: AreTomo always writes 1 and its readers ignore it. This package writes each view's
  magnification ``s`` there (``raw = s R(ROT) (aligned - c) + T + c``) and reads it back, so its own
  round trip is exact; AreTomo itself would use ``s = 1`` (a `MagnificationLoss` warning says how
  far that moves the image corners). ``SMEAN SFIT SCALE BASE`` are written as AreTomo does (1 1 1 0).

AreTomo writes ``TILT`` with 2 decimals and ``TX``/``TY`` with 3, which moves projected points by up
to 0.05 px; this writer keeps more decimals in the same columns (AreTomo reads them with ``%f``).
``BetaOffset`` (a tilt about x) and local (patch) alignments have no equivalent here: a non-zero
``BetaOffset`` is refused, patches are ignored with a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .alignment import SavedAlignment
from .atomic import atomic_open
from .convert import raw_shifts, rotation_and_magnification, transforms_from, warn_magnification
from .errors import FileFormatError

HEADER = "# AreTomo Alignment / Priims bprmMn"
COLUMNS = "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"


def write_aln(saved: SavedAlignment, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``saved`` as an AreTomo3 ``.aln`` file; return its path."""
    p = Path(path)
    alpha, s = rotation_and_magnification(saved.transforms)
    ok = saved.view_determined & np.isfinite(alpha)
    warn_magnification(s[ok], saved.image_size, "AreTomo (which ignores GMAG)")
    t = raw_shifts(saved.transforms)
    nx, ny = saved.image_size
    n = len(saved.tilt_angles_deg)
    with atomic_open(p, overwrite=overwrite) as f:
        f.write(f"{HEADER}\n# RawSize = {nx} {ny} {n}\n# NumPatches = 0\n")
        rank = np.argsort(np.argsort(saved.tilt_angles_deg, kind="stable"), kind="stable")
        for i in np.flatnonzero(~ok):
            f.write(f"# DarkFrame =  {rank[i]:4d} {i:4d} {saved.tilt_angles_deg[i]:8.2f}\n")
        f.write("# AlphaOffset =     0.00\n# BetaOffset =     0.00\n")
        f.write(COLUMNS + "\n")
        for i in np.flatnonzero(ok):
            f.write(f"{i:5d}  {alpha[i]:10.6f}  {s[i]:9.6f}  {t[i, 0]:10.4f}  {t[i, 1]:10.4f}     1.00     1.00"
                    f"     1.00     0.00  {saved.tilt_angles_deg[i]:9.4f}\n")
    return p


def _parse(path: Path):
    try:
        from alnfile.data_model import AlnData
    except ImportError:  # pragma: no cover - depends on the install
        raise FileFormatError("reading AreTomo .aln files needs the 'alnfile' package: pip install alnfile") from None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the .aln file: {exc.strerror or exc}") from None
    if "# RawSize" not in text or "# SEC" not in text:
        raise FileFormatError(f"{path}: not an AreTomo alignment file (no '# RawSize' or '# SEC' line)")
    for key in ("# NumPatches", "# AlphaOffset", "# BetaOffset"):  # older files lack these; alnfile needs them
        if key not in text:
            text = text.replace("# SEC", f"{key} = 0\n# SEC", 1)
    try:
        return AlnData.from_string(text)
    except (ValueError, IndexError, TypeError) as exc:
        raise FileFormatError(f"{path}: not a readable AreTomo .aln file ({str(exc).splitlines()[0]})") from None


def read_aln(path: str | os.PathLike[str], *, pixel_size_nm: float | None = None) -> SavedAlignment:
    """Read an AreTomo ``.aln`` file into per-view transforms and tilts (see the module docstring)."""
    p = Path(path)
    aln = _parse(p)
    nx, ny, nz = (int(v) for v in aln.RawSize)
    if abs(aln.BetaOffset) >= 0.005:
        raise FileFormatError(f"{p}: BetaOffset {aln.BetaOffset} (a tilt about x) cannot be represented here")
    if aln.NumPatches and aln.LocalAlignments:
        warnings.warn(f"{p}: local (patch) alignments are ignored; only the global alignment is read", stacklevel=2)
    dark = {int(d.val2) for d in aln.DarkFrames}  # the raw-stack index, as RELION's importer reads it
    kept = [i for i in range(nz) if i not in dark]
    rows = list(aln.GlobalAlignments)
    if len(rows) != len(kept):
        raise FileFormatError(f"{p}: {len(rows)} alignment rows for {nz} views with {len(dark)} dark frames")
    secs = [int(r.sec) for r in rows]
    index = secs if sorted(secs) == kept else kept  # SEC is the raw index (AreTomo); else rows in stack order
    alpha, s, shift = np.full(nz, np.nan), np.full(nz, np.nan), np.full((nz, 2), np.nan)
    tilts = np.zeros(nz)
    for d in aln.DarkFrames:
        if 0 <= int(d.val2) < nz:
            tilts[int(d.val2)] = float(d.angle)
    for i, r in zip(index, rows):
        alpha[i], s[i], shift[i], tilts[i] = r.rot, r.gmag if r.gmag > 0 else 1.0, (r.tx, r.ty), r.tilt
    determined = np.isfinite(alpha)
    xf = np.full((nz, 2, 3), np.nan)
    xf[determined] = transforms_from(alpha[determined], s[determined], shift[determined])
    return SavedAlignment(xf, tilts, determined, (nx, ny), pixel_size_nm)
