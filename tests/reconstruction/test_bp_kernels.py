"""The blocked back-projection kernels against a plain numpy WBP: every block size, tail and tile edge."""

import numba
import numpy as np
import pytest
import scipy.fft
from support.full_model_reference import bba_like_model
from support.full_model_reference import reference_wbp as full_model_wbp

from napari_tomoalign.reconstruction.bp_kernels import (
    BLOCK,
    MAX_BLOCK,
    X_TILE,
    Z_TILE,
    aligned_empty,
    section_tile,
    store_fence,
    stream_transposed,
    view_sums,
    volume_empty,
    write_columns,
)
from napari_tomoalign.reconstruction.wbp import angular_weights, radial_filter, weighted_back_projection


def reference_wbp(views, tilts, n_z, lowpass):
    """Filter every row by ``scipy.fft`` (edge-padded) and sum the views' linearly interpolated rows."""
    n_v, n_y, n_x = views.shape
    n_pad = int(2 ** np.ceil(np.log2(2 * n_x)))
    half = (n_pad - n_x) // 2
    padded = np.empty((n_v, n_y, n_pad))
    padded[:, :, :n_x] = views
    padded[:, :, n_x : n_x + half] = views[:, :, -1:]
    padded[:, :, n_x + half :] = views[:, :, :1]
    filt = radial_filter(n_pad, lowpass_cutoff=lowpass) * angular_weights(tilts)[:, None]
    q = scipy.fft.irfft(scipy.fft.rfft(padded, axis=2) * filt[:, None, :], n=n_pad, axis=2)[:, :, :n_x]
    t = np.radians(tilts)
    c = (n_x - 1) / 2.0
    x = np.arange(n_x) - c
    z = np.arange(n_z) - (n_z - 1) / 2.0
    vol = np.zeros((n_z, n_y, n_x))
    for v in range(n_v):
        u = x[None, :] * np.cos(t[v]) + z[:, None] * np.sin(t[v]) + c
        inside = (u >= 0) & (u <= n_x - 1)
        i = np.clip(u.astype(int), 0, n_x - 2)
        f = np.where(inside, u - i, 0.0)
        g = np.where(inside, 1.0 - f, 0.0)
        vol += g[:, None, :] * q[v][:, i].transpose(1, 0, 2) + f[:, None, :] * q[v][:, i + 1].transpose(1, 0, 2)
    return vol


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("n_v", "n_y", "n_x", "n_z"), [
    (13, MAX_BLOCK + BLOCK + 7, 2 * X_TILE + 5, 9),  # a full block, a short one and a partial one; odd views
    (8, BLOCK - 3, X_TILE - 1, 40),  # one partial block, narrower than a tile of columns; even views
    (9, MAX_BLOCK, 2 * X_TILE, 7),  # rows of whole cache lines: every tile written by non-temporal stores
    (7, MAX_BLOCK - 16, 3 * X_TILE, 6),  # the same in a block of 64 rows of which 48 are the volume's
    (5, 3 * MAX_BLOCK + 20, X_TILE + 3, 5),  # blocks in more than one call of the kernel (chunks), a short tail
])
def test_blocked_kernel_equals_the_plain_wbp(threads, n_v, n_y, n_x, n_z):
    rng = np.random.default_rng(n_y)
    views = rng.normal(size=(n_v, n_y, n_x)).astype(np.float32)
    tilts = np.sort(rng.uniform(-65.0, 65.0, n_v))
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        ours = weighted_back_projection(views, tilts, thickness=n_z, lowpass_cutoff=0.35)
    finally:
        numba.set_num_threads(before)
    ref = reference_wbp(views.astype(np.float64), tilts, n_z, 0.35)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 2e-6 * np.abs(ref).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_tilt", [2.07, -6.0])  # BBa's; and one whose columns cross up to two columns a block
def test_full_model_kernel_equals_the_exact_reference(threads, x_tilt):
    rng = np.random.default_rng(7)
    tilts = np.arange(-60.0, 60.1, 6.0)
    views = rng.normal(size=(tilts.size, MAX_BLOCK + 9, 2 * X_TILE + 3)).astype(np.float32)
    xt, zf = bba_like_model(tilts.size)
    xt = xt - 2.07 + x_tilt
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        ours = weighted_back_projection(views, tilts, thickness=30, x_tilt_deg=xt, z_factors=zf)
    finally:
        numba.set_num_threads(before)
    ref = full_model_wbp(views, tilts, 30, xt, zf)
    assert np.abs(ours - ref).max() <= 2e-5 * np.abs(ref).max()


@pytest.mark.parametrize("size", [1, 17, 64 * 512 * 61, 3 * 1024 * 16 + 5])
def test_filtered_rows_start_on_a_cache_line(size):
    """The kernels' vectors of 16 float32 must not straddle two cache lines (each such load costs two)."""
    q = aligned_empty(size)
    assert q.shape == (size,) and q.dtype == np.float32
    assert q.ctypes.data % 64 == 0


