"""The one-row kernel's views filtered band by band (`local_band`, `local_rows.backproject_local_bands`) against
the same kernel on the views filtered whole first (`local_blocks.filtered_sheared_views`): the same volume to
float32 rounding, with a shear, an X-axis tilt, rows not a whole number of blocks, and a sub-range of rows."""

import numpy as np
from scipy.ndimage import gaussian_filter

from napari_tomoalign.reconstruction.bp_fft import twiddles
from napari_tomoalign.reconstruction.local_band import GRID, MARGIN, band_end, band_rows, fill_band
from napari_tomoalign.reconstruction.local_blocks import PAD, PAD_U, filtered_sheared_views, view_shears
from napari_tomoalign.reconstruction.local_rows import backproject_local_bands, backproject_local_rows
from napari_tomoalign.reconstruction.local_warp import LocalProjection, kernel_arguments
from napari_tomoalign.reconstruction.wbp import angular_weights, full_filter, radial_filter


def geometry(n_views=9, nx=96, ny=150, seed=2, shift_px=0.2, x_tilt_deg=0.8):
    """3 x 3 patches over a ``nx`` x ``ny`` stack: IMOD's projection with an X-axis tilt, each patch with its own
    tilt increment and shift, as a local file gives them."""
    rng = np.random.default_rng(seed)
    tilts = np.linspace(-60, 60, n_views)
    t = np.radians(tilts[None, :] + rng.normal(0, 0.2, (9, n_views)))
    f = np.radians(x_tilt_deg + rng.normal(0, 0.1, (9, n_views)))
    m = np.zeros((9, n_views, 2, 4))
    m[..., 0, 0] = np.cos(t)
    m[..., 0, 1] = np.sin(f) * np.sin(t)
    m[..., 0, 2] = np.cos(f) * np.sin(t)
    m[..., 1, 1] = np.cos(f)
    m[..., 1, 2] = -np.sin(f)
    m[..., :, 3] = rng.normal(0, shift_px, (9, n_views, 2))
    return LocalProjection(m, (3, 3), (-nx / 3.0, -ny / 3.0), (nx / 3.0, ny / 3.0)), tilts


def inputs(ny=150, nx=96, n_views=9):
    lp, tilts = geometry(n_views=n_views, nx=nx, ny=ny)
    rng = np.random.default_rng(4)
    views = gaussian_filter(rng.normal(size=(n_views, ny, nx)), (0, 1, 1)).astype(np.float32)
    filt = full_filter(radial_filter(256), angular_weights(tilts).astype(np.float32))
    mats, grid = kernel_arguments(lp, 1)
    return views, filt, mats, grid


def test_a_band_holds_the_rows_of_the_views_filtered_whole():
    """`fill_band` along the views (bands that overlap, start above the view and end below it): each band's rows
    are those of `filtered_sheared_views`, sheared or not, zero beyond the view; the rows kept from the band before
    are the same as if filtered again."""
    views, filt, _, _ = inputs()
    n_v, n_r, n_u = views.shape
    for shear in (np.zeros(n_v), np.linspace(-0.04, 0.05, n_v)):
        whole = filtered_sheared_views(views, shear, filt, *twiddles(256))
        scale = np.abs(whole).max()
        band = np.full((n_v, n_u + 2 * PAD_U, 112), np.nan, dtype=np.float32)
        band[:, :PAD_U] = band[:, PAD_U + n_u :] = 0.0
        start, n_f = 0, 0
        rows, bufs = np.empty((n_r, n_u), dtype=np.float32), np.empty((4, 256, 32), dtype=np.float32)
        sums, count = np.zeros(n_v), np.zeros(n_r, dtype=int)
        for lo, hi in ((-32, 48), (16, 112), (64, 160), (32, 96), (96, 176)):
            new_from = start + n_f if start <= lo < start + n_f else lo  # the rows filtered anew: summed once
            count[max(0, new_from) : max(0, min(hi, n_r))] += 1
            start, n_f = fill_band(views, shear, filt, *twiddles(256), band, start, n_f, lo, hi, rows, bufs, sums)
            assert (start, n_f) == (lo, hi - lo)
            assert np.allclose(sums, np.einsum("vru,r->v", views.astype(float), count), rtol=1e-9, atol=1e-9)
            got = band[:, :, : hi - lo]
            ref = np.zeros_like(got)
            a, b = max(lo, 0), min(hi, n_r)
            ref[:, :, a - lo : b - lo] = whole[:, :, PAD + a : PAD + b]
            assert np.abs(got - ref).max() <= 1e-6 * scale


