"""The local WBP's error check (`local_errors.measured_errors`, compiled in `local_check`) against session 16's
measure: `local_blocks.fit_block`'s lines (unchanged, the kernel's), `local_blocks.block_errors` (session 16's
position and extrapolation errors, still in the package) and the slab errors worked out here in numpy as session 16's
`_slab_error_of` did (the column walk as a search over the middle section's columns). The same errors to 1e-6 px
and the same slabs, on small geometries with an X-axis tilt and on BBa's local file (IMOD's tutorial, solved here)."""

import numpy as np
import pytest
from support.bba_local import bba_local_projection

from napari_tomoalign.reconstruction.local_blocks import (
    BLOCK_TOLERANCE_PX,
    ERROR_X_STEP,
    EXTRAPOLATION_LIMIT_PX,
    ROWS,
    block_errors,
    fit_block,
)
from napari_tomoalign.reconstruction.local_check import MAX_LANES, block_lanes, fit_lines, lane_positions, view_table
from napari_tomoalign.reconstruction.local_errors import (
    MEASURED_SLAB,
    choose_geometry,
    choose_slabs,
    group_slabs,
    measured_errors,
    row_shears,
)
from napari_tomoalign.reconstruction.local_warp import LocalProjection, kernel_arguments

JM = (ROWS - 1) / 2.0


def tilted_patches(n_views=9, nx=96, ny=80, seed=1, shift_px=0.05, x_tilt_deg=2.5, turn_deg=0.0, tilt_deg=0.2,
                   side=3):
    """A ``side`` x ``side`` patch grid over a ``nx`` x ``ny`` stack: IMOD's projection with an X-axis tilt, each patch
    with its own tilt increment (``tilt_deg``), shift (``shift_px``) and in-plane turn (``turn_deg``), as a local
    file gives them."""
    rng = np.random.default_rng(seed)
    n_p = side * side
    t = np.radians(np.linspace(-60, 60, n_views)[None, :] + rng.normal(0, tilt_deg, (n_p, n_views)))
    f = np.radians(x_tilt_deg + rng.normal(0, 0.1, (n_p, n_views)))
    proj = np.zeros((n_p, n_views, 2, 4))
    proj[..., 0, 0] = np.cos(t)
    proj[..., 0, 1] = np.sin(f) * np.sin(t)
    proj[..., 0, 2] = np.cos(f) * np.sin(t)
    proj[..., 1, 1] = np.cos(f)
    proj[..., 1, 2] = -np.sin(f)
    a = np.radians(rng.normal(0, turn_deg, (n_p, n_views)))
    turn = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    m = turn @ proj
    m[..., :, 3] = rng.normal(0, shift_px, (n_p, n_views, 2))
    return LocalProjection(m, (side, side), (-nx / 3.0, -ny / 3.0), (nx / (1.5 * side - 1.5), ny / (1.5 * side - 1.5)))


def _lines(g, zs):
    """`local_errors.lines_at` of lines ``g`` ``(8, views, columns)``: ``(s, a, r, b)``, each ``(views, columns)``."""
    a = g[2] + g[3] * zs
    return g[0] + g[1] * zs + a * JM, a, g[4] + g[5] * zs, g[6] + g[7] * zs


def _slab_errors_of(g, n_z, last, peak, total):
    """Session 16's `_slab_error_of` on one block's lines ``g`` (``fit_block``'s, ``(8, views, columns)``), all views
    at once: its walk along the middle section's columns (which never goes back) is the search of the largest column
    read so far among them."""
    for z0 in range(0, n_z, MEASURED_SLAB):
        z1 = min(n_z, z0 + MEASURED_SLAB)
        s, _, r, b = _lines(g, (z0 + z1 - 1) / 2.0)
        assert np.all(np.diff(s, axis=1) > 0)  # the search is the walk where the columns increase
        for z in (z0, z1 - 1):
            sz, az, rz, bz = _lines(g, z)
            for j in (0, last):
                c = sz + az * (j - JM)
                x = (s[:, None, 1:-1] <= np.maximum.accumulate(c, axis=1)[:, :, None]).sum(axis=2)

                def at(a, k=0, x=x):
                    return np.take_along_axis(a, x + k, axis=1)

                t = (c - at(s)) / (at(s, 1) - at(s))
                d = rz - (at(r) + t * (at(r, 1) - at(r))) + (bz - (at(b) + t * (at(b, 1) - at(b)))) * j
                peak[:] = np.maximum(peak, np.abs(d).max(axis=1))
                total += (d**2).sum(axis=1)


def session16_errors(mats, grid, n_z, size, shear):
    """``(position, extrapolation, slab errors)`` as session 16 measured them (module docstring)."""
    nx, ny = size
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    n_v, n_xs = mats.shape[1], (nx - 1) // ERROR_X_STEP + 1
    peak, total = np.zeros(n_v), np.zeros(n_v)
    for yb in range(0, ny, ROWS):
        last = min(ROWS, ny - yb) - 1
        geo = np.zeros((n_xs, 8, n_v), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], last, n_z, centre, ERROR_X_STEP, (0.0, 0.0), geo)
        _slab_errors_of(geo.transpose(1, 2, 0).astype(float), n_z, last, peak, total)
    return (*block_errors(mats, grid, n_z, size, shear), np.stack([peak, total]))


def session16_slabs(pos, ext, err):
    """`local_errors.choose_slabs`' decision from errors."""
    if pos > BLOCK_TOLERANCE_PX or ext > EXTRAPOLATION_LIMIT_PX:
        return np.zeros(err.shape[1], dtype=np.int64)
    return group_slabs(err, pos)


