"""Gold erasure: bead pixels become local background, everything else is untouched."""

import numpy as np
import pytest

from napari_tomoalign import Cancelled, align_markers
from napari_tomoalign.alignment.transforms import imod_transforms
from napari_tomoalign.io.imod import apply_transform
from napari_tomoalign.reconstruction.erase import bead_positions, erase_beads, erase_radius_px
from napari_tomoalign.reconstruction.warp import aligned_stack
from napari_tomoalign.simulation.beads import make_bead_series


@pytest.fixture(scope="module")
def series():
    return make_bead_series("plastic", 128, 9, seed=2)


def _disk_mask(shape, centres, radius):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    mask = np.zeros(shape, bool)
    for x, y in centres:
        mask |= np.hypot(xx - x, yy - y) <= radius
    return mask


def test_beads_become_background_and_the_rest_is_untouched(series):
    s = series
    v, b = np.nonzero(s.visible)
    out = erase_beads(s.images, v, s.true_xy[v, b], s.bead_diameter_px)
    r = erase_radius_px(s.bead_diameter_px)
    ij = np.floor(s.true_xy[v, b] + 0.5).astype(int)
    before = s.images[v, ij[:, 1], ij[:, 0]]
    after = out[v, ij[:, 1], ij[:, 0]]
    level = np.median(s.images)
    assert np.median(before) < 0.5 * level  # the beads were dark
    assert abs(np.median(after) - level) < 0.15 * level  # and now look like their surroundings
    for j in range(s.images.shape[0]):
        far = ~_disk_mask(s.images.shape[1:], s.true_xy[j, s.visible[j]], r + 0.6)
        assert np.array_equal(out[j][far], s.images[j][far])


def test_erasure_is_reproducible_and_writes_into_out(series):
    s = series
    v, b = np.nonzero(s.visible)
    a = erase_beads(s.images, v, s.true_xy[v, b], s.bead_diameter_px, seed=3)
    target = np.zeros(s.images.shape, np.float32)
    done = []
    b2 = erase_beads(s.images, v, s.true_xy[v, b], s.bead_diameter_px, seed=3, out=target,
                     progress=lambda d, t: done.append(d))
    assert b2 is target and np.array_equal(a, target) and done[-1] == s.images.shape[0]
    flat = erase_beads(s.images, v, s.true_xy[v, b], s.bead_diameter_px, noise=False)
    assert not np.array_equal(flat, a)


def test_model_positions_in_the_aligned_stack(series):
    """Erasing at the alignment's positions, mapped by its transforms, removes the beads of the aligned stack."""
    s = series
    v, b = np.nonzero(s.visible)
    al = align_markers(v, b + 1, s.true_xy[v, b], s.tilt_angles_deg, (128, 128), warn=False)
    xf = imod_transforms(al)
    view, xy = bead_positions(al, xf)
    assert len(view) == al.view_determined.sum() * al.marker_included.sum()
    j = int(view[0])
    assert np.allclose(xy[view == j], apply_transform(xf[j], al.predicted_xy_px[j], al.image_centre))
    ali = aligned_stack(s.images, xf)
    erased = erase_beads(ali, view, xy, s.bead_diameter_px)
    ij = np.floor(xy + 0.5).astype(int)
    inside = np.all((ij >= 0) & (ij < 128), axis=1)
    before = ali[view[inside], ij[inside, 1], ij[inside, 0]]
    after = erased[view[inside], ij[inside, 1], ij[inside, 0]]
    assert np.median(after) > np.median(before) + 0.3 * (np.median(ali) - np.median(before))
    v1, xy1 = bead_positions(al)
    v2, xy2 = bead_positions(al, binning=2)
    assert np.array_equal(v1, v2) and np.allclose(xy2, (xy1 - 0.5) / 2)


def test_bad_input_and_cancel(series):
    s = series
    with pytest.raises(ValueError, match="one view per position"):
        erase_beads(s.images, [0, 1], np.zeros((3, 2)), 5.0)
    with pytest.raises(ValueError, match="view numbers must lie in"):
        erase_beads(s.images, [99], np.zeros((1, 2)), 5.0)
    with pytest.raises(ValueError, match="positive number"):
        erase_beads(s.images, [0], np.zeros((1, 2)), -1.0)
    with pytest.raises(Cancelled):
        erase_beads(s.images, [0], np.zeros((1, 2)), 5.0, should_stop=lambda: True)
    untouched = erase_beads(s.images, np.zeros(0, int), np.zeros((0, 2)), 5.0)
    assert np.array_equal(untouched, s.images)