@pytest.mark.parametrize("n_x", [2 * X_TILE, 2 * X_TILE + 5])
def test_buffered_columns_land_in_the_volume_whether_streamed_or_not(n_x):
    """`write_columns` streams whole cache lines (rows of a cache-line aligned volume) and stores the rest:
    both put every value where a plain transpose would, and nothing else."""
    rng = np.random.default_rng(n_x)
    buf = rng.normal(size=(3, X_TILE, 40)).astype(np.float32)
    vol = volume_empty((5, 50, n_x))
    assert vol.ctypes.data % 64 == 0
    vol[:] = -7.0
    x1 = min(n_x, 2 * X_TILE)
    write_columns(buf, vol, 1, 4, X_TILE, x1, 6, 33)
    expected = np.full((5, 50, n_x), -7.0, np.float32)
    expected[1:4, 6:39, X_TILE:x1] = buf[:, : x1 - X_TILE, :33].transpose(0, 2, 1)
    assert np.array_equal(vol, expected)


def test_a_non_finite_pixel_found_as_its_rows_are_read_stops_the_work_and_names_the_view():
    """In the plain geometry the kernel sums each view's rows as it reads them (no pass over the views first):
    a NaN names its view, and no chunk of rows after the one that holds it is made; a NaN in rows the volume
    does not reach does not stop it."""
    rng = np.random.default_rng(5)
    views = rng.normal(size=(6, 300, 40)).astype(np.float32)
    views[2, 250, 7] = np.nan
    tilts = np.linspace(-50.0, 50.0, 6)
    done: list[int] = []
    with pytest.raises(ValueError, match="view 3 of the aligned stack holds NaN or infinite"):
        weighted_back_projection(views, tilts, thickness=5, progress=lambda d, _: done.append(d))
    assert 300 not in done and all(d <= 250 for d in done)
    assert np.all(np.isfinite(weighted_back_projection(views, tilts, thickness=5, rows=(0, 200))))


@numba.njit
def _stream_transposed(tile, k0, rows, r0, x0, narrow):
    if narrow:  # 32-bit indices are widened, not misread
        stream_transposed(tile, np.int32(k0), rows, np.int32(r0), np.int32(x0))
    else:
        stream_transposed(tile, k0, rows, r0, x0)
    store_fence()


@pytest.mark.parametrize("narrow", [False, True])
def test_sixteen_rows_transposed_in_registers_land_where_a_transpose_puts_them(narrow):
    """`stream_transposed` writes ``tile[0:16, k0 + i]`` to row ``r0 + i`` at column ``x0``, and nothing else."""
    tile = np.random.default_rng(2).normal(size=(16, 48)).astype(np.float32)
    rows = volume_empty((40, 64))
    rows[:] = -7.0
    _stream_transposed(tile, 16, rows, 3, 32, narrow)
    expected = np.full((40, 64), -7.0, np.float32)
    expected[3:19, 32:48] = tile[:, 16:32].T
    assert np.array_equal(rows, expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_is_named_by_its_view_after_the_parallel_sums(bad):
    """The WBP sums the float32 views on all threads and looks closer only at a view whose sum is not finite:
    the error names the view as a person counts it, and the sums are numpy's."""
    rng = np.random.default_rng(3)
    views = rng.normal(size=(6, 40, 33)).astype(np.float32)
    assert np.allclose(view_sums(views, np.arange(6)), views.sum(axis=(1, 2), dtype=np.float64), rtol=1e-12)
    views[4, 17, 5] = bad
    with pytest.raises(ValueError, match="view 5 of the aligned stack holds NaN or infinite"):
        weighted_back_projection(views, np.linspace(-50.0, 50.0, 6), thickness=8)
    use = np.ones(6, bool)
    use[4] = False
    assert np.isfinite(weighted_back_projection(views, np.linspace(-50.0, 50.0, 6), thickness=8, use_view=use)).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_z", [1, 9, 33, 64, 65, 100, 128, 1000])
def test_section_tiles_share_the_sections_evenly_between_the_threads(threads, n_z):
    """The threads take the tiles in equal runs: no tile beyond `Z_TILE` sections, and each thread's share of
    sections within one tile's worth of every other's."""
    t = section_tile(n_z, threads)
    n_tiles = -(-n_z // t)
    sizes = [min(t, n_z - i * t) for i in range(n_tiles)]
    assert 1 <= t <= Z_TILE and sum(sizes) == n_z
    per_thread = [sum(sizes[i::threads]) for i in range(threads)]
    assert max(per_thread) - min(per_thread) <= t
    if n_z >= threads * Z_TILE:
        assert n_tiles % threads == 0


def test_a_large_volume_has_its_pages_touched_by_all_the_threads():
    """`volume_empty` on more than one thread touches one value of each 4 kB page of a volume of 32 MB or more (the
    threads fault its pages side by side, not one after the other in the kernels' first chunk); each run of pages
    is one thread's, and the pages in between are left as they were."""
    from napari_tomoalign.reconstruction.bp_kernels import PAGE_FLOATS, TOUCH_MIN_BYTES, _first_touch

    flat = np.full(10 * PAGE_FLOATS + 7, np.nan, dtype=np.float32)
    _first_touch(flat, 3)
    touched = np.flatnonzero(~np.isnan(flat))
    assert np.array_equal(touched, np.arange(11) * PAGE_FLOATS) and np.all(flat[touched] == 0.0)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        vol = volume_empty((TOUCH_MIN_BYTES // 4 // (64 * 128) + 1, 64, 128))
        assert vol.ctypes.data % 64 == 0 and vol.dtype == np.float32 and vol.flags.c_contiguous
    finally:
        numba.set_num_threads(threads)
