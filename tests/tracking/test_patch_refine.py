"""The second pass of patch tracking: each contour followed outward from its middle view (in tilt order),
and the plane mapping of a solved alignment between views."""

from dataclasses import replace

import numpy as np

from napari_tomoalign import align_markers
from napari_tomoalign.alignment.options import AlignmentOptions
from napari_tomoalign.io.table import MarkerTable
from napari_tomoalign.tracking._patch_refine import SECOND_PASS_TILT_WEIGHT_POWER, PlaneMap, _chains, tilt_weights


def test_contours_are_followed_outward_from_their_middle_view_in_tilt_order():
    tilts = np.array([0.0, -3.0, 3.0, -6.0, 6.0, -9.0, 9.0])  # views stored in a dose-symmetric order
    views = np.array([5, 3, 1, 0, 2, 4, 6, 0, 2, 4])  # marker 1: all seven views; marker 2: three
    table = MarkerTable(views, np.array([1] * 7 + [2] * 3), np.zeros((10, 2)))
    prev, dist = _chains(table, tilts)
    # marker 1 in tilt order: views 5 3 1 0 2 4 6, middle view 0 (row 3)
    assert prev[3] == -1 and dist[3] == 0
    assert list(dist[:7]) == [3, 2, 1, 0, 1, 2, 3]
    assert table.view[prev[0]] == 3 and table.view[prev[6]] == 4 and table.view[prev[4]] == 0
    # marker 2 in tilt order: views 0 2 4, middle view 2 (row 8)
    assert prev[8] == -1 and table.view[prev[7]] == 2 and table.view[prev[9]] == 2


def test_the_plane_mapping_carries_points_of_the_specimen_plane_between_views():
    rng = np.random.default_rng(4)
    tilts = np.linspace(-60, 60, 21)
    xyz = np.column_stack([rng.uniform(-200, 200, (30, 2)), rng.uniform(-40, 40, 30)])
    xyz[:, 2] = 0.1 * xyz[:, 0] + rng.normal(0, 1e-6, 30)  # a pre-tilted plane
    t = np.radians(tilts)[:, None]
    u = xyz[None, :, 0] * np.cos(t) + xyz[None, :, 2] * np.sin(t)
    xy = np.stack([u + 255.5, np.broadcast_to(xyz[None, :, 1], u.shape) + 255.5], axis=-1)
    v, m = np.repeat(np.arange(21), 30), np.tile(np.arange(1, 31), 21)
    al = align_markers(v, m, xy.reshape(-1, 2), tilts, (512, 512), AlignmentOptions(tilt_axis_deg=0.0), warn=False)
    plane = PlaneMap(al)
    carried = plane.map(xy[3], 3, 17)
    assert np.abs(carried - xy[17]).max() < 0.05
    assert np.abs(plane.map(carried, 17, 3) - xy[3]).max() < 1e-6
    # a solved beam tilt is folded into full_params already; the record of it must not tilt the mapping again
    tilted = PlaneMap(replace(al, beam_tilt_deg=2.0))
    assert np.abs(tilted.map(xy[3], 3, 17) - carried).max() < 1e-9


def test_the_second_pass_weighs_points_less_the_more_depth_their_view_spans():
    tilts = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    w = tilt_weights(np.array([2, 0, 4, 1, 3, 2]), tilts)
    assert w[0] == 1.0 and w[1] == w[2] and w[3] == w[4] and w[5] == 1.0  # by |tilt|, per observation
    assert np.isclose(w[1], 0.5 ** SECOND_PASS_TILT_WEIGHT_POWER) and 0 < w[1] < w[3] < 1
