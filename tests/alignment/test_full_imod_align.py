"""Aligning with an IMOD align.com: the full model returned as our Alignment, whose transforms carry
stretch and skew as IMOD's .tltxf does, and whose writers still work; unsupported options are named."""

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.solver import align_markers_imod
from napari_tomoalign.alignment.transforms import aligned_frame, imod_transforms, lowest_tilt_view
from napari_tomoalign.errors import UsageError
from napari_tomoalign.io.alignment import write_alignment
from napari_tomoalign.io.imod import apply_transform, read_xf

PIXEL_NM = 2.02  # the tutorial data's pixel size (BBa.fid)


@pytest.fixture(scope="module")
def bba(imod_data):
    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    return m, tilts, align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com",
                                        pixel_size_nm=PIXEL_NM)


def test_alignment_has_imods_final_f_and_the_full_parameters(bba):
    _, _, al = bba
    assert al.converged and al.rms_residual_px <= 0.3606
    assert al.full_params is not None and al.full_params.shape == (61, 9)
    assert al.settings.n_geometric == 149
    np.testing.assert_allclose(al.tilt_angles_deg, np.degrees(al.full_params[:, 0]))


def test_transforms_match_imods_tltxf_with_stretch_and_skew(bba, imod_data):
    _, _, al = bba
    ours, imod = imod_transforms(al, 17.2), read_xf(imod_data / "BBa.tltxf")
    np.testing.assert_allclose(ours[:, :, :2], imod[:, :, :2], atol=5e-4)  # IMOD writes 7 decimals
    c = al.image_centre
    corners = np.array([[0, 0], [511, 0], [0, 511], [511, 511]], dtype=float)
    err = max(np.max(np.abs(apply_transform(ours[j], corners, c) - apply_transform(imod[j], corners, c)))
              for j in range(al.n_views))
    assert err < 0.15  # the corners' stretch and skew (IMOD writes 7 decimals); the X origin as tiltalign's (below)
    assert aligned_frame(al).z_range_midpoint_px == pytest.approx(3.57, abs=0.01)  # aligna.log
    # the 2x2 is not a scaled rotation: stretch and skew are in it
    a = ours[0, :, :2]
    assert abs(a[0, 0] - a[1, 1]) > 1e-3


def test_x_origin_is_tiltaligns_least_image_loss(bba, imod_data):
    """The X origin by tiltalign's scan, from its minimum-tilt view: with AngleOffset -0.5, in single precision, the -1 deg
    view (index 33), not the +1 deg one. Each view's X translation within 0.01 px of aligna's .tltxf (0.4 px apart when
    the reference view's image centre was kept; 0.014 px with the scan from the +1 deg view)."""
    _, _, al = bba
    assert lowest_tilt_view(al) == 33 and al.nominal_tilt_angles_deg[33] == -1.0
    ours, imod = imod_transforms(al, 17.2), read_xf(imod_data / "BBa.tltxf")
    np.testing.assert_allclose(ours[:, 0, 2], imod[:, 0, 2], atol=0.01)


def test_writers_take_the_full_model_alignment(bba, tmp_path):
    _, _, al = bba
    paths = write_alignment(al, tmp_path, "BBa", axis_z_shift_px=17.2)
    xf = read_xf(next(p for p in paths if p.suffix == ".xf"))
    np.testing.assert_allclose(xf, imod_transforms(al, 17.2), atol=1e-3)


def test_unsupported_options_are_refused_in_one_line(bba, imod_data, tmp_path):
    m, tilts, _ = bba
    com = tmp_path / "align.com"
    text = (imod_data / "aligna.com").read_text()
    com.write_text(text.replace("LocalAlignments\t0", "LocalAlignments\t1"))
    with pytest.raises(UsageError, match="LocalAlignments 1"):
        align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, com)
    com.write_text(text.replace("AngleOffset", "SkewAngle 3\nAngleOffset"))
    with pytest.raises(UsageError, match="not supported: SkewAngle") as info:
        align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, com)
    assert "\n" not in str(info.value)


