"""RELION 5 tomography STAR files: a ``tomograms.star`` and its tilt-series star, written and read with ``starfile``.

Layout (RELION 5's own): ``tomograms.star`` holds ``data_global`` with one row per tomogram
(``rlnTomoName``, optics, ``rlnTomoHand``, the pixel size as ``rlnTomoTiltSeriesPixelSize`` and
``rlnMicrographOriginalPixelSize``, the volume size ``rlnTomoSizeX/Y/Z`` in unbinned pixels,
``rlnTomoTiltSeriesStarFile`` and ``rlnTomoFrameCount``, the raw stack's number of views, as RELION 4 and Warp
write it: the tilt-series table lists only the views used, so the count is what keeps views excluded after the
last one used; reading a star without it, the count is not known: `view_count.restore_views`);
``tilt_series/NAME.star`` holds ``data_NAME`` with one row per kept
view: ``rlnMicrographName`` (``k@NAME.mrc``, k the 1-based view of the raw stack),
``rlnTomoNominalStageTiltAngle``, ``rlnTomoNominalTiltAxisAngle``, ``rlnMicrographPreExposure``,
``rlnTomoXTilt``, ``rlnTomoYTilt``, ``rlnTomoZRot`` (degrees) and ``rlnTomoXShiftAngst``,
``rlnTomoYShiftAngst`` (Angstrom: pixel shift x pixel size).

Geometry (RELION's ``Tomogram::setProjectionMatrix``): a volume voxel ``V`` (0-based pixel indices)
lands in the raw tilt image at ``Rz(ZRot) Ry(YTilt) Rx(XTilt) (V - C) + shift + ic``, with
``C = (w0 // 2, h0 // 2, d0 // 2)`` and ``ic = (nx // 2, ny // 2)`` (integer division), rotations
right-handed. ``ZRot`` is the tilt-axis angle from the image y axis, counter-clockwise (AreTomo's ROT,
IMOD's sense); ``YTilt`` is the tilt angle with IMOD's sign; ``XTilt`` = 0.

The shift is the raw-frame shift ``T`` of AreTomo/IMOD (see `io.convert`) times the pixel size, with
**no centre correction**: this is what RELION's own importers do (``align_tiltseries_runner.cpp`` and its
IMOD and AreTomo readers copy the shifts as they are) and what ``cryoet-alignment`` does, so a file
written here gives RELION the same particles as RELION's own import of the same alignment, and a file
RELION wrote reads back as RELION's importer would have produced it. (Geometrically, IMOD's image centre
``(nx - 1) / 2`` and RELION's ``nx // 2`` differ by half a pixel for even sizes; RELION's convention wins
here because RELION is who reads these files.)

RELION has no per-view magnification: it is left out with a `MagnificationLoss` warning that gives the
largest shift of an image corner. The volume written is the aligned frame's width and length
(`reconstruction.frame`: the image's, transposed when the alignment turns a non-square image nearer 90 degrees
than 0, as ``reconstruct`` makes the tomogram) by the thickness (default: the image height), centred on the axis.
The pixel size is required (shifts are in Angstrom). The STAR files do not record the image size: reading takes
``image_size`` or the volume's ``rlnTomoSizeX/Y``, transposed back by the same rule
(`frame.raw_size_for_volume`), so that what this writer wrote reads back with its own image size.

Reading also takes the RELION 4 / WarpTools layout: the tilt-series tables inside ``tomograms.star`` as
``data_NAME`` blocks, and projection matrices ``rlnTomoProjX/Y/Z/W`` instead of the Euler columns (RELION
prefers the matrices when both are present, and so does this reader). The matrices are turned into
angles and shifts as RELION's ``Tomogram::getProjectionAnglesFromMatrix`` does (volume centre ``N / 2``,
image centre ``N // 2``), so a WarpTools star reads as RELION reads it.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..jobs.facts import default_thickness_px  # the tomogram's default thickness: one fact
from .alignment import SavedAlignment
from .atomic import atomic_file_set, atomic_path, check_inside, check_writable, safe_name
from .convert import raw_shifts, rotation_and_magnification, transforms_from, warn_magnification
from .errors import FileFormatError
from .guarded import require_small_file
from .limits import MAX_VIEWS, count, finite, view_indices
from .limits import image_size as checked_image_size
from .limits import pixel_size_nm as checked_pixel_size

OPTICS_DEFAULTS = {"voltage_kv": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.1, "hand": -1.0}
# each optics value: its words, unit, command-line option and the range a real microscope's value lies in
OPTICS_TERMS = {"voltage_kv": ("voltage", " kV", "--voltage", 10.0, 3000.0),
                "cs_mm": ("Cs", " mm", "--cs", 0.0, 20.0),
                "amplitude_contrast": ("amplitude contrast", "", "--amplitude-contrast", 0.0, 1.0),
                "hand": ("hand", "", "--hand", -1.0, 1.0)}


class OpticsAssumed(UserWarning):
    """RELION's optics written with values nobody gave (`OPTICS_DEFAULTS`)."""


