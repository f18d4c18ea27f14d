"""The residuals an alignment carries into IMOD's set (``NAME.resid``), so that a converted set loads back with them.

The file is IMOD tiltalign's ``ResidualFile`` (what Beadfixer reads), as ``tomoalign align`` writes it
(`imod.format_resid`, the one writer): a first line ``N residuals``, then one line ``x y view dx dy`` per
observation in the fit, in IMOD's coordinates (first pixel centre at 0.5), the view 0-based, ``(dx, dy)`` the
predicted minus the observed position, 2 decimals. It names no marker: a line is its marker's by its view and
position (the model's point there, as Beadfixer finds it; IMOD's tutorial ``BBa.resid`` lies on ``BBa.fid``'s
points within the 0.005 px of its rounding), and it keeps the fit's order (track by track in IMOD's, observation
order in ours, the rows of ``residuals.csv`` that are in the fit, which do name the marker).

What carries residuals (`carried_residuals`): a solved `Alignment` (its observations in the fit); a ``tomoalign
align`` folder, whose ``NAME.resid`` its run stamp lists (checked by its SHA-256: an edited or another run's file is
refused); an IMOD set with ``NAME.resid`` beside its ``.xf`` (tiltalign's, or one this module wrote); and a
`SavedAlignment` read from either (it keeps its folder and name). They are read and written again through the same
reader and writer, which reproduces the 2-decimal file byte for byte. An AreTomo ``.aln``, a portal JSON, a RELION
star, a Warp XML or a bare ``.xf`` carry none, and nothing is written for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .errors import FileFormatError

SUFFIX = ".resid"


class Residuals(NamedTuple):
    """The observations in a fit: ``view`` ``(n,)`` 0-based, ``xy`` ``(n, 2)`` where each was seen (this project's
    pixel convention) and ``residual`` ``(n, 2)``, predicted minus observed, in pixels."""

    view: NDArray[np.intp]
    xy: NDArray[np.float64]
    residual: NDArray[np.float64]


def alignment_residuals(al) -> Residuals:
    """A solved `Alignment`'s residuals: the observations in its fit, in its order (what ``align`` writes)."""
    used = np.asarray(al.obs_used, dtype=bool)
    return Residuals(np.asarray(al.obs_view)[used], np.asarray(al.obs_xy_px)[used],
                     np.asarray(al.residuals_px)[used])


def _stamped(folder: Path, stem: str) -> dict | None:
    """The run stamp of the ``tomoalign align`` folder whose set this is, or None for an IMOD set."""
    from .alignment import run_stamp

    if not (folder / "alignment.json").is_file():
        return None
    run = run_stamp(folder)
    return run if run.get("stem") == stem else None


def set_residuals(saved) -> Residuals | None:
    """The residuals of a saved alignment's set (``stem.resid`` in its folder), or None when it has none (one made
    in memory, a set without the file, a stamped folder whose stamp does not list it). A file that is not whole, not
    its run's or names a view the alignment does not have is refused in one line (`FileFormatError`)."""
    from .alignment import check_stamped_file
    from .imod import read_resid

    if saved.folder is None or not saved.stem:
        return None
    folder, name = Path(saved.folder), f"{saved.stem}{SUFFIX}"
    run = _stamped(folder, saved.stem)
    if run is not None:
        if name not in run["files"]:
            return None
        check_stamped_file(folder, run, name, full=True)
    elif not (folder / name).is_file():
        return None
    view, xy, residual = read_resid(folder / name)
    n = len(saved.transforms)
    if view.min() < 0 or view.max() >= n:
        bad = int(view.min() if view.min() < 0 else view.max())
        raise FileFormatError(f"{folder / name}: a residual in view {bad} (0-based) of an alignment of {n} views: the"
                              " .resid of another alignment; remove it (or align again)")
    return Residuals(view, xy, residual)


def carried_residuals(source, saved) -> Residuals | None:
    """The residuals `convert` writes into IMOD's set for the input ``source`` (read as ``saved``), or None."""
    from ..alignment.result import Alignment

    if isinstance(source, Alignment):
        return alignment_residuals(source)
    return set_residuals(saved)
