"""Warp / WarpTools tilt-series XML (``<TiltSeries>``): read its global alignment (read only).

What is read: the per-tilt lists ``Angles``, ``AxisAngle``, ``AxisOffsetX``, ``AxisOffsetY`` (Angstrom) and
``UseTilt`` (a view with ``False`` is left out, as a dark frame), one value per line; the pixel size from
``<CTF><Param Name="PixelSize">`` (or given); the image size from ``ImageDimensionsAngstrom`` (or given:
older exports lack it). Warp's local fields (per-image and volume warp grids, CTF) are not read.

The mapping is the one ``cryoet-alignment`` 0.2.0 uses for its Warp conversion, which its authors validated
against AreTomo's ``.aln`` on a reconstruction (``WARP_TILT_AXIS_SIGN = 1``, ``WARP_TILT_ANGLE_SIGN = -1``):
``ROT = AxisAngle``, ``TILT = -Angles``, raw-frame shift ``T = AxisOffset / pixel size`` (AreTomo's TX, TY;
see `io.aretomo`). It was not derived from Warp's own projection code (not at hand), and a file with
``AreAnglesInverted="True"`` is refused rather than guessed. The tests check it against that package's own
conversion of a real Warp XML it ships (``tests/data/cryoet-alignment/00254.xml``).
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from numpy.typing import NDArray

from .alignment import SavedAlignment
from .convert import transforms_from
from .errors import FileFormatError
from .guarded import read_text_limited
from .limits import MAX_VIEWS, finite
from .limits import image_size as checked_image_size

MAX_WARP_BYTES = 16 * 1024 * 1024  # a real one is a few hundred kB with its warp grids


def _root(p: Path) -> ElementTree.Element:
    text = read_text_limited(p, "Warp XML", MAX_WARP_BYTES)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # Warp writes neither; entities could expand without bound
        raise FileFormatError(f"{p}: an XML document type or entity declaration; not a Warp tilt-series XML")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise FileFormatError(f"{p}: not readable XML ({exc})") from None
    if root.tag != "TiltSeries" or root.find("Angles") is None:
        raise FileFormatError(f"{p}: no <TiltSeries> with <Angles>; not a Warp tilt-series XML")
    return root


def _list(root: ElementTree.Element, name: str, n: int | None, p: Path, default: float | None = None) -> NDArray:
    elem = root.find(name)
    words = (elem.text or "").split() if elem is not None else []
    if not words and default is not None and n is not None:
        return np.full(n, default)
    if name == "UseTilt":
        values = np.array([w.lower() == "true" for w in words])
        if any(w.lower() not in ("true", "false") for w in words):
            raise FileFormatError(f"{p}: <UseTilt> holds something other than True and False")
    else:
        try:
            values = finite(np.array([float(w) for w in words]), p, f"a <{name}> value", 1e7)
        except ValueError:
            raise FileFormatError(f"{p}: <{name}> holds something that is not a number") from None
    if n is not None and values.size != n:
        raise FileFormatError(f"{p}: <{name}> has {values.size} values for {n} tilts")
    return values


def _pixel_size_a(root: ElementTree.Element, p: Path) -> float | None:
    for param in root.findall("./CTF/Param"):
        if param.get("Name") == "PixelSize":
            try:
                return float(param.get("Value", ""))
            except ValueError:
                raise FileFormatError(f"{p}: the CTF PixelSize {param.get('Value')!r} is not a number") from None
    return None


def read_warp_xml(path: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None,
                  pixel_size_nm: float | None = None) -> SavedAlignment:
    """Read a Warp tilt-series XML's global alignment (see the module docstring)."""
    p = Path(path)
    root = _root(p)
    if root.get("AreAnglesInverted", "False").strip().lower() == "true":
        raise FileFormatError(f"{p}: AreAnglesInverted is True; only Warp XMLs with angles as acquired are read")
    tilts = _list(root, "Angles", None, p)
    n = tilts.size
    if not 1 <= n <= MAX_VIEWS:
        raise FileFormatError(f"{p}: {n} tilts; a tilt series has 1 to {MAX_VIEWS}")
    if np.any(np.abs(tilts) > 90.0):
        raise FileFormatError(f"{p}: a tilt angle beyond ±90°; check the file")
    pix_a = 10.0 * pixel_size_nm if pixel_size_nm else _pixel_size_a(root, p)
    if pix_a is None or not (np.isfinite(pix_a) and 1e-3 <= pix_a <= 1e5):
        raise FileFormatError(f"{p}: no usable pixel size (the CTF PixelSize is {pix_a}); give it (--pixel-size-nm)")
    if image_size is None:
        dims = (root.get("ImageDimensionsAngstrom") or "").replace(",", " ").split()
        if len(dims) != 2:
            raise FileFormatError(f"{p}: the image size is not recorded (no ImageDimensionsAngstrom); give it "
                                  "(--image-size W H)")
        image_size = tuple(round(float(v) / pix_a) for v in dims)  # type: ignore[assignment]
    size = checked_image_size(image_size, p)  # type: ignore[arg-type]
    use = _list(root, "UseTilt", n, p) if root.find("UseTilt") is not None else np.ones(n, dtype=bool)
    axis = _list(root, "AxisAngle", n, p, 0.0)
    shift = np.column_stack([_list(root, "AxisOffsetX", n, p, 0.0), _list(root, "AxisOffsetY", n, p, 0.0)]) / pix_a
    xf = transforms_from(axis, np.ones(n), shift)
    xf[~use] = np.nan
    return SavedAlignment(xf, -tilts, use.astype(bool), size, pix_a / 10.0)