def test_a_band_covers_the_rows_a_block_reads():
    """`band_rows` from a block's lines: the rows of its first and last lanes at the first and last section lie
    `MARGIN` rows inside the band; the rows filtered anew after the band before are a whole number of `GRID`
    rows."""
    from napari_tomoalign.reconstruction.local_resample import fit_sampled, view_tables

    _, _, mats, grid = inputs()
    n_z, n_x, n_y = 30, 96, 150
    centre = ((n_x - 1) / 2.0, (n_y - 1) / 2.0, (n_z - 1) / 2.0, (n_x - 1) / 2.0)
    tabs = view_tables(mats, grid, view_shears(mats), centre, n_z, n_x)
    for yb, n_valid in ((0, 64), (64, 64), (128, 22)):
        geo = fit_sampled(tabs, grid, yb - centre[1], n_valid - 1, n_z, n_x, (PAD_U, PAD)).astype(float)
        lo, hi = band_rows(geo, n_valid, n_z, PAD)
        assert hi - lo <= 64 + 2 * MARGIN + 4
        for start, n_f in ((0, 0), (lo - 50, 80), (lo - 7, 3 * GRID), (lo + 1, GRID)):
            end = band_end(lo, hi, start, n_f)
            new_from = start + n_f if start <= lo < start + n_f else lo
            assert end >= hi and (end - new_from) % GRID == 0 and end - new_from < max(0, hi - new_from) + GRID
        for z in (0, n_z - 1):
            for j in (0, n_valid - 1):
                r = geo[:, 4] + geo[:, 5] * z + (1 + geo[:, 6] + geo[:, 7] * z) * j - PAD
                assert lo + MARGIN <= r.min() and r.max() + 1 <= hi - MARGIN
                assert abs(r.mean() - yb - j) < 2.0


