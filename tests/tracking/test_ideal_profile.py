"""The ideal bead profile filters only the rows that reach its middle row (`_profile.BeadProfile.ideal`): the same
numbers as the whole supersampled image filtered by ndimage's 2-D box and Gaussian, kept here as the reference."""

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.tracking._profile import STEP, BeadProfile, _normalised


def whole_image_profile(diameter_px, blur_px=0.6, centre_transmission=0.5):
    """The profile as it was made before: the whole image filtered, then its middle row."""
    radius, ss = diameter_px / 2.0, 8
    n = int(np.ceil(radius + 4 * blur_px + 3)) * ss
    a = (np.arange(-n, n + 1)) / ss
    r2 = a[None, :] ** 2 + a[:, None] ** 2
    chord = np.sqrt(np.clip(radius * radius - r2, 0.0, None)) / max(radius, 1e-6)
    img = ndimage.uniform_filter(1.0 - np.exp(np.log(centre_transmission) * chord), ss)
    img = ndimage.gaussian_filter(img, max(blur_px, 0.05) * ss)
    return _normalised(np.interp(np.arange(0, a[-1], STEP), a[n:], img[n, n:]))


@pytest.mark.parametrize("blur", [0.6, 0.01, 0.3, 1.5])
def test_ideal_profile_is_the_whole_image_filtered(blur):
    for d in np.linspace(1.5, 40.0, 37):
        got = BeadProfile.ideal(float(d), blur_px=blur)
        assert got.radius_px == d / 2 and np.array_equal(got.values, whole_image_profile(float(d), blur))
    assert np.array_equal(BeadProfile.ideal(5.0, centre_transmission=0.2).values, whole_image_profile(5.0, 0.6, 0.2))
