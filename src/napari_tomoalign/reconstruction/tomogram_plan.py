"""The geometry of a tomogram from a saved alignment and ``reconstruct``'s options (`reconstruct_job`): the views used
(``--exclude-views``), their tilts (``--offset``), X-axis tilts (``--x-axis-tilt``) and Z factors (``.zfac``), the shift
(``--shift``, checked against the views and the markers: `shift_check`), the thickness, and with ``--level`` the surface
analysis that levels the section. The streamed WBP takes it, with local alignments (``--local``) or without.

This module imports only the standard library at load time (`reconstruct_job` is loaded to build the command line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reconstruct_job import ReconstructOptions


def read_pairs(path: Path, n_views: int) -> Any:
    """``(n_views, 2)`` from an IMOD ``.zfac`` (one ``xzfac yzfac`` pair per line)."""
    import numpy as np

    from ..io import FileFormatError

    try:
        values = np.loadtxt(path, ndmin=2)
    except ValueError:
        values = np.zeros((0, 0))
    if values.shape != (n_views, 2) or not np.all(np.isfinite(values)):
        raise FileFormatError(f"{path}: expected two finite Z factors on each of {n_views} lines; write it again"
                              " with 'tomoalign align --imod-com'")
    return values


@dataclass(frozen=True)
class TomogramPlan:
    """The geometry of a tomogram from a saved alignment and the options: the views used, their tilts,
    X-axis tilts and Z factors, the tilt offset and the shift (unbinned pixels), the thickness, and with
    ``--level`` what the surface analysis found (``info``)."""

    views: Any
    tilts: Any
    x_tilt: Any
    z_factors: Any
    offset_deg: float
    shift_px: tuple[float, float]
    thickness: int
    info: dict[str, Any]
    surfaces: Any = None  # with --level: the `positioning.SurfaceAnalysis`
    levelled: Any = None  # with --level: the `positioning.Levelling` applied (the thickness and shift used)


def plan_tomogram(saved: Any, alignment_dir: str | os.PathLike[str], *, thickness: int | None,
                  options: ReconstructOptions, width: int | None = None) -> TomogramPlan:
    """The `TomogramPlan` of a saved alignment folder with ``reconstruct``'s options (module docstring), for a volume
    ``width`` unbinned pixels wide (the aligned frame's; None: `frame.frame_size_of` the alignment's)."""
    import numpy as np

    from ..errors import UsageError
    from ..io.alignment import set_file
    from .positioning import wbp_shift, wbp_x_tilts

    d = Path(alignment_dir)
    n = len(saved.transforms)
    views = used_views(saved, options)
    xaxistilt = options.x_axis_tilt_deg
    zfac_path = set_file(saved, d, ".zfac")
    zf = read_pairs(zfac_path, n)[views] if zfac_path is not None else None
    tilts = np.asarray(saved.tilt_angles_deg, float)
    offset, shift = options.offset_deg, options.shift_px
    info: dict[str, Any] = {}
    analysis = levelled = None
    if options.level is not None:
        lev, analysis, info = _levelling(saved, d, options)
        size_given = (thickness is not None, shift is not None)
        offset += lev.tilt_change_deg
        xaxistilt += lev.x_axis_tilt_deg
        if thickness is None and lev.one_layer:  # the markers level the section but cannot tell its thickness
            from ..jobs.facts import default_thickness_px

            thickness = default_thickness_px(saved.image_size, saved.marker_z_extent_px)
        thickness = thickness if thickness is not None else lev.thickness_px
        shift = shift if shift is not None else (0.0, 0.0 if lev.one_layer else lev.z_shift_px)
        levelled = replace(lev, tilt_change_deg=offset, x_axis_tilt_deg=xaxistilt, thickness_px=int(thickness),
                           z_shift_px=shift[1], given=(options.offset_deg, options.x_axis_tilt_deg), size_given=size_given,
                           from_markers=(lev.thickness_px, lev.z_shift_px))
    x_tilt = wbp_x_tilts(np.zeros(n) if saved.x_tilts_deg is None else saved.x_tilts_deg, xaxistilt)
    if thickness is None:
        raise UsageError("give --thickness (or --level to take it from the markers)")
    check_offset(tilts, views, offset)
    # beyond every view, or above, below or beside all the markers (`shift_check`): a shift given or not
    info = dict(info, shift_warnings=_shift_warnings(saved, d, shift or (0.0, 0.0), tilts[views] + offset, width,
                                                      int(thickness), offset, xaxistilt, options.shift_px is not None))
    shift = wbp_shift(shift or (0.0, 0.0))
    return TomogramPlan(views, tilts[views], x_tilt[views], zf, offset, shift, int(thickness), info,
                        analysis, levelled)


def _shift_warnings(saved: Any, d: Path, shift: tuple[float, float], tilts: Any, width: int | None, thickness: int,
                    offset: float, xaxistilt: float, given: bool) -> list[str]:
    """`shift_check.check_shift` of IMOD's ``shift`` (refused in one line), and the warning that the volume lies above,
    below or beside all the markers of the folder's fid.xyz (`shift_check.markers_outside`; ``given``: by --shift)."""
    from .shift_check import check_shift, markers_outside

    if width is None:
        from .frame import frame_size_of

        width = frame_size_of(saved).size[0]
    check_shift(shift, tilts, width, thickness, tuple(saved.image_size))
    xyz = _markers_xyz(saved, d, required=False)
    said = None if xyz is None else markers_outside(shift, xyz, width, thickness, offset, xaxistilt, given)
    return [said] if said else []


