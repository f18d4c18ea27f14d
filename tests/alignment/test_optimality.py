"""The staged solve ends at the least-squares optimum that a general solver finds."""

import numpy as np
import pytest
from scipy.optimize import least_squares

from napari_tomoalign import align_markers, simulate_markers
from napari_tomoalign.alignment.model import MAG, TILT, project


def test_cost_matches_scipy_least_squares_at_tight_tolerance():
    sim = simulate_markers(n_views=15, n_markers=8, noise_px=0.5, high_tilt_loss=0.3, dropout=0.1, seed=9)
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size)
    centre = al.image_centre
    ref = al.reference_view
    ids, mi = np.unique(sim.marker, return_inverse=True)
    n_v, n_m = len(sim.nominal_tilt_angles_deg), len(ids)
    vp0 = np.column_stack([np.radians(al.tilt_angles_deg), np.radians(al.rotation_deg), al.magnification,
                           al.shifts_px])
    # free: everything but the reference view's tilt and magnification (the gauge); translation is
    # left free (scipy's trust region copes with the 3-D null space)
    free = np.ones((n_v, 5), dtype=bool)
    free[ref, TILT] = free[ref, MAG] = False

    def unpack(p):
        vp = vp0.copy()
        vp[free] = p[: free.sum()]
        return vp, p[free.sum():].reshape(n_m, 3)

    def fun(p):
        vp, xyz = unpack(p)
        return (project(vp, xyz, sim.view, mi) + centre - sim.xy).ravel()

    # start scipy away from our answer, from the nominal geometry
    start_vp = vp0.copy()
    start_vp[:, TILT] = np.radians(sim.nominal_tilt_angles_deg)
    start_vp[:, MAG] = 1.0
    p0 = np.concatenate([start_vp[free], al.xyz_px.ravel() + 1.0])
    ref_sol = least_squares(fun, p0, method="trf", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000)
    cost_scipy = 0.5 * np.sum(ref_sol.fun**2)
    cost_ours = 0.5 * np.sum(al.residuals_px**2)
    assert cost_ours <= cost_scipy * (1 + 1e-9)
    assert cost_ours == pytest.approx(cost_scipy, rel=1e-7)
