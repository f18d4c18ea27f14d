"""Simulate IMOD's full model with known X-stretch, skew and beam tilt, then recover them within the noise
floor: every solved per-view value within 4.5 standard errors of the truth, the standard errors taken from
the normal equations at the truth (sigma^2 times the inverse of the reduced system)."""

import numpy as np
import pytest

from napari_tomoalign.alignment._lm import Observations, _Linearisation
from napari_tomoalign.alignment.full_layout import BEAM, PARAM_OF_KIND, build_layout, shift_gauge
from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.model import XTILT, project
from napari_tomoalign.alignment.options import start_params
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.conventions import image_centre

PIXEL_NM = 1.6
SIZE = (2048, 2048)
SIGMA_PX = 0.25
COMMON = {"RotationAngle": ["85.3"], "AngleOffset": ["0.4"], "MagOption": ["1"], "TiltOption": ["5"],
          "TiltDefaultGrouping": ["5"], "XStretchOption": ["3"], "XStretchDefaultGrouping": ["7"]}
STRETCH_SKEW = {**COMMON, "RotOption": ["1"], "SkewOption": ["3"], "SkewDefaultGrouping": ["11"]}
BEAM_TILT = {**COMMON, "RotOption": ["-1"], "BeamTiltOption": ["1"]}
TRUTH_SCALE = {"rotation": 0.008, "tilt": 0.005, "magnification": 0.01, "x_stretch": 0.006, "skew": 0.006}


def _simulate(entries, seed, beam_deg=0.0):
    rng = np.random.default_rng(seed)
    tilts = np.arange(-60.0, 60.1, 2.0)
    settings = settings_from_com(entries, tilts)
    n_views, n_markers = len(tilts), 60
    xyz = np.column_stack([rng.uniform(-900, 900, (n_markers, 2)), rng.uniform(-150, 150, n_markers) / PIXEL_NM])
    xyz -= xyz.mean(axis=0)  # a 300 nm thick section at 1.6 nm per pixel
    base = start_params(settings, tilts)
    lay = build_layout(settings.mappings, base, np.radians(beam_deg), False, np.ones(n_views, bool))
    kinds = lay.kind_of_column
    q = np.zeros(lay.n_q)
    for kind, scale in TRUTH_SCALE.items():
        sel = kinds == PARAM_OF_KIND[kind]
        q[sel] = rng.normal(0, scale, int(sel.sum()))
    q[(kinds == 3) | (kinds == 4)] = rng.normal(0, 20, int(np.sum((kinds == 3) | (kinds == 4))))
    truth, beam = lay.params(q)
    v, m = (a.ravel() for a in np.meshgrid(np.arange(n_views), np.arange(n_markers), indexing="ij"))
    keep = rng.random(v.size) > 0.1
    v, m = v[keep], m[keep]
    xy = project(truth, xyz, v, m, beam) + rng.normal(0, SIGMA_PX, (len(v), 2)) + image_centre(SIZE)
    return settings, tilts, truth, beam, xyz, v, m, xy


def _covariance(settings, truth, beam, xyz, v, m):
    """sigma^2 S^-1 of the unknowns, S the reduced normal matrix at the truth, and the layout it refers to."""
    included = np.ones(len(truth), bool)
    held = shift_gauge(truth[:, 0], truth[:, 1], included, int(np.argmin(np.abs(truth[:, 0]))))
    lay = build_layout(settings.mappings, truth, beam, settings.beam_tilt_free, included, held)
    obs = Observations(v, m, np.zeros((len(v), 2)), len(truth), len(xyz), np.ones(len(v)))
    lin = _Linearisation(obs, lay, np.zeros(lay.n_q), xyz, False)
    linv = np.linalg.inv(np.linalg.cholesky(lin.C))
    S = np.triu(lin._reduced(0.0, linv))
    S = S + np.triu(S, 1).T
    return lay, SIGMA_PX**2 * np.linalg.inv(S)


