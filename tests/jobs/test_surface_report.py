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
    from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions, plan_tomogram

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
