"""Tomogram positioning: IMOD's surface analysis on the BBa tutorial, and levelling recovered from truth."""

import re

import numpy as np
import pytest
from support.paths import DATA

from napari_tomoalign.reconstruction.positioning import analyse_surfaces, level_parameters, wbp_shift, wbp_x_tilts
from napari_tomoalign.reconstruction.wbp import projection_coefficients


def logged(pattern):
    text = (DATA / "aligna.log").read_text()
    part = text[text.index("SURFACE ANALYSIS"):]
    return [float(v) for v in re.findall(pattern + r"\s*=\s*(-?[\d.]+)", part)]


def test_bba_two_surfaces_match_aligna_log_to_its_printed_precision():
    xyz = np.loadtxt(DATA / "BBafid.xyz", usecols=(1, 2, 3), max_rows=25)
    a = analyse_surfaces(xyz, 2, angle_offset_deg=-0.5)  # aligna.com: AngleOffset -0.5, SurfacesToAnalyze 2
    assert (a.bottom.n_points, a.top.n_points) == (14, 11)
    slopes = logged("Adjusted slope")  # all, bottom, top
    for got, want in zip([a.all_points.adjusted_slope, a.bottom.adjusted_slope, a.top.adjusted_slope], slopes):
        assert round(got, 4) == pytest.approx(want, abs=1e-9)
    assert [round(a.bottom.intercept_px, 2), round(a.top.intercept_px, 2)] == logged("Z axis intercept")
    assert [round(a.bottom.x_axis_tilt_needed_deg, 2), round(a.top.x_axis_tilt_needed_deg, 2)] == logged(
        "X axis tilt needed")[:2]  # then the average
    assert round(a.thickness_px, 2) == logged("Thickness at Z intercepts")[0]
    assert round(a.x_axis_tilt_needed_deg, 2) == logged("Average X axis tilt needed")[0]
    assert round(a.slope, 4) == logged("Average adjusted slope")[0]
    increments = logged("Incremental tilt angle change")  # all, bottom, top, both
    totals = logged("Total tilt angle change")
    got = [a.all_points.tilt_angle_change_deg, a.bottom.tilt_angle_change_deg, a.top.tilt_angle_change_deg,
           a.tilt_angle_change_deg]
    assert [round(v, 2) for v in got] == increments
    assert [round(v - 0.5, 2) for v in got] == totals
    assert [round(r, 2) for r in (a.bottom.mean_residual_px, a.top.mean_residual_px)] == [
        round(v, 2) for v in logged("Mean residual")]
    d = a.as_dict()
    assert d["surfaces"] == 2 and d["thickness_at_intercepts_px"] == pytest.approx(80.33, abs=0.005)
    assert "Average X axis tilt needed =       2.07" in a.report()
    one = analyse_surfaces(xyz, 1, angle_offset_deg=-0.5)
    assert one.bottom is None and round(one.tilt_angle_change_deg, 2) == -6.29 and one.thickness_px is None