def _view_errors_within_floor(sol, settings, truth, beam, xyz, v, m, kind):
    lay, cov = _covariance(settings, truth, beam, xyz, v, m)
    p = PARAM_OF_KIND[kind]
    M = np.zeros((len(truth), lay.n_q))
    for j in range(len(truth)):
        for s in range(lay.slot_raw.shape[1]):
            if lay.slot_raw[j, s] == p:
                M[j, lay.slot_col[j, s]] += lay.slot_w[j, s]
    sd = np.sqrt(np.einsum("vq,qr,vr->v", M, cov, M))
    err = sol.full_params[:, p] - truth[:, p]
    held = sd == 0
    assert np.all(np.abs(err[held]) < 1e-12)
    return np.abs(err[~held]) / sd[~held], lay, cov


@pytest.fixture(scope="module")
def stretch_skew():
    settings, tilts, truth, beam, xyz, v, m, xy = _simulate(STRETCH_SKEW, seed=11)
    return align_markers(v, m, xy, tilts, SIZE, settings=settings, warn=False), settings, truth, beam, xyz, v, m


@pytest.mark.parametrize("kind", ["x_stretch", "skew", "tilt", "magnification"])
def test_stretch_and_skew_are_recovered_within_the_noise_floor(stretch_skew, kind):
    sol, settings, truth, beam, xyz, v, m = stretch_skew
    assert sol.converged
    assert sol.rms_residual_px == pytest.approx(SIGMA_PX * np.sqrt(2), rel=0.08)
    z, _, _ = _view_errors_within_floor(sol, settings, truth, beam, xyz, v, m, kind)
    assert z.max() < 4.5
    assert 0.4 < np.sqrt(np.mean(z**2)) < 1.6  # the errors are the size the noise predicts, not smaller


def test_beam_tilt_is_recovered_within_the_noise_floor():
    settings, tilts, truth, beam, xyz, v, m, xy = _simulate(BEAM_TILT, seed=12, beam_deg=1.5)
    assert settings.beam_tilt_free
    sol = align_markers(v, m, xy, tilts, SIZE, settings=settings, warn=False)
    assert sol.converged
    z, lay, cov = _view_errors_within_floor(sol, settings, truth, beam, xyz, v, m, "x_stretch")
    assert z.max() < 4.5
    col = int(np.flatnonzero(lay.kind_of_column == BEAM)[0])
    sd = float(np.sqrt(cov[col, col]))
    assert abs(np.radians(sol.beam_tilt_deg) - beam) < 4.5 * sd
    assert np.degrees(sd) < 0.2  # the simulated 1.5 deg is well above the floor


def test_noise_free_data_are_recovered_exactly():
    settings, tilts, truth, beam, xyz, v, m, xy = _simulate(STRETCH_SKEW, seed=13)
    exact = project(truth, xyz, v, m, beam) + image_centre(SIZE)
    sol = align_markers(v, m, exact, tilts, SIZE, settings=settings, warn=False)
    assert sol.rms_residual_px < 1e-6
    np.testing.assert_allclose(sol.full_params[:, [0, 1, 2, 5, 6]], truth[:, [0, 1, 2, 5, 6]], atol=1e-8)
    np.testing.assert_allclose(sol.xyz_px, xyz, atol=1e-5)


def test_alignment_folds_the_beam_tilt_into_the_angles_it_reports():
    settings, tilts, truth, beam, xyz, v, m, xy = _simulate(BEAM_TILT, seed=14, beam_deg=2.0)
    al = align_markers(v, m, xy, tilts, SIZE, settings=settings, pixel_size_nm=PIXEL_NM, warn=False)
    assert al.beam_tilt_deg == pytest.approx(2.0, abs=0.2)
    pred = al.predicted_xy_px[al.obs_view, al.obs_marker]
    np.testing.assert_allclose(pred - al.obs_xy_px, al.residuals_px, atol=1e-9)  # the same projections
    assert np.abs(al.full_params[:, XTILT]).max() > 1e-3  # X-tilt now carries the beam tilt
    np.testing.assert_allclose(al.tilt_angles_deg, np.degrees(al.full_params[:, 0]))
