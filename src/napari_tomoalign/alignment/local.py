"""Local alignments as IMOD's ``tiltalign`` makes them: patches, a fit per patch, refinement transforms.

After the global fit the field is cut into patches; each patch's fiducials are fitted again with the
local variable options (both `local_options`), every local variable an increment on the
view's global value, from the global solution, by `solve_patch`. With the markers held
(``fix_xyz``) they keep their global positions, re-centred on the patch; with them free they are solved
too and afterwards turned about y to best match their global x, z, that angle leaving the local tilts.
Views without a point in a patch are left out of its fit; their increments are interpolated in view
number (the nearest value at the ends) and their refinement is the identity. Views left out of the global fit
(an ``ExcludeList``, ``--exclude-views``) are left out of every patch, with IMOD's unit refinement.

The result holds, per patch and view, the local parameters, IMOD's local-file content
(`io.imod_local.LocalTransforms`: tilt and X-tilt increments, Z factors and the refinement transforms
``G . L^-1``, see `transforms`) and the residuals. ``mean_residual_px`` is IMOD's
``Residual error local mean``: the mean over patches of each patch's mean residual length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..compute import blas_threads_for
from ..conventions import image_centre
from ..errors import AlignmentError
from ..io.imod_local import LocalTransforms
from ._lm import Observations
from .local_options import LocalOptions, Patch, PatchGrid, grow_patches, patch_mappings, surface_groups
from .model import DMAG, DX, DY, MAG, ROT, SKEW, TILT, XTILT, project, view_matrices
from .options import ModelSettings
from .result import Alignment, StageReport
from .stages import EVERYTHING, StageRunner, settings_plan
from .transforms import (
    compose_refinement,
    frame_from_transforms,
    imod_transforms,
    view_transforms,
    view_z_factors,
    with_optimal_shifts,
)

INCREMENT_COLUMNS = (TILT, ROT, MAG, DMAG, SKEW, XTILT)  # the angles and scales a patch changes


@dataclass(frozen=True)
class PatchResult:
    """One patch's fit: ``view_params`` ``(n_views, 9)`` (local values for every view), its residuals."""

    patch: Patch
    view_params: NDArray[np.float64]
    rms_residual_px: float
    mean_residual_px: float
    n_unknowns: int
    views_fitted: NDArray[np.intp]


@dataclass(frozen=True)
class LocalAlignments:
    """All patches of a local alignment and IMOD's local-file content (module docstring)."""

    grid: PatchGrid
    patches: list[PatchResult]
    local_transforms: LocalTransforms
    options: LocalOptions

    @property
    def patch_mean_residuals_px(self) -> NDArray[np.float64]:
        return np.array([p.mean_residual_px for p in self.patches])

    @property
    def mean_residual_px(self) -> float:
        """IMOD's ``Residual error local mean``: the mean of the patches' mean residuals."""
        return float(np.mean(self.patch_mean_residuals_px))

    @property
    def residual_range_px(self) -> tuple[float, float]:
        m = self.patch_mean_residuals_px
        return float(m.min()), float(m.max())


def _turn_to_global(params: NDArray[np.float64], xyz: NDArray[np.float64], target: NDArray[np.float64]) -> tuple[
        NDArray[np.float64], NDArray[np.float64]]:
    """Turn free local markers about y to best match ``target`` in x, z; take the angle off the tilts."""
    num = np.sum(xyz[:, 2] * target[:, 0] - xyz[:, 0] * target[:, 2])
    den = np.sum(xyz[:, 0] * target[:, 0] + xyz[:, 2] * target[:, 2])
    beta = float(np.arctan2(num, den))
    c, s = np.cos(beta), np.sin(beta)
    turned = np.stack([c * xyz[:, 0] + s * xyz[:, 2], xyz[:, 1], -s * xyz[:, 0] + c * xyz[:, 2]], axis=1)
    out = params.copy()
    out[:, TILT] -= beta
    return out, turned


def _fill_views(local: NDArray[np.float64], glob: NDArray[np.float64], fitted: NDArray[np.intp]) -> NDArray[np.float64]:
    """Local parameters of every view: fitted views as solved, the others' increments interpolated."""
    out = glob.copy()
    out[fitted] = local
    views = np.arange(len(glob))
    for col in INCREMENT_COLUMNS:
        inc = local[:, col] - glob[fitted, col]
        out[:, col] = glob[:, col] + np.interp(views, fitted, inc)
        out[fitted, col] = local[:, col]
    return out


