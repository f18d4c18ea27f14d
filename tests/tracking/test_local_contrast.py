"""The gap filling's local contrast takes `result.column_medians` where it took `np.nanmedian` (whose small-array
path goes through numpy.ma, 1 ms a call): the same numbers, NaN for a bead with no value."""

import warnings

import numpy as np

from napari_tomoalign.tracking.result import column_medians


def test_column_medians_are_nanmedian():
    rng = np.random.default_rng(4)
    for shape in ((4, 300), (41, 300), (1, 5), (2, 7)):
        for _ in range(20):
            c = rng.normal(1.0, 0.3, size=shape)
            c[rng.random(shape) < 0.35] = np.nan
            c[:, 0] = np.nan  # a bead never measured
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = np.nanmedian(c, axis=0)
            assert np.array_equal(column_medians(c), want, equal_nan=True)
