"""IMOD's per-view outputs of ``tiltalign``: ``.xtilt``, ``.tltxf`` and ``.zfac``.

- ``.xtilt``: one X-axis tilt per view in degrees, written as ``.tlt`` is (``f7.2``);
- ``.tltxf``: one ``A11 A12 A21 A22 DX DY`` line per view (``4f12.7, 2f12.3``), the transform from
  the raw image to the aligned frame; with the full model it carries stretch, skew and X-tilt;
- ``.zfac``: one ``xzfac yzfac`` pair per view (``2f12.6``), only meaningful for the full model
  (``tilt`` reads it with ``ZFACTORFILE``).

Every writer is atomic and never replaces an existing file unless ``overwrite`` is True.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from ..alignment.result import Alignment
from ..alignment.transforms import imod_transforms, x_tilts_deg, z_factors
from ._textfmt import write_table
from .atomic import atomic_file_set, atomic_open
from .imod import format_xf


def _undetermined_as_zero(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """IMOD's files have a number on every line: undetermined views (NaN) are written as 0."""
    return np.where(np.isfinite(values), values, 0.0)


def _xtilt(f: IO[str], x_tilt_deg: NDArray[np.float64]) -> None:
    write_table(f, [_undetermined_as_zero(np.asarray(x_tilt_deg, dtype=float))], [2], [7], sep="")


def _tltxf(f: IO[str], xf: NDArray[np.float64]) -> None:
    x = np.array(xf, dtype=float)
    bad = ~np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    x[bad] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    format_xf(f, x)


def _zfac(f: IO[str], zfac: NDArray[np.float64]) -> None:
    z = _undetermined_as_zero(np.asarray(zfac, dtype=float).reshape(-1, 2))
    write_table(f, [z[:, 0], z[:, 1]], [6, 6], [12, 12], sep="")


def write_xtilt(path: str | os.PathLike[str], x_tilt_deg: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write ``(n_views,)`` X-axis tilts in degrees, one per line (undetermined views: 0)."""
    with atomic_open(path, overwrite=overwrite) as f:
        _xtilt(f, x_tilt_deg)


def write_tltxf(path: str | os.PathLike[str], xf: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write ``(n_views, 2, 3)`` transforms as ``A11 A12 A21 A22 DX DY`` lines (undetermined: unit)."""
    with atomic_open(path, overwrite=overwrite) as f:
        _tltxf(f, xf)


def write_zfac(path: str | os.PathLike[str], zfac: NDArray[np.float64], overwrite: bool = False) -> None:
    """Write ``(n_views, 2)`` Z factors as ``xzfac yzfac`` lines (undetermined views: 0)."""
    with atomic_open(path, overwrite=overwrite) as f:
        _zfac(f, zfac)


def write_imod_views(al: Alignment, directory: str | os.PathLike[str], stem: str, *, axis_z_shift_px: float | None = None,
                     overwrite: bool = False) -> list[Path]:
    """Write ``stem.xtilt``, ``stem.tltxf`` and (settings from an align.com only) ``stem.zfac`` into
    ``directory`` as one unit: nothing is written if any exists and ``overwrite`` is False. Returns the
    paths. ``axis_z_shift_px`` None: the alignment's own."""
    d = Path(directory)
    names = [f"{stem}.xtilt", f"{stem}.tltxf"] + ([f"{stem}.zfac"] if al.settings.from_com else [])
    paths = [d / n for n in names]
    xf = imod_transforms(al, axis_z_shift_px)
    parts = [(_xtilt, x_tilts_deg(al)), (_tltxf, xf)] + ([(_zfac, z_factors(al))] if len(paths) == 3 else [])
    with atomic_file_set(paths, overwrite=overwrite) as tmps:
        for tmp, (fmt, values) in zip(tmps, parts):
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                fmt(f, values)
    return paths
