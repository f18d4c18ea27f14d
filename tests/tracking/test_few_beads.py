"""Few gold beads on a stained section (materials science: 6-12 gold in a 1024^2 view, among thousands of stain
peaks): the histogram's dip lies near the beads, and the beads are still told from the stain by the empty gap
between them and the strongest false peak."""

import numpy as np
import pytest

from napari_tomoalign.simulation.beads import make_bead_series
from napari_tomoalign.tracking import track_beads
from napari_tomoalign.tracking.beads import BeadFindingError, histogram_dip


def test_a_few_beads_far_above_many_false_peaks_are_found():
    rng = np.random.default_rng(3)
    false = 0.58 * rng.beta(2.0, 5.0, 3500) / 0.8  # the stain's peaks: a long tail reaching ~0.58 of a bead
    beads = rng.normal(1.0, 0.03, 6)
    cut, _ = histogram_dip(np.concatenate([false, beads]))
    assert false.max() < cut < beads.min()


def test_a_tail_without_a_gap_is_not_taken_for_beads():
    """The stain's own tail (no empty gap above it) still gives the clear error, not false beads."""
    s = np.random.default_rng(4).gamma(3.0, 1.0, 3500)
    with pytest.raises(BeadFindingError, match="no dip"):
        histogram_dip(s)


def test_six_beads_on_a_stained_section_are_tracked_end_to_end():
    s = make_bead_series("plastic", 1024, 31, seed=0, beads_per_mpx=6.0, bead_diameter_px=10.0,
                         pixel_size_nm=1.5, thickness_px=200.0)
    r = track_beads(s.images, s.tilt_angles_deg, s.bead_diameter_px)
    assert r.n_beads >= 5  # of 6; one is in 14 views only
    table = r.markers
    errors = []
    for m in np.unique(table.marker):
        pick = table.marker == m
        views, xy = table.view[pick], table.xy[pick]
        d = np.hypot(*(s.true_xy[views] - xy[:, None, :]).transpose(2, 0, 1))  # (points, beads)
        bead = int(np.argmin(np.median(d, axis=0)))
        errors.append(d[:, bead])
    err = np.concatenate(errors)
    assert np.sqrt(np.mean(err**2)) < 0.5 and len(err) > 100
