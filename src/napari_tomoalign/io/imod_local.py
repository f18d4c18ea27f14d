"""IMOD's local alignment file (tiltalign's ``OutputLocalFile``, read by ``tilt`` as ``LOCALFILE``).

Layout (`../shared/docs/imod-full-model.md`, section 4.3)::

    nX nY xStart yStart dX dY ifXtilt pixelSize ifZfactors            (7i6, f12.5, i4)
    per patch, X fastest then Y:
      tilt increments (local minus global, degrees), 10 per line (f7.2), one per view
      [X-tilt increments, same layout, if ifXtilt = 1]
      [Z factors (xzfac, yzfac) pairs, 3 pairs per line (6f12.6), if ifZfactors = 1]
      one refinement transform per view: A11 A12 A21 A22 DX DY (4f12.7, 2f12.3)

A refinement transform maps a point projected with the patch's angles, in locally aligned coordinates
about the image centre, to its place in the globally aligned stack. Patch centres are IMOD pixel
coordinates of the aligned frame. Old files without the pixel size (6 or 7 header numbers) are read
with a pixel size of 0 (unknown).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .atomic import atomic_open
from .errors import FileFormatError
from .guarded import read_text_limited
from .limits import MAX_PATCHES, MAX_VIEWS, count, finite


@dataclass(frozen=True)
class LocalTransforms:
    """The content of a local alignment file (module docstring).

    Attributes
    ----------
    n_patches, start, spacing
        ``(nX, nY)``, the first patch centre and the spacing of centres, IMOD pixels.
    pixel_size
        The header's pixel size (the model's units, Angstrom for IMOD; 0 when unknown).
    tilt_increment_deg
        ``(n_patches, n_views)`` local minus global tilt, patches X fastest.
    x_tilt_increment_deg
        ``(n_patches, n_views)`` local minus global X-tilt, or None.
    z_factors
        ``(n_patches, n_views, 2)`` the patch's (xzfac, yzfac), or None.
    transforms
        ``(n_patches, n_views, 2, 3)`` refinement transforms ``[A | D]``.
    """

    n_patches: tuple[int, int]
    start: tuple[int, int]
    spacing: tuple[int, int]
    pixel_size: float
    tilt_increment_deg: NDArray[np.float64]
    transforms: NDArray[np.float64]
    x_tilt_increment_deg: NDArray[np.float64] | None = None
    z_factors: NDArray[np.float64] | None = None

    @property
    def n_views(self) -> int:
        return int(self.tilt_increment_deg.shape[1])

    def patch_centres(self) -> NDArray[np.float64]:
        """``(n_patches, 2)`` patch centres (x, y), IMOD pixels, X fastest."""
        ix, iy = np.meshgrid(np.arange(self.n_patches[0]), np.arange(self.n_patches[1]))
        return np.stack([self.start[0] + ix.ravel() * self.spacing[0], self.start[1] + iy.ravel() * self.spacing[1]],
                        axis=1).astype(float)


def _check(lt: LocalTransforms) -> None:
    n_p = lt.n_patches[0] * lt.n_patches[1]
    if min(lt.n_patches) < 1:
        raise ValueError(f"a local file needs at least one patch per axis, not {lt.n_patches}")
    n_v = lt.tilt_increment_deg.shape[1] if lt.tilt_increment_deg.ndim == 2 else -1
    shapes = {"tilt_increment_deg": (lt.tilt_increment_deg, (n_p, n_v)), "transforms": (lt.transforms, (n_p, n_v, 2, 3)),
              "x_tilt_increment_deg": (lt.x_tilt_increment_deg, (n_p, n_v)), "z_factors": (lt.z_factors, (n_p, n_v, 2))}
    for name, (arr, shape) in shapes.items():
        if arr is not None and np.shape(arr) != shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}; {lt.n_patches} patches need {shape}")


def _rows(values: NDArray[np.float64], per_line: int, fmt: str) -> list[str]:
    return ["".join(fmt % v for v in values[k : k + per_line]) for k in range(0, len(values), per_line)]


def format_local(lt: LocalTransforms) -> str:
    """The file's text."""
    _check(lt)
    ints = (*lt.n_patches, *lt.start, *lt.spacing, int(lt.x_tilt_increment_deg is not None))
    lines = ["".join(f"{k:6d}" for k in ints) + f"{lt.pixel_size:12.5f}{int(lt.z_factors is not None):4d}"]
    for p in range(lt.tilt_increment_deg.shape[0]):
        lines += _rows(lt.tilt_increment_deg[p], 10, "%7.2f")
        if lt.x_tilt_increment_deg is not None:
            lines += _rows(lt.x_tilt_increment_deg[p], 10, "%7.2f")
        if lt.z_factors is not None:
            lines += _rows(lt.z_factors[p].ravel(), 6, "%12.6f")
        for a in lt.transforms[p]:
            lines.append(f"{a[0, 0]:12.7f}{a[0, 1]:12.7f}{a[1, 0]:12.7f}{a[1, 1]:12.7f}{a[0, 2]:12.3f}{a[1, 2]:12.3f}")
    return "\n".join(lines) + "\n"


