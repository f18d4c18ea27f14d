"""IMOD's full model for the WBP tests: a BBa-like X-axis tilt and Z factors, and a slow exact WBP that applies them."""

import numpy as np
import scipy.fft
from scipy import ndimage

from napari_tomoalign.reconstruction.wbp import angular_weights, radial_filter


def bba_like_model(n_views):
    """An X-axis tilt as aligna.com's surface analysis asks for (2.07 deg on average, grouped as a
    linear mapping), and Z factors of the size a full model with compression, skew and stretch gives."""
    s = np.linspace(-1.0, 1.0, n_views)
    x_tilt = 2.07 + 0.4 * s
    zf = np.column_stack([0.03 * s + 0.01 * s**2, -0.02 + 0.015 * s])
    return x_tilt, zf


def reference_wbp(views, tilts, n_z, x_tilt, zf, shift=(0.0, 0.0)):
    """Every voxel projected by the formula of `wbp`'s docstring, sampled bilinearly (scipy), one by one."""
    n_v, n_r, n_u = views.shape
    n_pad = int(2 ** np.ceil(np.log2(2 * n_u)))
    half = (n_pad - n_u) // 2
    right, left = np.repeat(views[:, :, -1:], half, 2), np.repeat(views[:, :, :1], n_pad - n_u - half, 2)
    padded = np.concatenate([views, right, left], 2)
    filt = radial_filter(n_pad) * angular_weights(tilts)[:, None, None]
    filtered = scipy.fft.irfft(scipy.fft.rfft(padded.astype(np.float64), axis=2) * filt, n=n_pad, axis=2)[:, :, :n_u]
    z, y, x = np.meshgrid(np.arange(n_z) - (n_z - 1) / 2 - shift[1], np.arange(n_r) - (n_r - 1) / 2,
                          np.arange(n_u) - (n_u - 1) / 2 - shift[0], indexing="ij")
    vol = np.zeros((n_z, n_r, n_u))
    for j in range(n_v):
        t, f = np.radians(tilts[j]), np.radians(x_tilt[j])
        u = x * np.cos(t) + (y * np.sin(f) + z * np.cos(f)) * np.sin(t) + z * zf[j, 0] + (n_u - 1) / 2
        r = y * np.cos(f) - z * np.sin(f) + z * zf[j, 1] + (n_r - 1) / 2
        inside = (u >= 0) & (u <= n_u - 1) & (r >= 0) & (r <= n_r - 1)
        vol += np.where(inside, ndimage.map_coordinates(filtered[j], [r, u], order=1, mode="nearest"), 0.0)
    return vol
