"""Hand a solved alignment to other cryo-ET tools, and read theirs back: `convert` and the shared geometry.

Every reader returns a `SavedAlignment` (per-view ``(2, 3)`` transforms in this project's ``.xf``
convention, tilt angles, which views are determined, image size, pixel size), the object the
reconstruction uses. Every writer takes one. Formats: ``imod`` (the ``tomoalign align`` folder:
``.xf``/``.tlt`` and ``alignment.json``), ``aretomo`` (AreTomo3 ``.aln``, `io.aretomo`), ``cdp``
(the CryoET Data Portal alignment JSON, `io.cryoet_portal`) and ``relion`` (a RELION 5
``tomograms.star`` with its tilt-series star, `io.relion`).

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
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..alignment.transforms import imod_transforms
from .alignment import SavedAlignment, read_alignment_dir
from .errors import FileFormatError

FORMATS = ("imod", "aretomo", "cdp", "relion")
_ALIASES = {"aln": "aretomo", "aretomo3": "aretomo", "portal": "cdp", "cryoet-data-portal": "cdp", "star": "relion",
            "relion5": "relion", "tomoalign": "imod"}


class MagnificationLoss(UserWarning):
    """The target format has no per-view magnification; the message gives the largest image shift it causes."""


def saved_from_alignment(al: Alignment, axis_z_shift_px: float = 0.0) -> SavedAlignment:
    """The `SavedAlignment` of a solved alignment, at full precision (what ``write_alignment`` writes)."""
    xf = imod_transforms(al, axis_z_shift_px)
    tilts = np.where(al.view_determined, al.tilt_angles_deg, al.nominal_tilt_angles_deg)
    return SavedAlignment(xf, np.asarray(tilts, dtype=float), np.asarray(al.view_determined, dtype=bool),
                          (int(al.image_size[0]), int(al.image_size[1])), al.pixel_size_nm)


def image_centre(image_size: tuple[int, int]) -> NDArray[np.float64]:
    """``((nx - 1) / 2, (ny - 1) / 2)``: the centre of the transforms, in this project's pixel convention."""
    return (np.asarray(image_size, dtype=float) - 1.0) / 2.0


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
            raise FileFormatError(f"a transform is not a scaled rotation (off by {skew:.2g}); this format cannot hold it")
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
        if (p / "alignment.json").is_file():
            return "imod"
        if (p / "tomograms.star").is_file():
            return "relion"
        raise FileFormatError(f"{p}: a folder with neither alignment.json nor tomograms.star; give the file itself")
    ext = p.suffix.lower()
    if ext == ".aln":
        return "aretomo"
    if ext == ".star":
        return "relion"
    if ext == ".json":
        return "imod" if p.name == "alignment.json" else "cdp"
    raise FileFormatError(f"{p}: cannot tell the alignment format from the name; use a .aln, .json or .star file "
                          "or a 'tomoalign align' folder")


