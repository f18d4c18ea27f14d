"""The simulated lamellae patch tracking is judged on hold to issue 23's words: the hard lamella records
5 counts/px at zero tilt through the specimen, its stage jumps are a tenth of the field (100 px at 1024) and
its non-rigid warp moves no point by more than 3 px."""

import numpy as np
import pytest

from napari_tomoalign.alignment.model import DX, DY
from napari_tomoalign.simulation.lamella import make_lamella_series


@pytest.fixture(scope="module")
def hard():
    return make_lamella_series("hard", 256, seed=1, n_points=300)


def test_the_hard_lamella_records_5_counts_per_pixel_through_the_specimen_at_zero_tilt(hard):
    ref = int(np.argmin(np.abs(hard.tilt_angles_deg)))
    # columns 0.3-0.9 of the field lie on the specimen (the protective layer covers the first 0.14)
    specimen = hard.images[ref, 32:-32, int(0.3 * 256):int(0.9 * 256)]
    assert float(specimen.mean()) == pytest.approx(5.0, rel=0.06)


def test_the_hard_lamellas_stage_jumps_are_a_tenth_of_the_field(hard):
    still = make_lamella_series("hard", 256, seed=1, n_points=300, jumps=0)
    d = hard.view_params[:, [DX, DY]] - still.view_params[:, [DX, DY]]
    assert len(hard.jump_views) == 2
    assert np.hypot(*d[hard.jump_views].T) == pytest.approx(25.6, abs=1e-6)
    others = np.setdiff1d(np.arange(len(d)), hard.jump_views)
    assert np.abs(d[others]).max() < 1e-9


def test_the_hard_lamellas_warp_moves_no_point_by_more_than_3_px(hard):
    rigid = make_lamella_series("hard", 256, seed=1, n_points=300, warp_px=1e-9)  # the same draws, no warp
    moved = np.hypot(*(hard.true_xy - rigid.true_xy).transpose(2, 0, 1))
    assert moved.max() <= 3.0 * 1.01  # the peak is set on a grid
    assert np.median(moved.max(axis=1)) > 1.0  # and the warp is there