def synthetic_section(seed=0, tilt_deg=4.0, x_tilt_deg=-3.0, thick=120.0, n=40):
    """Beads on the two faces of a section tilted by ``tilt_deg`` about y and ``x_tilt_deg`` about x."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-400, 400, n), rng.uniform(-400, 400, n)
    face = np.where(np.arange(n) % 2 == 0, -thick / 2, thick / 2)
    z = face + np.tan(np.radians(tilt_deg)) * x + np.tan(np.radians(x_tilt_deg)) * y + 7.0 + rng.normal(0, 0.3, n)
    return np.column_stack([x, y, z]), np.arange(n) % 2 == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_layers_found_and_levelled_through_the_wbp_geometry(seed):
    xyz, truly_bottom = synthetic_section(seed)
    a = analyse_surfaces(xyz, 2)
    assert np.array_equal(np.array(a.bottom_of), truly_bottom)
    assert a.thickness_px == pytest.approx(120.0 / np.cos(np.radians(4.0)) / np.cos(np.radians(3.0)), rel=0.02)
    lev = level_parameters(a, xyz)
    # Where does the WBP, with the levelling, put each bead seen by the plain model u = x cos t + z sin t?
    tilts = np.arange(-60.0, 61.0, 2.0)
    n_y = n_x = 1024
    coef = projection_coefficients(tilts + lev.tilt_change_deg, (n_y, n_x), lev.thickness_px,
                                   x_tilt_deg=wbp_x_tilts(0.0, lev.x_axis_tilt_deg),
                                   shift_px=wbp_shift((0.0, lev.z_shift_px)))
    t = np.radians(tilts)
    placed = []
    for x, y, z in xyz:
        u = x * np.cos(t) + z * np.sin(t) + (n_x - 1) / 2
        m = np.vstack([coef[:, [0, 1, 2]], np.column_stack([np.zeros_like(t), coef[:, 4], coef[:, 5]])])
        rhs = np.concatenate([u - coef[:, 3], np.full(t.size, y + (n_y - 1) / 2) - coef[:, 6]])
        placed.append(np.linalg.lstsq(m, rhs, rcond=None)[0])
    placed = np.array(placed)
    for face in (truly_bottom, ~truly_bottom):  # each face level: its heights spread only by the noise
        assert np.std(placed[face, 2]) < 1.0
    assert np.all(np.abs(placed[:, 2]) < lev.thickness_px / 2 - 16)
    assert abs(placed[:, 2].max() + placed[:, 2].min()) < 2.0  # the section centred in the volume


def test_too_few_markers_and_bad_surface_counts_are_named():
    with pytest.raises(ValueError, match="at least 6 markers"):
        analyse_surfaces(np.zeros((5, 3)), 2)
    with pytest.raises(ValueError, match="must be 1 or 2"):
        analyse_surfaces(np.zeros((9, 3)), 3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_few_beads_unevenly_spread_are_split_by_their_layers(seed):
    """8 gold on a level section 460 px thick, each face's 4 at other x (materials science: a few beads): the plane
    through all points slopes, and splitting by it took 2 + 6 points and a 16-degree offset (new user s14)."""
    rng = np.random.default_rng(seed)
    top = np.column_stack([rng.uniform(-1000, -100, 4), rng.uniform(-900, 900, 4), 230 + rng.normal(0, 0.5, 4)])
    bottom = np.column_stack([rng.uniform(0, 1000, 4), rng.uniform(-900, 900, 4), -230 + rng.normal(0, 0.5, 4)])
    xyz = np.vstack([top, bottom])
    a = analyse_surfaces(xyz, 2)
    assert np.array_equal(np.array(a.bottom_of), [False] * 4 + [True] * 4)
    assert abs(a.tilt_angle_change_deg) < 0.2 and abs(a.x_axis_tilt_needed_deg) < 0.2
    assert a.thickness_px == pytest.approx(460.0, abs=8.0)  # intercepts extrapolated ~500 px from each layer


def test_a_level_from_three_markers_on_a_face_is_said_to_be_uncertain():
    rng = np.random.default_rng(5)
    xyz = np.column_stack([rng.uniform(-800, 800, 6), rng.uniform(-800, 800, 6), np.tile([105.0, -105.0], 3)])
    lev = level_parameters(analyse_surfaces(xyz, 2), xyz)
    assert lev.fewest_on_a_face == 3 and "only 3 markers" in lev.report(2)
    xyz = np.column_stack([rng.uniform(-800, 800, 12), rng.uniform(-800, 800, 12), np.tile([105.0, -105.0], 6)])
    assert "only" not in level_parameters(analyse_surfaces(xyz, 2), xyz).report(2)


def test_markers_spread_through_the_section_are_no_faces_to_level_by():
    """Beads uniform in z (the demo's): the two "faces" fit badly (s16 new user: -2.8 deg applied, unflagged); BBa's
    faces (0.40 and 0.95 px on 80 px) are not flagged."""
    rng = np.random.default_rng(7)
    xyz = np.column_stack([rng.uniform(-250, 250, 60), rng.uniform(-250, 250, 60), rng.uniform(-48, 67, 60)])
    lev = level_parameters(analyse_surfaces(xyz, 2), xyz)
    assert lev.scattered is not None and "they fill the section rather than lie on its faces" in lev.report(2)
    bba = np.loadtxt(DATA / "BBafid.xyz", usecols=(1, 2, 3), max_rows=25)
    lev = level_parameters(analyse_surfaces(bba, 2, angle_offset_deg=-0.5), bba)
    assert lev.scattered is None and "fill the section" not in lev.report(2)


def test_markers_in_one_layer_are_said_so_in_the_report():
    rng = np.random.default_rng(6)
    xyz = np.column_stack([rng.uniform(-800, 800, 20), rng.uniform(-800, 800, 20), rng.normal(0.0, 0.5, 20)])
    assert "lie in one layer" in analyse_surfaces(xyz, 2).report()
    xyz[::2, 2] += 200.0
    assert "lie in one layer" not in analyse_surfaces(xyz, 2).report()


def test_the_level_report_says_which_size_the_user_gave_and_what_the_markers_said():
    """`--level` with --thickness or --shift: the line names the user's values as theirs, beside the markers' own
    (s15 new user: 'Z shift +600.0 px' read as chosen by the level)."""
    from napari_tomoalign.reconstruction.positioning import Levelling

    own = Levelling(0.5, -0.3, 236, 4.4, from_markers=(236, 4.4)).report(2)
    assert "thickness 236 px, Z shift +4.4 px (unbinned" in own and "--thickness;" not in own and "--shift;" not in own
    given = Levelling(0.5, -0.3, 100, 600.0, size_given=(True, True), from_markers=(236, 4.4)).report(2)
    assert "thickness 100 px (--thickness; the markers' 236), Z shift +600.0 px (--shift; the markers' +4.4)" in given
