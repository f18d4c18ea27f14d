"""``align`` reports IMOD's surface analysis (tomogram positioning) in its text and in ``alignment.json``, as
the align.com's ``SurfacesToAnalyze`` asks (two surfaces by default), and ``reconstruct --level`` takes the
number of surfaces from that record."""

import json

import pytest

from napari_tomoalign.cli import main


def _align(imod_data, out, *extra):
    return main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), *extra,
                 "--output", str(out)])


def _record(folder):
    return json.loads((folder / "alignment.json").read_text()).get("surface_analysis")


def test_aligna_com_reports_the_surface_analysis_of_aligna_log(imod_data, tmp_path, capsys):
    assert _align(imod_data, tmp_path / "com", "--imod-com", str(imod_data / "aligna.com")) == 0
    out = capsys.readouterr().out
    assert "SURFACE ANALYSIS:" in out and "Average X axis tilt needed =       2.07" in out
    s = _record(tmp_path / "com")
    # aligna.log: X-axis tilt 2.07, thickness 80.33, incremental 0.34 and total -0.16 (AngleOffset -0.5)
    assert s["surfaces"] == 2 and (s["bottom"]["n_points"], s["top"]["n_points"]) == (14, 11)
    assert round(s["x_axis_tilt_needed_deg"], 2) == 2.07 and round(s["tilt_angle_change_deg"], 2) == 0.34
    assert round(s["total_tilt_angle_change_deg"], 2) == -0.16
    assert s["thickness_at_intercepts_px"] == pytest.approx(80.33, abs=0.02)  # our solve of aligna.com's model


def test_surfaces_to_analyze_0_gives_none_and_the_cli_default_is_two(imod_data, tmp_path, capsys):
    com = tmp_path / "none.com"
    com.write_text((imod_data / "aligna.com").read_text().replace("SurfacesToAnalyze\t2", "SurfacesToAnalyze\t0"))
    assert _align(imod_data, tmp_path / "none", "--imod-com", str(com), "--quiet") == 0
    assert _record(tmp_path / "none") is None
    assert _align(imod_data, tmp_path / "default", "--quiet") == 0
    s = _record(tmp_path / "default")
    assert s["surfaces"] == 2 and s["bottom"]["n_points"] + s["top"]["n_points"] == 25
    assert 60 < s["thickness_at_intercepts_px"] < 100  # BBa's two bead layers, as with aligna.com


def test_reconstruct_level_takes_the_number_of_surfaces_from_the_record(imod_data, tmp_path):
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    com = tmp_path / "one.com"
    com.write_text((imod_data / "aligna.com").read_text().replace("SurfacesToAnalyze\t2", "SurfacesToAnalyze\t1"))
    assert _align(imod_data, tmp_path / "one", "--imod-com", str(com), "--quiet") == 0
    folder = tmp_path / "one"
    saved = read_alignment_dir(folder)
    plan = plan_tomogram(saved, folder, thickness=None, options=ReconstructOptions(level=0))  # --level alone
    got, record = plan.info["surface_analysis"], _record(folder)  # align's record, recomputed the same
    for key in ("surfaces", "x_axis_tilt_needed_deg", "tilt_angle_change_deg", "adjusted_slope"):
        assert got[key] == pytest.approx(record[key], abs=1e-9), key
    two = plan_tomogram(saved, folder, thickness=None, options=ReconstructOptions(level=2))  # --level 2 asks
    assert two.info["surface_analysis"]["surfaces"] == 2 and plan.info["surface_analysis"]["surfaces"] == 1


