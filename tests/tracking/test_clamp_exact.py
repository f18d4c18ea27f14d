"""Hot pixels clamped in one compiled pass (`_views.clamp_hot_pixels`) give numpy's numbers
(`clamp_hot_pixels_numpy`, the reference): views and stacks of patches, ties, NaN, every kind of threshold, and a
limit on which float32 and float64 comparisons disagree (numpy compares a Python number in float32)."""

import numpy as np
import pytest

from napari_tomoalign.tracking._views import clamp_hot_pixels, clamp_hot_pixels_numpy, hot_threshold


@pytest.mark.parametrize("shape", [(64, 64), (20, 15, 15), (3, 9, 9), (128, 97), (1, 3, 3), (5, 2, 7)])
def test_compiled_clamp_is_numpys(shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    for trial in range(30):
        img = rng.normal(100, 10, size=shape).astype(np.float32)
        if trial % 3 == 0:
            img = np.round(img)  # ties among the neighbours
        hot = rng.random(shape) < 0.03
        img[hot] += rng.choice([-1, 1], hot.sum()) * rng.uniform(20, 200, hot.sum()).astype(np.float32)
        if trial % 7 == 0:
            img.flat[rng.integers(0, img.size, 3)] = np.nan
        auto = hot_threshold(img.reshape(-1, img.shape[-1])) if np.isfinite(img).all() else 30.0
        for limit in (30.0, np.float64(31.3), np.float32(25.1), 40, auto):
            a, b = img.copy(), img.copy()
            assert clamp_hot_pixels(a, limit) == clamp_hot_pixels_numpy(b, limit)
            assert np.array_equal(a, b, equal_nan=True)


def test_a_limit_between_float32_and_float64_is_compared_as_numpy_compares_it():
    img = np.full((1, 3, 3), 100, np.float32)
    img[0, 1, 1] = np.float32(100) + np.float32(30.000002)
    off = img[0, 1, 1] - np.float32(100)
    limit = float(np.nextafter(float(off), 0.0))  # below the deviation in float64, equal to it in float32
    for given, clamped in ((limit, 0), (np.float64(limit), 1)):
        a, b = img.copy(), img.copy()
        assert clamp_hot_pixels(a, given) == clamp_hot_pixels_numpy(b, given) == clamped
        assert np.array_equal(a, b)


def test_other_layouts_and_types_take_numpy():
    rng = np.random.default_rng(5)
    img = rng.normal(100, 10, size=(40, 40))
    img[10, 10] = 900.0
    for arr in (img, img.astype(np.float32)[:, ::2]):  # float64; a strided view
        a, b = arr.copy() if arr.flags.c_contiguous else arr, np.array(arr)
        assert clamp_hot_pixels(a, 50.0) == clamp_hot_pixels_numpy(b, 50.0)
