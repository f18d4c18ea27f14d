"""The report, one copy for the command line and the dock: its text, and its plots when matplotlib is there."""

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign import report as report_module
from napari_tomoalign.report import NO_PLOTS, report_plot, text_report


@pytest.fixture(scope="module")
def alignment():
    sim = simulate_markers(n_views=31, n_markers=15, seed=5)
    return align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size,
                         AlignmentOptions(robust=True), pixel_size_nm=0.27)


def test_text_report_names_residuals_axis_stages_and_flags(alignment):
    lines = text_report(alignment, name="all markers", timings_s={"solve": 0.1, "tomogram": 0.25})
    text = "\n".join(lines)
    assert lines[0] == "[all markers]"
    assert (f"RMS residual {alignment.rms_residual_px:.4f} px ({alignment.rms_residual_px * 0.27:.3f} nm)"
            " unweighted over all points in the fit") in text
    assert f"tilt axis {alignment.tilt_axis_deg:.2f} deg" in text
    assert f"reference view {alignment.reference_view + 1} (views numbered from 1)" in text
    assert [ln.split()[1] for ln in lines if ln.startswith("  stage")] == [s.name for s in alignment.stages]
    assert all("weighted RMS" in ln for ln in lines if ln.startswith("  stage"))
    assert "tomogram" in text and "robust fit:" in text
    rms = alignment.per_view_residual_px()[0]
    worst = ", ".join(f"{v + 1} ({rms[v]:.3f} px)" for v in np.argsort(-rms)[:3])
    assert f"worst views: {worst}" in text  # 1-based, as every view number in the report


def test_stage_rms_is_the_weighted_rms_and_the_headline_the_unweighted_one(alignment):
    # the robust stage's figure: sqrt(sum w r^2 / sum w) with its final robust weights
    assert alignment.stages[-1].name == "robust"
    ok = alignment.obs_used
    w, r2 = alignment.robust_weights[ok], np.sum(alignment.residuals_px[ok] ** 2, axis=1)
    np.testing.assert_allclose(alignment.stages[-1].rms_residual_px, np.sqrt(np.sum(w * r2) / np.sum(w)), rtol=1e-6)
    np.testing.assert_allclose(alignment.rms_residual_px, np.sqrt(np.mean(r2)), rtol=1e-12)


def test_plots_are_an_image_or_none_without_matplotlib(alignment, monkeypatch):
    image = report_plot({"a": alignment}, size_px=(200, 150))
    assert image is not None and image.shape == (150, 200, 4) and image.dtype == np.uint8
    assert image[..., :3].std() > 0  # something is drawn
    monkeypatch.setattr(report_module, "plots_available", lambda: False)
    assert report_plot({"a": alignment}) is None
    assert "pip install matplotlib" in NO_PLOTS


def test_text_report_prints_stretch_and_skew_per_group_for_the_full_model(imod_data):
    from napari_tomoalign import read_markers, read_tilt_angles
    from napari_tomoalign.alignment.solver import align_markers_imod

    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    al = align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com", pixel_size_nm=2.02)
    lines = text_report(al)
    stretch = next(ln for ln in lines if ln.startswith("X-stretch by group of views: "))
    groups = stretch.split(": ", 1)[1].split(", ")
    # aligna.log's X-stretch groups (block, 7 per group, smaller at high tilt); 12-18 is the reference
    assert [g.split(":")[0] for g in groups] == ["1-2", "3-6", "7-11", "12-18", "19-26", "27-35", "36-43",
                                                  "44-51", "52-56", "57-61"]
    assert groups[3] == "12-18: 0.0000 ref" and groups[0] == f"1-2: {al.full_params[0, 5]:.4f}"
    skew = next(ln for ln in lines if ln.startswith("skew (deg), linear between views: "))
    assert [p.split(":")[0] for p in skew.split(": ", 1)[1].split(", ")] == ["1", "11", "21", "31", "41", "51", "61"]
    assert "11: 0.00 ref" in skew and "1: 0.12" in skew  # aligna.log: skew 0.12 deg at view 1
    assert not any(ln.startswith(("X-tilt", "compression", "beam tilt")) for ln in lines)  # not solved
    # the references aligna.com holds, 1-based as IMOD prints them (MagReferenceView 1; tilt: the first view of
    # the group holding the min-tilt view; X-stretch: group of view 15; skew: view 11)
    assert ("references the align.com holds (views numbered from 1, as IMOD prints them): magnification 1 at"
            " view 1; tilt held at view 32; X-stretch 0 at views 12-18; skew 0 at view 11") in lines
    assert (f"solved tilt axis {al.tilt_axis_deg:.2f} deg at the minimum-tilt view 33"
            " (start: align.com RotationAngle -12.5 deg)") in lines
    assert all("weighted RMS" in ln for ln in lines if ln.startswith("  stage"))
    assert not any("X-stretch" in ln for ln in text_report(align_markers(m.view, m.marker, m.xy, tilts,
                                                                           m.image_size)))



def test_a_given_axis_that_the_fit_moved_is_not_called_given():
    """New user's nit (session 13): `--tilt-axis 40 --no-axis-estimate` on 84 deg markers printed "tilt axis 83.98 deg
    (given, ...)": the start was given, the value solved."""
    s = simulate_markers(n_views=31, n_markers=15, tilt_axis_deg=84.0, seed=3)
    moved = align_markers(s.view, s.marker, s.xy, s.nominal_tilt_angles_deg, s.image_size,
                          AlignmentOptions(tilt_axis_deg=80.0, estimate_tilt_axis=False))
    assert abs(moved.tilt_axis_deg - 84.0) < 1.0
    assert f"tilt axis {moved.tilt_axis_deg:.2f} deg (solved from the given 80, " in "\n".join(text_report(moved))