def test_reconstruct_level_reprints_align_s_totals_and_says_what_it_added(imod_data, tmp_path, capsys):
    """Session 11's finding 2: ``reconstruct --level`` printed IMOD's block with the --offset given in place of the
    alignment's AngleOffset, so its "Total tilt angle change" differed from align's (0.34 against aligna.log's -0.16).
    The block is align's; what --offset and --x-axis-tilt add is said on the "Levelled" line."""
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    assert _align(imod_data, tmp_path / "com", "--imod-com", str(imod_data / "aligna.com"), "--quiet") == 0
    d = tmp_path / "com"
    plan = plan_tomogram(read_alignment_dir(d), d, thickness=None,
                         options=ReconstructOptions(level=0, offset_deg=1.0, x_axis_tilt_deg=2.0))
    text = plan.surfaces.report()
    assert "Total tilt angle change =         -0.16" in text  # aligna.log's, as align printed it
    line = plan.levelled.report(2)
    assert "(IMOD's OFFSET, +1.00 of it from --offset)" in line and "above, +2.00 of it from --x-axis-tilt)" in line
    assert plan.levelled.tilt_change_deg == pytest.approx(0.34 + 1.0, abs=0.01) and not plan.levelled.one_layer


def test_markers_in_one_layer_level_the_section_but_do_not_set_its_thickness(imod_data, tmp_path):
    """Session 11's finding 10: gold on one face gave a 40 px tomogram around the gold. Markers in one layer level
    the section; the thickness and Z shift stay the default's, and the line says why."""
    import numpy as np

    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.jobs.facts import default_thickness_px
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    assert _align(imod_data, tmp_path / "one", "--quiet") == 0
    d = tmp_path / "one"
    saved = read_alignment_dir(d)  # (the record vouches for fid.xyz: read before it is rewritten below)
    xyz_path = next(d.glob("*fid.xyz"))
    rows = [line.split() for line in xyz_path.read_text().splitlines() if line.strip()]
    ids, xyz = [r[0] for r in rows], np.array([[float(v) for v in r[1:4]] for r in rows])
    xyz[:, 2] = -60.0 + 0.02 * xyz[:, 0] + np.random.default_rng(0).normal(0, 1.0, len(xyz))  # one tilted layer
    xyz_path.write_text("".join(f"{i} {x:.3f} {y:.3f} {z:.3f}\n" for i, (x, y, z) in zip(ids, xyz, strict=True)))
    for level in (1, 2):
        plan = plan_tomogram(saved, d, thickness=None, options=ReconstructOptions(level=level))
        assert plan.levelled.one_layer
        assert plan.thickness == default_thickness_px(saved.image_size, saved.marker_z_extent_px)
        assert plan.levelled.z_shift_px == 0.0 and "not taken from the markers" in plan.levelled.report(level)
        assert abs(plan.levelled.tilt_change_deg) > 0.5  # levelled all the same (the layer's slope in x)
    plan = plan_tomogram(saved, d, thickness=300, options=ReconstructOptions(level=1, shift_px=(0.0, 40.0)))
    assert plan.thickness == 300 and plan.levelled.z_shift_px == 40.0
    line = plan.levelled.report(1)  # new user s14: it asked for the --thickness and --shift just given
    assert "as given (the markers lie in one layer)" in line and "give --thickness" not in line
    assert line.startswith("Levelled from the surface analysis (markers in one layer: by their plane)")


def test_patches_are_analysed_as_one_plane_and_two_layers_are_not_one(imod_data, tmp_path):
    """Session 11's finding 22: patch contours fill the section's depth, so two "surfaces" were the halves of one
    cloud. A model `track --patches` wrote is analysed as one plane; and one plane through markers spread in depth
    (BBa's two layers, 80 px apart) is not "one layer": --level then takes the thickness from them."""
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.io.imod_model import PATCHES_ON, read_imod_model, write_imod_model
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
    from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram

    m = read_imod_model(imod_data / "BBa.fid")
    write_imod_model(tmp_path / "p.fid", m, n_views=61, name=PATCHES_ON + "BBa.st")
    assert main(["align", str(tmp_path / "p.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--quiet",
                 "--output", str(tmp_path / "p")]) == 0
    assert _record(tmp_path / "p")["surfaces"] == 1
    d = tmp_path / "p"
    plan = plan_tomogram(read_alignment_dir(d), d, thickness=None, options=ReconstructOptions(level=0))
    assert plan.surfaces.n_surfaces == 1 and not plan.levelled.one_layer
    assert plan.thickness == plan.levelled.thickness_px > 80  # holds the markers' depth
