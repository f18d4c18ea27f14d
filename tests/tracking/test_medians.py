"""`tracking.medians` gives `numpy.median`'s numbers by numpy's fast one-element selection: rows and whole arrays,
odd and even counts, ties, NaN, infinities, float32 and float64, and numpy's own answer for integers and empties."""

import warnings

import numpy as np
import pytest

from napari_tomoalign.tracking.medians import median, row_medians


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_medians_are_numpys(dtype):
    rng = np.random.default_rng(1)
    for shape in ((250, 225), (40, 224), (3, 8), (7, 1), (4, 2), (1, 5), (1000, 33)):
        for trial in range(4):
            a = rng.normal(size=shape).astype(dtype)
            if trial == 1:
                a = np.round(a, 1)  # ties
            if trial == 2:
                a.flat[rng.integers(0, a.size, 3)] = np.nan
            if trial == 3:
                a.flat[rng.integers(0, a.size, 3)] = [np.inf, -np.inf, np.inf]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in numpy's mean, the same here
                want, got = np.median(a, axis=1), row_medians(a)
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def test_median_of_a_whole_array_is_numpys():
    rng = np.random.default_rng(2)
    for a in (rng.normal(100, 10, size=(256, 256)).astype(np.float32), rng.normal(size=32768), np.float32([1, 2]),
              np.array([3.0]), np.arange(10), np.zeros(0, np.float32)[:0].reshape(0) + 1.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the empty array's mean
            want, got = np.median(a), median(a)
        assert type(got) is type(want) and (got == want or (np.isnan(got) and np.isnan(want)))
