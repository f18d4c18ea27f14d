"""RELION 5 tomography STAR files: a ``tomograms.star`` and its tilt-series star, written and read with ``starfile``.

Layout (RELION 5's own): ``tomograms.star`` holds ``data_global`` with one row per tomogram
(``rlnTomoName``, optics, ``rlnTomoHand``, the pixel size as ``rlnTomoTiltSeriesPixelSize`` and
``rlnMicrographOriginalPixelSize``, the volume size ``rlnTomoSizeX/Y/Z`` in unbinned pixels and
``rlnTomoTiltSeriesStarFile``); ``tilt_series/NAME.star`` holds ``data_NAME`` with one row per kept
view: ``rlnMicrographName`` (``k@NAME.mrc``, k the 1-based view of the raw stack),
``rlnTomoNominalStageTiltAngle``, ``rlnTomoNominalTiltAxisAngle``, ``rlnMicrographPreExposure``,
``rlnTomoXTilt``, ``rlnTomoYTilt``, ``rlnTomoZRot`` (degrees) and ``rlnTomoXShiftAngst``,
``rlnTomoYShiftAngst`` (Angstrom: pixel shift x pixel size).

Geometry (RELION's ``Tomogram::setProjectionMatrix``): a volume voxel ``V`` (0-based pixel indices)
lands in the raw tilt image at ``Rz(ZRot) Ry(YTilt) Rx(XTilt) (V - C) + shift + ic``, with
``C = (w0 // 2, h0 // 2, d0 // 2)`` and ``ic = (nx // 2, ny // 2)`` (integer division), rotations
right-handed. So, with the volume centred on the tilt axis: ``ZRot`` is the tilt-axis angle from
the image y axis, counter-clockwise (AreTomo's ROT, IMOD's sense); ``YTilt`` is the tilt angle with
IMOD's sign; ``XTilt`` = 0; and the shift is the raw-frame shift ``T`` of AreTomo/IMOD (see
`io.convert`) plus ``c - ic``, the half pixel between IMOD's image centre ``(nx - 1) / 2`` and
RELION's ``nx // 2`` for even sizes. RELION has no per-view magnification: it is left out with a
`MagnificationLoss` warning that gives the largest shift of an image corner. The volume written is
``nx x ny x thickness`` (default thickness: the image height), centred on the axis; a RELION voxel
``V`` is the aligned-frame point ``V - C + (cx, cy, 0)``. The pixel size is required (shifts are in
Angstrom). The STAR files do not record the image size: reading takes ``image_size`` or the
volume's ``rlnTomoSizeX/Y`` (which this writer sets to the image size).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..conventions import image_centre
from .alignment import SavedAlignment
from .atomic import atomic_path, check_writable
from .convert import raw_shifts, rotation_and_magnification, transforms_from, warn_magnification
from .errors import FileFormatError

OPTICS_DEFAULTS = {"voltage_kv": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.1, "hand": -1.0}


def _starfile():
    try:
        import starfile
    except ImportError:  # pragma: no cover - depends on the install
        raise FileFormatError("RELION STAR files need the 'starfile' package: pip install starfile") from None
    return starfile


def _half_pixel(image_size: tuple[int, int]) -> NDArray[np.float64]:
    """``c - ic``: IMOD's centre minus RELION's integer centre (-0.5 for even sizes, 0 for odd)."""
    return image_centre(image_size) - np.array([image_size[0] // 2, image_size[1] // 2], dtype=float)


def write_relion(
    saved: SavedAlignment,
    directory: str | os.PathLike[str],
    name: str,
    *,
    nominal_tilt_angles_deg: NDArray[np.float64] | None = None,
    thickness_px: int | None = None,
    stack_name: str | None = None,
    optics: dict | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``directory/tomograms.star`` and ``directory/tilt_series/NAME.star``; return both paths.

    ``optics`` overrides `OPTICS_DEFAULTS` (voltage_kv, cs_mm, amplitude_contrast, hand): RELION needs them,
    the alignment does not know them.
    """
    if not saved.pixel_size_nm:
        raise FileFormatError("RELION records shifts in Angstrom: give the pixel size (--pixel-size-nm)")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise FileFormatError(f"tomogram name {name!r}: use letters, digits, '_', '-' and '.' only")
    sf = _starfile()
    import pandas as pd

    d = Path(directory)
    paths = [d / "tomograms.star", d / "tilt_series" / f"{name}.star"]
    for p in paths:
        check_writable(p, overwrite)
    opt = {**OPTICS_DEFAULTS, **(optics or {})}
    alpha, s = rotation_and_magnification(saved.transforms)
    ok = saved.view_determined & np.isfinite(alpha)
    warn_magnification(s[ok], saved.image_size, "RELION")
    pix_a = 10.0 * float(saved.pixel_size_nm)
    shift_a = (raw_shifts(saved.transforms) + _half_pixel(saved.image_size)) * pix_a
    nominal = saved.tilt_angles_deg if nominal_tilt_angles_deg is None else np.asarray(nominal_tilt_angles_deg)
    axis = float(np.median(alpha[ok])) if ok.any() else 0.0
    stack = stack_name or f"{name}.mrc"
    idx = np.flatnonzero(ok)
    tilt = pd.DataFrame({
        "rlnMicrographName": [f"{i + 1}@{stack}" for i in idx],
        "rlnTomoNominalStageTiltAngle": nominal[idx], "rlnTomoNominalTiltAxisAngle": np.full(idx.size, axis),
        "rlnMicrographPreExposure": np.zeros(idx.size), "rlnTomoXTilt": np.zeros(idx.size),
        "rlnTomoYTilt": saved.tilt_angles_deg[idx], "rlnTomoZRot": alpha[idx],
        "rlnTomoXShiftAngst": shift_a[idx, 0], "rlnTomoYShiftAngst": shift_a[idx, 1],
    })
    nz = int(thickness_px if thickness_px is not None else saved.image_size[1])
    glob = pd.DataFrame([{
        "rlnTomoName": name, "rlnVoltage": opt["voltage_kv"], "rlnSphericalAberration": opt["cs_mm"],
        "rlnAmplitudeContrast": opt["amplitude_contrast"], "rlnMicrographOriginalPixelSize": pix_a,
        "rlnTomoHand": opt["hand"], "rlnOpticsGroupName": "opticsGroup1", "rlnTomoTiltSeriesPixelSize": pix_a,
        "rlnTomoTiltSeriesStarFile": f"tilt_series/{name}.star", "rlnTomoSizeX": int(saved.image_size[0]),
        "rlnTomoSizeY": int(saved.image_size[1]), "rlnTomoSizeZ": nz,
    }])
    for path, block in ((paths[1], {name: tilt}), (paths[0], {"global": glob})):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, overwrite) as tmp:
            sf.write(block, tmp, float_format="%.6f")
            tmp.write_text("# version 50001\n" + tmp.read_text())
    return paths


