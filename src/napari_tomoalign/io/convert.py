"""Hand a solved alignment to other cryo-ET tools, and read theirs back: `convert` and the shared geometry.

Every reader returns a `SavedAlignment` (per-view ``(2, 3)`` transforms in this project's ``.xf``
convention, tilt angles, which views are determined, image size, pixel size), the object the
reconstruction uses. Every writer takes one. Formats: ``imod`` (read: a ``tomoalign align`` folder,
or an IMOD set, `io.imod_set`; written: ``NAME.xf`` + ``NAME.tlt``, with the ``.xtilt``, ``.zfac``, local file
and residuals (``NAME.resid``, `io.set_residuals`) of the input carried), ``aretomo`` (AreTomo3
``.aln``, `io.aretomo`), ``cdp`` (the CryoET Data Portal alignment JSON, `io.cryoet_portal`) and
``relion`` (a RELION 5 ``tomograms.star`` with its tilt-series star, `io.relion`); ``warp`` (a Warp
tilt-series XML, `io.warp`) is read only.

The geometry shared by all of them. A transform ``[A | D]`` maps a raw image point ``X`` to the
aligned point ``A (X - c) + D + c`` about the image centre ``c = ((nx - 1) / 2, (ny - 1) / 2)``
(x = column, y = row, first pixel centre at 0). This package's transforms are a scaled rotation
``A = R(-alpha) / s`` (alpha: the view's tilt-axis angle from the image y axis, counter-clockwise;
s: its magnification). In the aligned frame the tilt axis is the vertical line through ``c``; a
specimen point ``(X, Y, Z)`` (X, Y in aligned-image pixels, Z from the axis, as IMOD's
``fid.xyz``) projects in a view of tilt ``theta`` to the aligned point
``((X - cx) cos theta + Z sin theta + cx, Y)`` (IMOD's sense of tilt), and from there to the raw
image by the inverse transform. `project_points` computes exactly this; it is how the round-trip
tests compare formats.

Tools that model no per-view magnification (RELION's Euler angles) cannot hold ``s``; the writers
say how far that moves image corners (`MagnificationLoss`). Align with ``--magnification fixed`` for
an exact hand-over to them.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..alignment.transforms import imod_transforms
from ..conventions import image_centre
from .alignment import SavedAlignment, read_alignment_dir
from .atomic import input_scope, safe_name
from .errors import FileFormatError
from .imod import write_imod_alignment
from .limits import pixel_size_nm as checked_pixel_size

FORMATS = ("imod", "aretomo", "cdp", "relion")
FILE_SUFFIX = {"aretomo": ".aln", "cdp": ".json"}  # the formats written as one file, and their names' ending
READ_ONLY = ("warp",)  # read (``--from``, or a .xml name), never written
_BY_SUFFIX = {".xf": "imod", ".aln": "aretomo", ".star": "relion", ".xml": "warp"}  # and .json: `detect_format`
_ALIASES = {"aln": "aretomo", "aretomo3": "aretomo", "portal": "cdp", "cryoet-data-portal": "cdp", "star": "relion",
            "relion5": "relion", "tomoalign": "imod", "warptools": "warp", "xml": "warp"}


class MagnificationLoss(UserWarning):
    """The target format has no per-view magnification; the message gives the largest image shift it causes."""


def saved_from_alignment(al: Alignment, axis_z_shift_px: float | None = None) -> SavedAlignment:
    """The `SavedAlignment` of a solved alignment, at full precision (what ``write_alignment`` writes)."""
    xf = imod_transforms(al, axis_z_shift_px)
    tilts = al.output_tilt_angles_deg()
    return SavedAlignment(xf, np.asarray(tilts, dtype=float), np.asarray(al.view_determined, dtype=bool),
                          (int(al.image_size[0]), int(al.image_size[1])), al.pixel_size_nm)


def rotation_and_magnification(xf: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(alpha_deg, s)`` per view from transforms ``A = R(-alpha) / s``; NaN rows give NaN."""
    a = np.asarray(xf, dtype=float)
    alpha = np.degrees(np.arctan2(a[:, 0, 1], a[:, 0, 0]))
    s = 1.0 / np.hypot(a[:, 0, 0], a[:, 0, 1])
    ok = np.all(np.isfinite(a.reshape(len(a), -1)), axis=1)
    if ok.any():
        rebuilt = _scaled_rotations(alpha[ok], s[ok])
        skew = float(np.max(np.abs(rebuilt - a[ok, :, :2])))
        if skew > 1e-6:
            raise FileFormatError(f"a transform is not a scaled rotation (off by {skew:.2g}): the alignment has "
                                  "stretch or skew (IMOD's full model), which this format cannot hold; align without "
                                  "them (no --imod-com, or SkewOption and XStretchOption 0 in it), or hand over IMOD's .xf")
    return alpha, s


