"""The tracker's compiled fast paths give the same numbers as the plain code they replaced (issue 24's faster
tracker): the plane model's normal equations, the search's summed-area tables, the patch gather, the
strength histogram's density and the second pass's local contrasts."""

import types

import numpy as np
import pytest

from napari_tomoalign.tracking import _profile_fit as pf
from napari_tomoalign.tracking._measure import _integral_images
from napari_tomoalign.tracking._profile import BeadProfile
from napari_tomoalign.tracking._refine import _local_contrast
from napari_tomoalign.tracking._views import extract_patches
from napari_tomoalign.tracking.beads import _kde


@pytest.mark.parametrize("full", [True, False])
def test_the_plane_models_normal_equations_equal_the_general_loops(full):
    rng = np.random.default_rng(3)
    table = BeadProfile.ideal(6.0).values
    for trial in range(20):
        img = rng.normal(100.0, 5.0, (17, 17)).astype(np.float32)
        if trial % 3 == 0:
            img[rng.random((17, 17)) < 0.05] = np.nan  # outside the image
        x0, y0 = 8.0 + rng.normal(0, 1.5, 2)
        th = rng.normal(0.0, 1.0, 4) * np.array([-30.0, 100.0, 0.5, 0.5])
        n = 6 if full else 4
        a1, b1, a2, b2 = np.zeros((9, 9)), np.zeros(9), np.zeros((9, 9)), np.zeros(9)
        out1 = pf._accumulate(img, x0, y0, x0 + 0.3, y0 - 0.2, 5.0, th, table, 0.05, 4, 0.0, full, a1, b1)
        out2 = pf._accumulate_plane(img, x0, y0, x0 + 0.3, y0 - 0.2, 5.0, th, table, 0.05, full, a2, b2)
        assert out1 == out2
        assert np.array_equal(a1[:n, :n], a2[:n, :n]) and np.array_equal(b1[:n], b2[:n])


def test_summed_area_tables_equal_numpys_cumsums():
    rng = np.random.default_rng(4)
    p = (rng.random((50, 23, 23)) * 2000 - 500).astype(np.float32)
    c1 = np.cumsum(np.cumsum(np.pad(p, ((0, 0), (1, 0), (1, 0))), 1), 2, dtype=np.float64)
    c2 = np.cumsum(np.cumsum(np.pad(p.astype(np.float64) ** 2, ((0, 0), (1, 0), (1, 0))), 1), 2)
    t1, t2 = _integral_images(p)
    assert np.array_equal(c1, t1) and np.array_equal(c2, t2)


def test_the_compiled_patch_gather_equals_the_fancy_index():
    rng = np.random.default_rng(5)
    img = rng.random((300, 200)).astype(np.float32)
    origins = rng.integers(-20, 220, (80, 2))
    for outside in (None, np.nan):
        fast, inside = extract_patches(img, origins, 21, outside=outside)  # float32: compiled
        slow, inside2 = extract_patches(img.astype(np.float64), origins, 21, outside=outside)  # numpy's index
        assert fast.dtype == np.float32 and np.array_equal(fast, slow, equal_nan=True)
        assert np.array_equal(inside, inside2)


def test_the_blocked_kernel_density_equals_one_matrix():
    rng = np.random.default_rng(6)
    grid = np.linspace(-0.2, 1.5, 341)
    for n in (5, 400, 70000):
        x = np.clip(rng.normal(0.5, 0.4, n), -0.5, 1.5)
        for h in (0.2, 0.035):
            whole = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / h) ** 2).sum(axis=1) / (n * h * np.sqrt(2 * np.pi))
            assert np.array_equal(_kde(x, grid, h), whole)


def test_local_contrasts_equal_the_per_bead_medians():
    rng = np.random.default_rng(7)
    nv, nb = 21, 60
    c = rng.normal(1.0, 0.3, (nv, nb))
    c[rng.random((nv, nb)) < 0.5] = np.nan
    c[:, :3] = np.nan
    c[0, 5] = np.inf
    tr = types.SimpleNamespace(tilts=np.linspace(-60, 60, nv), contrast=c, n_beads=nb, mean_contrast=rng.random(nb))
    for j in (0, 10, 20):
        near = np.argsort(np.abs(tr.tilts - tr.tilts[j]), kind="stable")[1:5]
        want = np.full(nb, np.nan)
        for b in range(nb):
            local, whole = c[near, b][np.isfinite(c[near, b])], c[:, b][np.isfinite(c[:, b])]
            if local.size or whole.size:
                want[b] = np.median(local if local.size else whole)
        want = np.where(np.isfinite(want), want, tr.mean_contrast)
        assert np.array_equal(_local_contrast(tr, j), want)
