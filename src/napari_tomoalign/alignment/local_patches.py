"""Where the local patches lie and which fiducials each holds, as IMOD's ``tiltalign`` lays them out.

Patch centres sit on a regular grid (`../shared/docs/imod-full-model.md`, section 4.1). In legacy mode
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

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import AlignmentError
from ..reconstruction.positioning import analyse_surfaces
from .local_options import MAX_PATCHES_PER_AXIS, LocalOptions

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