def solve_patch(
    view: NDArray[np.intp], marker: NDArray[np.intp], xy_c: NDArray[np.float64], start: NDArray[np.float64],
    xyz: NDArray[np.float64], settings: ModelSettings, *, fix_xyz: bool, should_stop: Callable[[], bool] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[StageReport]]:
    """Fit ``settings``' mappings (increments on ``start``) to one patch's observations by the one stage runner.

    ``view``, ``marker``: ``(n_obs,)`` rows of ``start`` ``(n_views, 9)`` and of ``xyz`` ``(n_markers, 3)``
    (every marker observed); ``xy_c``: centred positions. Views without observations keep their start values.
    With ``fix_xyz`` the markers are held (IMOD's ``FixXYZCoordinates 1``), else solved and re-centred.
    Returns the parameters, marker positions, ``(n_obs, 2)`` residuals (predicted minus observed, in the given
    order) and the stage reports.
    """
    obs = Observations(view, marker, xy_c, len(start), len(xyz), np.ones(len(view)))
    included = np.bincount(view, minlength=len(start)) > 0
    ref = int(np.argmin(np.where(included, np.abs(start[:, TILT]), np.inf)))
    runner = StageRunner(obs, np.array(start, dtype=float), np.array(xyz, dtype=float), included, ref, 1000,
                         should_stop=should_stop, settings=settings, fix_xyz=fix_xyz)
    n_q = runner.layout(EVERYTHING).n_q
    if not fix_xyz and n_q + 3 * len(xyz) > 2 * len(obs):
        raise AlignmentError(f"{len(obs)} observations give {2 * len(obs)} equations for"
                             f" {n_q + 3 * len(xyz)} unknowns; fix or group more variables")
    with blas_threads_for(n_q, 0 if fix_xyz else len(xyz), len(obs)):
        for stage in settings_plan(markers_known=True):
            runner.run(stage)
    residuals = project(runner.params, runner.xyz, view, marker, runner.beam) - xy_c
    return runner.params, runner.xyz, residuals, runner.reports


def _fit_patch(patch: Patch, obs: tuple[NDArray, NDArray, NDArray], raw_tilts_deg: NDArray[np.float64],
               gp: NDArray[np.float64], global_xyz: NDArray[np.float64], opts: LocalOptions) -> PatchResult:
    view, marker, xy_c = obs
    inside = np.isin(marker, patch.markers)
    v_all, m_all, o = view[inside], marker[inside], xy_c[inside]
    counts = np.bincount(v_all, minlength=len(raw_tilts_deg))
    fitted = np.flatnonzero(counts)
    v = np.searchsorted(fitted, v_all)
    m = np.searchsorted(patch.markers, m_all)
    centroid = global_xyz[patch.markers].mean(axis=0)
    xyz0 = global_xyz[patch.markers] - centroid
    mappings = patch_mappings(opts, fitted, np.degrees(gp[:, TILT]), raw_tilts_deg, counts)
    settings = ModelSettings(mappings=mappings, rotation_angle_deg=0.0, local_alignments=True)
    params, xyz, resid, reports = solve_patch(v, m, o, gp[fitted], xyz0, settings, fix_xyz=opts.fix_xyz)
    n_unknowns = settings.n_geometric + (0 if opts.fix_xyz else 3 * (len(xyz0) - 1))
    if not opts.fix_xyz:
        params, xyz = _turn_to_global(params, xyz, xyz0)
        params, resid = with_optimal_shifts(params, xyz, v, m, o)
    a, _ = view_matrices(params, derivatives=False)
    params[:, [DX, DY]] -= a @ centroid  # shifts of the patch frame back to the global marker frame
    length = np.hypot(*resid.T)
    return PatchResult(patch, _fill_views(params, gp, fitted), float(np.sqrt(np.mean(length**2))),
                       float(np.mean(length)), n_unknowns, fitted)


