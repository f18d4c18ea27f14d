"""Per-view 2-D transforms from raw images to the aligned frame, their Z factors, and where that frame lies.

A view with full-model matrix ``A`` (`model.view_matrices`), shift ``d``, tilt ``theta`` and X-tilt ``phi``
maps a raw centred image point ``p`` to the aligned frame by ``F p + D`` with
(`../shared/docs/imod-full-model.md`, section 1.5)::

    T = [[cos theta, sin phi sin theta], [0, cos phi]],   F = T a^-1,   a = A[:, :2]
    D = -F d - T f_xy - c f_z,                            c = F A[:, 2]

``f`` is the *frame offset*: where the aligned frame's origin (tilt axis in x and z, centre row in y) lies in
the centroid-centred marker frame. A specimen point ``X`` (centroid-centred) then lands at
``T (X - f)_xy + c (X - f)_z``: the tomogram position ``X - f`` projected with the view's angles, whose z
coefficient ``c`` is the standard ``(cos phi sin theta, -sin phi)`` plus IMOD's Z factors (`z_factors`).
The parameters have any beam tilt folded in (`model.without_beam_tilt`, as `Alignment.full_params`).

An alignment's own transforms (`imod_transforms`, the ``.xf``; about the image centre ``c``: ``X' = A (X -
c) + D + c``) place the frame as IMOD's ``tiltalign`` writes its ``.tltxf``: the translations hold
``x0 cos theta + z0 sin theta`` in x and ``y0`` in y, neither X-tilt nor Z factors (so they differ from
`view_transforms` when there are), with the frame:

- the tilt axis lies at the Z of the marker centroid, plus an optional ``axis_z_shift_px``
  (IMOD's ``AxisZShift``; IMOD only *reports* the midpoint of the markers' Z range as a suggestion);
- the Y shifts average zero over the views;
- in X, the tilt axis goes where the least image is lost over all views, as ``tiltalign`` places it
  (`x_origin`): a scan in steps of `X_SCAN_STEP_PX` around the lowest tilt's centre, so that the .xf equals
  ``tiltalign``'s for the same solution, and the origin hardly moves when a view is left out (session 15's
  origin, the reference view's image centre, moved a tomogram 8 px in X when the lowest tilt was excluded from its
  new user's series, 0.29 px on BBa, and sat 0.4 px from ``tiltalign``'s on BBa).

The local transforms (`view_transforms` with the frame `frame_from_transforms` finds in the global ones)
are the full model's; IMOD's local file holds their refinements ``G . L^-1`` (`compose_refinement`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .model import COMP, DX, DY, TILT, XTILT, view_matrices, with_identity_views
from .result import Alignment


def _t_matrix(params: NDArray[np.float64]) -> NDArray[np.float64]:
    th, ph = params[:, TILT], params[:, XTILT]
    t = np.zeros((len(params), 2, 2))
    t[:, 0, 0], t[:, 0, 1], t[:, 1, 1] = np.cos(th), np.sin(ph) * np.sin(th), np.cos(ph)
    return t


def _standard_z(params: NDArray[np.float64]) -> NDArray[np.float64]:
    th, ph = params[:, TILT], params[:, XTILT]
    return np.stack([np.cos(ph) * np.sin(th), -np.sin(ph)], axis=1)


def full_linear_parts(params: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``F`` ``(n_views, 2, 2)`` and the z coefficient ``c`` ``(n_views, 2)`` of each view."""
    p = np.asarray(params, dtype=float)
    a, _ = view_matrices(p, derivatives=False)
    f = _t_matrix(p) @ np.linalg.inv(a[:, :, :2])
    return f, np.einsum("nij,nj->ni", f, a[:, :, 2])


def view_transforms(params: NDArray[np.float64], frame_px: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, 2, 3)`` raw-to-aligned transforms ``[F | D]`` about the image centre (module docstring)."""
    p = np.asarray(params, dtype=float)
    f, c = full_linear_parts(p)
    fr = np.asarray(frame_px, dtype=float)
    d = np.einsum("nij,nj->ni", f, p[:, [DX, DY]])
    shift = -d - np.einsum("nij,j->ni", _t_matrix(p), fr[:2]) - c * fr[2]
    return np.concatenate([f, shift[:, :, None]], axis=2)


def frame_from_transforms(params: NDArray[np.float64], transforms: NDArray[np.float64]) -> NDArray[np.float64]:
    """The frame offset ``f`` ``(3,)`` that best explains given transforms' translations (least squares).

    Views whose transform or parameters are not finite are left out.
    """
    p = np.asarray(params, dtype=float)
    xf = np.asarray(transforms, dtype=float)
    ok = np.all(np.isfinite(p), axis=1) & np.all(np.isfinite(xf.reshape(len(xf), -1)), axis=1)
    f, c = full_linear_parts(p[ok])
    rhs = -xf[ok, :, 2] - np.einsum("nij,nj->ni", f, p[ok][:, [DX, DY]])
    design = np.concatenate([_t_matrix(p[ok]), c[:, :, None]], axis=2).reshape(-1, 3)
    return np.linalg.lstsq(design, rhs.ravel(), rcond=None)[0]


def view_z_factors(params: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n_views, 2)`` IMOD's Z factors (xzfac, yzfac): the z coefficient beyond the standard one, per unit
    of compression."""
    p = np.asarray(params, dtype=float)
    _, c = full_linear_parts(p)
    return c / p[:, COMP, None] - _standard_z(p)


