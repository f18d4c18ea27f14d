"""An alignment that IMOD (etomo) made, read as this package's own: the *IMOD set* and what ``--alignment`` takes.

An IMOD set is ``NAME.xf`` with ``NAME.tlt`` beside it (``NAME.rawtlt`` when there is no ``.tlt``) and, when
present, the full model's ``NAME.xtilt`` and ``NAME.zfac``, the local alignments ``NAMElocal.xf``, the markers'
``NAMEfid.xyz`` and the nominal tilts ``NAME.rawtlt``: the files etomo's ``tilt.com`` reads. It is given as the
``.xf`` itself or as a folder that holds exactly one (``NAMElocal.xf`` is not counted).

It has no run stamp, so what the stamp of a ``tomoalign align`` folder records is taken elsewhere: the image size
and pixel size from IMOD's ``fid.xyz`` header (``Pix: 20.2 Dim: 512 512``) or from the stack it is used on (its
header; both, when both are there, must agree), and which views were fitted from the ``.xf`` itself: tiltalign
writes a transform for every view, and this package writes the unit transform for a view it did not fit, so unit
lines among fitted ones are views left out. A set whose ``.xf`` has another number of lines than the stack has
views, or whose shifts move the image centre out of the stack's images (an ``.xf`` of another stack or binning),
is refused. A folder with an ``alignment.json`` is read through its run stamp (`alignment.read_alignment_dir`),
never as an IMOD set: mixed runs stay refused there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .alignment import SavedAlignment, check_transforms, run_stamp
from .errors import FileFormatError
from .guarded import read_bytes_limited
from .imod import marker_z_extent, read_xf
from .limits import image_size as checked_image_size
from .tilts import read_tilt_angles

RUN_ALIGNMENT = "alignment"  # where `tomoalign run` puts its alignment in its --output folder
BESIDE = (".xtilt", ".zfac", "local.xf", "fid.xyz", ".rawtlt")  # read with the .xf when present, as tilt.com reads them
UNIT = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_FID_HEADER = re.compile(r"Pix:\s*(\S+)\s+Dim:\s*(\d+)\s+(\d+)")


@dataclass(frozen=True)
class ImodSet:
    """The files of one IMOD set: its ``.xf``, the tilt file used and the others of `BESIDE` that are there."""

    xf: Path
    tlt: Path
    stem: str
    beside: dict[str, Path]


def find_imod_set(path: str | os.PathLike[str]) -> ImodSet:
    """The IMOD set at ``path`` (an ``.xf``, or a folder with exactly one); a one-line `FileFormatError` otherwise."""
    p = Path(path)
    if p.is_dir():
        xfs = sorted(q for q in p.glob("*.xf") if not q.name.endswith("local.xf"))
        if len(xfs) != 1:
            names = ", ".join(q.name for q in xfs[:4]) + (" ..." if len(xfs) > 4 else "")
            raise FileFormatError(f"{p}: no alignment.json (not a 'tomoalign align' folder) and "
                                  + (f"{len(xfs)} IMOD .xf files ({names}); give the .xf itself" if xfs else
                                     "no IMOD .xf; give the output folder of 'tomoalign align' or an IMOD NAME.xf"))
        xf = xfs[0]
    elif p.suffix.lower() in (".xf", ".tltxf"):  # etomo's NAME.tltxf: the transforms of the prealigned stack
        if not p.is_file():
            raise FileFormatError(f"{p}: no such file")
        if p.name.endswith("local.xf"):
            raise FileFormatError(f"{p}: IMOD's local alignments; give the global {p.name[:-8]}.xf (its local file"
                                  " is used with reconstruct --local)")
        xf = p
    else:
        raise FileFormatError(f"{p}: give the output folder of 'tomoalign align', an IMOD NAME.xf (with NAME.tlt"
                              " beside it) or a folder holding one")
    stem = xf.stem
    tlt = next((q for q in (xf.with_suffix(".tlt"), xf.with_suffix(".rawtlt")) if q.is_file()), None)
    if tlt is None:
        raise FileFormatError(f"{xf}: no {stem}.tlt beside it; IMOD's tilt angles (tiltalign's .tlt) are needed too")
    beside = {s: xf.with_name(stem + s) for s in BESIDE if xf.with_name(stem + s).is_file()}
    return ImodSet(xf, tlt, stem, beside)


def fid_xyz_header(path: Path) -> tuple[tuple[int, int] | None, float | None]:
    """``(image size, pixel size in nm)`` from the first line of IMOD's ``fid.xyz`` (``Pix: 20.2 Dim: 512 512``);
    None for what it does not say (a pixel of exactly 1 A is IMOD's "not known")."""
    first = read_bytes_limited(path, "marker positions", 4096, head=True).partition(b"\n")[0].decode("latin-1")
    m = _FID_HEADER.search(first)
    if m is None:
        return None, None
    size = checked_image_size((m.group(2), m.group(3)), path)
    try:
        pix_a = float(m.group(1))
    except ValueError:
        return size, None
    return size, (pix_a / 10.0 if np.isfinite(pix_a) and pix_a > 0 and pix_a != 1.0 else None)


def _fitted(xf: np.ndarray) -> np.ndarray:
    """The views fitted: all, less unit transforms among others that are not (this package's mark of a view left out)."""
    unit = np.all(np.abs(xf - UNIT) < 1e-7, axis=(1, 2))
    return ~unit if not unit.all() else np.ones(len(xf), dtype=bool)


def read_imod_set(path: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None,
                  pixel_size_nm: float | None = None) -> SavedAlignment:
    """An IMOD set as a `SavedAlignment` (module docstring). ``image_size`` and ``pixel_size_nm`` are the stack's;
    the ``fid.xyz`` header, when present, must agree with ``image_size``. An image size known from neither is
    ``(0, 0)``: only IMOD's own files can be written from such an alignment."""
    s = find_imod_set(path)
    xf, tilts = read_xf(s.xf), read_tilt_angles(s.tlt)
    if len(xf) != tilts.size:
        raise FileFormatError(f"{s.xf}: {len(xf)} transforms but {s.tlt.name} has {tilts.size} tilt angles")
    fid_size, fid_pix = fid_xyz_header(s.beside["fid.xyz"]) if "fid.xyz" in s.beside else (None, None)
    if image_size is not None and fid_size is not None and tuple(fid_size) != tuple(image_size):
        raise FileFormatError(f"{s.beside['fid.xyz']}: the set was solved on {fid_size[0]} x {fid_size[1]} images, not"
                              f" {image_size[0]} x {image_size[1]}; give the stack of that size (or that binning)")
    size = tuple(image_size or fid_size or (0, 0))
    x_tilts = read_tilt_angles(s.beside[".xtilt"]) if ".xtilt" in s.beside else None
    if x_tilts is not None and x_tilts.size != tilts.size:
        raise FileFormatError(f"{s.beside['.xtilt']}: {x_tilts.size} X-axis tilts for {tilts.size} views")
    nominal = read_tilt_angles(s.beside[".rawtlt"]) if ".rawtlt" in s.beside and s.tlt.suffix == ".tlt" else None
    determined = _fitted(xf)
    if 0 not in size:
        check_transforms(s.xf, xf, determined, size)  # type: ignore[arg-type]
    z_extent = marker_z_extent(s.beside["fid.xyz"]) if "fid.xyz" in s.beside else None
    xf[~determined] = np.nan
    return SavedAlignment(xf, tilts, determined, size, fid_pix or pixel_size_nm, z_extent,  # type: ignore[arg-type]
                          s.beside["local.xf"].name if "local.xf" in s.beside else None, x_tilts, folder=s.xf.parent,
                          stem=s.stem, nominal_tilts_deg=nominal if nominal is not None and nominal.size == tilts.size
                          else None)


def is_stamped(path: str | os.PathLike[str]) -> Path | None:
    """The folder of a ``tomoalign align`` alignment at ``path`` (the folder, its ``alignment.json`` or its
    ``.xf``, or the output folder of ``tomoalign run``, which holds it as ``alignment/``), or None for anything else."""
    p = Path(path)
    if p.is_dir() and not (p / "alignment.json").is_file() and (p / RUN_ALIGNMENT / "alignment.json").is_file():
        p = p / RUN_ALIGNMENT  # s16 new user: `--alignment runA`, the --output given to run
    d = p if p.is_dir() else p.parent
    if not (d / "alignment.json").is_file() or (p != d and p.name != "alignment.json" and p.suffix.lower() != ".xf"):
        return None
    if p.suffix.lower() == ".xf" and p.name != f"{run_stamp(d)['stem']}.xf":
        raise FileFormatError(f"{p} is not part of the alignment in {d} (its alignment.json names "
                              f"{run_stamp(d)['stem']}.xf); give the folder, or move the file out")
    return d


def carried_files(saved: SavedAlignment) -> tuple[tuple[Path, str], ...]:
    """The files of a saved alignment's set that IMOD's ``tilt`` reads with its ``.xf`` (the full model's
    ``.xtilt`` and ``.zfac``, the local file) and the markers' ``fid.xyz`` (the section's thickness: without it a
    handed-over set fell back to a quarter of the image), as (file, suffix) pairs for `imod.write_imod_alignment`."""
    if saved.folder is None or not saved.stem:
        return ()
    found = [(saved.folder / f"{saved.stem}{s}", s) for s in (".xtilt", ".zfac", "fid.xyz")]  # fid.xyz: the section
    if saved.local_file:
        found.append((saved.folder / saved.local_file, "local.xf"))
    return tuple((p, s) for p, s in found if p.is_file())