def write_local_transforms(path: str | os.PathLike[str], lt: LocalTransforms, overwrite: bool = False) -> None:
    """Write IMOD's local alignment file atomically (never over an existing file unless ``overwrite``)."""
    text = format_local(lt)
    with atomic_open(path, "w", overwrite=overwrite) as f:
        f.write(text)


def _numbers(lines: list[str], pos: int, count: int, path: object, what: str) -> tuple[NDArray[np.float64], int]:
    """``count`` numbers from whole lines starting at ``pos``; returns them and the next line."""
    out: list[float] = []
    while len(out) < count:
        if pos >= len(lines):
            raise FileFormatError(f"{path}: the file ends inside the {what}; it is truncated or not a local file")
        try:
            out.extend(float(x) for x in lines[pos].split())
        except ValueError:
            raise FileFormatError(f"{path}, line {pos + 1}: {lines[pos].strip()!r} is not numbers ({what})") from None
        pos += 1
    if len(out) != count:
        raise FileFormatError(f"{path}, line {pos}: {len(out)} numbers where the {what} needs {count}")
    return finite(np.asarray(out), path, f"a value of the {what}"), pos


def read_local_transforms(path: str | os.PathLike[str], n_views: int | None = None) -> LocalTransforms:
    """Read IMOD's local alignment file. ``n_views`` is found from the file when not given."""
    lines = [ln for ln in read_text_limited(path, "IMOD local alignment").splitlines() if ln.strip()]
    if not lines:
        raise FileFormatError(f"{path}: empty file; expected IMOD's local alignment header 'nX nY xStart ...'")
    try:
        head = [float(x) for x in lines[0].split()]
    except ValueError:
        raise FileFormatError(f"{path}: the first line {lines[0]!r} is not a local alignment header") from None
    if len(head) < 6:
        raise FileFormatError(f"{path}: the header has {len(head)} numbers; a local file's has 7 to 9")
    n = (count(head[0], path, "patch count in X", MAX_PATCHES, 1), count(head[1], path, "patch count in Y", MAX_PATCHES, 1))
    finite(np.asarray(head[2:]), path, "a header value")
    if n_views is not None:
        n_views = count(n_views, path, "number of views", MAX_VIEWS, 1)
    has_xtilt = len(head) > 6 and head[6] != 0
    pixel = head[7] if len(head) > 7 else 0.0
    has_z = len(head) > 8 and head[8] != 0
    n_p = n[0] * n[1]
    if n_p > MAX_PATCHES or n_p * (n_views or 1) > len(lines):  # before any allocation or loop over patches
        raise FileFormatError(f"{path}: the header gives {n[0]} x {n[1]} patches, more than the file's "
                              f"{len(lines)} lines can hold; it is not a local file or it is truncated")
    if n_views is None:
        body = len(lines) - 1

        def patch_lines(v: int) -> int:  # tilts [+ X-tilts] [+ Z factors] + one transform per view
            return -(-v // 10) * (1 + int(has_xtilt)) + (-(-v // 3) if has_z else 0) + v

        candidates = [v for v in range(1, body + 1) if n_p * patch_lines(v) == body]
        if not candidates:
            raise FileFormatError(f"{path}: {body} lines after the header fit no number of views for {n_p} patches")
        n_views = candidates[0]
    tilt, xtilt, zfac, xf = [], [], [], []
    pos = 1
    for _ in range(n_p):
        vals, pos = _numbers(lines, pos, n_views, path, "tilt increments")
        tilt.append(vals)
        if has_xtilt:
            vals, pos = _numbers(lines, pos, n_views, path, "X-tilt increments")
            xtilt.append(vals)
        if has_z:
            vals, pos = _numbers(lines, pos, 2 * n_views, path, "Z factors")
            zfac.append(vals.reshape(n_views, 2))
        vals, pos = _numbers(lines, pos, 6 * n_views, path, "transforms")
        v = vals.reshape(n_views, 6)
        xf.append(np.stack([np.stack([v[:, 0], v[:, 1], v[:, 4]], 1), np.stack([v[:, 2], v[:, 3], v[:, 5]], 1)], 1))
    if pos != len(lines):
        raise FileFormatError(f"{path}: {len(lines) - pos} lines left after {n_p} patches of {n_views} views")
    return LocalTransforms(n, (int(head[2]), int(head[3])), (int(head[4]), int(head[5])), float(pixel),
                           np.asarray(tilt), np.asarray(xf), np.asarray(xtilt) if has_xtilt else None,
                           np.asarray(zfac) if has_z else None)
