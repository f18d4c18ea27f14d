"""Views in an align.com's ExcludeList: left out of the fit, but given the values their variables are mapped
to (as tiltalign keeps them mapped), so every written per-view file has finite numbers and they agree."""

import re

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.excluded_views import fill_left_out_views
from napari_tomoalign.alignment.grouping import block_mapping, linear_mapping, per_view_mapping
from napari_tomoalign.alignment.model import DX, MAG, N_FULL, ROT, TILT
from napari_tomoalign.alignment.solver import align_markers_imod
from napari_tomoalign.alignment.transforms import imod_transforms
from napari_tomoalign.conventions import format_views
from napari_tomoalign.io.alignment import write_alignment
from napari_tomoalign.io.alignment_record import mapping_summary
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.report import text_report

PIXEL_NM = 2.02
ANGLE_OFFSET = -0.5  # aligna.com
DMAG, SKEW = 5, 6  # full-model columns


def _with_exclude(imod_data, tmp_path, views: str):
    text = (imod_data / "aligna.com").read_text()
    assert "\nAngleOffset\t" in text
    com = tmp_path / "align.com"
    com.write_text(text.replace("\nAngleOffset\t", f"\nExcludeList\t{views}\nAngleOffset\t", 1))
    return com


@pytest.fixture(scope="module")
def runs(imod_data, tmp_path_factory):
    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    com = _with_exclude(imod_data, tmp_path_factory.mktemp("com"), "1-3")
    full = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com",
                              pixel_size_nm=PIXEL_NM)
    excl = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, com, pixel_size_nm=PIXEL_NM)
    return m, tilts, full, excl


def test_excluded_views_are_out_of_the_fit_and_the_rest_matches_a_run_without_them(runs):
    m, _, full, al = runs
    assert al.settings.excluded_views == (0, 1, 2)
    assert not al.view_determined[:3].any() and al.view_determined[3:].all()
    assert not al.obs_used[m.view < 3].any() and al.obs_used[m.view >= 3].all()
    assert al.converged and al.rms_residual_px < full.rms_residual_px + 0.01
    k = slice(3, None)
    assert np.max(np.abs(al.tilt_angles_deg[k] - full.tilt_angles_deg[k])) < 0.15
    assert np.max(np.abs(al.rotation_deg[k] - full.rotation_deg[k])) < 0.05
    assert np.max(np.abs(al.magnification[k] - full.magnification[k])) < 0.003
    a, b = imod_transforms(al, 17.2), imod_transforms(full, 17.2)
    assert np.max(np.abs(a[k, :, :2] - b[k, :, :2])) < 0.005 and np.max(np.abs(a[k, :, 2] - b[k, :, 2])) < 0.1


def test_excluded_views_take_their_groups_values(runs):
    _, tilts, _, al = runs
    p = al.full_params
    assert np.isfinite(p).all()
    # X-stretch is block-mapped (groups 1-2, 3-6, ...): view 3 shares the value views 4-6 solve
    np.testing.assert_allclose(p[2, DMAG], p[3:6, DMAG], atol=1e-12)
    # skew is linear from an anchor at view 1 to the held 0 at view 11: skew(v) = (11 - v) / 10 * skew(1)
    v = np.arange(1, 11)
    np.testing.assert_allclose(p[:10, SKEW], (11 - v) / 10 * p[0, SKEW], atol=1e-12)
    assert abs(p[0, SKEW]) > 1e-4  # solved from views 4-10, not left at 0
    # MagReferenceView 1 is excluded: the nearest view in the fit (4) is held instead, and views 1-3 follow it
    assert al.magnification[3] == 1.0 and np.all(al.magnification[:3] == 1.0)
    assert any("MagReferenceView 1" in w and "view 4" in w for w in al.warnings)
    assert any(w.startswith("views 1-3 excluded") for w in al.warnings)
    # per-view rotations with no data: held at the first fitted view's value
    np.testing.assert_allclose(al.rotation_deg[:3], al.rotation_deg[3], atol=1e-9)
    # tilts: nominal + AngleOffset + the mapped tilt change (small for BBa)
    out = al.output_tilt_angles_deg()
    assert np.all(np.abs(out[:3] - (tilts[:3] + ANGLE_OFFSET)) < 0.3)
    assert np.all(np.abs(out[:3] - tilts[:3]) > 0.2)  # the offset is applied


