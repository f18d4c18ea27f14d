"""Sub-pixel bead positions carry no bias from a sloped background: a gold bead imaged in bright field on
a background whose counts change across it (a thickness or carbon gradient) is located at its true
centre, at the real sizes of 10 nm gold at 2 and 0.8 nm/px."""

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.tracking import diameter_px_from_nm
from napari_tomoalign.tracking._measure import COUPLING, fit_at
from napari_tomoalign.tracking._profile import BeadProfile, fit_profile


def bead_on_slope(d, slope, centre, size, counts=1000.0, transmission=0.33, blur=0.5):
    """Counts of a sphere of diameter ``d`` px at ``centre`` (x, y) on ``counts * (1 + slope * x)``
    (x from the patch centre), integrated over 4 x 4 sub-pixels and blurred, noise free."""
    ss = 4
    a = (np.arange(size * ss) + 0.5) / ss - 0.5
    r2 = (a[None, :] - centre[0]) ** 2 + (a[:, None] - centre[1]) ** 2
    chord = 2.0 * np.sqrt(np.clip((d / 2) ** 2 - r2, 0.0, None))
    level = counts * (1.0 + slope * (a[None, :] - size // 2)) * np.ones_like(r2)
    img = (level * transmission ** (chord / d)).reshape(size, ss, size, ss).mean(axis=(1, 3))
    return ndimage.gaussian_filter(img, blur).astype(np.float32)


def bias_px(d, slope, coupling, n=20, seed=0):
    rng = np.random.default_rng(seed)
    prof = BeadProfile.ideal(d)
    size = 2 * int(np.ceil(d / 2 + 4)) + 1
    c = size // 2
    err = []
    for _ in range(n):
        true = c + rng.uniform(-0.5, 0.5, 2)
        img = bead_on_slope(d, slope, true, size)
        fit = fit_profile(img[None], np.array([[c, c]], float), prof, d / 2 + 2.5, iterations=8,
                          multiplicative=coupling)
        assert fit.converged[0]
        err.append(fit.xy[0] - true)
    return np.mean(err, axis=0)


@pytest.mark.parametrize("pixel_nm", [2.0, 0.8])
def test_multiplicative_fit_removes_the_slope_bias(pixel_nm):
    d = diameter_px_from_nm(10.0, pixel_nm)
    flat = bias_px(d, 0.0, 1.0)
    assert np.all(np.abs(flat) < 0.005)
    additive = bias_px(d, 0.04, 0.0)  # 4 %/px across x: the additive model moves the centre toward the bright side
    assert additive[0] > (0.05 if d < 8 else 0.2) and abs(additive[1]) < 0.005
    coupled = bias_px(d, 0.04, 1.0)
    assert np.all(np.abs(coupled) < 0.3 * abs(additive[0])) and abs(coupled[0]) < 0.03
    assert np.all(np.abs(bias_px(d, -0.04, 1.0)) < 0.03)  # either direction


def test_the_trackers_fit_on_counts_is_coupled():
    """The tracker's fit of count data (relative contrast) uses the coupled model and reports the depth
    as a share of the counts under the bead."""
    d = diameter_px_from_nm(10.0, 0.8)
    size = 64
    img = bead_on_slope(d, 0.02, (31.3, 32.6), size)
    prof = BeadProfile.ideal(d)
    additive = fit_at(img, np.array([[32.0, 32.0]]), prof, -1.0, 1e9, relative=False)
    counts = fit_at(img, np.array([[32.0, 32.0]]), prof, -1.0, 1e9, relative=True)
    err_add = abs(additive.xy[0, 0] - 31.3)
    err_counts = abs(counts.xy[0, 0] - 31.3)
    assert COUPLING > 0 and err_counts < (1.0 - 0.8 * COUPLING) * err_add
    assert abs(counts.xy[0, 1] - 32.6) < 0.01
    assert counts.contrast[0] == pytest.approx(0.67 * 0.97, abs=0.08)  # about 1 - transmission, blurred
