"""``run``'s binned aligned views feed the streamed back-projection as they are when it takes them all (one slab
of every view: no 43 MB copy at 1024^2 x 41), a copy of the rows and views asked for otherwise; the same numbers."""

import numpy as np

from napari_tomoalign.reconstruction.stream import AlignedRows


def test_all_rows_of_all_views_are_the_array_itself_and_parts_are_copies():
    views = np.random.default_rng(0).normal(size=(5, 12, 8)).astype(np.float32)
    every = AlignedRows(views, np.arange(5), 2, binned=True)
    assert every.rows(0, 12) is views
    part = every.rows(3, 9)
    assert part.base is None and np.array_equal(part, views[:, 3:9])
    some = AlignedRows(views, np.array([0, 2, 4]), 2, binned=True)
    assert np.array_equal(some.rows(0, 12), views[[0, 2, 4]]) and some.rows(0, 12) is not views
    as_f64 = AlignedRows(views.astype(np.float64), np.arange(5), 2, binned=True).rows(0, 12)
    assert as_f64.dtype == np.float32 and np.array_equal(as_f64, views)