def compose_refinement(global_xf: NDArray[np.float64], local_xf: NDArray[np.float64]) -> NDArray[np.float64]:
    """``G . L^-1`` per view: from locally aligned to globally aligned coordinates (``(n, 2, 3)`` each)."""
    g = np.asarray(global_xf, dtype=float)
    lo = np.asarray(local_xf, dtype=float)
    a = g[:, :, :2] @ np.linalg.inv(lo[:, :, :2])
    d = g[:, :, 2] - np.einsum("nij,nj->ni", a, lo[:, :, 2])
    return np.concatenate([a, d[:, :, None]], axis=2)


def with_optimal_shifts(params: NDArray[np.float64], xyz_px: NDArray[np.float64], view_index: NDArray[np.intp],
                        marker_index: NDArray[np.intp], obs_xy_px: NDArray[np.float64]
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``params`` with each seen view's least-squares shift, and the ``(n_obs, 2)`` residuals."""
    params = np.array(params, dtype=float)
    a, _ = view_matrices(params, derivatives=False)
    pred_c = np.einsum("nij,nj->ni", a[view_index], np.asarray(xyz_px, float)[marker_index])
    count = np.bincount(view_index, minlength=len(params)).astype(float)
    shift = np.stack([np.bincount(view_index, obs_xy_px[:, k] - pred_c[:, k], minlength=len(params))
                      for k in range(2)], axis=1) / np.maximum(count, 1.0)[:, None]
    seen = count > 0
    params[seen, DX], params[seen, DY] = shift[seen, 0], shift[seen, 1]
    return params, pred_c + shift[view_index] - obs_xy_px


@dataclass(frozen=True)
class AlignedFrame:
    """Where the aligned frame sits relative to the marker centroid.

    Attributes
    ----------
    x0_px, y0_px, z0_px
        Position of the tilt axis (x0, z0) and of the aligned centre row (y0) in the centroid-
        centred specimen frame.
    z_range_midpoint_px
        Midpoint of the markers' Z range, relative to their centroid (IMOD reports this too).
    """

    x0_px: float
    y0_px: float
    z0_px: float
    z_range_midpoint_px: float


def z_range_midpoint(xyz_px: NDArray[np.float64]) -> float:
    """The middle of the z range of the markers with finite positions (0 for none): IMOD's ``AxisZShift 1000``."""
    z = xyz_px[np.all(np.isfinite(xyz_px), axis=1), 2]
    return float((z.min() + z.max()) / 2.0) if z.size else 0.0


def linear_parts(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2, 2)`` the linear part ``F_j = T a^-1`` of each raw-to-aligned transform (X-stretch, skew
    and X-tilt enter it; with them at 0 it is ``R(-alpha) / s``). Rows of views without parameters are NaN."""
    params, undetermined = with_identity_views(al.full_params)
    out = full_linear_parts(params)[0]
    out[undetermined] = np.nan
    return out


def _model_offsets(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2)`` ``F_j d_j``: each view's shift expressed in the aligned frame."""
    return np.einsum("vij,vj->vi", linear_parts(al), al.shifts_px)


X_SCAN_STEP_PX = 0.1  # `x_origin`'s step, tiltalign's


def x_origin(dx: NDArray[np.float64], theta: NDArray[np.float64], lowest: int, half_width: float) -> float:
    """The tilt axis's X position ``x0`` that loses the least image over the views, as IMOD's ``tiltalign`` finds it:
    each view's X translation becomes ``dx - x0 cos theta`` (``dx``: with the axis at the centroid, shifted in Z), and
    a view of half-width ``half_width`` (IMOD's ``nx / 2``) loses what that translation exceeds of the margin its
    foreshortening frees, ``half_width (1 - cos theta)``. Candidates every `X_SCAN_STEP_PX` within a tenth of the
    half-width either side of the lowest tilt's ``dx[lowest]`` (``int(2 half_width)`` steps); the first with the
    least loss, as tiltalign's strict comparison takes it."""
    cos = np.cos(theta)
    steps = np.arange(int(2 * half_width) + 1, dtype=float)
    tries = dx[lowest] + X_SCAN_STEP_PX * (steps - half_width)
    over = np.abs(dx[None, :] - tries[:, None] * cos[None, :]) - half_width * (1.0 - cos[None, :])
    return float(tries[int(np.argmin(np.where(over > 0.0, over, 0.0).sum(axis=1)))])


def lowest_tilt_view(al: Alignment) -> int:
    """The view in the fit with the smallest nominal |tilt| (the first of equals), as tiltalign finds its minimum-tilt
    view: in single precision, from the angles with the ``AngleOffset`` added, then taken away again in radians, so that
    with an offset of -0.5 deg BBa's -1 deg view is a hair nearer zero than its +1 deg view (aligna.com: tiltalign's
    X origin is on the -1 deg view's grid, 0.014 px from the +1 deg view's)."""
    add = np.float32(getattr(al.settings, "angle_offset_deg", 0.0) or 0.0)
    dtor = np.float32(0.0174532)  # tiltalign's own constant
    tilt = (np.asarray(al.nominal_tilt_angles_deg, dtype=np.float32) + add) * dtor
    dev = np.abs(tilt - add * dtor)
    return int(np.argmin(np.where(al.view_determined & np.isfinite(dev), dev, np.float32(np.inf))))


def aligned_frame(al: Alignment, axis_z_shift_px: float | None = None) -> AlignedFrame:
    """The placement of the aligned frame (see the module docstring); ``axis_z_shift_px`` None: the
    alignment's own (`Alignment.axis_z_shift_px`)."""
    rd = _model_offsets(al)
    ok = al.view_determined
    theta = np.radians(al.tilt_angles_deg)
    z0 = float(al.axis_z_shift_px if axis_z_shift_px is None else axis_z_shift_px)
    dx = -rd[:, 0] - z0 * np.sin(theta)
    lowest = lowest_tilt_view(al)
    x0 = x_origin(dx[ok], theta[ok], int(np.count_nonzero(ok[:lowest])), al.image_size[0] / 2.0) if ok.any() else 0.0
    y0 = float(-np.mean(rd[ok, 1]))
    return AlignedFrame(x0, y0, z0, z_range_midpoint(al.xyz_px))


def imod_transforms(al: Alignment, axis_z_shift_px: float | None = None) -> NDArray[np.float64]:
    """``(n_views, 2, 3)`` transforms ``[A | D]`` from raw to aligned images, about the image centre.

    Rows of undetermined views are NaN. ``axis_z_shift_px`` None (the default): the alignment's own.
    """
    frame = aligned_frame(al, axis_z_shift_px)
    theta = np.radians(al.tilt_angles_deg)
    out = np.empty((al.n_views, 2, 3))
    out[:, :, :2] = linear_parts(al)
    rd = _model_offsets(al)
    out[:, 0, 2] = -rd[:, 0] - frame.x0_px * np.cos(theta) - frame.z0_px * np.sin(theta)
    out[:, 1, 2] = -rd[:, 1] - frame.y0_px
    return out


def aligned_marker_positions(al: Alignment, axis_z_shift_px: float | None = None) -> NDArray[np.float64]:
    """``(n_markers, 3)`` marker positions in the aligned frame, as IMOD's ``fid.xyz`` gives them.

    x and y are aligned-image pixel coordinates (numpy convention, first pixel centre at 0), z is
    relative to the tilt axis.
    """
    frame = aligned_frame(al, axis_z_shift_px)
    c = al.image_centre
    xyz = al.xyz_px
    return np.stack([xyz[:, 0] - frame.x0_px + c[0], xyz[:, 1] - frame.y0_px + c[1], xyz[:, 2] - frame.z0_px], axis=1)


def x_tilts_deg(al: Alignment) -> NDArray[np.float64]:
    """``(n_views,)`` each view's X-axis tilt in degrees (IMOD's ``.xtilt``; 0 for the default model)."""
    return np.degrees(al.full_params[:, XTILT])


def z_factors(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2)`` IMOD's Z factors ``(xzfac, yzfac)`` (``OutputZFactorFile``, `view_z_factors`):
    how far a point's aligned x and y move per unit of z beyond what the tilt and X-tilt explain; 0 for the
    default model. Rows of views without parameters are NaN."""
    params, undetermined = with_identity_views(al.full_params)
    out = view_z_factors(params)
    out[undetermined] = np.nan
    return out