def _markers_xyz(saved: Any, d: Path, *, required: bool = True) -> Any:
    """The markers' 3-D positions of the folder's fid.xyz, x and y from the image's centre (None when there is none
    and it is not ``required``; else a `errors.UsageError` saying what to do)."""
    import numpy as np

    from ..errors import UsageError
    from ..io.alignment import set_file

    xyz_path = set_file(saved, d, "fid.xyz")
    if xyz_path is None:
        if not required:
            return None
        raise UsageError(_no_fid_xyz(saved, d))
    try:
        xyz = np.loadtxt(xyz_path, usecols=(1, 2, 3), ndmin=2)
    except (ValueError, IndexError):
        if not required:
            return None
        raise UsageError(f"{xyz_path}: not a fid.xyz (id x y z per line); run 'tomoalign align' again") from None
    centre = (np.asarray(saved.image_size, float) - 1.0) / 2.0
    return np.column_stack([xyz[:, 0] - centre[0], xyz[:, 1] - centre[1], xyz[:, 2]])


def _no_fid_xyz(saved: Any, d: Path) -> str:
    """What to do when --level finds no fid.xyz: for IMOD's set (an .xf with no alignment.json: etomo's folder), put
    tiltalign's ``NAMEfid.xyz`` (align.com's OutputFidXYZFile) beside the .xf; for a folder of ours, align again."""
    folder = saved.folder if saved.folder is not None else (d if d.is_dir() else d.parent)
    name = f"{saved.stem}fid.xyz" if saved.stem else "fid.xyz"
    if not (folder / "alignment.json").is_file():
        xf = f"{saved.stem}.xf" if saved.stem else "the .xf"
        return (f"{folder}: --level needs the markers' 3-D positions, tiltalign's {name} (align.com's"
                f" OutputFidXYZFile), and it is not beside {xf}; put it there (etomo's Fine Alignment writes it when"
                " align.com names it: run that step again if your folder has none)")
    return f"{folder}: no {name} with the markers' 3-D positions for --level; run 'tomoalign align' again"


def used_views(saved: Any, options: ReconstructOptions) -> Any:
    """The 0-based views to reconstruct from: those the alignment determined, less ``--exclude-views``."""
    import numpy as np

    from ..errors import UsageError
    from .reconstruct_job import parse_view_list

    use = np.asarray(saved.view_determined, bool).copy()
    if options.exclude_views:
        try:
            use[parse_view_list(options.exclude_views, use.size)] = False
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    views = np.flatnonzero(use)
    if views.size < 2:
        raise UsageError("fewer than two views are left to reconstruct from; exclude fewer views")
    return views


def check_offset(tilts: Any, views: Any, offset: float) -> None:
    """`errors.UsageError` if a used view's tilt plus the offset (``--offset``, and ``--level``'s) reaches 90 degrees."""
    import numpy as np

    from ..conventions import view_number
    from ..errors import UsageError

    beyond = np.flatnonzero(np.abs(tilts[views] + offset) >= 90)
    if beyond.size:
        j = int(views[beyond[0]])
        raise UsageError(f"--offset: view {view_number(j)}'s tilt becomes {tilts[j] + offset:g} deg; every tilt must stay"
                         " strictly between -90 and 90 degrees (give a smaller --offset, or exclude the view)")


def recorded_surfaces(directory: Path) -> tuple[int | None, float]:
    """How many surfaces ``align`` analysed for this folder (its ``alignment.json``), or None; and the
    ``AngleOffset`` the alignment was made with (IMOD's "Total tilt angle change" adds it, as ``align`` printed)."""
    import json
    import math

    try:
        doc = json.loads((directory / "alignment.json").read_text())
    except (OSError, ValueError):
        return None, 0.0
    record = doc.get("surface_analysis") if isinstance(doc, dict) else None
    settings = doc.get("settings") if isinstance(doc, dict) else None
    n = record.get("surfaces") if isinstance(record, dict) else None
    offset = settings.get("angle_offset_deg") if isinstance(settings, dict) else None
    offset = float(offset) if isinstance(offset, (int, float)) and math.isfinite(offset) else 0.0
    return (n if n in (1, 2) else None), offset


def _levelling(saved: Any, d: Path, options: ReconstructOptions) -> tuple[Any, Any, dict[str, Any]]:
    """``--level``: what levels the section, the surface analysis of the folder's ``fid.xyz``, both as a dict."""
    import numpy as np

    from ..errors import UsageError
    from .positioning import analyse_surfaces, level_parameters

    xyz = _markers_xyz(saved, d)  # x and y from the image's centre
    centre = (np.asarray(saved.image_size, float) - 1.0) / 2.0
    try:
        surfaces, angle_offset = recorded_surfaces(d)
        analysis = analyse_surfaces(xyz + np.array([centre[0], centre[1], 0.0]), options.level or surfaces or 2,
                                    angle_offset_deg=angle_offset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    lev = level_parameters(analysis, xyz)
    info = {"surface_analysis": analysis.as_dict(),
            "levelling": {"tilt_change_deg": lev.tilt_change_deg, "x_axis_tilt_deg": lev.x_axis_tilt_deg,
                          "thickness_px": lev.thickness_px, "z_shift_px": lev.z_shift_px}}
    return lev, analysis, info
