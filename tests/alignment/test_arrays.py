"""`alignment.arrays`: np.unique's answers without numpy.ma."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from napari_tomoalign.alignment.arrays import unique_inverse


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=60))
def test_same_as_numpy(values):
    a = np.array(values, dtype=np.int64)
    u, first, inv = unique_inverse(a)
    nu, nfirst, ninv = np.unique(a, return_index=True, return_inverse=True)
    np.testing.assert_array_equal(u, nu)
    np.testing.assert_array_equal(first, nfirst)
    np.testing.assert_array_equal(inv, ninv.ravel())
    np.testing.assert_array_equal(u[inv], a)
