"""Sizes and indices read from a file, checked before anything is allocated from them.

A header that says a tilt series has ten million views, an image a billion pixels wide or a view index of
-3 is refused with a one-line `FileFormatError` that names the file and the value, instead of allocating
arrays of that size or indexing from the end. Every interchange reader takes its counts through here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from .errors import FileFormatError

MAX_VIEWS = 10_000  # views of one tilt series: SerialEM's largest series have a few hundred
MAX_IMAGE_SIDE = 1_000_000  # pixels per image side (as alignment.validation)
MAX_PATCHES = 100_000  # local-alignment patches per view


def count(value: object, path: object, what: str, limit: int, minimum: int = 0) -> int:
    """``value`` as an int in ``[minimum, limit]``, else a `FileFormatError` naming ``what``."""
    value = value.item() if isinstance(value, np.generic) else value  # a plain number in the message
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FileFormatError(f"{path}: {what} {value!r} is not a number") from None
    if not math.isfinite(f) or f != int(f):
        raise FileFormatError(f"{path}: {what} {value!r} is not a whole number")
    if not minimum <= f <= limit:
        raise FileFormatError(f"{path}: {what} {int(f)} is out of range ({minimum} to {limit})")
    return int(f)


MAX_PIXEL_NM = 1e6  # as the jobs' own check (`jobs.facts.check_job_numbers`)


def pixel_size_nm(value: object, where: object = "--pixel-size-nm") -> float | None:
    """A pixel size in nm as given (None stays None: unknown), else a `FileFormatError` for one that is not a
    finite positive number below `MAX_PIXEL_NM`: a NaN or a negative pixel size never reaches a written file."""
    if value is None:
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FileFormatError(f"{where}: the pixel size {value!r} is not a number of nanometres") from None
    if not (math.isfinite(f) and 0.0 < f < MAX_PIXEL_NM):
        raise FileFormatError(f"{where}: the pixel size must be a positive number of nanometres, not {f:g}")
    return f


def pixel_size_arg(text: str) -> float:
    """``argparse`` type of ``--pixel-size-nm``: the same check, as a usage error."""
    import argparse

    try:
        return pixel_size_nm(text, "--pixel-size-nm")  # type: ignore[return-value]
    except FileFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def image_size(values: Iterable[object], path: object) -> tuple[int, int]:
    """A checked ``(width, height)`` in pixels (each 1 to `MAX_IMAGE_SIDE`)."""
    w, h = (count(v, path, f"image {side}", MAX_IMAGE_SIDE, 1) for v, side in zip(values, ("width", "height")))
    return w, h


def view_indices(values: Iterable[object], path: object, what: str, *, base: int,
                 n_views: int | None = None) -> NDArray[np.intp]:
    """0-based view indices from ``base``-based ones: whole, unique, at least ``base``, below ``n_views``
    (or `MAX_VIEWS`) once made 0-based."""
    top = (n_views if n_views is not None else MAX_VIEWS) - 1 + base
    out = np.array([count(v, path, what, top, base) - base for v in values], dtype=np.intp)
    if out.size != np.unique(out).size:
        dup = int(out[np.flatnonzero(np.bincount(out) > 1)[0]]) + base
        raise FileFormatError(f"{path}: {what} {dup} appears twice; each view may be listed once")
    return out


def finite(values: NDArray[np.float64], path: object, what: str, limit: float = 1e9) -> NDArray[np.float64]:
    """``values`` if all finite and within ``±limit``, else a `FileFormatError` naming ``what``."""
    a = np.asarray(values, dtype=float)
    bad = ~np.isfinite(a) | (np.abs(np.where(np.isfinite(a), a, 0.0)) > limit)
    if bad.any():
        v = float(a.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        raise FileFormatError(f"{path}: {what} {v:g} is not a usable number (it must be finite and within ±{limit:g})")
    return a


def why(exc: BaseException) -> str:
    """A one-line reason from a parser's exception: for a pydantic validation error, the first field and what
    is wrong with it (``per_section_alignment_parameters.0.z_index: Input should be a valid integer``)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', '')}".strip(": ")
        except (TypeError, IndexError, AttributeError):
            pass
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
