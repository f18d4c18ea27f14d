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


def frame_offset_px(ids_a: NDArray, xyz_a: NDArray, ids_b: NDArray, xyz_b: NDArray) -> NDArray[np.float64]:
    """``(3,)`` (x, y, z) where frame b puts the markers minus where frame a puts them (pixels).

    ``xyz_a`` and ``xyz_b`` are ``(n, 3)`` positions in each alignment's aligned frame (as
    `transforms.aligned_marker_positions` gives them) of the markers ``ids_a`` and ``ids_b``. Two
    alignments of one tilt series differ in their frames by a translation (each puts the tilt axis at
    the centroid of its own markers); the median over the markers both used measures it.
    """
    common, ia, ib = np.intersect1d(np.asarray(ids_a), np.asarray(ids_b), return_indices=True)
    d = np.asarray(xyz_b, float)[ib] - np.asarray(xyz_a, float)[ia]
    d = d[np.all(np.isfinite(d), axis=1)]
    if d.size == 0:
        raise ValueError("the two alignments share no marker, so their frames cannot be matched")
    return np.median(d, axis=0)


def resample_volume(volume: NDArray, shape: tuple[int, int, int], offset_zyx: NDArray) -> NDArray[np.float32]:
    """``volume`` on a grid of ``shape`` centred on it: output voxel ``k`` holds input position
    ``k - (shape - 1) / 2 + (volume.shape - 1) / 2 + offset_zyx`` (linear interpolation; outside,
    the volume's mean)."""
    from scipy.ndimage import affine_transform

    vol = np.asarray(volume, dtype=np.float32)
    centre_shift = (np.asarray(vol.shape, float) - 1) / 2 - (np.asarray(shape, float) - 1) / 2
    return affine_transform(vol, np.ones(3), offset=centre_shift + np.asarray(offset_zyx, float),
                            output_shape=tuple(int(n) for n in shape), order=1, mode="constant",
                            cval=float(vol.mean()))


def tomograms_on_one_grid(tomo_a: NDArray, tomo_b: NDArray, offset_xyz_px: NDArray, binning: int
                          ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Both tomograms ``(z, y, x)`` of one tilt series on a's grid, made as thick as the thicker one,
    so that the same index is the same place in the specimen.

    ``offset_xyz_px`` is `frame_offset_px` (b's frame minus a's, unbinned pixels); ``binning`` is the
    tomograms' binning (both must share it and the image size).
    """
    if tomo_a.shape[1:] != tomo_b.shape[1:]:
        raise ValueError(f"the tomograms' sections differ in size ({tomo_a.shape[1:]} and {tomo_b.shape[1:]}); "
                         "reconstruct both from the same stack at the same binning")
    shape = (max(tomo_a.shape[0], tomo_b.shape[0]), *tomo_a.shape[1:])
    dx, dy, dz = (float(v) / binning for v in offset_xyz_px)
    a = resample_volume(tomo_a, shape, np.zeros(3))
    b = resample_volume(tomo_b, shape, np.array([dz, dy, dx]))
    return a, b


def slice_correlations(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """``(n_z,)`` correlation of each pair of matching z sections of two equally shaped volumes."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare volumes of shapes {a.shape} and {b.shape}")
    return np.array([normalised_cross_correlation(a[k], b[k]) for k in range(a.shape[0])])
