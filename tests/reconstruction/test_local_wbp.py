"""The local WBP's block kernel against an exact per-voxel reference (numpy and scipy's bilinear sampling):
every voxel projected with the bilinear blend of its four patch matrices, the view sampled there."""

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from napari_tomoalign.reconstruction.bp_fft import twiddles
from napari_tomoalign.reconstruction.local_blocks import (
    BLOCK_TOLERANCE_PX,
    backproject_local_blocks,
    block_errors,
    blocks_suffice,
    filtered_sheared_views,
    view_shears,
)
from napari_tomoalign.reconstruction.local_errors import (
    SLAB_TOLERANCE_PX,
    SLABS,
    choose_geometry,
    choose_kernel,
    choose_slabs,
    group_slabs,
    row_shears,
    slab_errors,
)
from napari_tomoalign.reconstruction.local_rows import backproject_local_rows
from napari_tomoalign.reconstruction.local_warp import LocalProjection, kernel_arguments


def patch_geometry(n_views=9, nx=96, ny=80, seed=1, shift_px=0.5, x_tilt_deg=2.5):
    """A 3 x 3 patch grid over a ``nx`` x ``ny`` stack: IMOD's projection with an X-axis tilt, each patch with
    its own tilt increment (0.2 deg) and shift (``shift_px``), as a local file gives them."""
    rng = np.random.default_rng(seed)
    tilts = np.linspace(-60, 60, n_views)
    n_p = 9
    t = np.radians(tilts[None, :] + rng.normal(0, 0.2, (n_p, n_views)))
    f = np.radians(x_tilt_deg + rng.normal(0, 0.1, (n_p, n_views)))
    m = np.zeros((n_p, n_views, 2, 4))
    m[..., 0, 0] = np.cos(t)
    m[..., 0, 1] = np.sin(f) * np.sin(t)
    m[..., 0, 2] = np.cos(f) * np.sin(t)
    m[..., 1, 1] = np.cos(f)
    m[..., 1, 2] = -np.sin(f)
    m[..., :, 3] = rng.normal(0, shift_px, (n_p, n_views, 2))
    return LocalProjection(m, (3, 3), (-nx / 3.0, -ny / 3.0), (nx / 3.0, ny / 3.0)), tilts


def reference(views, lp, n_z):
    """``(n_z, ny, nx)``: each voxel's blended matrix applied to ``(x, y, z, 1)`` and the view sampled there
    (bilinear, zero outside), summed over views."""
    n_v, ny, nx = views.shape
    z, y, x = np.meshgrid(np.arange(n_z) - (n_z - 1) / 2, np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2,
                          indexing="ij")
    gx = np.clip((x - lp.start_px[0]) / lp.spacing_px[0], 0, lp.n_patches[0] - 1)
    gy = np.clip((y - lp.start_px[1]) / lp.spacing_px[1], 0, lp.n_patches[1] - 1)
    ix, iy = np.minimum(gx.astype(int), lp.n_patches[0] - 2), np.minimum(gy.astype(int), lp.n_patches[1] - 2)
    fx, fy = gx - ix, gy - iy
    out = np.zeros(x.shape)
    point = np.stack([x, y, z, np.ones_like(x)], axis=-1)
    for v in range(n_v):
        mats = lp.matrices[:, v]
        m = sum(w[..., None, None] * mats[(iy + dy) * lp.n_patches[0] + ix + dx]
                for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)),
                                  (1, 1, fy * fx)))
        pos = np.einsum("...ij,...j->...i", m, point)
        coords = [pos[..., 1] + (ny - 1) / 2, pos[..., 0] + (nx - 1) / 2]
        out += map_coordinates(views[v].astype(float), coords, order=1, mode="constant", cval=0.0)
    return out


def sheared(views, shear):
    """`filtered_sheared_views` with the identity filter (the unscaled inverse FFT divided out): the views as
    the block kernel reads them, unfiltered, so that the reference can sample the same views."""
    n_pad = 2 * 2 ** int(np.ceil(np.log2(views.shape[2])))
    ident = np.full((views.shape[0], n_pad), 1.0 / n_pad, dtype=np.float32)
    return filtered_sheared_views(views, shear, ident, *twiddles(n_pad))