def test_a_blocks_lines_are_fit_blocks_and_a_slab_makes_the_rows_of_every_column_its_lanes_read():
    """`local_resample.fit_sampled` (each view's lines from its table, `view_tables`) gives `fit_block`'s lines at the
    columns it fits, to float32 rounding, with an X-axis tilt and patches' own increments; and `chunk_rows` makes the
    rows of the columns a slab reads only (`_read_columns`): every column whose cell a group's middle lane can take at
    the slab's first or last section (the block's middle lane's column, the groups' drift either way) is among them."""
    from napari_tomoalign.reconstruction.local_blocks import fit_block
    from napari_tomoalign.reconstruction.local_check import lines_at
    from napari_tomoalign.reconstruction.local_errors import JM
    from napari_tomoalign.reconstruction.local_resample import FIT_X_STEP, _read_columns, fit_sampled, view_tables

    _, _, mats, grid = inputs()
    n_z, n_x, n_y = 30, 96, 150
    centre = ((n_x - 1) / 2.0, (n_y - 1) / 2.0, (n_z - 1) / 2.0, (n_x - 1) / 2.0)
    shear = view_shears(mats)
    for yb in (0, 64, 128):
        last = min(64, n_y - yb) - 1
        geo = fit_sampled(view_tables(mats, grid, shear, centre, n_z, n_x), grid, yb - centre[1], last, n_z, n_x,
                          (PAD_U, PAD))
        want = np.zeros(((n_x - 1) // FIT_X_STEP + 1, 8, mats.shape[1]), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], last, n_z, centre, FIT_X_STEP, (PAD_U, PAD), want)
        got = geo[:, :, ::FIT_X_STEP].transpose(2, 1, 0)
        assert np.allclose(got, want, rtol=1e-6, atol=1e-5)
        assert np.abs(got[:, (1, 3, 5, 7)]).max() > 1e-4  # the lines change along z: the X-axis tilt is there
    lines = np.empty((5, n_x))
    for v in range(geo.shape[0]):
        g = geo[v].T.astype(float)
        drift = (16 * np.maximum(np.abs(g[:, 2]), np.abs(g[:, 2] + g[:, 3] * (n_z - 1)))).max() + 1e-3
        for z0, z1 in ((0, 8), (8, 16), (24, 30)):
            lines_at(geo[v], (z0 + z1 - 1) / 2.0, lines)
            lines[4] = g[:, 1] + g[:, 3] * JM
            c0, c1 = _read_columns(lines, (z1 - 1 - z0) / 2.0, drift)
            for z in (z0, z1 - 1):
                s = g[:, 0] + g[:, 2] * JM + (g[:, 1] + g[:, 3] * JM) * z  # the block's middle lane's column
                assert c0 <= np.floor(s - drift).min() and np.floor(s + drift).max() + 2 <= c1


def test_the_kernel_in_bands_is_the_kernel_on_views_filtered_whole():
    """`backproject_local_bands` (one run of blocks or two, all the rows or a sub-range of them, with and without a
    shear) gives `backproject_local_rows`' volume on `filtered_sheared_views`: the same cells and fractions to the
    last bit (`local_rows._column_rows`), the filtered rows to float32 rounding."""
    views, filt, mats, grid = inputs()
    n_v, n_r, n_u = views.shape
    n_z = 20
    slabs = np.array([8, 8, 8, 8, 8, 8, 8, 8, 4])
    for shear in (np.zeros(n_v), view_shears(mats)):
        q = filtered_sheared_views(views, shear, filt, *twiddles(256))
        ref = np.empty((n_z, n_r, n_u), dtype=np.float32)
        backproject_local_rows(q, shear, n_r, n_u, mats, grid, 0, ref, slabs)
        scale = np.abs(ref).max()
        for n_runs in (1, 2):
            got = np.full((n_z, n_r, n_u), np.nan, dtype=np.float32)
            sums = backproject_local_bands(views, shear, filt, *twiddles(256), mats, grid, 0, got, slabs, n_runs)
            assert np.abs(got - ref).max() <= 1e-5 * scale
            assert np.all(np.isfinite(sums))
            hurt = views.copy()
            hurt[5, 149, 0] = np.nan  # the last row: in the last block's band (a row may be filtered twice)
            sums = backproject_local_bands(hurt, shear, filt, *twiddles(256), mats, grid, 0, got, slabs, n_runs)
            assert np.isnan(sums[5]) and np.all(np.isfinite(np.delete(sums, 5)))
        part = np.full((n_z, 70, n_u), np.nan, dtype=np.float32)  # rows 40 .. 110, a block across the middle
        backproject_local_bands(views, shear, filt, *twiddles(256), mats, grid, 40, part, slabs, 2)
        whole = np.empty((n_z, 70, n_u), dtype=np.float32)
        backproject_local_rows(q, shear, n_r, n_u, mats, grid, 40, whole, slabs)
        assert np.abs(part - whole).max() <= 1e-5 * scale


def test_a_nan_pixel_in_a_row_the_bands_reach_is_refused_naming_the_view():
    """The local WBP on the one-row kernel sums the rows it filters (`local_band.fill_band`) instead of a pass over
    the stack first: a NaN or infinite pixel in a view used is refused, naming the view as a person counts it; a
    view left out is not looked at, and a float64 stack beyond float32's range is refused too."""
    import pytest

    from napari_tomoalign.reconstruction.local_errors import choose_kernel
    from napari_tomoalign.reconstruction.wbp import weighted_back_projection

    lp, tilts = geometry(x_tilt_deg=0.0)
    views = inputs()[0]
    assert choose_kernel(*kernel_arguments(lp, 1), 20, (96, 150)) >= 2  # the one-row kernel, in bands
    clean = weighted_back_projection(views, tilts, thickness=20, local=lp)
    for bad in (np.nan, np.inf):
        for binning in (1, 2):
            hurt = views.copy()
            hurt[3, 70, 40] = bad
            with pytest.raises(ValueError, match="view 4 of the aligned stack holds NaN or infinite"):
                weighted_back_projection(hurt, tilts, thickness=20, binning=binning, local=lp)
    use = np.ones(9, bool)
    use[3] = False
    assert np.all(np.isfinite(weighted_back_projection(hurt, tilts, thickness=20, local=lp, use_view=use)))
    big = views.astype(np.float64)
    big[1, 0, 0] = 1e308
    with pytest.raises(ValueError, match="view 2 of the aligned stack holds NaN or infinite"):
        weighted_back_projection(big, tilts, thickness=20, local=lp)
    assert np.all(np.isfinite(clean))
