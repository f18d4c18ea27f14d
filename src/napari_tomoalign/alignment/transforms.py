"""Per-view 2-D transforms that take raw images to the aligned frame, placed as IMOD places them.

An aligned view has the tilt axis vertical (along y) through the image centre. A raw image point
``X`` goes to ``X' = A (X - c) + D + c`` with ``A = R(-alpha) / s``. The placement of the aligned
frame follows what IMOD's ``tiltalign`` writes (checked against its ``out.tltxf``):

- the tilt axis lies at the Z of the marker centroid, plus an optional ``axis_z_shift_px``
  (IMOD's ``AxisZShift``; IMOD only *reports* the midpoint of the markers' Z range as a suggestion);
- the Y shifts average zero over the views;
- in X, the reference (minimum-tilt) view keeps its image centre on the aligned centre, so the
  view with the most specimen content loses no image to the shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import local_geometry as geometry
from .model import XTILT, with_identity_views
from .result import Alignment


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


def linear_parts(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2, 2)`` the linear part ``F_j = T a^-1`` of each raw-to-aligned transform
    (`local_geometry.linear_parts`: X-stretch, skew and X-tilt enter it; with them at 0 it is
    ``R(-alpha) / s``). Rows of views without parameters are NaN."""
    params, undetermined = with_identity_views(al.full_params)
    out = geometry.linear_parts(params)[0]  # the beam tilt is already folded in
    out[undetermined] = np.nan
    return out


def _model_offsets(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2)`` ``F_j d_j``: each view's shift expressed in the aligned frame."""
    return np.einsum("vij,vj->vi", linear_parts(al), al.shifts_px)


def aligned_frame(al: Alignment, axis_z_shift_px: float | None = None) -> AlignedFrame:
    """The placement of the aligned frame (see the module docstring); ``axis_z_shift_px`` None: the
    alignment's own (`Alignment.axis_z_shift_px`)."""
    rd = _model_offsets(al)
    ok = al.view_determined
    theta = np.radians(al.tilt_angles_deg)
    z = al.xyz_px[al.marker_included, 2]
    zmid = float((z.min() + z.max()) / 2.0) if z.size else 0.0
    z0 = float(al.axis_z_shift_px if axis_z_shift_px is None else axis_z_shift_px)
    ref = al.reference_view
    x0 = float(-(rd[ref, 0] + z0 * np.sin(theta[ref])) / np.cos(theta[ref]))
    y0 = float(-np.mean(rd[ok, 1]))
    return AlignedFrame(x0, y0, z0, zmid)


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


def apply_transform(xf: NDArray[np.float64], xy: NDArray[np.float64], centre: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map ``(n, 2)`` points by one ``(2, 3)`` transform about ``centre`` (same centre in and out)."""
    return (np.asarray(xy, dtype=float) - centre) @ xf[:, :2].T + xf[:, 2] + centre


def x_tilts_deg(al: Alignment) -> NDArray[np.float64]:
    """``(n_views,)`` each view's X-axis tilt in degrees (IMOD's ``.xtilt``; 0 for the default model)."""
    return np.degrees(al.full_params[:, XTILT])


def z_factors(al: Alignment) -> NDArray[np.float64]:
    """``(n_views, 2)`` IMOD's Z factors ``(xzfac, yzfac)`` (``OutputZFactorFile``, `local_geometry.z_factors`):
    how far a point's aligned x and y move per unit of z beyond what the tilt and X-tilt explain; 0 for the
    default model. Rows of views without parameters are NaN."""
    params, undetermined = with_identity_views(al.full_params)
    out = geometry.z_factors(params)
    out[undetermined] = np.nan
    return out
