"""The weighted back-projection as it was before issue 24, kept as the benchmarks' baseline.

Every view's rows are filtered by ``scipy.fft`` (padded to a power of two, edge values), the whole
filtered stack is transposed to ``(view, u, row)``, and one kernel runs over the sections in
parallel, each summed as ``(x, y)`` over the views. Only the plain geometry (tilt angles) is here.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.fft
from numpy.typing import NDArray

from napari_tomoalign.reconstruction.warp import bin_image
from napari_tomoalign.reconstruction.wbp import angular_weights, radial_filter


@numba.njit(parallel=True, cache=True, nogil=True)
def transpose_rows(filtered, q):  # pragma: no cover - compiled
    """``q[v, x, y] = filtered[v, y, x]`` for the first ``q.shape[1]`` columns."""
    n_v, n_x, n_y = q.shape
    for v in numba.prange(n_v):
        for y in range(n_y):
            for x in range(n_x):
                q[v, x, y] = filtered[v, y, x]


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def backproject(q, cos_t, sin_t, cx_det, cx_vol, cz_vol, vol):  # pragma: no cover - compiled
    """``vol[z, :, x] = sum over views of q[v, u(x, z), :]``, with ``u`` linearly interpolated."""
    n_views, n_u, n_y = q.shape
    n_z, _, n_x = vol.shape
    for z in numba.prange(n_z):
        zz = z - cz_vol
        acc = np.zeros((n_x, n_y), dtype=np.float32)
        for v in range(n_views):
            c = cos_t[v]
            s = sin_t[v]
            qv = q[v]
            for x in range(n_x):
                u = (x - cx_vol) * c + zz * s + cx_det
                if u < 0.0 or u > n_u - 1:
                    continue
                i = min(int(u), n_u - 2)
                f = np.float32(u - i)
                g = np.float32(1.0) - f
                a = qv[i]
                b = qv[i + 1]
                row = acc[x]
                for y in range(n_y):
                    row[y] += g * a[y] + f * b[y]
        vol[z] = acc.T


def baseline_wbp(aligned: NDArray, tilt_angles_deg: NDArray, *, thickness: int, binning: int = 1,
                 lowpass_cutoff: float | None = None, lowpass_falloff: float = 0.05) -> NDArray[np.float32]:
    """The old ``weighted_back_projection`` (ramp weighting, all views, all rows)."""
    tilts = np.asarray(tilt_angles_deg, dtype=float)
    n_z = int(thickness) // binning
    n_y, n_x = aligned.shape[1] // binning, aligned.shape[2] // binning
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    filt = radial_filter(n_pad, lowpass_cutoff=lowpass_cutoff, lowpass_falloff=lowpass_falloff).astype(np.complex64)
    weights = angular_weights(tilts).astype(np.float32)
    q = np.empty((tilts.size, n_x, n_y), dtype=np.float32)
    half = (n_pad - n_x) // 2
    chunk = max(1, int(2**25 // (n_pad * n_y * 4)))
    for c0 in range(0, tilts.size, chunk):
        idx = np.arange(c0, min(tilts.size, c0 + chunk))
        padded = np.empty((idx.size, n_y, n_pad), dtype=np.float32)
        for k, j in enumerate(idx):
            padded[k, :, :n_x] = bin_image(aligned[j], binning)
        padded[:, :, n_x : n_x + half] = padded[:, :, n_x - 1 : n_x]
        padded[:, :, n_x + half :] = padded[:, :, 0:1]
        spec = scipy.fft.rfft(padded, axis=2, workers=numba.get_num_threads())
        spec *= (weights[c0 : c0 + idx.size, None] * filt[None, :])[:, None, :]
        filtered = scipy.fft.irfft(spec, n=n_pad, axis=2, workers=numba.get_num_threads())
        transpose_rows(filtered, q[c0 : c0 + idx.size])
    theta = np.radians(tilts)
    centre = (n_x - 1) / 2.0
    vol = np.empty((n_z, n_y, n_x), dtype=np.float32)
    backproject(q, np.cos(theta), np.sin(theta), centre, centre, (n_z - 1) / 2.0, vol)
    return vol
