"""The aligned frame: the size of the aligned stack and of the tomogram, from the raw size and the alignment.

An ``.xf`` turns each view so that the tilt axis is vertical. On a non-square detector whose tilt axis is near
90 degrees (a K3's 5760 x 4092 at about 85 degrees) the raw frame's long side then runs along Y: an aligned
frame of the raw X x Y would cut a fifth to a third of the field along the axis and fill as much across it.
So, as etomo does for ``newstack`` (its ``SizeToOutputInXandY``: "if the tilt axis angle is closer to 90
degrees, use x and y from the raw stack and transpose them"), the aligned frame is the raw frame transposed
when the rotation the ``.xf`` applies is nearer +-90 degrees than 0 and the frame is not square; a size given
by the user (``--size``, as ``newstack -size``) wins. The tomogram's width and length follow the aligned
frame, as IMOD's ``tilt`` takes them from the aligned stack.

Binning comes after, by the one rule for binned sizes (`warp.bin_image`'s: whole blocks, ``size // binning``).
The frame's centre is `conventions.image_centre` of its size; an ``.xf`` maps a raw point ``X`` to
``A (X - c_raw) + D + c_out`` (IMOD's ``newstack`` with ``-size``), which is ``A (X - c) + D + c`` when the
frames are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..conventions import image_centre

MAX_SIZE_FACTOR = 4  # a given size at most this many times the raw frame's larger side


@dataclass(frozen=True)
class FrameSize:
    """The aligned frame of a raw frame ``raw_size`` ``(nx, ny)``: its ``size`` ``(nx, ny)`` in unbinned pixels,
    the rotation the ``.xf`` applies (degrees, the median over views; NaN when no view is determined) and
    whether the size was ``given`` (``--size``) rather than chosen."""

    raw_size: tuple[int, int]
    size: tuple[int, int]
    rotation_deg: float = float("nan")
    given: bool = False

    @property
    def transposed(self) -> bool:
        """Chosen as the raw frame transposed (a non-square frame, the axis nearer 90 degrees than 0)."""
        return not self.given and self.size != self.raw_size

    def binned_size(self, binning: int = 1) -> tuple[int, int]:
        """``(nx, ny)`` binned by ``binning`` (whole blocks, as `warp.bin_image` bins)."""
        return self.size[0] // int(binning), self.size[1] // int(binning)

    def shape(self, binning: int = 1) -> tuple[int, int]:
        """``(rows, cols)`` binned by ``binning``: an aligned view's array shape (`warp.warp_view`'s ``out_shape``)."""
        nx, ny = self.binned_size(binning)
        return ny, nx

    def centre(self, binning: int = 1) -> NDArray[np.float64]:
        """The (x, y) centre of the binned frame (`conventions.image_centre`)."""
        return image_centre(self.binned_size(binning))

    def to_aligned(self, xf: NDArray[np.float64], xy: NDArray[np.float64]) -> NDArray[np.float64]:
        """Raw points ``(n, 2)`` in the aligned frame by one ``(2, 3)`` transform (unbinned pixels)."""
        xf = np.asarray(xf, dtype=float)
        return (np.asarray(xy, dtype=float) - image_centre(self.raw_size)) @ xf[:, :2].T + xf[:, 2] + self.centre()

    def describe(self, binning: int = 1) -> str:
        """The frame for an output line: ``'4092 x 5760 (x by y; the raw 5760 x 4092 transposed ...)'``."""
        nx, ny = self.binned_size(binning)
        text = f"{nx} x {ny} (x by y"
        if self.transposed:
            text += (f"; the raw {self.raw_size[0]} x {self.raw_size[1]} transposed: the .xf turns the views by"
                     f" {self.rotation_deg:.1f} deg, nearer 90 than 0, as etomo does; --size to choose")
        elif self.given:
            text += "; as given by --size"
        return text + (f", binned by {binning})" if binning > 1 else ")")


def xf_rotation_deg(transforms: NDArray[np.float64]) -> float:
    """The rotation (degrees) the transforms apply: the median over the views with finite transforms of each
    one's nearest rotation, ``atan2(A21 - A12, A11 + A22)``; NaN when there are none."""
    a = np.asarray(transforms, dtype=float).reshape(-1, 2, 3)
    a = a[np.all(np.isfinite(a.reshape(len(a), 6)), axis=1)]
    if not len(a):
        return float("nan")
    angle = np.degrees(np.arctan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1]))
    about_first = (angle - angle[0] + 180.0) % 360.0 - 180.0  # views on either side of +-180 stay together
    middle = angle[0] + float(np.median(about_first))
    return (middle + 180.0) % 360.0 - 180.0


