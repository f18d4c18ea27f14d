"""Comparison of alignments by their tomograms: a correct alignment must beat a wrong tilt axis."""

import warnings

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, imod_transforms
from napari_tomoalign.alignment.transforms import aligned_frame
from napari_tomoalign.reconstruction.compare import markers_in_every_view, normalised_cross_correlation
from napari_tomoalign.reconstruction.warp import aligned_stack
from napari_tomoalign.reconstruction.wbp import weighted_back_projection
from napari_tomoalign.simulation.phantom import SpherePhantom
from napari_tomoalign.simulation.sample import make_sample_tilt_series

THICKNESS = 128
BIN = 2


@pytest.fixture(scope="module")
def sample():
    return make_sample_tilt_series(n_views=41, size=256, n_beads=14, image_noise=0.02, misclick=False, seed=7)


def solve(s, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align_markers(s.view, s.marker, s.xy, s.tilt_angles_deg, (256, 256), AlignmentOptions(**options))


def tomogram_score(s, al):
    """NCC of the tomogram of ``al`` with the specimen placed where that alignment puts it."""
    rec = weighted_back_projection(aligned_stack(s.images, imod_transforms(al), binning=BIN),
                                   al.tilt_angles_deg, thickness=THICKNESS // BIN, use_view=al.view_determined)
    f = aligned_frame(al)
    sp = s.specimen
    # On the binned grid every length measured from the centre divides by BIN.
    centres = (sp.centres - np.array([f.x0_px, f.y0_px, f.z0_px])) / BIN
    placed = SpherePhantom(centres, sp.radii / BIN, sp.densities)
    truth = placed.wedge_limited_volume(rec.shape, (-60.0, 60.0))
    return normalised_cross_correlation(-rec, truth)  # bright-field: density is dark


def test_correct_alignment_beats_a_wrong_tilt_axis(sample):
    good = solve(sample, tilt_axis_deg=86.0)
    wrong = solve(sample, tilt_axis_deg=80.0, estimate_tilt_axis=False, rotation="fixed")
    assert good.rms_residual_px < 0.5 < wrong.rms_residual_px
    score_good, score_wrong = tomogram_score(sample, good), tomogram_score(sample, wrong)
    print(f"NCC to the specimen: correct {score_good:.3f}, wrong axis {score_wrong:.3f}")
    assert score_good > 0.8
    assert score_good > score_wrong + 0.1


def test_markers_in_every_view(sample):
    every = markers_in_every_view(sample.view, sample.marker, 41)
    assert set(range(1, 7)) <= set(every.tolist())  # the sample keeps six beads in every view
    for m in every:
        assert np.array_equal(np.unique(sample.view[sample.marker == m]), np.arange(41))
    assert markers_in_every_view(np.array([0, 1, 0]), np.array([5, 5, 6]), 2).tolist() == [5]
    with pytest.raises(ValueError, match="shapes"):
        normalised_cross_correlation(np.zeros(3), np.zeros(4))