def normalise_format(name: str) -> str:
    """``imod``, ``aretomo``, ``cdp`` or ``relion`` from a name or alias; a clear error otherwise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise FileFormatError(f"unknown alignment format {name!r}; choose one of {', '.join(FORMATS)}")
    return key


def _nominal_tilts(path: Path) -> NDArray[np.float64] | None:
    info = path / "alignment.json" if path.is_dir() else path
    try:
        return np.asarray(json.loads(info.read_text())["views"]["nominal_tilt_angle_deg"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_imod_dir(d: Path) -> SavedAlignment:
    """`read_alignment_dir`, with the solved tilts at full precision from ``alignment.json`` (the ``.tlt`` has 2 decimals,
    which moves projected points by up to 0.03 px)."""
    saved = read_alignment_dir(d)
    try:
        exact = np.asarray(json.loads((d / "alignment.json").read_text())["views"]["tilt_angle_deg"], dtype=float)
    except (OSError, ValueError, KeyError, TypeError):
        return saved
    if exact.shape != saved.tilt_angles_deg.shape:
        return saved
    tilts = np.where(saved.view_determined & np.isfinite(exact), exact, saved.tilt_angles_deg)
    return SavedAlignment(saved.transforms, tilts, saved.view_determined, saved.image_size, saved.pixel_size_nm)


def read_any(path: str | os.PathLike[str], fmt: str | None = None, *, image_size: tuple[int, int] | None = None,
             pixel_size_nm: float | None = None) -> SavedAlignment:
    """Read an alignment in any supported format (``fmt`` detected from the name when None)."""
    p = Path(path)
    fmt = normalise_format(fmt) if fmt else detect_format(p)
    if fmt == "imod":
        return _read_imod_dir(p.parent if p.is_file() else p)
    if fmt == "aretomo":
        from .aretomo import read_aln

        return read_aln(p, pixel_size_nm=pixel_size_nm)
    if fmt == "cdp":
        from .cryoet_portal import read_portal_alignment

        return read_portal_alignment(p, image_size=image_size, pixel_size_nm=pixel_size_nm)
    from .relion import read_relion

    return read_relion(p / "tomograms.star" if p.is_dir() else p, image_size=image_size)


def _write_imod_dir(saved: SavedAlignment, out: Path, stem: str, overwrite: bool) -> list[Path]:
    """A minimal ``tomoalign align``-style folder: ``alignment.json`` (image size, views), ``.xf`` and ``.tlt``."""
    from .atomic import atomic_open, check_writable
    from .imod import write_xf
    paths = [out / "alignment.json", out / f"{stem}.xf", out / f"{stem}.tlt"]
    for p in paths:
        check_writable(p, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    info = {"image_size": list(saved.image_size), "pixel_size_nm": saved.pixel_size_nm,
            "converted_from": "tomoalign convert", "views": {"determined": [bool(b) for b in saved.view_determined],
                                                             "tilt_angle_deg": [float(t) for t in saved.tilt_angles_deg]}}
    with atomic_open(paths[0], overwrite=overwrite) as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    xf = np.where(np.isfinite(saved.transforms), saved.transforms, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    write_xf(paths[1], xf, overwrite=overwrite)
    with atomic_open(paths[2], overwrite=overwrite) as f:  # IMOD reads free format; 4 decimals keep 0.001 px
        f.writelines(f"{t:9.4f}\n" for t in saved.tilt_angles_deg)
    return paths


def convert(
    in_path: str | os.PathLike[str] | Alignment,
    to_format: str,
    out_path: str | os.PathLike[str],
    *,
    from_format: str | None = None,
    name: str | None = None,
    pixel_size_nm: float | None = None,
    image_size: tuple[int, int] | None = None,
    thickness_px: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Convert an alignment to ``to_format`` and write it at ``out_path``; return the files written.

    ``in_path`` is a ``tomoalign align`` folder, an AreTomo ``.aln``, a portal ``.json``, a RELION
    ``tomograms.star`` (or its folder), or a solved `Alignment`. ``out_path`` is a folder for ``imod`` and
    ``relion`` (``tomograms.star`` and ``tilt_series/NAME.star`` go in it) and a file for ``aretomo`` and
    ``cdp``. ``pixel_size_nm`` overrides the input's (RELION needs one: its shifts are in Angstrom);
    ``image_size`` is needed when reading a portal JSON or RELION star (neither records it);
    ``thickness_px`` sets the volume size that the portal and RELION record (default: the image height).
    Nothing is overwritten unless ``overwrite``.
    """
    fmt = normalise_format(to_format)
    nominal = None
    if isinstance(in_path, Alignment):
        saved = saved_from_alignment(in_path)
        nominal = np.asarray(in_path.nominal_tilt_angles_deg, dtype=float)
        stem = name or "tilt_series"
    else:
        p = Path(in_path)
        saved = read_any(p, from_format, image_size=image_size, pixel_size_nm=pixel_size_nm)
        if (p if p.is_dir() else p.parent / "alignment.json").exists() and (from_format or detect_format(p)) == "imod":
            nominal = _nominal_tilts(p if p.is_dir() else p.parent)
        stem = name or (p.name if p.is_dir() else p.stem)
    if pixel_size_nm is not None:
        saved = SavedAlignment(saved.transforms, saved.tilt_angles_deg, saved.view_determined, saved.image_size,
                               float(pixel_size_nm))
    out = Path(out_path)
    if fmt == "imod":
        return _write_imod_dir(saved, out, stem, overwrite)
    if fmt == "aretomo":
        from .aretomo import write_aln

        return [write_aln(saved, out, overwrite=overwrite)]
    if fmt == "cdp":
        from .cryoet_portal import write_portal_alignment

        return [write_portal_alignment(saved, out, thickness_px=thickness_px, overwrite=overwrite)]
    from .relion import write_relion

    return write_relion(saved, out, stem, nominal_tilt_angles_deg=nominal, thickness_px=thickness_px,
                        overwrite=overwrite)
