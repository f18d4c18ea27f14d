"""The marker table every marker reader returns, and IMOD's pixel convention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

IMOD_PIXEL_OFFSET = 0.5


@dataclass
class MarkerTable:
    """Sparse marker observations.

    Attributes
    ----------
    view
        ``(n_obs,)`` 0-based view index.
    marker
        ``(n_obs,)`` marker id.
    xy
        ``(n_obs, 2)`` (x, y) positions in pixels.
    image_size
        ``(width, height)`` when the file records it (IMOD models do), else None.
    n_views
        the number of views of the stack the markers were placed on, when the file records it (an IMOD
        model's ``zmax``), else None.
    pixel_size_nm
        the pixel size of that stack, when the file records it (an IMOD model's ``pixsize`` in nm or Å, as
        ``tomoalign track`` writes it), else None.
    """

    view: NDArray[np.intp]
    marker: NDArray[np.int64]
    xy: NDArray[np.float64]
    image_size: tuple[int, int] | None = None
    source: str = ""
    n_views: int | None = None
    pixel_size_nm: float | None = None

    def __len__(self) -> int:
        return len(self.view)
