"""tiltalign's local-alignment options: the patches they lay out and the variable mappings of each.

The options are those of an ``align.com`` (`../shared/docs/imod-full-model.md`, section 4):
``NumberOfLocalPatchesXandY`` or ``TargetPatchSizeXandY``, ``MinSizeOrOverlapXandY``,
``MinFidsTotalAndEachSurface``, ``FixXYZCoordinates`` and, per variable kind, ``Local<Var>Option`` with
``Local<Var>DefaultGrouping``, plus ``LocalMagReferenceView`` and ``LocalTiltFixedView``. Every local
option defaults to 0 (the kind is not solved locally), as in IMOD.

A patch's groups are formed afresh from the tilts and that patch's point counts (`grouping`), over the
views that have a point in the patch. With the marker positions held (``FixXYZCoordinates 1``) no
variable has a reference view except X-tilt; with them free the references are the global ones.

**Patches** (`grow_patches`): patch centres sit on a regular grid (section 4.1). In legacy mode
(``NumberOfLocalPatchesXandY``) the grid spans the image; in target mode (``TargetPatchSizeXandY``) it
spans the fiducials' extent plus a 5 px border. A fiducial belongs to a patch when its global position
in the aligned frame (IMOD's ``fid.xyz`` X and Y, IMOD pixel coordinates) lies within the patch. A patch
starts at the minimum size and grows by 40 px on both axes until it holds ``min_fids_total`` fiducials
and, with two surfaces analysed, ``min_fids_surface`` on each of them. IMOD does the arithmetic on
integers (truncating), and so does this module, so that the centres and sizes are IMOD's.
`surface_groups` splits the fiducials into a bottom and a top surface as IMOD's ``find_surfaces``
does; that split is the tomogram positioning's (`reconstruction.positioning`), written once there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..errors import AlignmentError
from ..reconstruction.positioning import analyse_surfaces
from .grouping import (
    Mapping,
    block_mapping,
    fixed_mapping,
    group_size_power,
    grouped_mapping,
    is_grouped,
    per_view_mapping,
    tilt_groups_imod,
)
from .imod_options import PREFIX, dmag_reference, numbers

LOCAL_KINDS = ("rotation", "tilt", "magnification", "x_stretch", "skew", "x_tilt")
DEFAULT_GROUPING = 5.0
# Patches per axis: etomo's default is 5 and IMOD's guides use up to about 20; each patch is a solve of its
# own (50 x 50 takes 17 s on the tutorial's 60 beads), so a grid beyond this only repeats patches and hangs.
MAX_PATCHES_PER_AXIS = 100


@dataclass(frozen=True)
class LocalOptions:
    """How to lay out patches and what each patch solves (module docstring; views 0-based).

    Attributes
    ----------
    n_patches
        ``(nX, nY)`` patches (IMOD's legacy mode), or None to use ``target_size_px``.
    target_size_px
        ``(x, y)`` target patch size over the fiducials' extent (IMOD's default, 700 x 700).
    min_size_or_overlap
        Per axis: a minimum size in pixels (> 1) or a fractional overlap (< 1).
    min_fids_total, min_fids_surface
        A patch grows until it holds this many fiducials, and (with two surfaces) this many on each.
    surfaces
        ``SurfacesToAnalyze``: 2 applies the per-surface minimum.
    fix_xyz
        Hold the markers at their global positions (``FixXYZCoordinates 1``).
    codes, groupings
        Per variable kind (`LOCAL_KINDS`): tiltalign's option code and default group size.
    mag_reference_view, tilt_fixed_view
        ``LocalMagReferenceView`` and ``LocalTiltFixedView`` (None: the minimum-tilt view).
    """

    n_patches: tuple[int, int] | None = (5, 5)
    target_size_px: tuple[int, int] = (700, 700)
    min_size_or_overlap: tuple[float, float] = (0.5, 0.5)
    min_fids_total: int = 8
    min_fids_surface: int = 3
    surfaces: int = 1
    fix_xyz: bool = False
    codes: dict[str, int] = field(default_factory=dict)
    groupings: dict[str, float] = field(default_factory=dict)
    mag_reference_view: int | None = None
    tilt_fixed_view: int | None = None

    def code(self, kind: str) -> int:
        return int(self.codes.get(kind, 0))


def _pair(entries: dict[str, list[str]], key: str) -> tuple[float, float] | None:
    vals = numbers(entries, key)
    if vals is None:
        return None
    if len(vals) != 2:
        raise AlignmentError(f"{key} needs two values (X and Y), got {entries[key][-1]!r}")
    return vals[0], vals[1]


def _patch_counts(entries: dict[str, list[str]]) -> tuple[float, float] | None:
    """``NumberOfLocalPatchesXandY``, each a whole number from 1 to `MAX_PATCHES_PER_AXIS`, or None."""
    pair = _pair(entries, "NumberOfLocalPatchesXandY")
    if pair is not None and not all(np.isfinite(n) and n == int(n) and 1 <= n <= MAX_PATCHES_PER_AXIS
                                    for n in pair):
        raise AlignmentError(f"NumberOfLocalPatchesXandY {entries['NumberOfLocalPatchesXandY'][-1].strip()!r}:"
                             f" give whole numbers of patches from 1 to {MAX_PATCHES_PER_AXIS} per axis"
                             " (etomo's default is 5,5)")
    return pair


def local_options_from_com(entries: dict[str, list[str]]) -> LocalOptions:
    """The local options of a tiltalign section (`io.imod_com.read_com_section`)."""
    n_patches = _patch_counts(entries)
    target = _pair(entries, "TargetPatchSizeXandY")
    if target is not None and not all(np.isfinite(t) and t >= 1 for t in target):
        raise AlignmentError(f"TargetPatchSizeXandY {entries['TargetPatchSizeXandY'][-1].strip()!r}: give patch"
                             " sizes in pixels (IMOD's default is 700,700)")
    if n_patches is not None and target is not None:
        raise AlignmentError("give NumberOfLocalPatchesXandY or TargetPatchSizeXandY, not both")
    overlap = _pair(entries, "MinSizeOrOverlapXandY") or (0.5, 0.5)
    if target is not None and max(overlap) > 1:
        raise AlignmentError("MinSizeOrOverlapXandY must be overlaps (< 1) with TargetPatchSizeXandY")
    fids = numbers(entries, "MinFidsTotalAndEachSurface") or [8, 3]
    codes, groupings = {}, {}
    for kind in LOCAL_KINDS:
        code = numbers(entries, f"Local{PREFIX[kind]}Option")
        codes[kind] = int(code[0]) if code else 0
        size = numbers(entries, f"Local{PREFIX[kind]}DefaultGrouping")
        groupings[kind] = float(size[0]) if size else DEFAULT_GROUPING

    def view(key: str) -> int | None:
        vals = numbers(entries, key)
        return int(vals[0]) - 1 if vals else None

    return LocalOptions(
        n_patches=None if n_patches is None and target is not None else
        (int(n_patches[0]), int(n_patches[1])) if n_patches else (5, 5),
        target_size_px=(int(target[0]), int(target[1])) if target else (700, 700),
        min_size_or_overlap=overlap, min_fids_total=int(fids[0]),
        min_fids_surface=int(fids[1]) if len(fids) > 1 else 3,
        surfaces=int((numbers(entries, "SurfacesToAnalyze") or [0])[0]),
        fix_xyz=bool((numbers(entries, "FixXYZCoordinates") or [0])[0]),
        codes=codes, groupings=groupings,
        mag_reference_view=view("LocalMagReferenceView"), tilt_fixed_view=view("LocalTiltFixedView"))


def _references(opts: LocalOptions, views: NDArray[np.intp], min_tilt: int) -> dict[str, int | None]:
    """Reference view per kind, in the patch's own view numbering (None: no reference)."""
    if opts.fix_xyz:
        return {kind: (min_tilt if kind == "x_tilt" else None) for kind in LOCAL_KINDS}

    def local(view: int | None) -> int:
        return min_tilt if view is None else int(np.argmin(np.abs(views - view)))

    mag = local(opts.mag_reference_view)
    dmag = dmag_reference(len(views), min_tilt, mag)
    return {"rotation": None, "tilt": local(opts.tilt_fixed_view), "magnification": mag, "x_stretch": dmag,
            "skew": dmag, "x_tilt": min_tilt}