def nearer_90(rotation_deg: float) -> bool:
    """Whether a rotation is nearer +-90 degrees than 0 (or 180): more than 45 degrees from the nearest of 0, 180."""
    if not np.isfinite(rotation_deg):
        return False
    r = abs(float(rotation_deg)) % 180.0
    return 45.0 < r < 135.0


def frame_size(raw_size: tuple[int, int], transforms: NDArray[np.float64],
               size: tuple[int, int] | None = None) -> FrameSize:
    """The `FrameSize` of a raw frame ``(nx, ny)`` aligned by ``transforms`` ``(n_views, 2, 3)``: ``size``
    when given (unbinned pixels), else the raw frame, transposed when it is not square and the rotation the
    transforms apply is nearer +-90 degrees than 0 (the module docstring)."""
    raw = (int(raw_size[0]), int(raw_size[1]))
    rotation = xf_rotation_deg(transforms)
    if size is not None:
        return FrameSize(raw, check_size(size, raw), rotation, given=True)
    if raw[0] != raw[1] and nearer_90(rotation):
        return FrameSize(raw, (raw[1], raw[0]), rotation)
    return FrameSize(raw, raw, rotation)


def raw_size_for_volume(volume_size: tuple[int, int], rotation_deg: float) -> tuple[int, int]:
    """The raw frame ``(nx, ny)`` whose aligned frame, by `frame_size`'s rule, is a volume of ``(x, y)``: its
    transpose when the volume is not square and the rotation (the ``.xf``'s, or the tilt axis angle: the same
    distance from 90) is nearer +-90 degrees than 0. For a file that records the volume but not the raw size
    (RELION's ``rlnTomoSizeX/Y``, the portal's ``volume_dimension``), as the writers here record the frame."""
    x, y = int(volume_size[0]), int(volume_size[1])
    return (y, x) if x != y and nearer_90(rotation_deg) else (x, y)


def frame_size_of(saved: Any, size: tuple[int, int] | None = None) -> FrameSize:
    """The `FrameSize` of a saved alignment (`io.alignment.SavedAlignment`: its image size and the transforms
    of the views it determined; a view left out is written with the unit transform) and a given ``size``."""
    xf = np.asarray(saved.transforms, dtype=float)
    used = np.asarray(saved.view_determined, dtype=bool)
    return frame_size(tuple(saved.image_size), xf[used] if used.shape == (len(xf),) and used.any() else xf, size)


def check_size(size: tuple[int, int], raw_size: tuple[int, int]) -> tuple[int, int]:
    """A given aligned size ``(nx, ny)``, checked: whole numbers from 1 to `MAX_SIZE_FACTOR` times the raw frame's
    larger side; a `errors.UsageError` saying what to give otherwise."""
    from ..errors import UsageError

    top = MAX_SIZE_FACTOR * max(int(raw_size[0]), int(raw_size[1]))
    try:
        w, h = (float(v) for v in size)
    except (TypeError, ValueError):
        raise UsageError(f"--size {size}: give the aligned frame's WIDTH,HEIGHT in unbinned pixels") from None
    if not all(np.isfinite(v) and v == int(v) and 1 <= v <= top for v in (w, h)):
        raise UsageError(f"--size {size[0]},{size[1]}: give whole numbers from 1 to {top} (at most {MAX_SIZE_FACTOR} x"
                         f" the raw {raw_size[0]} x {raw_size[1]} frame's larger side), in unbinned pixels")
    return int(w), int(h)


__all__ = ["MAX_SIZE_FACTOR", "FrameSize", "check_size", "frame_size", "frame_size_of", "nearer_90",
           "raw_size_for_volume", "xf_rotation_deg"]