def checked_optics(optics: dict | None, warn: bool = True) -> dict:
    """`OPTICS_DEFAULTS` with ``optics`` over them, each given value checked (`UsageError` naming the option), and an
    `OpticsAssumed` warning naming the values nobody gave (new user's finding, session 13: 300 kV and Cs 2.7 went
    into RELION's tomograms.star for 200 kV data without a word)."""
    from ..errors import UsageError

    given = dict(optics or {})
    for key, value in given.items():
        if key not in OPTICS_TERMS:
            raise UsageError(f"optics {key!r}: give {', '.join(OPTICS_TERMS)}")
        words, unit, flag, lo, hi = OPTICS_TERMS[key]
        if not (isinstance(value, (int, float)) and lo <= float(value) <= hi) or (key == "hand" and abs(value) != 1):
            span = "-1 or 1" if key == "hand" else f"from {lo:g} to {hi:g}{unit}"
            raise UsageError(f"{flag} {value}: give the microscope's {words}, {span}")
    note = assumed_optics_note(given)
    if note and warn:
        warnings.warn(note, OpticsAssumed, stacklevel=3)
    return {**OPTICS_DEFAULTS, **{k: float(v) for k, v in given.items()}}


def assumed_optics_note(given: dict) -> str | None:
    """What `checked_optics` says of the optics values not in ``given``; None when all are."""
    assumed = [k for k in OPTICS_DEFAULTS if k not in given]
    if not assumed:
        return None
    said = ", ".join(f"{OPTICS_TERMS[k][0]} {OPTICS_DEFAULTS[k]:g}{OPTICS_TERMS[k][1]}" for k in assumed)
    flags = ", ".join(OPTICS_TERMS[k][2] for k in assumed)
    return (f"RELION's optics were not given and are written as {said}: give {flags} (tomoalign convert) when the"
            " microscope's differ")


def _starfile():
    try:
        import starfile
    except ImportError:  # pragma: no cover - depends on the install
        raise FileFormatError("RELION STAR files need the 'starfile' package: pip install starfile") from None
    return starfile


_MATRIX = ("rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ", "rlnTomoProjW")
MAX_STAR_BYTES = 64 * 1024 * 1024