def patch_mappings(opts: LocalOptions, views: NDArray[np.intp], tilts_deg: NDArray[np.float64],
                   raw_tilts_deg: NDArray[np.float64], points_per_view: NDArray[np.intp]) -> dict[str, Mapping]:
    """The local mappings of one patch over ``views`` (its views with points), one per kind in `LOCAL_KINDS`.

    ``tilts_deg`` (the global solved tilts; they size the groups), ``raw_tilts_deg`` (the nominal ones;
    they pick the minimum-tilt view) and ``points_per_view`` cover all views of the series.
    """
    views = np.asarray(views, dtype=np.intp)
    n = len(views)
    tilts_deg = np.asarray(tilts_deg, dtype=float)[views]
    points_per_view = np.asarray(points_per_view)[views]
    min_tilt = int(np.argmin(np.abs(np.asarray(raw_tilts_deg, dtype=float)[views])))
    refs = _references(opts, views, min_tilt)
    out = {}
    for kind in LOCAL_KINDS:
        code, ref = opts.code(kind), refs[kind]
        if code == 0:
            out[kind] = fixed_mapping(n)
        elif kind == "rotation" and code == -1:
            out[kind] = block_mapping(np.zeros(n, dtype=np.intp))
        elif code == 1 or (kind == "tilt" and code == 2):
            out[kind] = per_view_mapping(n, [] if ref is None else [ref])
        elif is_grouped(kind, code) and code not in (7, 8):
            groups = tilt_groups_imod(tilts_deg, opts.groupings.get(kind, DEFAULT_GROUPING), group_size_power(kind, code),
                                      points_per_view)
            out[kind] = grouped_mapping(kind, code, groups, n, [] if ref is None else [ref])
        else:
            raise AlignmentError(f"Local{PREFIX[kind]}Option {code} is not supported for local alignments; "
                                 "use 0, 1, or the automatic grouping codes")
    return out


