"""Coarse translational alignment of a tilt series by cross-correlation, as IMOD's ``tiltxcorr`` does it.

Views are visited outward from the minimum-tilt (reference) view in both directions. Each view is
correlated with its neighbour toward the reference, after stretching the higher-tilt view across the
tilt axis by ``cos(theta_neighbour) / cos(theta_view)`` so that both show the specimen foreshortened
alike. Both images are tapered at their edges (10 %, at most 100 px) and padded (5 %, at most 20 px),
and the correlation is band-pass filtered with tiltxcorr's defaults (``FilterSigma1 0.03``,
``FilterRadius2 0.25``, ``FilterSigma2 0.05``). The peak is refined to sub-pixel by parabolas. The
pairwise shifts are accumulated into global ones. With ``cumulative=True`` the reference of each view is
instead the sum of all already-aligned views of its side, brought to the reference view's geometry
(Renken's cumulative correlation, tiltxcorr's ``CumulativeCorrelation`` with ``AbsoluteCosineStretch``).

The work is done on a binned copy, read view by view (a memory-mapped stack is never loaded whole).

The result relates a point ``q_ref`` of the reference view to its raw position in view ``j``:
``q_j = c + M_j (q_ref - c) + g_j``, with ``c`` the image centre, ``M_j`` the foreshortening across the
tilt axis (identity when no axis is given) and ``g_j`` the view's shift. It ignores parallax (the
specimen's thickness): that is for the tracker's 3-D model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ..errors import Cancelled
from . import _fourier as ft
from ._views import ViewReader

Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class CoarseAlignment:
    """Per-view shifts from cross-correlation (see the module docstring).

    Attributes
    ----------
    shifts_px
        ``(n_views, 2)`` the shift ``g_j`` (x, y) of each view in unbinned pixels (0 for the reference).
    stretch
        ``(n_views,)`` the foreshortening ``cos(theta_j) / cos(theta_ref)`` across the axis (1 if no axis).
    prominence
        ``(n_views,)`` correlation peak over the correlation's SD for each view (NaN for the reference);
        below about 5 the shift is doubtful.
    """

    shifts_px: NDArray[np.float64]
    stretch: NDArray[np.float64]
    tilt_axis_deg: float | None
    reference_view: int
    binning: int
    prominence: NDArray[np.float64]
    image_size: tuple[int, int]

    @property
    def centre(self) -> NDArray[np.float64]:
        return (np.asarray(self.image_size, dtype=float) - 1.0) / 2.0

    def matrix(self, j: int) -> NDArray[np.float64]:
        """``(2, 2)`` foreshortening ``M_j`` of view ``j`` relative to the reference view."""
        return stretch_matrix(self.tilt_axis_deg, float(self.stretch[j]))

    def map(self, xy: ArrayLike, from_view: int, to_view: int) -> NDArray[np.float64]:
        """Positions ``(n, 2)`` in view ``from_view`` carried to ``to_view`` (no parallax)."""
        c = self.centre
        p = np.atleast_2d(np.asarray(xy, dtype=float)) - c - self.shifts_px[from_view]
        ref = p @ np.linalg.inv(self.matrix(from_view)).T
        return ref @ self.matrix(to_view).T + self.shifts_px[to_view] + c

    def transforms(self) -> NDArray[np.float64]:
        """``(n_views, 2, 3)`` IMOD-style prealignment transforms ``[I | -g_j]`` (raw to aligned)."""
        xf = np.zeros((len(self.shifts_px), 2, 3))
        xf[:, 0, 0] = xf[:, 1, 1] = 1.0
        xf[:, :, 2] = -self.shifts_px
        return xf


def stretch_matrix(tilt_axis_deg: float | None, factor: float) -> NDArray[np.float64]:
    """``(2, 2)`` scaling by ``factor`` across the tilt axis (the axis at ``tilt_axis_deg`` from y, CCW)."""
    if tilt_axis_deg is None:
        return np.eye(2)
    a = np.radians(tilt_axis_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return rot @ np.diag([factor, 1.0]) @ rot.T


def _warp(img: NDArray[np.float32], m: NDArray[np.float64], shift: NDArray[np.float64]) -> NDArray[np.float32]:
    """``out(x) = img(m (x - c) + c + shift)`` with bilinear interpolation (x, y order), edges repeated."""
    rows, cols = img.shape
    c = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    m_rc = m[::-1, ::-1]
    off = (c + shift - m @ c)[::-1]
    return ndimage.affine_transform(img, m_rc, offset=off, order=1, mode="nearest", output=np.float32)


def default_binning(image_shape: tuple[int, int], target: int = 384) -> int:
    """The smallest binning that brings the larger side to ``target`` pixels or fewer."""
    return max(1, int(np.ceil(max(image_shape) / target)))


def coarse_align(
    stack: NDArray,
    tilt_angles_deg: ArrayLike,
    *,
    tilt_axis_deg: float | None = None,
    binning: int | None = None,
    cumulative: bool = False,
    filter_sigma1: float = 0.03,
    filter_radius2: float = 0.25,
    filter_sigma2: float = 0.05,
    max_shift_fraction: float = 0.4,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    skip_views: Sequence[int] = (),
) -> CoarseAlignment:
    """Coarse-align a tilt series by correlating neighbouring views (see the module docstring).

    Parameters
    ----------
    stack
        ``(n_views, rows, cols)`` raw tilt series; a memory map is read one view at a time.
    tilt_angles_deg
        ``(n_views,)`` nominal tilt angles in stack order.
    tilt_axis_deg
        Angle of the tilt axis from the image's y axis (counter-clockwise), for the cosine stretch.
        None correlates without stretching (tiltxcorr's ``NoCosineStretch``).
    binning
        Binning of the copy that is correlated; default: the larger side binned to at most 384 px.
    cumulative
        Correlate each view with the sum of the already-aligned views of its side.
    filter_sigma1, filter_radius2, filter_sigma2
        The band-pass filter (cycles per binned pixel), tiltxcorr's defaults.
    max_shift_fraction
        Largest shift searched between neighbours, as a fraction of the image size.
    progress, should_stop
        ``progress("coarse", done, total, text)`` after each view; `Cancelled` when ``should_stop()``.
    skip_views
        Views (blank ones, `blank_views`) not correlated: the chain goes from the view before to the view after,
        and a skipped view takes the shift of the view before it.
    """
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    skip = {int(v) for v in skip_views}
    reader = ViewReader(stack, clamp=True, cache=2)
    if len(tilts) != reader.n_views:
        raise ValueError(f"{len(tilts)} tilt angles for a stack of {reader.n_views} views; they must match")
    b = int(binning or default_binning(reader.shape))
    ref = next((int(v) for v in np.argsort(np.abs(tilts), kind="stable") if int(v) not in skip),
               int(np.argmin(np.abs(tilts))))
    order = np.argsort(tilts, kind="stable")
    pos = int(np.flatnonzero(order == ref)[0])
    sides = [list(order[pos + 1:]), list(order[:pos][::-1])]
    shifts = np.zeros((len(tilts), 2))
    prom = np.full(len(tilts), np.nan)
    first = reader.view(ref, b)
    shape = ft.taper_pad(first).shape
    filt = ft.bandpass(shape, filter_sigma1, filter_radius2, filter_sigma2)
    limit = (max_shift_fraction * first.shape[1], max_shift_fraction * first.shape[0])
    cos_ref = np.cos(np.radians(tilts[ref]))
    done = 1
    for side in sides:
        prev, prev_img, total = ref, first, first.astype(np.float64)
        for j in side:
            if should_stop is not None and should_stop():
                raise Cancelled("coarse alignment cancelled")
            done += 1
            if int(j) in skip:  # a blank view: the chain goes on from the view before it
                shifts[j] = shifts[prev]
                continue
            img = reader.view(int(j), b)
            if cumulative:
                shifts[j], prom[j] = _cumulative_step(img, total, shifts[prev] / b, tilts, j, ref, tilt_axis_deg,
                                                      filt, limit)
                m = stretch_matrix(tilt_axis_deg, np.cos(np.radians(tilts[j])) / cos_ref)
                total += _warp(img, m, shifts[j])
                shifts[j] *= b
            else:
                t, prom[j] = _pair_step(prev_img, img, tilts[prev], tilts[j], tilt_axis_deg, filt, limit)
                s_inv = stretch_matrix(tilt_axis_deg, np.cos(np.radians(tilts[j])) / np.cos(np.radians(tilts[prev])))
                shifts[j] = s_inv @ (shifts[prev] + b * t)
            prev, prev_img = int(j), img
            if progress is not None:
                progress("coarse", done, len(tilts), f"coarse alignment: view {done} of {len(tilts)}")
    stretch = np.cos(np.radians(tilts)) / cos_ref if tilt_axis_deg is not None else np.ones(len(tilts))
    return CoarseAlignment(shifts, stretch, tilt_axis_deg, ref, b, prom, (reader.shape[1], reader.shape[0]))


def _pair_step(a, img, theta_a, theta_b, axis, filt, limit):
    """Shift (binned px, in the stretched frame) and prominence of view ``img`` against its neighbour ``a``."""
    f = np.cos(np.radians(theta_a)) / np.cos(np.radians(theta_b))
    stretched = _warp(img, np.asarray(np.linalg.inv(stretch_matrix(axis, f)), dtype=np.float64),
                      np.zeros(2)) if axis is not None else img
    pa, pb = ft.taper_pad(a), ft.taper_pad(stretched)
    return ft.correlation_peak(ft.spectrum(pa), ft.spectrum(pb), pa.shape, filt, limit)


def _cumulative_step(img, total, prior, tilts, j, ref, axis, filt, limit):
    """Shift (binned px) and prominence of view ``j`` against the sum of its side's aligned views."""
    m = stretch_matrix(axis, np.cos(np.radians(tilts[j])) / np.cos(np.radians(tilts[ref])))
    mapped = _warp(img, m, prior)
    pa, pb = ft.taper_pad(total.astype(np.float32)), ft.taper_pad(mapped)
    t, prom = ft.correlation_peak(ft.spectrum(pa), ft.spectrum(pb), pa.shape, filt, limit)
    return prior + m @ t, prom
