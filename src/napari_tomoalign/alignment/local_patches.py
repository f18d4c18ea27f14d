"""Where the local patches lie and which fiducials each holds, as IMOD's ``tiltalign`` lays them out.

Patch centres sit on a regular grid (`../shared/docs/imod-full-model.md`, section 4.1). In legacy mode
(``NumberOfLocalPatchesXandY``) the grid spans the image; in target mode (``TargetPatchSizeXandY``) it
spans the fiducials' extent plus a 5 px border. A fiducial belongs to a patch when its global position
in the aligned frame (IMOD's ``fid.xyz`` X and Y, IMOD pixel coordinates) lies within the patch. A patch
starts at the minimum size and grows by 40 px on both axes until it holds ``min_fids_total`` fiducials
and, with two surfaces analysed, ``min_fids_surface`` on each of them. IMOD does the arithmetic on
integers (truncating), and so does this module, so that the centres and sizes are IMOD's.

`surface_groups` splits the fiducials into a bottom and a top surface as IMOD's ``find_surfaces``
does: fit a plane to all of them, turn the points by its slope, split at the middle of the turned Z
range, fit a plane to each half, repeat until the split is stable, then move single points between
the halves while that lowers the summed mean distance to the planes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import AlignmentError
from .local_options import LocalOptions

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


def _plane(x: NDArray, y: NDArray, z: NDArray) -> tuple[float, float, float, float, float, float]:
    """IMOD's ``lsfit2_resid``: ``z = a x + b y + c``; X-axis tilt ``alpha``, adjusted slope, mean |residual|."""
    if len(x) > 2:
        design = np.stack([x, y, np.ones_like(x)], axis=1)
        a, b, c = np.linalg.lstsq(design, z, rcond=None)[0]
    else:
        b = 0.0
        a, c = np.polyfit(x, z, 1) if len(x) == 2 and x[0] != x[1] else (0.0, float(np.mean(z)))
    resid = float(np.mean(np.abs(z - (a * x + b * y + c))))
    alpha = float(np.arctan(b))
    slope = float(a / (np.cos(alpha) - b * np.sin(alpha)))
    return float(a), float(b), float(c), alpha, slope, resid


def _two_fits(xyz: NDArray, group: NDArray) -> tuple[list[tuple], float, float, float]:
    """Plane fits to the bottom (1) and top (2) points; their count-weighted mean slope and X-tilt, and error.

    A surface with no point takes the other's plane (as IMOD gives a one-point surface the other's slope).
    """
    counts = [int(np.sum(group == g)) for g in (1, 2)]
    fits = [_plane(*xyz[group == g].T) if counts[k] else None for k, g in enumerate((1, 2))]
    bottom = fits[0] if fits[0] is not None else fits[1]
    top = fits[1] if fits[1] is not None else bottom
    assert bottom is not None and top is not None
    n = max(sum(counts), 1)
    slope = (counts[0] * bottom[4] + counts[1] * top[4]) / n
    alpha = (counts[0] * bottom[3] + counts[1] * top[3]) / n
    return [bottom, top], slope, alpha, counts[0] * bottom[5] + counts[1] * top[5]


def _plane_distance(xyz: NDArray, fit: tuple) -> NDArray:
    a, b, c = fit[:3]
    return np.abs(xyz[:, 2] - (a * xyz[:, 0] + b * xyz[:, 1] + c))


def surface_groups(xyz_px: NDArray[np.float64]) -> NDArray[np.intp]:
    """``(n_markers,)`` 1 for a fiducial on the bottom surface, 2 on the top (module docstring)."""
    xyz = np.asarray(xyz_px, dtype=float)
    n = len(xyz)
    if n < 2:
        return np.ones(n, dtype=np.intp)
    _, _, _, alpha, slope, _ = _plane(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    group = np.zeros(n, dtype=np.intp)
    for it in range(6):
        theta = -np.arctan(slope)
        zp = xyz[:, 2] * np.cos(alpha) - xyz[:, 1] * np.sin(alpha)
        zrot = xyz[:, 0] * np.sin(theta) + zp * np.cos(theta)
        new = np.where(zrot <= (zrot.min() + zrot.max()) / 2.0, 1, 2)
        changed = it == 0 or bool(np.any(new != group))
        group = new
        fits, slope, alpha, err = _two_fits(xyz, group)
        if not changed:
            break
    checked: set[int] = set()
    for _ in range(1000):
        if len(checked) >= n // 2:
            break
        dist = np.where(group == 1, _plane_distance(xyz, fits[0]), _plane_distance(xyz, fits[1]))
        dist[list(checked)] = -1.0
        worst = int(np.argmax(dist))
        n_bot, n_top = int(np.sum(group == 1)), int(np.sum(group == 2))
        donor, receiver = (n_bot, n_top) if group[worst] == 1 else (n_top, n_bot)
        if donor < 4 or receiver < 3:
            checked.add(worst)
            continue
        trial = group.copy()
        trial[worst] = 3 - trial[worst]
        t_fits, t_slope, t_alpha, t_err = _two_fits(xyz, trial)
        if t_err < err:
            group, fits, slope, alpha, err = trial, t_fits, t_slope, t_alpha, t_err
            checked.clear()
        else:
            checked.add(worst)
    return group


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