def test_axis_z_shift_comes_from_the_command_file(bba, imod_data, tmp_path):
    m, tilts, al = bba
    assert al.axis_z_shift_px == 17.2  # aligna.com's AxisZShift
    com = tmp_path / "align.com"
    com.write_text((imod_data / "aligna.com").read_text().replace("AxisZShift\t17.2", "AxisZShift\t1000"))
    centred = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, com)
    assert centred.axis_z_shift_px == pytest.approx(3.57, abs=0.01)  # the z-range midpoint (aligna.log)
    com.write_text((imod_data / "aligna.com").read_text().replace("AxisZShift", "AxisXShift 4\nAxisZShift"))
    with pytest.raises(UsageError, match="AxisXShift is not supported"):
        align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, com)


def test_the_alignment_carries_the_align_coms_axis_z_shift(bba, tmp_path):
    """aligna.com holds AxisZShift 17.2: the transforms and writers read it from the alignment, so a caller
    that passes nothing (the dock's Save alignment) writes the same .xf as the command line."""
    m, tilts, al = bba
    assert al.axis_z_shift_px == pytest.approx(17.2) and al.settings.axis_z_shift_px == pytest.approx(17.2)
    np.testing.assert_array_equal(imod_transforms(al), imod_transforms(al, 17.2))
    assert aligned_frame(al).z0_px == pytest.approx(17.2)
    shifted = imod_transforms(al, 0.0)
    assert np.max(np.abs(shifted[:, 0, 2] - imod_transforms(al)[:, 0, 2])) > 10  # 15.4 px at the highest tilt
    write_alignment(al, tmp_path / "own", "BBa")
    write_alignment(al, tmp_path / "given", "BBa", axis_z_shift_px=17.2)
    np.testing.assert_array_equal(read_xf(tmp_path / "own" / "BBa.xf"), read_xf(tmp_path / "given" / "BBa.xf"))


def test_the_default_model_carries_its_axis_z_shift_too(bba):
    from napari_tomoalign import AlignmentOptions, align_markers

    m, tilts, _ = bba
    al = align_markers(m.view, m.marker, m.xy, tilts, m.image_size, AlignmentOptions(axis_z_shift_px=-12.5))
    assert al.axis_z_shift_px == -12.5 and al.settings.origin == "options" and not al.settings.from_com
    np.testing.assert_array_equal(imod_transforms(al), imod_transforms(al, -12.5))
    assert al.full_params.shape == (61, 9) and np.all(al.full_params[:, 5:8] == 0) and np.all(al.full_params[:, 8] == 1)
    assert al.settings.n_geometric == sum(m.n_vars for m in al.settings.mappings.values())
    with pytest.raises(ValueError, match="axis_z_shift_px"):
        AlignmentOptions(axis_z_shift_px=float("nan"))


def test_warm_start_and_leave_out_work_with_imods_settings(bba, imod_data):
    """The full model warm-starts from a previous solution (one stage to the same optimum, a marker new since
    placed from its points) and gives leave-out errors, as the default model does."""
    from napari_tomoalign.alignment.leaveout import leave_out_error

    m, tilts, al = bba
    warm = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com", start=al,
                              pixel_size_nm=PIXEL_NM)
    assert [s.name for s in warm.stages] == ["full"] and warm.converged
    assert warm.rms_residual_px == pytest.approx(al.rms_residual_px, abs=1e-6)
    assert warm.stages[0].iterations < sum(s.iterations for s in al.stages)
    one = int(m.marker[0])
    without = m.marker != one
    before = align_markers_imod(m.view[without], m.marker[without], m.xy[without], tilts, m.image_size,
                                imod_data / "aligna.com")
    again = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com", start=before)
    assert again.rms_residual_px == pytest.approx(al.rms_residual_px, abs=1e-5)
    lo = leave_out_error(al)
    assert np.all(np.isfinite(lo.per_marker_px[al.marker_included]))
    assert al.rms_residual_px < lo.overall_px < 2 * al.rms_residual_px  # the views no longer bend to each marker