def ncc(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_block_kernel_matches_the_per_voxel_reference():
    """The block kernel follows each lane's position along a line fitted per block (module docstring of
    `local_blocks`): patches 27-32 px apart whose shifts differ by 0.2 px (several kinks per block of 64 rows)
    leave NCC 0.999 against the exact reference."""
    lp, _ = patch_geometry(shift_px=0.2)
    rng = np.random.default_rng(3)
    views = gaussian_filter(rng.normal(size=(9, 80, 96)), (0, 2, 2)).astype(np.float32)
    n_z = 24
    mats, grid = kernel_arguments(lp, 1)
    shear = view_shears(mats)
    vol = np.empty((n_z, 80, 96), dtype=np.float32)
    backproject_local_blocks(sheared(views, shear), shear, 80, 96, mats, grid, 0, vol)
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert ncc(vol[inner], ref[inner]) > 0.999
    assert np.median(np.abs(vol - ref)[inner]) < 0.02 * np.abs(ref).max()
    # a sub-range of rows is the same rows of the whole
    part = np.empty((n_z, 20, 96), dtype=np.float32)
    backproject_local_blocks(sheared(views, shear), shear, 80, 96, mats, grid, 30, part)
    assert ncc(part, vol[:, 30:50]) > 0.999


def test_the_block_kernel_is_used_only_where_its_error_is_small():
    """`block_errors` measures the block kernel's largest position error; beyond `BLOCK_TOLERANCE_PX` the
    WBP takes the exact per-voxel kernel (patches that differ a lot, such as test_local_truth's)."""
    mild, _ = patch_geometry(shift_px=0.05)
    harsh, _ = patch_geometry(shift_px=1.0)
    errors = [block_errors(*kernel_arguments(lp, 1), 24, (96, 80))[0] for lp in (mild, harsh)]
    assert errors[0] < BLOCK_TOLERANCE_PX < errors[1]
    assert blocks_suffice(*kernel_arguments(mild, 1), 24, (96, 80))
    assert not blocks_suffice(*kernel_arguments(harsh, 1), 24, (96, 80))


def drifting_geometry(n_views=9, nx=96, ny=160, drift_px=0.5):
    """2 x 2 patches at the corners of a ``nx`` x ``ny`` stack whose shifts differ between top and bottom by
    ``drift_px`` per 64 rows, in x and in y: every voxel's position drifts linearly along the rows (no kink),
    by up to ``drift_px`` over a block, beyond the view's mean shear."""
    tilts = np.linspace(-60, 60, n_views)
    t = np.radians(tilts)
    m = np.zeros((4, n_views, 2, 4))
    m[..., 0, 0] = np.cos(t)
    m[..., 0, 2] = np.sin(t)
    m[..., 1, 1] = 1.0
    step = drift_px * (ny - 1) / 64.0
    for p, sign in ((0, -0.5), (1, -0.5), (2, 0.5), (3, 0.5)):  # patches 0, 1 at the top row, 2, 3 at the bottom
        m[p, :, 0, 3] = sign * step * np.cos(t)  # the top and bottom drift apart, more at low tilt
        m[p, :, 1, 3] = sign * step * 0.6
    m[1, :, 0, 3] += 0.3 * np.cos(t)  # and the left and right differ too, so the shear is not the same for all x
    m[3, :, 0, 3] -= 0.3 * np.cos(t)
    start = (-(nx - 1) / 2.0, -(ny - 1) / 2.0)
    return LocalProjection(m, (2, 2), start, (nx - 1.0, ny - 1.0)), tilts


def test_each_lane_follows_its_drift_along_the_rows():
    """Positions that drift linearly along the rows (by up to 0.5 px in a block of 64, in column and row) are
    followed lane by lane: `block_errors` finds no position error, and the result matches the exact
    per-voxel reference (NCC 0.999994, median error 2e-7 of its range, largest 0.7%: the lanes that
    extrapolate up to 0.12 px beyond their group's cell). Session 8's kernel, which took each view's position at
    a block's middle row for all its 32 lanes, was 0.12 px off at their ends: NCC 0.99976, median error 1e-3
    of the range, largest 1.9%."""
    lp, _ = drifting_geometry()
    rng = np.random.default_rng(11)
    views = gaussian_filter(rng.normal(size=(9, 160, 96)), (0, 2, 2)).astype(np.float32)
    n_z = 20
    mats, grid = kernel_arguments(lp, 1)
    pos, ext = block_errors(mats, grid, n_z, (96, 160))
    assert pos < 1e-3 and ext < 0.25
    shear = view_shears(mats)
    vol = np.empty((n_z, 160, 96), dtype=np.float32)
    backproject_local_blocks(sheared(views, shear), shear, 160, 96, mats, grid, 0, vol)
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert ncc(vol[inner], ref[inner]) > 0.99999
    err = np.abs(vol - ref)[inner] / np.ptp(ref[inner])
    assert np.median(err) < 1e-5 and err.max() < 0.01


def test_the_one_row_kernel_matches_the_per_voxel_reference():
    """`local_rows` (the views resampled along each voxel column's rows per slab of sections, then one column
    interpolation per voxel, as the global WBP's) against the exact reference, on patches 27-32 px apart whose
    shifts differ by 0.1 px and an X-axis tilt of 0.5 deg: slabs of 12 (`choose_kernel`), NCC 0.99980 (the
    block kernel: 0.99986); its error grows with the slab, as `slab_errors` says (4 sections: 0.99985, 16:
    0.99978)."""
    lp, _ = patch_geometry(shift_px=0.1, x_tilt_deg=0.5)
    rng = np.random.default_rng(3)
    views = gaussian_filter(rng.normal(size=(9, 80, 96)), (0, 2, 2)).astype(np.float32)
    n_z = 24
    mats, grid = kernel_arguments(lp, 1)
    assert choose_kernel(mats, grid, n_z, (96, 80)) == 12
    shear = view_shears(mats)
    q = sheared(views, shear)
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    got = {}
    for slab in (4, 8, 12, 16):
        vol = np.empty((n_z, 80, 96), dtype=np.float32)
        backproject_local_rows(q, shear, 80, 96, mats, grid, 0, vol, np.full(9, slab))
        got[slab] = ncc(vol[inner], ref[inner])
        err = np.abs(vol - ref)[inner] / np.ptp(ref[inner])
        assert np.median(err) < 0.002 and err.max() < 0.02
    assert got[4] > got[8] > got[12] > 0.9998 > got[16] > 0.9997
    # a sub-range of rows is the same rows of the whole (blocks start at the sub-range's first row)
    whole = np.empty((n_z, 80, 96), dtype=np.float32)
    backproject_local_rows(q, shear, 80, 96, mats, grid, 0, whole, np.full(9, 8))
    part = np.empty((n_z, 20, 96), dtype=np.float32)
    backproject_local_rows(q, shear, 80, 96, mats, grid, 30, part, np.full(9, 8))
    assert ncc(part, whole[:, 30:50]) > 0.9995


def test_the_one_row_kernel_follows_the_drift_along_the_rows():
    """The drifting patches of `test_each_lane_follows_its_drift_along_the_rows`, in slabs of 16 (no slab
    error: the geometry has no X-axis tilt and no rotation; a slab of 48 is the whole volume): as close to the exact
    reference as the block kernel."""
    lp, _ = drifting_geometry()
    rng = np.random.default_rng(11)
    views = gaussian_filter(rng.normal(size=(9, 160, 96)), (0, 2, 2)).astype(np.float32)
    n_z = 20
    mats, grid = kernel_arguments(lp, 1)
    assert choose_kernel(mats, grid, n_z, (96, 160)) == SLABS[0]
    shear = view_shears(mats)
    vol = np.empty((n_z, 160, 96), dtype=np.float32)
    backproject_local_rows(sheared(views, shear), shear, 160, 96, mats, grid, 0, vol, np.full(9, SLABS[0]))
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert ncc(vol[inner], ref[inner]) > 0.99999
    err = np.abs(vol - ref)[inner] / np.ptp(ref[inner])
    assert np.median(err) < 1e-5 and err.max() < 0.01


def test_the_slab_is_as_thick_as_its_error_allows():
    """`slab_errors` grows with the X-axis tilt (the row of a voxel moves by ``sin f`` per section) and with the
    slab; `choose_kernel` takes the thickest slab within `SLAB_TOLERANCE_PX`, the block kernel (1) where even
    `SLABS`' thinnest is not, and the exact voxel kernel (0) where the blocks are not within their limits."""
    kinds = []
    for shift, x_tilt in ((0.05, 0.0), (0.05, 2.5), (0.05, 5.0), (1.0, 0.0)):
        mats, grid = kernel_arguments(patch_geometry(shift_px=shift, x_tilt_deg=x_tilt)[0], 1)
        errors = slab_errors(mats, grid, 24, (96, 80))
        assert np.all(np.diff(errors) < 0)  # thinner slabs, smaller errors
        kinds.append(choose_kernel(mats, grid, 24, (96, 80)))
        if x_tilt == 2.5:  # the rows move by 0.044 px per section: 0.33 px over half a slab of 16
            assert 0.3 < errors[SLABS.index(16)] < 0.4 and errors[-1] <= SLAB_TOLERANCE_PX
    assert kinds == [16, 4, 1, 0]


def test_the_views_are_not_sheared_where_the_one_row_kernel_follows_the_drift():
    """An X-axis tilt of 0.8 deg: the shear would move a group's lanes by 0.2 px, within what the one-row kernel's
    lanes follow themselves; `choose_geometry` leaves the views unsheared, closer to the exact reference than
    with the shear's extra interpolation."""
    lp, _ = patch_geometry(shift_px=0.05, x_tilt_deg=0.8)
    mats, grid = kernel_arguments(lp, 1)
    n_z = 24
    shear, slabs = choose_geometry(mats, grid, n_z, (96, 80))
    assert not shear.any() and slabs.min() >= 2 and np.abs(row_shears(mats)).max() * 16 > 0.1
    views = gaussian_filter(np.random.default_rng(5).normal(size=(9, 80, 96)), (0, 1.5, 1.5)).astype(np.float32)
    ref = reference(views, lp, n_z)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    score = {}
    for name, s in (("unsheared", shear), ("sheared", row_shears(mats))):
        vol = np.empty((n_z, 80, 96), dtype=np.float32)
        backproject_local_rows(sheared(views, s), s, 80, 96, mats, grid, 0, vol, choose_slabs(mats, grid, n_z, (96, 80), s))
        score[name] = ncc(vol[inner], ref[inner])
    assert score["unsheared"] > max(0.9995, score["sheared"] + 1e-4), score


def test_the_low_tilts_take_thicker_slabs_within_the_same_squared_error():
    """`group_slabs`: each group of 8 views gets its own slab, within `SLAB_TOLERANCE_PX`; the views with little
    slab error (the low tilts) get thicker slabs than one slab for all would be, those with the most get thinner
    ones, and the summed squared error is no larger than with that one slab, or 16 sections where a thicker one
    would be within the tolerance for all (BBa's profile: 0.17 px over 16 sections at 64 deg, 0.005 at 8 deg)."""
    tilts = np.linspace(-56, 64, 61)
    peak = 0.005 + 0.16 * (np.abs(tilts) / 64) ** 3
    err = np.stack([peak, 40 * (0.6 * peak) ** 2])  # the largest, and the sum of the squares of 40 samples
    slabs = group_slabs(err, 0.11)
    scale = slabs / 16
    assert np.all(peak * scale <= SLAB_TOLERANCE_PX) and np.all(0.11 + peak * scale <= 0.25)
    assert np.all(slabs.reshape(-1)[: 56].reshape(7, 8) == slabs[:56:8, None])  # one slab per group of 8
    uniform = 12  # the thickest of SLABS within the tolerance for every view: 0.165 x 12 / 16 = 0.124 px
    assert np.sum(err[1] * scale**2) <= np.sum(err[1] * (uniform / 16) ** 2) * (1 + 1e-9)
    assert slabs[np.argmin(peak)] >= 24 and slabs[np.argmax(peak)] < uniform
    small = group_slabs(err * 0.2, 0.0)  # far within the tolerance: the budget is session 11's, 16 sections for all
    assert small.min() >= 8 and small.max() == SLABS[0] and np.sum(err[1] * (small / 16) ** 2) <= np.sum(err[1]) * 1.000001
    assert np.all(group_slabs(err * 0.01, 0.0) == SLABS[0])  # at most 0.0017 px over 16 sections: not counted
    assert np.all(group_slabs(err * 5, 0.0) == 1)  # the high tilts within no slab: the block kernel


def test_each_group_of_views_takes_its_own_slab():
    """`backproject_local_rows` with a slab per group of views: the views of each group are summed in that
    group's slabs and nothing else changes (the back-projection is linear in the views: the volume is the sum
    of each group's alone, in its slabs, to float32 rounding)."""
    lp, _ = patch_geometry(shift_px=0.1, x_tilt_deg=0.5)
    rng = np.random.default_rng(3)
    views = gaussian_filter(rng.normal(size=(9, 80, 96)), (0, 2, 2)).astype(np.float32)
    mats, grid = kernel_arguments(lp, 1)
    shear = view_shears(mats)
    q = sheared(views, shear)
    slabs = np.array([4] * 8 + [16])
    mixed = np.empty((24, 80, 96), dtype=np.float32)
    backproject_local_rows(q, shear, 80, 96, mats, grid, 0, mixed, slabs)
    parts = []
    for first, slab in ((slice(0, 8), 4), (slice(8, 9), 16)):
        alone = np.zeros_like(q)
        alone[first] = q[first]
        parts.append(np.empty((24, 80, 96), dtype=np.float32))
        backproject_local_rows(alone, shear, 80, 96, mats, grid, 0, parts[-1], np.full(9, slab))
    assert np.abs(mixed - parts[0] - parts[1]).max() < 1e-5 * np.abs(mixed).max()
    uniform = np.empty((24, 80, 96), dtype=np.float32)
    backproject_local_rows(q, shear, 80, 96, mats, grid, 0, uniform, np.full(9, 4))
    assert not np.allclose(uniform, mixed, rtol=0, atol=1e-4 * np.abs(mixed).max())  # the last view's slab counted


def test_a_negligible_shear_is_not_applied():
    """`row_shears`: without an X-axis tilt the views' shear moves a group's lanes by less than 0.02 px and is
    left out (the lanes follow their drift; the shear's interpolation would only smooth the views); with one of
    2.5 deg (0.044 px per row at 60 deg) it is `view_shears`."""
    flat = kernel_arguments(patch_geometry(shift_px=0.05, x_tilt_deg=0.0)[0], 1)[0]
    tilted = kernel_arguments(patch_geometry(shift_px=0.05, x_tilt_deg=2.5)[0], 1)[0]
    assert 0 < np.abs(view_shears(flat)).max() < 1e-3 and np.all(row_shears(flat) == 0)
    assert np.abs(view_shears(tilted)).max() > 0.03 and np.array_equal(row_shears(tilted), view_shears(tilted))


def numpy_filter(views, filt):
    """Each row edge-padded to ``filt``'s length (right edge, then left edge wrapping round) and filtered by
    scipy's FFT with the full-length filter ``filt`` (`wbp.full_filter`, divided by its length)."""
    import scipy.fft

    n_v, n_r, n_x = views.shape
    n_pad = filt.shape[1]
    half = (n_pad - n_x) // 2
    padded = np.empty((n_v, n_r, n_pad))
    padded[:, :, :n_x] = views
    padded[:, :, n_x : n_x + half] = views[:, :, -1:]
    padded[:, :, n_x + half :] = views[:, :, :1]
    spec = scipy.fft.fft(padded, axis=2) * (filt[:, None, :] * n_pad)
    return np.real(scipy.fft.ifft(spec, axis=2))[:, :, :n_x]


def test_the_local_filter_is_the_global_one_and_the_shear_commutes_with_it():
    """`filtered_sheared_views` filters with the global WBP's filter (`bp_fft`): unsheared it equals scipy's FFT
    filter; sheared, it equals filtering first and shifting each row after (linear interpolation), away from
    the view's edges, and what came from beyond the view is zero."""
    from scipy.ndimage import shift as nd_shift

    from napari_tomoalign.reconstruction.local_blocks import PAD, PAD_U
    from napari_tomoalign.reconstruction.wbp import angular_weights, full_filter, radial_filter

    rng = np.random.default_rng(5)
    views = gaussian_filter(rng.normal(size=(3, 70, 90)), (0, 1, 1)).astype(np.float32)
    filt = full_filter(radial_filter(256), angular_weights(np.array([-30.0, 0.0, 30.0])).astype(np.float32))
    ref = numpy_filter(views, filt)
    scale = np.abs(ref).max()
    q = filtered_sheared_views(views, np.zeros(3), filt, *twiddles(256))
    got = q[:, PAD_U : PAD_U + 90, PAD : PAD + 70].transpose(0, 2, 1)
    assert np.abs(got - ref).max() < 1e-5 * scale
    assert np.all(q[:, :PAD_U] == 0) and np.all(q[:, :, :PAD] == 0) and np.all(q[:, :, PAD + 70 :] == 0)
    shear = np.array([0.05, -0.08, 0.0])
    q = filtered_sheared_views(views, shear, filt, *twiddles(256))
    got = q[:, PAD_U : PAD_U + 90, PAD : PAD + 70].transpose(0, 2, 1)
    for v in range(3):
        for r in range(70):
            s = shear[v] * (r - 34.5)
            row = nd_shift(ref[v, r], -s, order=1, mode="constant", cval=0.0)
            assert np.abs(got[v, r, 12:-12] - row[12:-12]).max() < 0.02 * scale
            u = np.arange(90)
            assert np.all(got[v, r][(u + s < 0) | (u + s > 89)] == 0)


def test_the_local_wbp_in_blocks_matches_the_exact_kernel_through_the_filter(monkeypatch):
    """`wbp.weighted_back_projection` with local alignments, in blocks (the errors below the limits) and with
    the exact voxel kernel forced: the same filtered views, NCC > 0.996 inside the volume. Through the ramp
    filter the samples are sharp, and the blocks' position error (0.19 px here: patches 27-32 px apart, so
    several kinks in every block of 64 rows) shows: NCC 0.9973. Session 8's kernel gave the same at shift 0.05
    (0.99776 against 0.99777 now) and fell back to the exact kernel at this shift (its error: 0.32 px)."""
    from napari_tomoalign.reconstruction import local_errors
    from napari_tomoalign.reconstruction.wbp import weighted_back_projection

    lp, tilts = patch_geometry(shift_px=0.15)
    assert blocks_suffice(*kernel_arguments(lp, 1), 24, (96, 80))
    assert choose_kernel(*kernel_arguments(lp, 1), 24, (96, 80)) == 1  # the X-axis tilt of 2.5 deg: no slab
    rng = np.random.default_rng(7)
    views = gaussian_filter(rng.normal(size=(9, 80, 96)), (0, 1.5, 1.5)).astype(np.float32)
    blocks = weighted_back_projection(views, tilts, thickness=24, local=lp)
    monkeypatch.setattr(local_errors, "BLOCK_TOLERANCE_PX", -1.0)
    exact = weighted_back_projection(views, tilts, thickness=24, local=lp)
    inner = (slice(None), slice(6, -6), slice(6, -6))
    assert 0.996 < ncc(blocks[inner], exact[inner]) < 0.99999  # blocks, not the exact kernel twice