def local_alignments(
    obs_view: ArrayLike,
    obs_marker: ArrayLike,
    obs_xy_px: ArrayLike,
    raw_tilts_deg: ArrayLike,
    alignment: Alignment,
    options: LocalOptions | None = None,
    *,
    global_xf: NDArray[np.float64] | None = None,
    pixel_size: float = 0.0,
    write_z_factors: bool = False,
) -> LocalAlignments:
    """Solve local alignments over patches of the field, starting from the global ``alignment``.

    Parameters
    ----------
    obs_view, obs_marker
        ``(n_obs,)`` 0-based view and marker *index* (a row of ``alignment.xyz_px``) of each observation.
    obs_xy_px
        ``(n_obs, 2)`` observed (x, y) positions, numpy pixel convention (first pixel centre at 0).
    raw_tilts_deg
        ``(n_views,)`` nominal tilts (they pick the minimum-tilt view).
    alignment
        The global fit: its parameters (views out of its fit are left out of every patch) and marker positions.
    options
        Patch layout and local variables (`local_options.local_options_from_com` reads an align.com).
    global_xf
        ``(n_views, 2, 3)`` the global transforms (the ``.xf``) the refinements are composed with and the aligned
        frame is found from (`transforms.frame_from_transforms`); None: the alignment's own
        (`transforms.imod_transforms`, about its axis Z shift).
    pixel_size
        Written to the local file's header (IMOD: the model's pixel size in Angstrom).
    write_z_factors
        Also put each patch's Z factors in the local file (IMOD does with ``OutputZFactorFile``).
    """
    opts = options or LocalOptions()
    view = np.asarray(obs_view, dtype=np.intp)
    marker = np.asarray(obs_marker, dtype=np.intp)
    raw = np.asarray(raw_tilts_deg, dtype=float)
    gp = np.where(alignment.view_determined[:, None], alignment.full_params, np.nan)
    if gp.shape != (len(raw), 9):
        raise AlignmentError(f"the global alignment has {len(gp)} views, the tilts {len(raw)}; they must match")
    xf = imod_transforms(alignment) if global_xf is None else np.asarray(global_xf, dtype=float)
    frame = frame_from_transforms(gp, xf)
    good_view = np.all(np.isfinite(gp), axis=1)
    good_marker = alignment.marker_included
    use = good_view[view] & good_marker[marker]
    xy_c = np.asarray(obs_xy_px, dtype=float) - image_centre(alignment.image_size)
    ok_markers = np.flatnonzero(good_marker)
    surface = np.zeros(len(good_marker), dtype=np.intp)
    if opts.surfaces >= 2:
        surface[ok_markers] = surface_groups(alignment.xyz_px[ok_markers])
    xy_imod = alignment.xyz_px[:, :2] - frame[:2] + np.asarray(alignment.image_size, float) / 2.0  # IMOD's fid.xyz
    grid, patches = grow_patches(opts, alignment.image_size, np.where(good_marker[:, None], xy_imod, np.inf), surface)
    results = [_fit_patch(p, (view[use], marker[use], xy_c[use]), raw, gp, alignment.xyz_px, opts) for p in patches]
    content = _file_content(grid, results, gp, xf, frame, pixel_size, write_z_factors)
    return LocalAlignments(grid, results, content, opts)


def _file_content(grid: PatchGrid, results: list[PatchResult], gp: NDArray[np.float64], global_xf: NDArray[np.float64],
                  frame: NDArray[np.float64], pixel_size: float, write_z: bool) -> LocalTransforms:
    ok = np.all(np.isfinite(gp), axis=1)
    n_p, n_v = len(results), len(gp)
    tilt = np.zeros((n_p, n_v))
    xtilt = np.zeros((n_p, n_v))
    zfac = np.zeros((n_p, n_v, 2))
    xf = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n_p, n_v, 1, 1))
    for k, r in enumerate(results):
        lp = r.view_params
        tilt[k, ok] = np.degrees(lp[ok, TILT] - gp[ok, TILT])
        xtilt[k, ok] = np.degrees(lp[ok, XTILT] - gp[ok, XTILT])
        zfac[k, ok] = view_z_factors(lp[ok])
        fitted = np.zeros(n_v, dtype=bool)
        fitted[r.views_fitted] = True
        fitted &= ok
        local_xf = view_transforms(lp[fitted], frame)
        xf[k, fitted] = compose_refinement(global_xf[fitted], local_xf)
    has_xtilt = bool(np.any(xtilt != 0))
    return LocalTransforms(grid.n, grid.start, grid.spacing, float(pixel_size), tilt, xf,
                           xtilt if has_xtilt else None, zfac if write_z else None)
