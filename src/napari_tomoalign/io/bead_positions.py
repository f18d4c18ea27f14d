"""Where a saved alignment puts the beads: every solved marker in every determined view, in the frame of the
stack its ``.xf`` applies to (``predicted.csv`` of a ``tomoalign align`` folder; for an alignment made with
etomo's ``.prexg``, moved from the prealigned stack back to the raw one). Gold erasure reads
them, so that a bead is erased in views where it was never clicked too."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .alignment import read_alignment_dir
from .errors import FileFormatError
from .guarded import read_bytes_limited
from .imod_set import is_stamped
from .prealignment import to_raw

MAX_PREDICTED_BYTES = 512 * 2**20  # 12,000 markers x 133 views is 45 MB


def read_bead_positions(directory: str | os.PathLike[str]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """``(view (k,), xy (k, 2))``: the model's position of each included marker in each determined view.

    The folder is checked against its run stamp first (`read_alignment_dir`); markers the solve left out
    (``excluded_markers`` in ``alignment.json``) and positions that are not finite are dropped. An IMOD set
    (`imod_set`) gives its ``fid.xyz`` projected into every fitted view.
    """
    d = Path(directory)
    folder = is_stamped(d)
    if folder is None:  # an IMOD set: its fid.xyz projected
        return _imod_set_positions(d)
    d = folder
    saved = read_alignment_dir(d)
    info_path, path = d / "alignment.json", d / "predicted.csv"
    try:
        info = json.loads(read_bytes_limited(info_path, "alignment", MAX_PREDICTED_BYTES))
        excluded = np.asarray(info.get("excluded_markers") or [], dtype=np.int64)
    except (ValueError, TypeError, RecursionError):
        raise FileFormatError(f"{info_path}: not readable as JSON; run 'tomoalign align' again") from None
    body = read_bytes_limited(path, "predicted positions", MAX_PREDICTED_BYTES)
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", skiprows=1, ndmin=2, dtype=float)
    except ValueError as exc:
        raise FileFormatError(f"{path}: not a view,marker,x,y table ({exc})") from None
    if table.shape[1] != 4:
        raise FileFormatError(f"{path}: expected the columns view,marker,x,y")
    view = table[:, 0].astype(np.intp)
    if len(view) and (view.min() < 0 or view.max() >= len(saved.view_determined)):
        raise FileFormatError(f"{path}: a view number outside 0..{len(saved.view_determined) - 1}")
    xy = table[:, 2:4]
    keep = saved.view_determined[view] & np.all(np.isfinite(xy), axis=1)
    keep &= ~np.isin(table[:, 1].astype(np.int64), excluded)
    view, xy = view[keep], xy[keep]
    if saved.prexg is not None:  # the markers were placed on the prealigned stack: back to the raw stack
        xy = to_raw(saved.prexg, view, xy, saved.image_size)
    return view, xy


def _imod_set_positions(path: Path) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """An IMOD set's beads in every fitted view: its ``fid.xyz`` (the beads' 3-D positions) projected by its
    ``.xf`` and ``.tlt`` (`convert.project_points`; on the tutorial's BBa within 0.3 px of the clicks, median)."""
    from .convert import detect_format, project_points
    from .imod import read_fid_xyz
    from .imod_set import find_imod_set, read_imod_set

    if detect_format(path) != "imod":
        raise FileFormatError(f"{path}: --erase-gold needs the beads' 3-D positions, which only a 'tomoalign align'"
                              " folder or an IMOD set with its fid.xyz holds")
    s = find_imod_set(path)
    saved = read_imod_set(path)
    if "fid.xyz" not in s.beside or 0 in saved.image_size:
        raise FileFormatError(f"{s.xf}: --erase-gold needs {s.stem}fid.xyz (tiltalign's 3-D bead positions, with its"
                              " image size) beside it")
    xy = project_points(saved, read_fid_xyz(s.beside["fid.xyz"])[1])
    view = np.repeat(np.arange(xy.shape[0]), xy.shape[1])
    xy = xy.reshape(-1, 2)
    keep = np.all(np.isfinite(xy), axis=1)
    return view[keep], xy[keep]
