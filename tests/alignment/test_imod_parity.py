"""End-to-end against IMOD's own solution of the same model on the tutorial data."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, read_markers, read_tilt_angles
from napari_tomoalign.alignment.transforms import aligned_marker_positions, imod_transforms
from napari_tomoalign.io.imod import apply_transform, read_fid_xyz, read_resid, read_xf

IMOD_RMS = {"a": 0.371964, "b": 0.387678}
IMOD_MEAN = {"a": 0.325, "b": 0.338}


@pytest.fixture(scope="module", params=["a", "b"])
def solved(request, imod_data):
    axis = request.param
    markers = read_markers(imod_data / f"BB{axis}.fid")
    tilts = read_tilt_angles(imod_data / f"BB{axis}.rawtlt")
    al = align_markers(markers.view, markers.marker, markers.xy, tilts, markers.image_size,
                       AlignmentOptions(tilt_axis_deg=-12.5))
    return axis, al, imod_data / f"same-model-{axis}"


def test_fid_reader_reproduces_resid_coordinates(imod_data):
    markers = read_markers(imod_data / "BBa.fid")
    assert markers.image_size == (512, 512)
    view, xy, _ = read_resid(imod_data / "BBa.resid")
    # the .resid file lists points contour by contour, in model order, with 2 decimals
    np.testing.assert_array_equal(markers.view, view)
    np.testing.assert_allclose(markers.xy, xy, atol=0.005 + 1e-9)
    assert len(np.unique(markers.marker)) == 25


def test_rms_at_or_below_imod(solved):
    axis, al, _ = solved
    assert al.converged
    assert al.rms_residual_px <= IMOD_RMS[axis]
    assert al.rms_residual_px > IMOD_RMS[axis] - 0.002  # same model, same optimum
    assert al.mean_residual_px == pytest.approx(IMOD_MEAN[axis], abs=0.001)


def test_reference_view_matches_imods_mag_reference(solved):
    axis, al, _ = solved
    assert al.reference_view == {"a": 32, "b": 33}[axis]  # MagReferenceView 33 / 34, 1-based


def test_tilts_within_005_deg_of_imod(solved):
    _, al, d = solved
    imod = np.loadtxt(d / "out.tlt")
    assert np.max(np.abs(al.tilt_angles_deg - imod)) < 0.05


def test_residuals_match_imod(solved):
    _, al, d = solved
    view, xy, res = read_resid(d / "out.resid")
    np.testing.assert_array_equal(al.obs_view, view)
    assert np.max(np.abs(al.residuals_px - res)) < 0.06


def test_transforms_map_corners_like_imod(solved):
    _, al, d = solved
    ours, imod = imod_transforms(al), read_xf(d / "out.tltxf")
    corners = np.array([[0, 0], [511, 0], [0, 511], [511, 511]], dtype=float)
    c = al.image_centre
    err = max(np.max(np.abs(apply_transform(ours[j], corners, c) - apply_transform(imod[j], corners, c)))
              for j in range(al.n_views))
    assert err < 0.15


def test_x_origin_is_tiltaligns(solved):
    """Each view's X translation against tiltalign's .tltxf: BBb within 0.005 px; BBa one step of the scan off (0.1 px):
    its least image loss is a near tie (0.973 against 0.977 on tiltalign's own translations) that our solution, within
    0.002 px of tiltalign's, tips the other way. Both were 0.1-0.4 px off with the reference view's centre kept."""
    axis, al, d = solved
    dx = imod_transforms(al)[:, 0, 2] - read_xf(d / "out.tltxf")[:, 0, 2]
    assert np.abs(dx).max() < (0.11 if axis == "a" else 0.005)


def test_aligned_frame_conventions(solved):
    _, al, _ = solved
    xf = imod_transforms(al)
    assert abs(np.mean(xf[:, 1, 2])) < 1e-9  # Y shifts average zero
    # the tilt axis is vertical through the centre: every marker's aligned x follows x cos + z sin
    c = al.image_centre
    pos = aligned_marker_positions(al)
    for j in (0, al.reference_view, al.n_views - 1):
        seen = al.obs_view == j
        mapped = apply_transform(xf[j], al.obs_xy_px[seen] + al.residuals_px[seen], c)
        m = al.obs_marker[seen]
        t = np.radians(al.tilt_angles_deg[j])
        expect_x = (pos[m, 0] - c[0]) * np.cos(t) + pos[m, 2] * np.sin(t) + c[0]
        np.testing.assert_allclose(mapped[:, 0], expect_x, atol=1e-6)
        np.testing.assert_allclose(mapped[:, 1], pos[m, 1], atol=1e-6)


def test_fid_xyz_within_half_pixel_of_imod(solved):
    _, al, d = solved
    ids, imod = read_fid_xyz(d / "outfid.xyz")
    np.testing.assert_array_equal(ids, al.marker_ids)
    assert np.max(np.abs(aligned_marker_positions(al) - imod)) < 0.5
