"""The robust weights' per-group medians (`stages._medians`, sorted by value then by group) are `np.median`'s of
each group, exactly: ties, one-value groups, groups of even and odd size, and labels past 16 bits."""

import numpy as np
import pytest

from napari_tomoalign.alignment.stages import _medians, normalise


@pytest.mark.parametrize("n, groups", [(1, 1), (2, 1), (7, 3), (3000, 20), (12000, 40), (50000, 40000)])
def test_group_medians_are_numpy_medians(n, groups):
    rng = np.random.default_rng(n)
    x = np.round(np.abs(rng.normal(size=n)), 2)  # rounded: many ties
    inv = np.unique(rng.integers(0, groups, n), return_inverse=True)[1].reshape(-1)
    want = np.array([np.median(x[inv == k]) for k in range(inv.max() + 1)])
    assert np.array_equal(_medians(x, inv), want)


def test_normalise_is_the_median_and_madn_of_each_group():
    rng = np.random.default_rng(3)
    values, labels = rng.normal(size=500), rng.integers(0, 6, 500)
    got = normalise(values, labels)
    for k in range(6):
        v = values[labels == k]
        madn = np.median(np.abs(v - np.median(v))) / 0.6745
        assert np.allclose(got[labels == k], (v - np.median(v)) / madn, rtol=1e-3)
