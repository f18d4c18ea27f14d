"""One rule for binning a size the binning does not divide (new user's finding 19): the binned image centred on
the unbinned one, alike in X and Y, for the aligned view and the streamed tomogram; sizes the binning divides
unchanged (byte for byte)."""

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.conventions import binned_centre, image_centre
from napari_tomoalign.reconstruction.stream import WarpedRows, reconstruct_streamed
from napari_tomoalign.reconstruction.warp import bin_centred, bin_image, pull_matrix, warp_view, warp_with_matrix

TILTS = np.arange(-60.0, 61.0, 3.0)


def rotation_xf(deg: float, shift=(7.3, -4.1)) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), shift[0]], [np.sin(t), np.cos(t), shift[1]]])


def raw_view(n: int, seed: int = 0) -> np.ndarray:
    """Smooth texture (blobs 6 px wide) on an ``n x n`` view: sub-pixel shifts are measurable."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 6.0).astype(np.float32) * 50 + 100


def centred_binning(img: np.ndarray, b: int, shape: tuple[int, int]) -> np.ndarray:
    """The truth: ``img`` averaged over b x b blocks at the points a binned grid centred on it stands for
    (binned pixel i at unbinned ``c + (i - c_b) b``)."""
    box = ndimage.uniform_filter(img.astype(np.float64), b, mode="nearest")
    if b % 2 == 0:  # an even box's centre is half a pixel off its index
        box = ndimage.shift(box, (-0.5, -0.5), order=1, mode="nearest")
    c, cb = image_centre((img.shape[1], img.shape[0])), image_centre((shape[1], shape[0]))
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return ndimage.map_coordinates(box, [c[1] + (yy - cb[1]) * b, c[0] + (xx - cb[0]) * b], order=3, mode="nearest")


def shift_between(a: np.ndarray, ref: np.ndarray, margin: int) -> np.ndarray:
    """(dx, dy) that ``a`` is displaced from ``ref`` (pixels; least squares on the gradient, iterated; each
    normalised first: a WBP's scale depends on its binning)."""
    s = np.zeros(2)
    inner = (slice(margin, -margin), slice(margin, -margin))
    a, ref = ((v - v[inner].mean()) / v[inner].std() for v in (np.asarray(a, float), np.asarray(ref, float)))
    for _ in range(5):
        moved = ndimage.shift(ref.astype(np.float64), (s[1], s[0]), order=3, mode="nearest")
        gy, gx = np.gradient(moved)
        g = np.column_stack([gx[inner].ravel(), gy[inner].ravel()])
        s -= np.linalg.lstsq(g, (a - moved)[inner].ravel(), rcond=None)[0]  # a(x) = ref(x - s)
    return s


def old_warp(img, xf, b, shape):
    """The rule before (session 11): the blocks' own centre taken as the unbinned one (binned from pixel 0)."""
    src = bin_image(img, b)
    out = np.empty(shape, np.float32)
    return warp_with_matrix(src, pull_matrix(xf, src.shape, shape, b), out, float(src.mean()))


def test_binned_centre_is_the_remainder_split():
    assert binned_centre((512, 512), 3).tolist() == pytest.approx([84.5 + 1 / 3, 84.5 + 1 / 3])
    assert binned_centre((4096, 4092), 8).tolist() == [255.5, 255.25]  # K3: 511 blocks, 4 rows over: (2045.5 - 3.5) / 8
    assert np.array_equal(binned_centre((512, 384), 4), image_centre((128, 96)))


@pytest.mark.parametrize("deg", [84.0, -12.5])
def test_an_aligned_view_at_bin_3_is_the_bin_1_one_binned_about_the_centre(deg):
    raw, xf = raw_view(512), rotation_xf(deg)
    ali1 = warp_view(raw, xf, interpolation="cubic")
    shape = (170, 170)
    truth = centred_binning(ali1, 3, shape)
    new = shift_between(warp_view(raw, xf, binning=3, out_shape=shape, interpolation="cubic"), truth, 40)
    old = shift_between(old_warp(raw, xf, 3, shape), truth, 40)
    assert np.all(np.abs(new) < 0.01), new  # binned pixels, X and Y alike
    assert np.max(np.abs(old)) > 0.1  # the rule before: up to a third of a binned pixel off, unlike in X and Y


def test_sizes_the_binning_divides_are_unchanged_byte_for_byte():
    raw, xf = raw_view(512), rotation_xf(84.0)
    for b in (1, 2, 4):
        shape = (512 // b, 512 // b)
        assert np.array_equal(warp_view(raw, xf, binning=b), old_warp(raw, xf, b, shape))


def tomogram_offset(tmp_path, tag: str) -> np.ndarray:
    """(dx, dy), binned pixels, of the bin-3 streamed tomogram's mean section from the bin-1 one's binned about
    the centre (a 512^2 series turned by ~84 degrees, as finding 19's)."""
    n = 512
    stack = np.stack([raw_view(n, seed=1)] * TILTS.size)
    xfs = np.stack([rotation_xf(84.0 + 0.1 * k, (3.0 + 0.2 * k, -2.0)) for k in range(TILTS.size)])
    views = np.arange(TILTS.size)
    sections = {}
    for b in (1, 3):
        src = WarpedRows(stack, xfs, views, b, (n // b, n // b))
        r = reconstruct_streamed(src, TILTS, tmp_path / f"{tag}{b}.rec", thickness=48, memory_bytes=2**30)
        with mrcfile.open(r.path) as m:
            sections[b] = m.data.astype(np.float64).mean(axis=0)
    return shift_between(sections[3], centred_binning(sections[1], 3, sections[3].shape), 40)


def test_a_streamed_tomogram_at_bin_3_maps_onto_the_bin_1_one_by_3_about_the_centre(tmp_path, monkeypatch):
    dx, dy = tomogram_offset(tmp_path, "new")
    assert abs(dx) < 0.01 and abs(dy) < 0.01, (dx, dy)  # binned pixels (measured 0.0016, 0.0013)
    from napari_tomoalign.reconstruction import stream

    monkeypatch.setattr(stream, "pull_matrix", lambda xf, i, o, b, raw=None: pull_matrix(xf, i, o, b))  # before
    before = tomogram_offset(tmp_path, "old")
    assert before[0] < -0.2 and before[1] > 0.2, before  # measured -0.32, +0.36: ~1 unbinned px, opposite ways


@pytest.mark.parametrize("rows,cols,b", [(512, 512, 3), (511, 514, 4), (96, 128, 4)])
def test_a_stack_binned_after_is_centred_as_the_warp_bins(rows, cols, b):
    """The dock's preview bins the aligned stack after (`warp.bin_centred`): the same rule as the warp's pull, and
    `bin_image` byte for byte where the binning divides."""
    ali = np.stack([raw_view(max(rows, cols), seed=s)[:rows, :cols] for s in (2, 3)])
    got = bin_centred(ali, b)
    assert got.shape == (2, rows // b, cols // b)
    if rows % b == 0 and cols % b == 0:
        assert np.array_equal(got, np.stack([bin_image(v, b) for v in ali]))
        return
    for j in range(2):
        truth = centred_binning(ali[j], b, got.shape[1:])
        assert np.all(np.abs(shift_between(got[j], truth, 12)) < 0.01)
        assert np.all(np.abs(shift_between(bin_image(ali[j], b), truth, 12)) > 0.05) or (rows % b < 2 and cols % b < 2)


def test_the_docks_preview_tomogram_at_bin_3_maps_onto_its_bin_1_one_about_the_centre():
    """The dock's preview (`jobs.preview`, through `workflows.run_alignment`) bins its unbinned aligned stack with
    `warp.bin_centred`: 160 x 96 views at 84 degrees (a frame of 96 x 160, 160 % 3 = 1 rows over)."""
    from napari_tomoalign import simulate_markers
    from napari_tomoalign.workflows import run_alignment

    sim = simulate_markers(n_views=31, n_markers=30, image_size=(160, 96), thickness_px=12, noise_px=0.02,
                           tilt_axis_deg=84.0, shift_px=2.0, seed=5)
    images = np.zeros((31, 96, 160), np.float32)
    yy, xx = np.mgrid[0:96, 0:160]
    for v, (x, y) in zip(sim.view, sim.xy):
        images[v] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0**2))
    sections = {}
    for b in (1, 3):
        res = run_alignment(images, sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, (160, 96),
                            tomogram_thickness_px=24, tomogram_binning=b)
        sections[b] = res.tomogram.astype(np.float64).mean(axis=0)
    assert sections[3].shape == (53, 32)
    dx, dy = shift_between(sections[3], centred_binning(sections[1], 3, sections[3].shape), 4)
    assert abs(dx) < 0.05 and abs(dy) < 0.05, (dx, dy)
