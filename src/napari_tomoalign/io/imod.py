"""IMOD's text files: ``.xf`` transforms, ``fid.xyz`` marker positions and ``.resid`` residuals.

Files hold IMOD coordinates (first pixel centre at 0.5); arrays hold this project's (at 0).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from ._textfmt import write_table
from .atomic import OverwriteError, atomic_open
from .errors import FileFormatError
from .guarded import read_text_limited
from .table import IMOD_PIXEL_OFFSET
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


def compose_xf(first: NDArray[np.float64], then: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n, 2, 3)``: ``first`` applied, then ``then``, view by view (IMOD's ``xfproduct first then``)."""
    a, b = np.asarray(first, dtype=float), np.asarray(then, dtype=float)
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[:, :, :2] = b[:, :, :2] @ a[:, :, :2]
    out[:, :, 2] = np.einsum("nij,nj->ni", b[:, :, :2], a[:, :, 2]) + b[:, :, 2]
    return out


def apply_transform(xf: NDArray[np.float64], xy: NDArray[np.float64], centre: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map ``(n, 2)`` points by one ``(2, 3)`` transform about ``centre`` (same centre in and out), as IMOD
    applies an ``.xf`` line about the image centre."""
    return (np.asarray(xy, dtype=float) - centre) @ xf[:, :2].T + xf[:, 2] + centre


def format_xf(f: IO[str], xf: NDArray[np.float64]) -> None:
    """IMOD ``A11 A12 A21 A22 DX DY`` lines of ``(n_views, 2, 3)`` transforms, to a text stream."""
    x = np.asarray(xf, dtype=float)
    write_table(f, [x[:, 0, 0], x[:, 0, 1], x[:, 1, 0], x[:, 1, 1], x[:, 0, 2], x[:, 1, 2]], [7, 7, 7, 7, 3, 3],
                [12] * 6, sep="")


def write_xf(path: str | os.PathLike[str], xf: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write ``(n_views, 2, 3)`` transforms as IMOD ``A11 A12 A21 A22 DX DY`` lines."""
    with atomic_open(path, overwrite=overwrite) as f:
        format_xf(f, xf)


def format_fid_xyz(
    f: IO[str], ids: NDArray[np.int64], xyz: NDArray[np.float64], image_size: tuple[int, int],
    pixel_size_angstrom: float = 1.0,
) -> None:
    """``id X Y Z object contour`` lines (markers with NaN positions are left out), to a text stream."""
    xyz = np.asarray(xyz, dtype=float)
    keep = np.all(np.isfinite(xyz), axis=1)
    number = np.arange(1, len(xyz) + 1, dtype=float)[keep]
    ids_f = np.asarray(ids, dtype=float)[keep]
    x, y, z = xyz[keep, 0] + IMOD_PIXEL_OFFSET, xyz[keep, 1] + IMOD_PIXEL_OFFSET, xyz[keep, 2]
    if not len(x):
        return
    cols = [number, x, y, z, np.ones(len(x)), ids_f]
    dec, wid = [0, 2, 2, 2, 0, 0], [4, 10, 10, 10, 7, 5]
    first = io.StringIO()
    write_table(first, [c[:1] for c in cols], dec, wid, sep="")
    f.write(first.getvalue().rstrip("\n")
            + f" Pix: {pixel_size_angstrom:11.5f} Dim:{image_size[0]:6d}{image_size[1]:6d}\n")
    write_table(f, [c[1:] for c in cols], dec, wid, sep="")


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
        format_fid_xyz(f, ids, xyz, image_size, pixel_size_angstrom)


def read_fid_xyz(path: str | os.PathLike[str]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``(contour ids, (n, 3) positions)`` from a ``fid.xyz`` file, in this project's convention."""
    t = _table(path, "fid.xyz", 6)
    xyz = t[:, 1:4].copy()
    xyz[:, :2] -= IMOD_PIXEL_OFFSET
    return t[:, 5].astype(np.int64), xyz


def format_resid(f: IO[str], view: NDArray[np.intp], xy: NDArray[np.float64], residual: NDArray[np.float64]) -> None:
    """IMOD's ``.resid`` (``N residuals``, then ``x y view dx dy``), to a text stream."""
    xy, residual = np.asarray(xy, dtype=float), np.asarray(residual, dtype=float)
    f.write(f"{len(view):6d} residuals\n")
    write_table(f, [xy[:, 0] + IMOD_PIXEL_OFFSET, xy[:, 1] + IMOD_PIXEL_OFFSET, np.asarray(view, dtype=float),
                    residual[:, 0], residual[:, 1]], [2, 2, 0, 2, 2], [10, 10, 5, 8, 8], sep="")


def write_resid(
    path: str | os.PathLike[str],
    view: NDArray[np.intp],
    xy: NDArray[np.float64],
    residual: NDArray[np.float64],
    overwrite: bool = False,
) -> None:
    """Write IMOD's ``.resid``: ``N residuals``, then ``x y view dx dy`` with (dx, dy) = predicted - observed."""
    with atomic_open(path, overwrite=overwrite) as f:
        format_resid(f, view, xy, residual)


def read_resid(
    path: str | os.PathLike[str],
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """``(view, xy, residual)`` from an IMOD ``.resid`` file, xy in this project's convention. The first line's
    count must be the number of rows (a file cut short, or not a residual file, is refused in one line)."""
    t = _table(path, "residual", 5, skip_first=True)
    head = read_text(path, "residual").partition("\n")[0].split()
    if len(head) < 2 or head[1] != "residuals" or not head[0].isdigit() or int(head[0]) != len(t):
        said = f"says {head[0]} residuals" if len(head) > 1 and head[1] == "residuals" else "has no 'N residuals' line"
        raise FileFormatError(f"{path}: its first line {said} but it holds {len(t)}: not a whole .resid"
                              " (tiltalign's ResidualFile); write it again (align, or convert the alignment)")
    return t[:, 2].astype(np.intp), t[:, :2] - IMOD_PIXEL_OFFSET, t[:, 3:5].copy()


MAX_MARKER_Z_PX = 1e6


def marker_z_extent(path: Path) -> float | None:
    """The largest |z| of the markers in a ``fid.xyz`` (its 4th column), or None if there is none to read."""
    if not path.exists():
        return None
    try:
        rows = [line.split() for line in read_text_limited(path, "marker positions").splitlines()[:100_000]]
        z = np.array([float(r[3]) for r in rows if len(r) >= 4], dtype=float)
    except ValueError:
        return None
    if z.size and not np.all(np.abs(z) <= MAX_MARKER_Z_PX):  # NaN, inf, 1e300: a damaged or foreign file
        raise FileFormatError(f"{path}: a marker Z of {float(z[~(np.abs(z) <= MAX_MARKER_Z_PX)][0]):g} px is not usable; "
                              "run 'tomoalign align' again")
    return float(np.max(np.abs(z))) if z.size else None


SET_SUFFIXES = (".xtilt", ".zfac", "fid.xyz", "local.xf", ".resid")  # read with NAME.xf as part of its set


def write_imod_alignment(saved, out: Path, stem: str, overwrite: bool, carry: tuple[tuple[Path, str], ...] = (),
                         residuals: tuple[NDArray, NDArray, NDArray] | None = None) -> list[Path]:
    """IMOD's ``NAME.xf`` and ``NAME.tlt`` of a `SavedAlignment` in folder ``out`` (what ``newstack -xform``
    and ``tilt`` read), the files of ``carry`` copied as ``NAME`` + their suffix (``.xtilt``, ``.zfac``,
    ``fid.xyz``, ``local.xf``) and, given ``residuals`` ``(view, xy, residual)``, ``NAME.resid`` (`format_resid`,
    as ``tomoalign align`` writes it), all or none. Undetermined views get the identity transform; the ``.tlt``
    keeps 4 decimals (IMOD reads free format). A file of `SET_SUFFIXES` already in ``out`` that this set does not
    write would be read as part of it: refused unless ``overwrite``, then moved aside as ``NAME~``."""
    import shutil

    from .atomic import atomic_file_set, check_writable

    paths = [out / f"{stem}.xf", out / f"{stem}.tlt", *(out / f"{stem}{suffix}" for _, suffix in carry)]
    if residuals is not None:
        paths.append(out / f"{stem}.resid")
    stale = [q for q in (out / f"{stem}{s}" for s in SET_SUFFIXES) if q not in paths and q.is_file()]
    for q in stale:  # a .resid (a .zfac) of another alignment beside this one: loaded (applied) as its own
        if not overwrite:
            raise OverwriteError(f"{q} is there and would be read as part of the new {stem}.xf's set; remove it,"
                                 " choose another name, or allow overwriting (--force; it is kept as NAME~)")
        check_writable(q, True)
    ok = saved.view_determined[:, None, None] & np.isfinite(saved.transforms)
    xf = np.where(ok, saved.transforms, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    with atomic_file_set(paths, overwrite) as tmps:  # all or none
        with open(tmps[0], "w", encoding="utf-8", newline="\n") as f:
            format_xf(f, xf)
        with open(tmps[1], "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{t:9.4f}\n" for t in saved.tilt_angles_deg)
        for (source, _), tmp in zip(carry, tmps[2 : 2 + len(carry)], strict=True):
            shutil.copyfile(source, tmp)
        if residuals is not None:
            with open(tmps[-1], "w", encoding="utf-8", newline="\n") as f:
                format_resid(f, *residuals)
    for q in stale:
        os.replace(q, q.with_name(q.name + "~"))
    return paths