def test_every_written_file_is_finite_and_xf_agrees_with_tltxf(runs, tmp_path):
    _, _, _, al = runs
    paths = {p.suffix: p for p in write_alignment(al, tmp_path, "BBa", axis_z_shift_px=17.2)}
    xf, tltxf = read_xf(paths[".xf"]), read_xf(paths[".tltxf"])
    assert xf.shape == (61, 2, 3) and np.isfinite(xf).all()
    np.testing.assert_array_equal(xf, tltxf)
    for suffix in (".tlt", ".xtilt", ".zfac"):
        values = np.loadtxt(paths[suffix])
        assert len(values) == 61 and np.isfinite(values).all(), suffix
    np.testing.assert_allclose(xf[3:], imod_transforms(al, 17.2)[3:], atol=1e-3)


def test_the_report_has_no_nan_and_marks_views_out_of_the_fit(runs):
    _, _, _, al = runs
    text = "\n".join(text_report(al))
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "1-2: " in text and "(no view in the fit)" in text  # X-stretch group 1-2 has only excluded views
    assert "magnification 1 at view 4" in text


def test_fill_left_out_views_gives_group_values_and_interpolates_what_has_no_data():
    n = 8
    fitted = np.array([False, True, True, False, True, True, True, False])
    start = np.zeros((n, N_FULL))
    start[:, MAG] = 1.0
    start[:, TILT] = np.radians(np.linspace(-60, 60, n))
    block = block_mapping(np.array([0, 0, 0, 1, 1, 2, 2, 2]), reference_view=5)  # group 2 held
    linear = linear_mapping([[0, 1, 2, 3], [4, 5, 6, 7]], n, reference_view=4)  # anchors 0, 4 (held), 7
    rot = per_view_mapping(n, [5])
    q_block, q_lin, q_rot = np.array([0.3, -0.2]), np.array([0.02, -0.04]), 0.01 * np.arange(7)
    truth = start.copy()
    truth[:, DMAG] += block.values(q_block)
    truth[:, TILT] += linear.values(q_lin)
    truth[:, ROT] += rot.values(q_rot)
    truth[:, DX] = np.arange(n) * 2.0
    solved = truth.copy()
    solved[~fitted] = np.nan  # what the fit leaves there must not matter
    got = fill_left_out_views(solved, start, {"x_stretch": block, "tilt": linear, "rotation": rot}, fitted)
    np.testing.assert_array_equal(got[fitted], solved[fitted])
    np.testing.assert_allclose(got[:, DMAG], truth[:, DMAG], atol=1e-12)  # every group has a fitted view
    np.testing.assert_allclose(got[:, TILT], truth[:, TILT], atol=1e-12)  # both free anchors are determined
    # per-view rotation of views 0, 3, 7 has no data: interpolated over view number, held beyond the ends
    rot_inc = truth[:, ROT]
    np.testing.assert_allclose(got[[0, 3, 7], ROT], [rot_inc[1], (rot_inc[2] + rot_inc[4]) / 2, rot_inc[6]])
    np.testing.assert_allclose(got[:, DX], [2.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 12.0])
    assert np.isfinite(got).all()


def test_format_views_is_imods_one_based_list():
    assert format_views([0, 1, 2, 6]) == "1-3,7"
    assert format_views([]) == ""


@pytest.mark.parametrize(("excluded", "held"), [("33", "34"), ("33-34", "32")])
def test_the_min_tilt_reference_is_the_smallest_tilt_in_the_fit(imod_data, tmp_path, excluded, held):
    from napari_tomoalign.alignment.imod_options import read_imod_settings

    # TiltOption 2 holds the min-tilt view: raw 1 deg (view 33) and -1 deg (view 34) tie, the lower wins;
    # with 33 excluded the smallest |tilt| in the fit is view 34, not the nearest view number (32 or 34)
    text = (imod_data / "aligna.com").read_text().replace("\nTiltOption\t5", "\nTiltOption\t2", 1)
    com = tmp_path / "align.com"
    com.write_text(text.replace("\nAngleOffset\t", f"\nExcludeList\t{excluded}\nAngleOffset\t", 1))
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    assert mapping_summary(read_imod_settings(com, tilts).mappings["tilt"])["held"] == held  # 1-based
    com.write_text(text)
    assert mapping_summary(read_imod_settings(com, tilts).mappings["tilt"])["held"] == "33"
