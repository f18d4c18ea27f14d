"""The dock's pure functions, without a viewer (and the module imports no GUI toolkit)."""

import subprocess
import sys

import numpy as np
import pytest
from support.gui import GUI_MODULES

from napari_tomoalign._napari.dock import logic
from napari_tomoalign.alignment.options import AlignmentOptions
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.alignment.transforms import imod_transforms
from napari_tomoalign.simulation.sample import make_sample_tilt_series


@pytest.fixture(scope="module")
def sample_alignment():
    s = make_sample_tilt_series(n_views=21, size=128, n_beads=10, n_texture=0, image_noise=0.0)
    al = align_markers(s.view, s.marker, s.xy, s.tilt_angles_deg, (128, 128), AlignmentOptions(robust=True))
    return s, al


def test_logic_imports_no_gui_toolkit():
    code = ("import sys, napari_tomoalign._napari.dock.logic\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI_MODULES!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_duplicates():
    view = np.array([0.0, 0.0, 1.0, 1.02, 2.0])
    marker = np.array([1, 2, 1, 1, 1])
    np.testing.assert_array_equal(logic.duplicate_mask(view, marker), [False, False, True, True, False])
    assert logic.duplicate_pairs(view, marker) == [(1, 1)]
    assert logic.duplicates_text([(1, 1)]) == "1: marker 1 in view 2"  # index 1 is view 2, as in 3dmod
    assert logic.duplicates_text([]) == "none"
    assert logic.duplicates_text([(v, 1) for v in range(6)]).endswith(" ...")
    assert logic.duplicate_pairs(np.zeros(0), np.zeros(0, int)) == []
    assert logic.next_marker_id(np.array([3, 7])) == 8 and logic.next_marker_id(np.zeros(0)) == 1


def test_borders_and_tracks():
    view, marker = np.array([0.0, 0.0, 1.0]), np.array([1, 1, 2])
    border, width = logic.point_borders(view, marker, {(1, 2)})
    np.testing.assert_allclose(border[0], logic.DUPLICATE_RGBA)
    np.testing.assert_allclose(border[2], logic.FLAGGED_RGBA)
    assert width[0] > width[1] - 1 and 0.1 < width[2] <= 0.15  # thicker, not a disc over the bead
    tracks = logic.track_data(np.array([1.0, 0.0, 0.0, 0.0]), np.array([5, 5, 5, 6]),
                              np.array([[1, 1], [2, 2], [3, 3], [4, 4]]))
    np.testing.assert_allclose(tracks, [[5, 0, 2, 2], [5, 1, 1, 1], [6, 0, 4, 4]])  # one point per view


def test_progress_percent():
    assert logic.progress_percent("initial", 0, 200) == 0
    assert logic.progress_percent("main", 15, 200) == 20
    assert logic.progress_percent("main", 500, 200) == 30  # capped at the stage's share
    assert logic.progress_percent("aligned stack", 61, 61) == 80
    assert logic.progress_percent("tomogram", 1, 2) == 90
    assert logic.progress_percent("unknown", 1, 2) == 3


def test_options_and_tilts_summary():
    o = logic.build_options(rotation="grouped", tilt="one for all", magnification="fixed", group_size=4,
                            axis_mode="estimate near the angle", axis_angle_deg=-12.5, initial_stage=False,
                            robust=True, robust_scale=2.0)
    assert (str(o.rotation), str(o.tilt), str(o.magnification)) == ("group:4", "one", "fixed")
    assert o.tilt_axis_deg == -12.5 and o.estimate_tilt_axis and not o.initial_stage and o.robust_scale == 2.0
    assert logic.build_options(rotation="per view", tilt="per view", magnification="per view", group_size=5,
                               axis_mode="estimate", axis_angle_deg=3.0, initial_stage=True, robust=False,
                               robust_scale=1.8).tilt_axis_deg is None
    assert logic.tilt_summary(np.array([-60.0, 0.0, 60.0]), "a.rawtlt") == "3 angles, -60..60 deg, from a.rawtlt"
    assert logic.tilt_summary(None, None).startswith("no angles")


def test_residual_order_and_overlays(sample_alignment):
    s, al = sample_alignment
    order = logic.residual_order(al)
    assert order[0] == s.misclick  # flagged first, the biggest first
    res = np.hypot(*al.residuals_px.T)
    flagged = al.flagged[order]
    assert np.all(np.diff(flagged.astype(int)) <= 0)
    assert np.all(np.diff(res[order][~flagged]) <= 1e-12)
    assert (int(al.obs_view[s.misclick]), int(s.marker[s.misclick])) in logic.flagged_pairs(al)
    vectors, colours = logic.residual_vectors(al, 10.0)
    np.testing.assert_allclose(vectors[:, 1, 1:], 10 * al.residuals_px[al.obs_used][:, ::-1])
    assert colours.shape == (len(vectors), 4)
    points, ids = logic.predicted_gap_points(al)
    assert points.shape[1] == 3 and len(ids) == len(points)
    assert np.all((points[:, 1:] >= 0) & (points[:, 1:] <= 127))


def test_aligned_points_follow_the_transforms(sample_alignment):
    s, al = sample_alignment
    xf = imod_transforms(al)
    data = np.column_stack([s.view, s.xy[:, 1], s.xy[:, 0]]).astype(float)
    points, ids = logic.aligned_points(al, xf, data, s.marker)
    assert len(points) == len(data)
    # In the aligned frame the tilt axis is vertical: a marker's y hardly moves from view to view.
    spread = [np.ptp(points[ids == m, 1]) for m in np.unique(ids) if (ids == m).sum() > 5]
    assert np.median(spread) < 3.0
    assert logic.safe_stem("sample markers") == "sample_markers" and logic.safe_stem("..") == "markers"