def assert_same_check(mats, grid, n_z, size, shear):
    """The new check's errors within 1e-6 px of session 16's (sums of squares: 1e-9 of them) and its slabs the same."""
    pos, ext, err = measured_errors(mats, grid, n_z, size, shear)
    want = session16_errors(mats, grid, n_z, size, shear)
    assert abs(pos - want[0]) < 1e-6 and abs(ext - want[1]) < 1e-6, (pos, ext, want[:2])
    assert np.abs(err[0] - want[2][0]).max() < 1e-6
    assert np.allclose(err[1], want[2][1], rtol=1e-9, atol=1e-12)
    slabs = choose_slabs(mats, grid, n_z, size, shear)
    assert np.array_equal(slabs, session16_slabs(*want)), (slabs, session16_slabs(*want))
    return pos, ext, err, slabs


@pytest.mark.parametrize("n_views, x_tilt, shift, turn, tilt, n_z, size, kernels", [
    (9, 2.5, 0.05, 0.0, 0.2, 24, (96, 80), (0, 1)),  # rows that move by 0.044 px per section: the block kernel
    (25, 0.5, 0.02, 0.02, 0.05, 64, (96, 80), (16, 16)),  # patches turned a little: slabs of 16
    (9, 1.0, 0.05, 0.0, 0.2, 37, (97, 129), (8, 8)),  # a last block of one row, a last slab of five sections
    (25, 1.5, 0.02, 0.01, 0.05, 32, (96, 80), (0, 8)),  # unsheared beyond the extrapolation limit, sheared slabs
    (9, 0.0, 1.0, 0.0, 0.2, 24, (96, 80), (0, 0)),  # blocks beyond their limits: the exact voxel kernel
    (9, 0.5, 0.01, 0.0, 0.02, 24, (96, 160), (12, 12)),  # 12 x 12 patches 10 rows apart: up to 21 lanes a block
])
def test_the_check_is_session_16s(n_views, x_tilt, shift, turn, tilt, n_z, size, kernels):
    """Unsheared and sheared (`row_shears`): the errors and slabs of session 16's check; `choose_geometry` shears the
    views only where the one-row kernel is not within its limits on them unsheared."""
    lp = tilted_patches(n_views, *size, shift_px=shift, x_tilt_deg=x_tilt, turn_deg=turn, tilt_deg=tilt,
                        side=12 if size[1] == 160 else 3)
    mats, grid = kernel_arguments(lp, 1)
    got = [assert_same_check(mats, grid, n_z, size, shear)[3] for shear in (np.zeros(n_views), row_shears(mats))]
    assert (got[0].min(), got[1].min()) == kernels
    shear, slabs = choose_geometry(mats, grid, n_z, size)
    assert np.array_equal(slabs, got[1] if kernels[0] < 2 and kernels[1] else got[0])
    assert shear.any() == (kernels[0] < 2 and kernels[1] > 0)


def test_the_checks_lines_are_fit_blocks():
    """`local_check.fit_lines`' lines are those `fit_block` fits (the kernel's), to a float32 step."""
    mats, grid = kernel_arguments(tilted_patches(nx=97, ny=129, shift_px=0.2, x_tilt_deg=1.5, turn_deg=0.3), 1)
    n_z, (nx, ny) = 24, (97, 129)
    shear = row_shears(mats)
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0, (n_z - 1) / 2.0, (nx - 1) / 2.0)
    n_xs = (nx - 1) // ERROR_X_STEP + 1
    n, lanes, roles, span = block_lanes(grid, -centre[1], ny)
    tab, pos, g = np.empty((3, 4, 2, n_xs)), np.empty((MAX_LANES, 4, n_xs)), np.empty((8, n_xs))
    for blk in range(len(n)):
        yb = blk * ROWS
        geo = np.zeros((n_xs, 8, mats.shape[1]), dtype=np.float32)
        fit_block(mats, grid, shear, yb - centre[1], min(ROWS, ny - yb) - 1, n_z, centre, ERROR_X_STEP, (0.0, 0.0),
                  geo)
        for v in range(mats.shape[1]):
            view_table(mats, grid, v, shear[v], centre, n_z - 1, ERROR_X_STEP, tab)
            lane_positions(tab, grid, yb - centre[1], lanes[blk], n[blk], pos)
            fit_lines(pos, lanes[blk], roles[blk], n[blk], span[blk], n_z - 1, g)
            want = geo[:, :, v].T.astype(float)
            assert np.all(np.abs(g - want) <= 2 * np.spacing(np.abs(want).astype(np.float32)) + 1e-12)


@pytest.fixture(scope="module")
def bba_local(imod_data):
    """BBa's local file as the benchmarks solve it (aligna.com's options, 5 x 5 patches) on a 512 x 512 stack."""
    return bba_local_projection(imod_data)[0]


@pytest.mark.parametrize("binning", [1, 2])
def test_bbas_check_is_session_16s(bba_local, binning):
    """BBa's local file, 128 sections at bin 1 (64 at bin 2): the same errors and slabs; not sheared (0.011 px)."""
    mats, grid = kernel_arguments(bba_local, binning)
    n_z, size = 128 // binning, (512 // binning, 512 // binning)
    pos, ext, err, slabs = assert_same_check(mats, grid, n_z, size, np.zeros(mats.shape[1]))
    assert 0.1 < pos < BLOCK_TOLERANCE_PX and 0.15 < err[0].max() < 0.18  # session 16: 0.113 / 0.126, 0.169 / 0.163
    shear, chosen = choose_geometry(mats, grid, n_z, size)
    assert not shear.any() and np.array_equal(chosen, slabs) and slabs.min() >= 4
