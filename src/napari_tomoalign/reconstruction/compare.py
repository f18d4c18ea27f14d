"""Comparing alignments: the markers seen in every view, and a score for tomograms."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def markers_in_every_view(view: NDArray[np.integer], marker: NDArray[np.integer], n_views: int) -> NDArray[np.int64]:
    """Ids of the markers observed in all ``n_views`` views (the paper's "6 markers in every view")."""
    view = np.asarray(view, dtype=np.int64)
    marker = np.asarray(marker, dtype=np.int64)
    ids, inverse = np.unique(marker, return_inverse=True)
    seen = np.zeros((ids.size, n_views), dtype=bool)
    ok = (view >= 0) & (view < n_views)
    seen[inverse[ok], view[ok]] = True
    return ids[seen.all(axis=1)]


def normalised_cross_correlation(a: NDArray, b: NDArray) -> float:
    """Pearson correlation of two equally shaped volumes (1 for identical up to gain and offset)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare volumes of shapes {a.shape} and {b.shape}")
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0