GROWTH_PX = 40
BORDER_PX = 5.0


@dataclass(frozen=True)
class Patch:
    """One local area: its grid position, centre and final size (IMOD pixels) and its fiducials."""

    ix: int
    iy: int
    centre: tuple[int, int]
    size: tuple[int, int]
    markers: NDArray[np.intp]

    @property
    def n_markers(self) -> int:
        return len(self.markers)


@dataclass(frozen=True)
class PatchGrid:
    """The header of IMOD's local file: patch counts, first centre, spacing and minimum patch size."""

    n: tuple[int, int]
    start: tuple[int, int]
    spacing: tuple[int, int]
    min_size: tuple[int, int]


def surface_groups(xyz_px: NDArray[np.float64]) -> NDArray[np.intp]:
    """``(n_markers,)`` 1 for a fiducial on the bottom surface, 2 on the top, for finite positions: IMOD's
    ``find_surfaces`` as the tomogram positioning runs it (`reconstruction.positioning.analyse_surfaces`)."""
    try:
        bottom = analyse_surfaces(xyz_px, 2).bottom_of
    except ValueError as exc:
        raise AlignmentError(f"SurfacesToAnalyze 2: {exc}") from None
    return np.where(bottom, 1, 2).astype(np.intp)


def patch_grid(opts: LocalOptions, image_size: tuple[int, int], marker_xy_imod: NDArray[np.float64]) -> PatchGrid:
    """The patch grid of IMOD's legacy or target mode (module docstring)."""
    n, start, spacing, min_size = [], [], [], []
    for axis in (0, 1):
        overlap = float(opts.min_size_or_overlap[axis])
        if opts.n_patches is not None:
            full = int(image_size[axis])
            count = max(2, int(opts.n_patches[axis]))
            size = int(overlap) if overlap > 1 else int(full / (count - overlap * (count - 1)))
            step = (full - size) // max(1, count - 1)
            first = size // 2
        else:
            lo = float(np.min(marker_xy_imod[:, axis])) - BORDER_PX
            extent = float(np.max(marker_xy_imod[:, axis])) + BORDER_PX - lo
            target = float(opts.target_size_px[axis])
            count = max(2, int((extent - target) / (target * (1.0 - overlap)) + 1))
            size = int(extent / (count - overlap * (count - 1)))
            if size > 1.05 * target:
                count += 1
                size = int(extent / (count - overlap * (count - 1)))
            if count > MAX_PATCHES_PER_AXIS:
                raise AlignmentError(f"TargetPatchSizeXandY {target:g} px gives {count} patches along"
                                     f" {'XY'[axis]} (at most {MAX_PATCHES_PER_AXIS}); give a larger target size")
            step = int((extent - size) / max(1, count - 1)) + 1
            first = int(lo + size // 2)
        n.append(count)
        start.append(first)
        spacing.append(step)
        min_size.append(size)
    return PatchGrid((n[0], n[1]), (start[0], start[1]), (spacing[0], spacing[1]), (min_size[0], min_size[1]))


def grow_patches(opts: LocalOptions, image_size: tuple[int, int], marker_xy_imod: NDArray[np.float64],
                 surface: NDArray[np.intp] | None = None) -> tuple[PatchGrid, list[Patch]]:
    """The grid and the patches, X fastest, each grown until it holds enough fiducials.

    ``marker_xy_imod`` is ``(n_markers, 2)``, the fiducials' global X, Y in the aligned frame (IMOD's
    ``fid.xyz``); ``surface`` their `surface_groups` (used when ``opts.surfaces >= 2``).
    """
    xy = np.asarray(marker_xy_imod, dtype=float)
    grid = patch_grid(opts, image_size, xy)
    two = opts.surfaces >= 2 and surface is not None
    limit = (2 * int(image_size[0]), 2 * int(image_size[1]))
    patches = []
    for iy in range(grid.n[1]):
        for ix in range(grid.n[0]):
            cx, cy = grid.start[0] + ix * grid.spacing[0], grid.start[1] + iy * grid.spacing[1]
            wx, wy = grid.min_size[0] - GROWTH_PX, grid.min_size[1] - GROWTH_PX
            inside = np.zeros(len(xy), dtype=bool)
            while wx < limit[0] and wy < limit[1]:
                wx, wy = wx + GROWTH_PX, wy + GROWTH_PX
                x0, y0 = cx - wx // 2, cy - wy // 2
                inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x0 + wx) & (xy[:, 1] >= y0) & (xy[:, 1] <= y0 + wy)
                per_surface = min(int(np.sum(inside & (surface == 1))), int(np.sum(inside & (surface == 2)))) \
                    if two else opts.min_fids_surface
                if inside.sum() >= opts.min_fids_total and per_surface >= opts.min_fids_surface:
                    break
            else:
                raise AlignmentError(f"patch ({ix + 1}, {iy + 1}) cannot reach {opts.min_fids_total} fiducials"
                                     + (f" and {opts.min_fids_surface} per surface" if two else "")
                                     + "; lower MinFidsTotalAndEachSurface")
            patches.append(Patch(ix, iy, (cx, cy), (wx, wy), np.flatnonzero(inside)))
    return grid, patches
