"""The local WBP's resampling step (`local_resample.resample_columns`, its column in LLVM IR) against the formula in
numpy: each group of 32 lanes linearly between two rows of the filtered view's column, zero beyond the view."""

from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.bp_kernels import aligned_empty
from napari_tomoalign.reconstruction.local_blocks import PAD_U
from napari_tomoalign.reconstruction.local_resample import resample_columns


@numba.njit
def _resample(q1, v, rows, c_lo, n_c, n_us, n_rs, w):
    resample_columns(q1, v, rows, c_lo, n_c, (n_us, n_rs), w)


def test_each_column_is_its_two_groups_between_two_rows_and_zero_beyond_the_view():
    rng = np.random.default_rng(5)
    n_v, n_us, n_rs = 3, 2 * PAD_U + 40, 100
    q = rng.normal(size=(n_v, n_us, n_rs)).astype(np.float32)
    rows = np.zeros((5, n_us), dtype=np.float32)
    rows[0] = rng.integers(0, 20, n_us)  # group 0's first row, group 1's 32 rows on (or one more: a row spacing > 1)
    rows[2] = rows[0] + 32 + rng.integers(0, 2, n_us)
    rows[1], rows[3] = rng.uniform(-0.2, 1.2, n_us), rng.uniform(-0.2, 1.2, n_us)  # fractions, a little outside
    rows[4] = rng.uniform(-0.01, 0.01, n_us)  # the fraction's change per lane
    v, c_lo, n_c = 1, PAD_U - 3, 46  # from 3 columns left of the view to 3 right of it
    w = aligned_empty(n_c * 64).reshape(n_c, 64)
    w[:] = np.nan
    _resample(q.ravel(), v, rows, c_lo, n_c, n_us, n_rs, w)
    j = np.arange(32)
    for k in range(n_c):
        c = c_lo + k
        if c < PAD_U or c > n_us - 1 - PAD_U:
            assert np.all(w[k] == 0.0), c
            continue
        col = q[v, c].astype(np.float64)
        for g in range(2):
            a, f, b = int(rows[2 * g, c]), float(rows[2 * g + 1, c]), float(rows[4, c])
            want = col[a + j] + (f + b * j) * (col[a + j + 1] - col[a + j])
            np.testing.assert_allclose(w[k, 32 * g : 32 * g + 32], want, rtol=0, atol=2e-6 * np.abs(col).max())
