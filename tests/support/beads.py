"""A small simulated cryo bead series on disk (256^2 x 21 views, 0.8 nm pixels, tilts beside it), as the run and
tracking tests start from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.simulation.beads import BeadSeries, make_bead_series


def write_cryo_series(folder: Path, name: str, seed: int = 1, images: np.ndarray | None = None
                      ) -> tuple[Path, BeadSeries]:
    """``folder/name.st`` (the series' images, or ``images`` in their place) and ``name.rawtlt``; the stack's path
    and the series."""
    s = make_bead_series("cryo", 256, 21, seed=seed)
    write_mrc(folder / f"{name}.st", np.ascontiguousarray(s.images if images is None else images), 8.0)
    write_tilt_angles(folder / f"{name}.rawtlt", s.tilt_angles_deg)
    return folder / f"{name}.st", s