def write_relion(
    saved: SavedAlignment,
    directory: str | os.PathLike[str],
    name: str,
    *,
    nominal_tilt_angles_deg: NDArray[np.float64] | None = None,
    thickness_px: int | None = None,
    stack_name: str | None = None,
    pre_exposure: NDArray[np.float64] | None = None,
    optics: dict | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``directory/tomograms.star`` and ``directory/tilt_series/NAME.star``; return both paths.

    ``stack_name``: the raw stack as RELION is to find it (``k@stack_name``; default ``NAME.mrc``);
    ``pre_exposure``: e/A^2 before each view of the raw stack (`mdoc_dose`; default 0, RELION's dose weighting off).

    ``optics`` overrides `OPTICS_DEFAULTS` (voltage_kv, cs_mm, amplitude_contrast, hand): RELION needs them,
    the alignment does not know them.
    """
    if not saved.pixel_size_nm:
        raise FileFormatError("RELION records shifts in Angstrom: give the pixel size (--pixel-size-nm)")
    checked_pixel_size(saved.pixel_size_nm, "the alignment's pixel size")  # from any source: finite, positive
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", safe_name(name, "tomogram name")):
        raise FileFormatError(f"tomogram name {name!r}: use letters, digits, '_', '-' and '.' only")
    sf = _starfile()
    import pandas as pd

    d = Path(directory)
    paths = [d / "tomograms.star", d / "tilt_series" / f"{name}.star"]
    check_inside(d, paths[1].parent)
    for p in paths:
        check_writable(p, overwrite)
    opt = checked_optics(optics)
    alpha, s = rotation_and_magnification(saved.transforms)
    ok = saved.view_determined & np.isfinite(alpha)
    warn_magnification(s[ok], saved.image_size, "RELION")
    pix_a = 10.0 * float(saved.pixel_size_nm)
    shift_a = raw_shifts(saved.transforms) * pix_a  # no centre correction, as RELION's importers
    nominal = saved.tilt_angles_deg if nominal_tilt_angles_deg is None else np.asarray(nominal_tilt_angles_deg)
    axis = float(np.median(alpha[ok])) if ok.any() else 0.0
    stack = stack_name or f"{name}.mrc"
    idx = np.flatnonzero(ok)
    tilt = pd.DataFrame({
        "rlnMicrographName": [f"{i + 1}@{stack}" for i in idx],
        "rlnTomoNominalStageTiltAngle": nominal[idx], "rlnTomoNominalTiltAxisAngle": np.full(idx.size, axis),
        "rlnMicrographPreExposure": np.zeros(idx.size) if pre_exposure is None else np.asarray(pre_exposure)[idx],
        "rlnTomoXTilt": np.zeros(idx.size),
        "rlnTomoYTilt": saved.tilt_angles_deg[idx], "rlnTomoZRot": alpha[idx],
        "rlnTomoXShiftAngst": shift_a[idx, 0], "rlnTomoYShiftAngst": shift_a[idx, 1],
    })
    nz = int(thickness_px if thickness_px is not None else default_thickness_px(saved.image_size,
                                                                                saved.marker_z_extent_px))
    from ..reconstruction.frame import frame_size_of

    volume = frame_size_of(saved).size  # the tomogram's width and length: the aligned frame
    glob = pd.DataFrame([{
        "rlnTomoName": name, "rlnVoltage": opt["voltage_kv"], "rlnSphericalAberration": opt["cs_mm"],
        "rlnAmplitudeContrast": opt["amplitude_contrast"], "rlnMicrographOriginalPixelSize": pix_a,
        "rlnTomoHand": opt["hand"], "rlnOpticsGroupName": "opticsGroup1", "rlnTomoTiltSeriesPixelSize": pix_a,
        "rlnTomoTiltSeriesStarFile": f"tilt_series/{name}.star", "rlnTomoSizeX": int(volume[0]),
        "rlnTomoSizeY": int(volume[1]), "rlnTomoSizeZ": nz,
        "rlnTomoFrameCount": len(saved.transforms),  # the raw stack's views, which k@stack numbers: none is lost
    }])
    made = not paths[1].parent.exists()
    paths[1].parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file_set([paths[1], paths[0]], overwrite) as tmps:  # both or neither, the table first
            for tmp, block in zip(tmps, ({name: tilt}, {"global": glob})):
                sf.write(block, tmp, float_format="%.6f")
                tmp.write_text("# version 50001\n" + tmp.read_text())
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                paths[1].parent.rmdir()
        raise
    return paths


def _read_star(path: Path, what: str) -> dict:
    sf = _starfile()
    require_small_file(path, what, MAX_STAR_BYTES)  # a FIFO, a device or a huge file never reaches starfile
    try:
        return sf.read(path, always_dict=True)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise FileFormatError(f"{path}: not a readable STAR file ({why})") from None


def _read_blocks(path: Path, name: str | None):
    blocks = _read_star(path, "RELION STAR")
    glob = blocks.get("global")
    if glob is None or "rlnTomoName" not in glob:
        raise FileFormatError(f"{path}: no data_global block with rlnTomoName; give a RELION 5 tomograms.star")
    names = [str(v) for v in glob["rlnTomoName"]]
    if name is None:
        if len(names) != 1:
            raise FileFormatError(f"{path}: {len(names)} tomograms; name the one to read with --name "
                                  f"(one of {', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
        name = names[0]
    if name not in names:
        raise FileFormatError(f"{path}: no tomogram {name!r} (has {', '.join(names[:10])})")
    row = glob.iloc[names.index(name)]
    if "rlnTomoTiltSeriesStarFile" in glob:
        ts = Path(str(row["rlnTomoTiltSeriesStarFile"]))
        ts = ts if ts.is_absolute() else path.parent / ts
        ts_blocks = _read_star(ts, "RELION tilt-series star")
        table = ts_blocks.get(name, next(iter(ts_blocks.values()), None))
    else:
        table = blocks.get(name)
    if table is None or not hasattr(table, "columns"):
        raise FileFormatError(f"{path}: no tilt-series table for {name!r}")
    return row, table


def _vector(value: object, path: Path, label: str) -> list[float]:
    text = str(value).strip().strip("[]")
    parts = text.split(",")
    if len(parts) != 4:
        raise FileFormatError(f"{path}: {label} {str(value)[:40]!r} is not a 4-vector [a,b,c,d]")
    try:
        return [float(v) for v in parts]
    except ValueError:
        raise FileFormatError(f"{path}: {label} {str(value)[:40]!r} is not a 4-vector of numbers") from None


def _from_matrices(t, path: Path, volume: tuple[float, float, float], image_size: tuple[int, int]):
    """``(x_tilt, y_tilt, z_rot, shift_px)`` from ``rlnTomoProjX/Y/Z/W`` as RELION's
    ``Tomogram::getProjectionAnglesFromMatrix``: float volume centre, integer image centre."""
    p = np.array([[_vector(v, path, lab) for v in t[lab]] for lab in _MATRIX]).transpose(1, 0, 2)
    finite(p, path, "a projection matrix entry")
    r = p[:, :3, :3]
    if np.abs(np.einsum("nij,nkj->nik", r, r) - np.eye(3)).max() > 1e-4 or np.abs(p[:, 3] - [0, 0, 0, 1]).max() > 1e-6:
        raise FileFormatError(f"{path}: a projection matrix (rlnTomoProjX/Y/Z/W) is not a rotation and a shift")
    sin_y = np.clip(-r[:, 2, 0], -1.0, 1.0)
    x_tilt = np.degrees(np.arctan2(r[:, 2, 1], r[:, 2, 2]))
    y_tilt = np.degrees(np.arcsin(sin_y))
    z_rot = np.degrees(np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    c = np.asarray(volume, dtype=float) / 2.0
    shift = np.einsum("nij,j->ni", r[:, :2, :], c) + p[:, :2, 3] - [image_size[0] // 2, image_size[1] // 2]
    return x_tilt, y_tilt, z_rot, shift


def _raw_size(volume: tuple[int, int], z_rot: NDArray[np.float64]) -> tuple[int, int]:
    """The image size of a volume this writer recorded as the aligned frame (`frame.raw_size_for_volume`, by the
    tilt axis angle ``ZRot`` of the views)."""
    from ..reconstruction.frame import raw_size_for_volume

    return raw_size_for_volume(volume, float(np.median(z_rot)) if len(z_rot) else float("nan"))


def _column(t, label: str, p: Path, limit: float = 1e7) -> NDArray[np.float64]:
    """A numeric column, finite and within ``±limit``, or a `FileFormatError` naming it."""
    try:
        values = np.asarray(t[label].to_numpy(), dtype=float)
    except (ValueError, TypeError):
        raise FileFormatError(f"{p}: {label} holds something that is not a number") from None
    return finite(values, p, label, limit)


def _number(row, labels: tuple[str, ...], p: Path) -> float:
    for label in labels:
        if label in row:
            try:
                return float(row[label])
            except (ValueError, TypeError):
                raise FileFormatError(f"{p}: {label} {row[label]!r} is not a number") from None
    return float("nan")


def _view_indices(t, p: Path) -> NDArray[np.intp]:
    """0-based raw-stack views from ``rlnMicrographName`` (``k@stack``, 1-based k), else the row order."""
    if "rlnMicrographName" in t:
        m = [re.match(r"\s*(-?\d+)@", str(v)) for v in t["rlnMicrographName"]]
        if all(x is not None for x in m):
            return view_indices([x.group(1) for x in m if x is not None], p, "micrograph index (k@stack)", base=1)
    return np.arange(len(t))


def tomogram_name(path: str | os.PathLike[str]) -> str:
    """The one tomogram a RELION ``tomograms.star`` lists (its ``rlnTomoName``): the name its series' files take."""
    return str(_read_blocks(Path(path), None)[0]["rlnTomoName"])


def read_relion(path: str | os.PathLike[str], *, name: str | None = None,
                image_size: tuple[int, int] | None = None) -> SavedAlignment:
    """Read one tomogram's alignment from a RELION 5 ``tomograms.star`` (see the module docstring)."""
    p = Path(path)
    row, t = _read_blocks(p, name)
    if len(t) > MAX_VIEWS:
        raise FileFormatError(f"{p}: {len(t)} tilt rows; a tilt series has at most {MAX_VIEWS}")
    pix_a = _number(row, ("rlnTomoTiltSeriesPixelSize", "rlnMicrographOriginalPixelSize"), p)
    if not (np.isfinite(pix_a) and 1e-3 <= pix_a <= 1e5):
        raise FileFormatError(f"{p}: pixel size {pix_a} Å (rlnTomoTiltSeriesPixelSize) is missing or out of range")
    from_volume = image_size is None
    if image_size is None:
        if "rlnTomoSizeX" not in row or "rlnTomoSizeY" not in row:
            raise FileFormatError(f"{p}: the image size is not recorded; give it (--image-size W H)")
        image_size = (row["rlnTomoSizeX"], row["rlnTomoSizeY"])
    image_size = checked_image_size(image_size, p)
    if all(lab in t for lab in _MATRIX):
        volume = tuple(float(count(row.get(f"rlnTomoSize{a}", 0), p, f"rlnTomoSize{a}", 10**7)) for a in "XYZ")
        x_tilt, y_tilt, z_rot, shift = _from_matrices(t, p, volume, image_size)  # type: ignore[arg-type]
        if from_volume:  # the volume is the aligned frame: the image, transposed back for an axis near 90
            image_size, was = _raw_size(image_size, z_rot), image_size
            shift = shift + [was[0] // 2 - image_size[0] // 2, was[1] // 2 - image_size[1] // 2]
    else:
        need = ["rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]
        missing = [c for c in need if c not in t]
        if missing:
            raise FileFormatError(f"{p}: the tilt-series table lacks {', '.join(missing)} and has no projection "
                                  "matrices (rlnTomoProjX/Y/Z/W)")
        num = {c: _column(t, c, p) for c in need}
        x_tilt = _column(t, "rlnTomoXTilt", p) if "rlnTomoXTilt" in t else np.zeros(len(t))
        y_tilt, z_rot = num["rlnTomoYTilt"], num["rlnTomoZRot"]
        shift = np.column_stack([num["rlnTomoXShiftAngst"], num["rlnTomoYShiftAngst"]]) / pix_a
        if from_volume:
            image_size = _raw_size(image_size, z_rot)
    if np.any(np.abs(x_tilt) > 1e-4):
        raise FileFormatError(f"{p}: rlnTomoXTilt is not zero; a tilt about x cannot be represented here")
    if np.any(np.abs(y_tilt) > 90.0):
        raise FileFormatError(f"{p}: a tilt angle (rlnTomoYTilt) beyond ±90°; check the file")
    views = _view_indices(t, p)
    n = int(views.max()) + 1 if views.size else 0
    frames = count(row["rlnTomoFrameCount"], p, "rlnTomoFrameCount", MAX_VIEWS, n) if "rlnTomoFrameCount" in row else n
    xf = np.full((frames, 2, 3), np.nan)
    xf[views] = transforms_from(z_rot, np.ones(len(t)), shift)
    tilts, nominal = np.full(frames, np.nan), np.full(frames, np.nan)  # NaN: not recorded (`view_count`)
    tilts[views] = y_tilt
    if "rlnTomoNominalStageTiltAngle" in t:
        nominal[views] = _column(t, "rlnTomoNominalStageTiltAngle", p, 90.0)
    determined = np.zeros(frames, dtype=bool)
    determined[views] = True
    return SavedAlignment(xf, tilts, determined, image_size, pix_a / 10.0, nominal_tilts_deg=nominal,
                          count_known="rlnTomoFrameCount" in row)


def merge_tomogram_sets(stars: list[Path], out_path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """One ``tomograms.star`` listing the tomograms of several (a session), tilt-series paths made relative to it."""
    sf = _starfile()
    import pandas as pd

    out = Path(out_path)
    rows = []
    for star in stars:
        glob = _read_star(star, "RELION STAR").get("global")
        if glob is None:
            raise FileFormatError(f"{star}: no data_global block")
        glob = glob.copy()
        ts = [Path(str(v)) for v in glob["rlnTomoTiltSeriesStarFile"]]
        glob["rlnTomoTiltSeriesStarFile"] = [
            str(q if q.is_absolute() else Path(os.path.relpath(star.parent / q, out.parent))) for q in ts]
        rows.append(glob)
    if not rows:
        raise FileFormatError("no RELION tomograms to list")
    with atomic_path(out, overwrite) as tmp:
        sf.write({"global": pd.concat(rows, ignore_index=True)}, tmp, float_format="%.6f")
        tmp.write_text("# version 50001\n" + tmp.read_text())
    return out
