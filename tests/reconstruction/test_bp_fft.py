"""The WBP's filter (`bp_fft.filter_block`) against numpy's FFT filtering of the same edge-padded rows."""

import numpy as np
import pytest

from napari_tomoalign.reconstruction.bp_fft import filter_block, filter_scratch, twiddles
from napari_tomoalign.reconstruction.fft_steps import LANES
from napari_tomoalign.reconstruction.wbp import angular_weights, full_filter, radial_filter


def numpy_filtered(view, r0, n_rows, filt):
    """``(cols, n_rows)``: rows ``r0..`` of ``view`` (zero outside it), padded with the right edge value
    ``(n_pad - cols) // 2`` times and then the left one, filtered by ``filt`` (divided by ``n_pad``) in float64."""
    n_r, n_x = view.shape
    n_pad = filt.size
    half = (n_pad - n_x) // 2
    rows = np.zeros((n_rows, n_x))
    inside = np.arange(r0, r0 + n_rows)
    keep = (inside >= 0) & (inside < n_r)
    rows[keep] = view[inside[keep]]
    padded = np.concatenate([rows, np.repeat(rows[:, -1:], half, 1), np.repeat(rows[:, :1], n_pad - n_x - half, 1)], 1)
    return (np.fft.ifft(np.fft.fft(padded, axis=1) * filt.astype(np.float64) * n_pad, axis=1).real[:, :n_x]).T


def run_filter(view, r0, n_rows, filt, bufs=None):
    wr, wi = twiddles(filt.size)
    q = np.full((view.shape[1], n_rows), np.nan, np.float32)
    filter_block(view, r0, n_rows, filt, wr, wi, filter_scratch(filt.size) if bufs is None else bufs, q)
    return q


def ramp(n_pad, tilts=(-60.0, 0.0, 30.0)):
    radial = radial_filter(n_pad, lowpass_cutoff=0.35, lowpass_falloff=0.05)
    return full_filter(radial, angular_weights(np.asarray(tilts)).astype(np.float32))[1]


@pytest.mark.parametrize(
    ("n_x", "n_pad", "n_r", "r0", "n_rows"),
    [
        (512, 1024, 96, 0, 64),  # the WBP's test size
        (511, 1024, 96, 32, 64),  # odd width, a partial 16-column block at the end
        (31, 64, 40, -10, 64),  # past both edges of the view
        (40, 128, 50, 20, 32),  # odd log2(n_pad): a radix-2 pass
        (17, 64, 20, -5, 16),  # 16 rows: no rows in the imaginary parts
        (1000, 2048, 64, 0, 64),
        (700, 1024, 40, 0, 32),  # padded less than twice: rows past half the padded length kept, the padding split
        (1007, 1024, 40, -8, 48),  # the widest view of the scratch of pitch 65 (`fft_padded`); three sets of 16 rows
        (1008, 1024, 20, 0, 32),  # too wide for it: the permuted scratch (`fft_fixed`)
        (300, 1024, 70, 60, 32),  # padded more than three times; rows past the bottom edge
        (2048, 4096, 40, 8, 32),  # the 4096-wide stack binned by 2; rows past the bottom edge
        (3000, 8192, 20, 0, 32),  # a wide view padded further than twice its width
        (16384, 32768, 16, 0, 16),  # sub-transforms of 128 and 256 points
        (20000, 65536, 16, 0, 16),  # the longest padded row: 256 x 256, the stack buffers full
    ],
)
def test_filter_matches_numpy_fft(n_x, n_pad, n_r, r0, n_rows):
    rng = np.random.default_rng(n_x)
    view = (rng.normal(size=(n_r, n_x)) + 3.0).astype(np.float32)
    filt = ramp(n_pad)
    got = run_filter(view, r0, n_rows, filt)
    want = numpy_filtered(view, r0, n_rows, filt)
    assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()


def test_random_even_filter_and_rows_near_the_edges():
    """Any real, even filter (not only a ramp), for blocks that start at each edge of the view."""
    rng = np.random.default_rng(1)
    n_pad, n_x, n_r = 256, 100, 70
    h = rng.random(n_pad)
    filt = ((h + np.roll(h[::-1], 1)) / (2 * n_pad)).astype(np.float32)
    view = rng.normal(size=(n_r, n_x)).astype(np.float32)
    for r0 in (-31, -16, 0, n_r - 64, n_r - 32, n_r - 1):
        want = numpy_filtered(view, r0, 64, filt)
        assert np.abs(run_filter(view, r0, 64, filt) - want).max() <= 2e-6 * np.abs(want).max()


def test_rows_past_the_view_come_back_zero_and_a_constant_row_keeps_only_its_dc_term():
    n_pad, n_x = 256, 128
    filt = ramp(n_pad)
    view = np.full((20, n_x), 5.0, np.float32)
    q = run_filter(view, 4, 32, filt)
    assert np.all(q[:, 16:] == 0.0)  # rows 20.. are outside the view
    np.testing.assert_allclose(q[:, :16], 5.0 * filt[0] * n_pad, rtol=1e-5)


def test_the_callers_larger_scratch_serves():
    """`bp_kernels` and `bp_full` pass ``(4, n_pad, 32)`` scratch; any C-contiguous one with room serves."""
    rng = np.random.default_rng(2)
    view = rng.normal(size=(64, 200)).astype(np.float32)
    filt = ramp(512)
    np.testing.assert_array_equal(run_filter(view, 0, 64, filt, np.empty((4, 512, 2 * LANES), np.float32)),
                                  run_filter(view, 0, 64, filt))


def test_a_scratch_that_does_not_start_on_a_cache_line_serves():
    """`local_blocks` passes a plain ``np.empty`` scratch: the filter moves its start onto a cache line."""
    rng = np.random.default_rng(3)
    view = rng.normal(size=(64, 512)).astype(np.float32)
    filt = ramp(1024)
    raw = np.empty(4 * 1024 * LANES + 64, np.float32)
    want = run_filter(view, 0, 64, filt)
    for shift in (0, 1, 5, 15):  # equal to float32 rounding (one run in ~20 differed by 4e-8: compiled apart)
        got = run_filter(view, 0, 64, filt, raw[shift : shift + 4 * 1024 * LANES])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * float(np.abs(want).max()))


def test_a_padded_length_that_does_not_fit_is_refused():
    view = np.zeros((32, 100), np.float32)
    with pytest.raises(ValueError, match="power of two"):
        run_filter(view, 0, 32, np.zeros(96, np.float32))
    with pytest.raises(ValueError, match="at least the row"):
        run_filter(view, 0, 32, np.zeros(64, np.float32))


def test_a_block_that_is_not_whole_vectors_is_refused():
    view = np.zeros((32, 100), np.float32)
    wr, wi = twiddles(256)
    with pytest.raises(ValueError, match="multiple of 16"):
        filter_block(view, 0, 24, ramp(256), wr, wi, filter_scratch(256), np.zeros((100, 24), np.float32))
