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
    assert f"RMS residual {alignment.rms_residual_px:.4f} px ({alignment.rms_residual_px * 0.27:.3f} nm)" in text
    assert f"tilt axis {alignment.tilt_axis_deg:.2f} deg" in text
    assert [ln.split()[1] for ln in lines if ln.startswith("  stage")] == [s.name for s in alignment.stages]
    assert "tomogram" in text and "robust fit:" in text


def test_plots_are_an_image_or_none_without_matplotlib(alignment, monkeypatch):
    image = report_plot({"a": alignment}, size_px=(200, 150))
    assert image is not None and image.shape == (150, 200, 4) and image.dtype == np.uint8
    assert image[..., :3].std() > 0  # something is drawn
    monkeypatch.setattr(report_module, "plots_available", lambda: False)
    assert report_plot({"a": alignment}) is None
    assert "pip install matplotlib" in NO_PLOTS
