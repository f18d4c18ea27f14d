"""IMOD's text files: ``.xf`` transforms, ``fid.xyz`` marker positions and ``.resid`` residuals.

Files hold IMOD coordinates (first pixel centre at 0.5); arrays hold this project's (at 0).
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_open
from .errors import FileFormatError
from .markers import IMOD_PIXEL_OFFSET
from .tilts import read_text


def _table(path: str | os.PathLike[str], what: str, ncols: int, skip_first: bool = False) -> NDArray[np.float64]:
    lines = read_text(path, what).splitlines()
    if skip_first:
        lines = lines[1:]
    rows = []
    for n, line in enumerate(lines, 2 if skip_first else 1):
        parts = line.split()
        if not parts:
            continue
        try:
            rows.append([float(x) for x in parts[:ncols]])
        except ValueError:
            raise FileFormatError(f"{path}, line {n}: expected {ncols} numbers, got {line.strip()[:60]!r}") from None
        if len(rows[-1]) < ncols:
            raise FileFormatError(f"{path}, line {n}: expected {ncols} numbers, got {len(rows[-1])}")
    if not rows:
        raise FileFormatError(f"{path}: no rows found in the {what} file")
    return np.asarray(rows)


def read_xf(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """``(n_views, 2, 3)`` transforms ``[[A11, A12, DX], [A21, A22, DY]]`` from an ``.xf`` file."""
    t = _table(path, "transform", 6)
    return np.stack([np.stack([t[:, 0], t[:, 1], t[:, 4]], 1), np.stack([t[:, 2], t[:, 3], t[:, 5]], 1)], 1)


def write_xf(path: str | os.PathLike[str], xf: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write ``(n_views, 2, 3)`` transforms as IMOD ``A11 A12 A21 A22 DX DY`` lines."""
    with atomic_open(path, overwrite=overwrite) as f:
        for m in xf:
            f.write(
                f"{m[0, 0]:12.7f}{m[0, 1]:12.7f}{m[1, 0]:12.7f}{m[1, 1]:12.7f}{m[0, 2]:12.3f}{m[1, 2]:12.3f}\n"
            )


def write_fid_xyz(
    path: str | os.PathLike[str],
    ids: NDArray[np.int64],
    xyz: NDArray[np.float64],
    image_size: tuple[int, int],
    pixel_size_angstrom: float = 1.0,
    overwrite: bool = False,
) -> None:
    """Write ``id X Y Z object contour`` lines; X, Y move to IMOD's half-pixel convention."""
    with atomic_open(path, overwrite=overwrite) as f:
        first = True
        for i, (mid, p) in enumerate(zip(ids, xyz), 1):
            if not np.all(np.isfinite(p)):
                continue
            x, y, z = p[0] + IMOD_PIXEL_OFFSET, p[1] + IMOD_PIXEL_OFFSET, p[2]
            f.write(f"{i:4d}{x:10.2f}{y:10.2f}{z:10.2f}{1:7d}{int(mid):5d}")
            if first:
                f.write(f" Pix: {pixel_size_angstrom:11.5f} Dim:{image_size[0]:6d}{image_size[1]:6d}")
                first = False
            f.write("\n")


def read_fid_xyz(path: str | os.PathLike[str]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``(contour ids, (n, 3) positions)`` from a ``fid.xyz`` file, in this project's convention."""
    t = _table(path, "fid.xyz", 6)
    xyz = t[:, 1:4].copy()
    xyz[:, :2] -= IMOD_PIXEL_OFFSET
    return t[:, 5].astype(np.int64), xyz


def write_resid(
    path: str | os.PathLike[str],
    view: NDArray[np.intp],
    xy: NDArray[np.float64],
    residual: NDArray[np.float64],
    overwrite: bool = False,
) -> None:
    """Write IMOD's ``.resid``: ``N residuals``, then ``x y view dx dy`` with (dx, dy) = predicted - observed."""
    with atomic_open(path, overwrite=overwrite) as f:
        f.write(f"{len(view):6d} residuals\n")
        for v, (x, y), (dx, dy) in zip(view, xy, residual):
            f.write(f"{x + IMOD_PIXEL_OFFSET:10.2f}{y + IMOD_PIXEL_OFFSET:10.2f}{int(v):5d}{dx:8.2f}{dy:8.2f}\n")


def read_resid(
    path: str | os.PathLike[str],
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """``(view, xy, residual)`` from an IMOD ``.resid`` file, xy in this project's convention."""
    t = _table(path, "residual", 5, skip_first=True)
    return t[:, 2].astype(np.intp), t[:, :2] - IMOD_PIXEL_OFFSET, t[:, 3:5].copy()