def _scaled_rotations(alpha_deg: NDArray[np.float64], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n, 2, 2)`` matrices ``R(-alpha) / s``."""
    a = np.radians(alpha_deg)
    c, sn = np.cos(a) / s, np.sin(a) / s
    return np.stack([np.stack([c, sn], axis=-1), np.stack([-sn, c], axis=-1)], axis=-2)


def transforms_from(alpha_deg, s, raw_shift_px) -> NDArray[np.float64]:
    """Transforms from a rotation, magnification and *raw-frame* shift per view.

    ``raw_shift_px`` is ``T`` in ``raw = s R(alpha) (aligned - c) + T + c`` (the convention of AreTomo's TX,
    TY and, up to centre and units, RELION's shifts); then ``D = -A T``.
    """
    alpha_deg, s = np.asarray(alpha_deg, dtype=float), np.asarray(s, dtype=float)
    a = _scaled_rotations(alpha_deg, s)
    t = np.asarray(raw_shift_px, dtype=float)
    d = -np.einsum("nij,nj->ni", a, t)
    return np.concatenate([a, d[:, :, None]], axis=2)


def raw_shifts(xf: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n, 2)`` the raw-frame shift ``T = -A^-1 D`` of each transform (see `transforms_from`)."""
    a = np.asarray(xf, dtype=float)
    out = np.full((len(a), 2), np.nan)
    ok = np.all(np.isfinite(a.reshape(len(a), -1)), axis=1)
    out[ok] = -np.linalg.solve(a[ok, :, :2], a[ok, :, 2][:, :, None])[:, :, 0]
    return out


def magnification_error_px(s: NDArray[np.float64], image_size: tuple[int, int]) -> float:
    """How far dropping the magnifications ``s`` moves the farthest image corner, in pixels."""
    half_diag = float(np.hypot(*(np.asarray(image_size, dtype=float) - 1.0))) / 2.0
    ok = np.isfinite(s)
    return float(np.max(np.abs(s[ok] - 1.0)) * half_diag) if ok.any() else 0.0


def warn_magnification(s: NDArray[np.float64], image_size: tuple[int, int], fmt: str, tolerance_px: float = 0.01) -> float:
    """Warn (`MagnificationLoss`) when a format that cannot hold ``s`` moves a corner by more than ``tolerance_px``."""
    err = magnification_error_px(s, image_size)
    if err > tolerance_px:
        warnings.warn(f"{fmt} has no per-view magnification: leaving it out moves image corners by up to {err:.3f} px "
                      "(align with --magnification fixed for an exact hand-over)", MagnificationLoss, stacklevel=3)
    return err


def project_points(saved: SavedAlignment, xyz_aligned: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, n_points, 2)`` raw image positions of specimen points ``(n_points, 3)`` in the aligned frame.

    ``xyz_aligned`` is as `alignment.transforms.aligned_marker_positions` (and IMOD's ``fid.xyz``) gives it.
    Undetermined views give NaN.
    """
    xyz = np.asarray(xyz_aligned, dtype=float)
    c = image_centre(saved.image_size)
    th = np.radians(saved.tilt_angles_deg)[:, None]
    u = (xyz[None, :, 0] - c[0]) * np.cos(th) + xyz[None, :, 2] * np.sin(th)
    v = np.broadcast_to(xyz[None, :, 1] - c[1], u.shape)
    out = np.full((len(th), len(xyz), 2), np.nan)
    for j, m in enumerate(saved.transforms):
        if not (saved.view_determined[j] and np.all(np.isfinite(m))):
            continue
        rel = np.stack([u[j], v[j]], axis=1) - m[:, 2]
        out[j] = np.linalg.solve(m[:, :2], rel.T).T + c
    return out


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of an alignment on disk, from its name: a folder or ``.xf`` is ``imod``."""
    p = Path(path)
    if p.is_dir():
        if (p / "alignment.json").is_file() or any(p.glob("*.xf")):
            return "imod"
        if (p / "tomograms.star").is_file():
            return "relion"
        raise FileFormatError(f"{p}: a folder with no alignment.json, .xf or tomograms.star; give the file itself")
    ext = p.suffix.lower()
    if ext in _BY_SUFFIX:
        return _BY_SUFFIX[ext]
    if ext == ".json":
        return "imod" if p.name == "alignment.json" else "cdp"
    if not p.exists():
        raise FileFormatError(f"{p}: no such file or folder")
    raise FileFormatError(f"{p}: cannot tell the alignment format from the name; name it (--from aretomo, cdp, relion,"
                          " warp or imod), or use a .aln, .json, .star or Warp .xml file or a 'tomoalign align' folder")


def normalise_format(name: str, reading: bool = False) -> str:
    """``imod``, ``aretomo``, ``cdp`` or ``relion`` (and, when ``reading``, ``warp``) from a name or alias; a
    clear error otherwise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in READ_ONLY and not reading:
        raise FileFormatError(f"{key} alignments are read, not written; choose one of {', '.join(FORMATS)}")
    if key not in FORMATS + (READ_ONLY if reading else ()):
        raise FileFormatError(f"unknown alignment format {name!r}; choose one of {', '.join(FORMATS)}")
    return key


def _info(path: Path) -> dict | None:
    """``alignment.json`` read through the guarded reader, or None when it cannot be used."""
    from .guarded import MAX_TEXT_BYTES, read_bytes_limited

    try:
        doc = json.loads(read_bytes_limited(path, "alignment", MAX_TEXT_BYTES))
    except (FileFormatError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _views(path: Path, key: str, n: int | None = None) -> NDArray[np.float64] | None:
    """The ``views[key]`` list of an ``alignment.json`` as floats, or None when absent or malformed."""
    doc = _info(path)
    try:
        out = np.asarray((doc or {})["views"][key], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
    return out if out.ndim == 1 and (n is None or out.size == n) else None


def _series_name(p: Path, fmt: str) -> str:
    """The series' name the outputs take (IMOD's naming): an alignment folder's recorded stem, the one ``.xf`` of
    an IMOD folder, the tomogram a RELION star lists, else the file's stem (``BBa.aln``: ``BBa``) or the folder's name."""
    if fmt == "relion":
        from .relion import tomogram_name

        return tomogram_name(p / "tomograms.star" if p.is_dir() else p)
    if not p.is_dir():
        return p.stem
    if (p / "alignment.json").is_file():
        from .alignment import run_stamp

        return str(run_stamp(p)["stem"])
    if fmt == "imod":
        from .imod_set import find_imod_set

        return find_imod_set(p).stem
    return p.name


def _read_imod(p: Path, image_size: tuple[int, int] | None, pixel_size_nm: float | None) -> SavedAlignment:
    """A ``tomoalign align`` folder (checked by `read_alignment_dir`), or an IMOD set (`imod_set.read_imod_set`)."""
    from .imod_set import is_stamped, read_imod_set

    d = is_stamped(p)
    if d is not None:
        saved = _exact_tilts(d, read_alignment_dir(d))
        return replace(saved, nominal_tilts_deg=_views(d / "alignment.json", "nominal_tilt_angle_deg",
                                                       saved.tilt_angles_deg.size))
    return read_imod_set(p, image_size=image_size, pixel_size_nm=pixel_size_nm)


def _exact_tilts(d: Path, saved: SavedAlignment) -> SavedAlignment:
    """The solved tilts at full precision from ``alignment.json`` (the ``.tlt`` has 2 decimals: up to 0.03 px)."""
    exact = _views(d / "alignment.json", "tilt_angle_deg", saved.tilt_angles_deg.size)
    if exact is None:
        return saved
    with np.errstate(invalid="ignore"):
        use = saved.view_determined & np.isfinite(exact) & (np.abs(exact - saved.tilt_angles_deg) <= 0.006)
    tilts = np.where(use, exact, saved.tilt_angles_deg)
    return replace(saved, tilt_angles_deg=tilts)


def read_any(path: str | os.PathLike[str], fmt: str | None = None, *, image_size: tuple[int, int] | None = None,
             pixel_size_nm: float | None = None, name: str | None = None, size_needed: bool = True) -> SavedAlignment:
    """Read an alignment in any supported format (``fmt`` detected from the name when None); ``name`` picks a
    tomogram of a RELION star that lists several. Without ``size_needed``, a portal JSON that does not give the
    image size reads with ``(0, 0)``, as an IMOD set does (only IMOD's files can be written from it)."""
    p = Path(path)
    fmt = normalise_format(fmt, reading=True) if fmt else detect_format(p)
    if fmt == "warp":
        from .warp import read_warp_xml

        return read_warp_xml(p, image_size=image_size, pixel_size_nm=pixel_size_nm)
    if fmt == "imod":
        return _read_imod(p, image_size, pixel_size_nm)
    if fmt == "aretomo":
        from .aretomo import read_aln

        return read_aln(p, pixel_size_nm=pixel_size_nm)
    if fmt == "cdp":
        from .cryoet_portal import read_portal_alignment

        return read_portal_alignment(p, image_size=image_size, pixel_size_nm=pixel_size_nm, size_needed=size_needed)
    from .relion import read_relion

    return read_relion(p / "tomograms.star" if p.is_dir() else p, name=name, image_size=image_size)


def convert(
    in_path: str | os.PathLike[str] | Alignment | SavedAlignment,
    to_format: str,
    out_path: str | os.PathLike[str],
    *,
    from_format: str | None = None,
    name: str | None = None,
    pixel_size_nm: float | None = None,
    image_size: tuple[int, int] | None = None,
    thickness_px: int | None = None,
    nominal_tilt_angles_deg: NDArray[np.float64] | None = None,
    n_views: int | None = None,
    stack: str | os.PathLike[str] | None = None,
    optics: dict | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Convert an alignment to ``to_format`` and write it at ``out_path``; return the files written.

    ``in_path`` is a ``tomoalign align`` folder, an IMOD ``.xf`` (with its ``.tlt``), an AreTomo ``.aln``, a
    portal ``.json``, a RELION ``tomograms.star`` (or its folder), a solved `Alignment` or a `SavedAlignment`.
    ``out_path`` is a folder for ``imod`` (``NAME.xf``, ``NAME.tlt``) and ``relion`` (``tomograms.star``,
    ``tilt_series/NAME.star``) and a file for ``aretomo`` and ``cdp``. ``pixel_size_nm`` overrides the
    input's (RELION needs one: its shifts are in Angstrom); ``image_size`` is needed for an IMOD ``.xf`` or
    a portal JSON written to another format (neither records it); ``thickness_px`` sets the volume size that
    the portal and RELION record (default: the image height). ``n_views`` (or the header of ``stack``, the raw
    stack, which also gives the image size, a pixel size the input lacks and the nominal tilts) restores the
    views that RELION and the portal leave out (`view_count.restore_views`).
    ``nominal_tilt_angles_deg`` go into RELION's nominal stage tilts (default: the input's, else the solved).
    ``optics``: RELION's voltage_kv, cs_mm, amplitude_contrast and hand (`relion.checked_optics`: the ones not given
    are written as `relion.OPTICS_DEFAULTS`, with a warning).
    Nothing is overwritten unless ``overwrite``, and never one of the files read (`atomic.input_scope`).
    """
    pixel_size_nm = checked_pixel_size(pixel_size_nm)  # NaN, inf, 0 or negative: refused, whatever the target
    with input_scope():
        return _convert(in_path, to_format, out_path, from_format=from_format, name=name, pixel_size_nm=pixel_size_nm,
                        image_size=image_size, thickness_px=thickness_px, nominal=nominal_tilt_angles_deg,
                        n_views=n_views, stack=stack, optics=optics, overwrite=overwrite)


def _read_input(in_path, from_format, name, pixel_size_nm, image_size,
                size_needed: bool) -> tuple[SavedAlignment, str, object]:
    """``(alignment, series name, where it came from)`` of `convert`'s input."""
    if isinstance(in_path, Alignment):
        saved = replace(saved_from_alignment(in_path),
                        nominal_tilts_deg=np.asarray(in_path.nominal_tilt_angles_deg, dtype=float))
        return saved, name or "tilt_series", "the alignment"
    if isinstance(in_path, SavedAlignment):
        return in_path, name or "tilt_series", "the alignment"
    p = Path(in_path)
    saved = read_any(p, from_format, image_size=image_size, pixel_size_nm=pixel_size_nm, name=name,
                     size_needed=size_needed)
    in_format = normalise_format(from_format, reading=True) if from_format else detect_format(p)
    return saved, name or safe_name(_series_name(p, in_format), "the input's name"), p


def _convert(in_path, to_format: str, out_path, *, from_format, name, pixel_size_nm, image_size, thickness_px,
             nominal, n_views, stack, overwrite: bool, optics: dict | None = None) -> list[Path]:
    from .imod_set import carried_files
    from .view_count import restore_views, stack_facts

    fmt = normalise_format(to_format)
    if name is not None:
        safe_name(name, "--name")
    facts = stack_facts(stack, image_size=image_size, n_views=n_views) if stack is not None else None
    if facts is not None:
        image_size, n_views = facts.image_size, facts.n_views
    saved, stem, where = _read_input(in_path, from_format, name, pixel_size_nm, image_size, fmt != "imod")
    n_read = len(saved.transforms)
    saved = restore_views(saved, where, n_views=n_views, nominal_deg=facts.tilts_deg if facts else None)
    pixel_size_nm = pixel_size_nm or saved.pixel_size_nm or (facts.pixel_size_nm if facts is not None else None)
    saved = replace(saved, pixel_size_nm=pixel_size_nm)
    if nominal is None and saved.nominal_tilts_deg is not None and np.all(np.isfinite(
            saved.nominal_tilts_deg[saved.view_determined])):
        nominal = saved.nominal_tilts_deg
    out = Path(out_path)
    if fmt == "imod":  # with the full model's and the local alignments' files of a folder read (IMOD's tilt reads them)
        from .set_residuals import carried_residuals

        same_views = len(saved.transforms) == n_read  # views restored: the carried files would name other views
        carry = carried_files(saved) if same_views else ()
        resid = carried_residuals(in_path, saved) if same_views else None  # what the dock draws, loaded back
        return write_imod_alignment(saved, out, stem, overwrite, carry=carry, residuals=resid)
    if saved.local_file:  # the other formats have no place for local alignments (new user's finding, session 13)
        warnings.warn(f"{fmt} has no local alignments: {saved.local_file} is not carried (IMOD's set, --to imod,"
                      " carries it)", UserWarning, stacklevel=3)
    if 0 in saved.image_size:
        raise FileFormatError(f"{where}: the image size is not recorded (an IMOD .xf, a portal JSON), and {fmt} needs"
                              " it; give it (--image-size W H), or the stack (--stack STACK)")
    if fmt in FILE_SUFFIX and not out.suffix:  # a file that says what it is, so that it can be read back
        out = out.with_name(out.name + FILE_SUFFIX[fmt])
    if fmt == "aretomo":
        from .aretomo import write_aln

        return [write_aln(saved, out, overwrite=overwrite)]
    if fmt == "cdp":
        from .cryoet_portal import write_portal_alignment

        return [write_portal_alignment(saved, out, thickness_px=thickness_px, overwrite=overwrite)]
    from .relion import write_relion

    return write_relion(saved, out, stem, nominal_tilt_angles_deg=nominal, thickness_px=thickness_px,
                        stack_name=None if stack is None else str(Path(stack).resolve()),  # one base: absolute
                        pre_exposure=None if facts is None else facts.pre_exposure, optics=optics, overwrite=overwrite)