def _read_blocks(path: Path, name: str | None):
    sf = _starfile()
    try:
        blocks = sf.read(path, always_dict=True)
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(f"{path}: not a readable STAR file ({exc})") from None
    glob = blocks.get("global")
    if glob is None or "rlnTomoName" not in glob:
        raise FileFormatError(f"{path}: no data_global block with rlnTomoName; give a RELION 5 tomograms.star")
    names = [str(v) for v in glob["rlnTomoName"]]
    if name is None:
        if len(names) != 1:
            raise FileFormatError(f"{path}: {len(names)} tomograms; name the one to read (one of {', '.join(names)})")
        name = names[0]
    if name not in names:
        raise FileFormatError(f"{path}: no tomogram {name!r} (has {', '.join(names)})")
    row = glob.iloc[names.index(name)]
    if "rlnTomoTiltSeriesStarFile" in glob:
        ts = Path(str(row["rlnTomoTiltSeriesStarFile"]))
        ts = ts if ts.is_absolute() or not (path.parent / ts).exists() else path.parent / ts
        try:
            ts_blocks = sf.read(ts, always_dict=True)
        except (OSError, ValueError, KeyError) as exc:
            raise FileFormatError(f"{ts}: cannot read the tilt-series star ({exc})") from None
        table = ts_blocks.get(name, next(iter(ts_blocks.values())))
    elif name in blocks:
        table = blocks[name]
    else:
        raise FileFormatError(f"{path}: no tilt-series table for {name!r}")
    return row, table


def read_relion(path: str | os.PathLike[str], *, name: str | None = None,
                image_size: tuple[int, int] | None = None) -> SavedAlignment:
    """Read one tomogram's alignment from a RELION 5 ``tomograms.star`` (see the module docstring)."""
    p = Path(path)
    row, t = _read_blocks(p, name)
    need = ["rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]
    missing = [c for c in need if c not in t]
    if missing:
        raise FileFormatError(f"{p}: the tilt-series table lacks {', '.join(missing)} (projection matrices are not read)")
    if "rlnTomoXTilt" in t and np.any(np.abs(t["rlnTomoXTilt"].to_numpy(float)) > 1e-6):
        raise FileFormatError(f"{p}: rlnTomoXTilt is not zero; a tilt about x cannot be represented here")
    pix_a = float(row.get("rlnTomoTiltSeriesPixelSize", row.get("rlnMicrographOriginalPixelSize", 0.0)))
    if not pix_a > 0:
        raise FileFormatError(f"{p}: no pixel size (rlnTomoTiltSeriesPixelSize); shifts in Angstrom cannot be read")
    if image_size is None:
        if "rlnTomoSizeX" not in row:
            raise FileFormatError(f"{p}: the image size is not recorded; give it (--image-size W H)")
        image_size = (int(row["rlnTomoSizeX"]), int(row["rlnTomoSizeY"]))
    k = len(t)
    views = np.arange(k)
    if "rlnMicrographName" in t:
        m = [re.match(r"\s*(\d+)@", str(v)) for v in t["rlnMicrographName"]]
        if all(x is not None for x in m):
            views = np.array([int(x.group(1)) - 1 for x in m if x is not None])
    n = int(views.max()) + 1 if k else 0
    shift = np.column_stack([t["rlnTomoXShiftAngst"].to_numpy(float), t["rlnTomoYShiftAngst"].to_numpy(float)]) / pix_a
    xf = np.full((n, 2, 3), np.nan)
    xf[views] = transforms_from(t["rlnTomoZRot"].to_numpy(float), np.ones(k), shift - _half_pixel(image_size))
    tilts = np.zeros(n)
    tilts[views] = t["rlnTomoYTilt"].to_numpy(float)
    determined = np.zeros(n, dtype=bool)
    determined[views] = True
    return SavedAlignment(xf, tilts, determined, (int(image_size[0]), int(image_size[1])), pix_a / 10.0)


def merge_tomogram_sets(stars: list[Path], out_path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """One ``tomograms.star`` listing the tomograms of several (a session), tilt-series paths made relative to it."""
    sf = _starfile()
    import pandas as pd

    out = Path(out_path)
    rows = []
    for star in stars:
        glob = sf.read(star, always_dict=True).get("global")
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
