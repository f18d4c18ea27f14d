"""Compare lines up two runs' tomograms by their markers, each in the frame its own tomogram was made in: a run
placed with another axis Z shift (align.com's ``AxisZShift``) holds the specimen that much higher or lower."""

import numpy as np
import pytest

pytest.importorskip("magicgui")

from napari_tomoalign import simulate_markers  # noqa: E402
from napari_tomoalign._napari.dock.compare import common_frame  # noqa: E402
from napari_tomoalign.alignment.options import AlignmentOptions  # noqa: E402
from napari_tomoalign.jobs.solver_options import SolverSettings  # noqa: E402
from napari_tomoalign.reconstruction.compare import normalised_cross_correlation  # noqa: E402
from napari_tomoalign.workflows import run_alignment  # noqa: E402


def test_two_runs_with_different_axis_z_shifts_are_compared_on_one_grid():
    sim = simulate_markers(n_views=41, n_markers=25, image_size=(128, 128), thickness_px=30, noise_px=0.02, seed=3)
    images = np.zeros((41, 128, 128), np.float32)
    yy, xx = np.mgrid[0:128, 0:128]
    for v, (x, y) in zip(sim.view, sim.xy, strict=True):
        images[v] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    runs = []
    for shift in (0.0, 12.0):
        settings = SolverSettings(AlignmentOptions(), axis_z_shift_px=shift)
        runs.append(run_alignment(images, sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, (128, 128),
                                  settings, name=f"shift {shift:g}", tomogram_thickness_px=80, tomogram_binning=1))
    a, b = runs
    assert b.axis_z_shift_px == 12.0
    vol_a, vol_b = (vol.astype(np.float64) for vol in common_frame(a, b))
    inner = (slice(12, -12), slice(8, -8), slice(8, -8))
    assert normalised_cross_correlation(vol_a[inner], vol_b[inner]) > 0.99  # 0.9998
    moved = np.roll(vol_b, 12, axis=0)  # the other run's tomogram 12 sections off, as without its shift
    assert normalised_cross_correlation(vol_a[inner], moved[inner]) < 0.5  # 0.035: the lines-up of session 18
