"""The focus passes of patch tracking: each contour's windows, cut where its 3-D point projects, measured
against the mean of its other windows (`tracking._patch_focus`)."""

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.simulation.lamella import make_lamella_series
from napari_tomoalign.tracking._patch_focus import focus_tracks, predicted_positions
from napari_tomoalign.tracking._patch_follow import PatchCorrelator
from napari_tomoalign.tracking._patch_refine import PlaneMap
from napari_tomoalign.tracking._views import ViewReader
from napari_tomoalign.tracking.patches import PatchOptions, track_patches

THRESHOLDS = (PatchOptions.min_correlation, PatchOptions.relative_correlation, PatchOptions.min_roundness)


@pytest.fixture(scope="module")
def tracked():
    lam = make_lamella_series("easy", 256, seed=2, thickness_nm=20.0)
    r = track_patches(lam.images, lam.tilt_angles_deg, tilt_axis_deg=lam.tilt_axis_deg, options=PatchOptions(iterations=1))
    return lam, r


def _focus(stack, r, tilts):
    corr = PatchCorrelator(48, 0.03, 0.125, 0.03, 12)  # what track_patches uses on 256 px views (48 px, unbinned)
    at = predicted_positions(r)
    table = focus_tracks(ViewReader(stack, clamp=True, cache=3), PlaneMap(r.alignment), at, r.markers, tilts, corr, 1,
                         THRESHOLDS)
    return table


def test_a_view_moved_after_alignment_is_found_moved_and_no_other(tracked):
    lam, r = tracked
    j = 27  # +12 deg
    moved = lam.images.copy()
    moved[j] = ndimage.shift(lam.images[j], (-2.0, 3.0), order=3, mode="nearest")  # x + 3, y - 2 px
    before, after = _focus(lam.images, r, lam.tilt_angles_deg), _focus(moved, r, lam.tilt_angles_deg)
    key_b = {(int(v), int(m)): xy for v, m, xy in zip(before.view, before.marker, before.xy)}
    d = {}
    for v, m, xy in zip(after.view, after.marker, after.xy):
        if (int(v), int(m)) in key_b:
            d.setdefault(int(v), []).append(xy - key_b[int(v), int(m)])
    assert len(d[j]) >= 20
    assert np.median(d[j], axis=0) == pytest.approx([3.0, -2.0], abs=0.25)
    others = np.concatenate([np.asarray(d[v]) for v in d if v != j])
    assert np.abs(np.median(others, axis=0)).max() < 0.1  # the moved view is one of 15 in a reference


def test_the_focused_points_of_a_thin_lamella_stay_on_their_tracks(tracked):
    lam, r = tracked
    table = _focus(lam.images, r, lam.tilt_angles_deg)
    assert len(table) >= 0.8 * len(r.markers)
    at = predicted_positions(r)
    key = {(int(v), int(m)): xy for v, m, xy in zip(r.markers.view, r.markers.marker, at)}
    gap = np.array([np.hypot(*(xy - key[int(v), int(m)])) for v, m, xy in zip(table.view, table.marker, table.xy)])
    assert np.median(gap) < 0.5  # a thin slab's first alignment is already right to a fraction of a pixel


def test_the_first_pass_is_checked_loosely_when_later_passes_re_measure_and_the_end_fully(tracked):
    from dataclasses import replace

    from napari_tomoalign.tracking._patch_result import FIRST_PASS_MAX_MEAN_RESIDUAL_PX
    from napari_tomoalign.tracking.patches import PatchTrackingError

    _, r = tracked
    al = r.alignment
    rms = float(np.sqrt(np.nanmean(np.sum(al.residuals_px**2, axis=1))))
    spread = replace(r, alignment=replace(al, residuals_px=al.residuals_px * (4.0 / max(rms, 1e-9))))  # about 4 px
    spread.check_agreement(FIRST_PASS_MAX_MEAN_RESIDUAL_PX)  # the hard lamella's first pass: 3.7-4.0 px, let through
    with pytest.raises(PatchTrackingError, match=r"the patches disagree: mean residual \d+\.\d+ px .* \(at most 3 px"):
        spread.check_agreement()
    wild = replace(r, alignment=replace(al, residuals_px=al.residuals_px * (12.0 / max(rms, 1e-9))))
    with pytest.raises(PatchTrackingError, match=r"\(at most 6 px is usable\)"):
        wild.check_agreement(FIRST_PASS_MAX_MEAN_RESIDUAL_PX)
