"""The Python API's functions that resolve what an alignment's settings already hold, so that a caller
never passes it by hand: the axis Z shift of an align.com (`imod_transforms`, `save_alignment`,
`solve_local_alignments`), the pixel size and the observations an alignment was solved from. The
top-level namespace (``napari_tomoalign.<name>``) exports them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from . import facts

if TYPE_CHECKING:
    from ..alignment.local import LocalAlignments
    from ..alignment.result import Alignment


def imod_transforms(alignment: Alignment, axis_z_shift_px: float | None = None) -> NDArray[np.float64]:
    """``(n_views, 2, 3)`` IMOD ``.xf`` transforms from raw to aligned images, about the image centre, placed
    with ``axis_z_shift_px`` (None: the align.com's ``AxisZShift`` the alignment was solved with, else 0)."""
    from ..alignment.transforms import imod_transforms as transforms

    return transforms(alignment, facts.axis_z_shift_px(alignment, axis_z_shift_px))


def save_alignment(alignment: Alignment, directory: str | os.PathLike[str], stem: str, *,
                   axis_z_shift_px: float | None = None, overwrite: bool = False) -> list[Path]:
    """Write every file ``tomoalign align`` writes (``.xf``, ``.tlt``, ``fid.xyz``, ``alignment.json``, ...) into
    ``directory`` as one unit, placed with ``axis_z_shift_px`` (None: the align.com's, else 0)."""
    from ..io.alignment import write_alignment

    return write_alignment(alignment, directory, stem, overwrite=overwrite,
                           axis_z_shift_px=facts.axis_z_shift_px(alignment, axis_z_shift_px))


def solve_local_alignments(alignment: Alignment, imod_com: str | os.PathLike[str] | None = None, *,
                           axis_z_shift_px: float | None = None) -> LocalAlignments:
    """IMOD's local alignments over patches of the field after the global ``alignment``, from the
    observations it was solved from, with the local options of ``imod_com`` (else etomo's defaults) about its
    axis Z shift (None: the align.com's, else 0). ``.local_transforms`` is what IMOD's local file holds."""
    from ..local_jobs import solve_local

    shift = facts.axis_z_shift_px(alignment, axis_z_shift_px)
    job = solve_local(alignment, alignment.obs_view, alignment.obs_xy_px, alignment.nominal_tilt_angles_deg,
                      "alignment", imod_com, shift)
    return job.result


__all__ = ["imod_transforms", "save_alignment", "solve_local_alignments"]
