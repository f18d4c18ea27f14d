"""The full model with the options of IMOD's own align.com, on the tutorial data: IMOD's Final F or below,
and IMOD's solved tilts, magnifications, X-stretch and skew (aligna.log, alignb.log, BB?.tlt)."""

import functools

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import solve_patch
from napari_tomoalign.alignment.local_options import local_options_from_com, patch_mappings
from napari_tomoalign.alignment.model import DMAG, MAG, ROT, SKEW, TILT
from napari_tomoalign.alignment.options import ModelSettings
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.io.imod import read_fid_xyz
from napari_tomoalign.io.imod_com import read_com_section

IMOD_FINAL_F = {"a": 0.360595, "b": 0.383607}
IMOD_MEAN = {"a": 0.315, "b": 0.336}
# aligna.log, views 1, 11, 15, 21, 32, 46, 61: rotation, mag, dmag, skew (imod-full-model.md, section 3)
BBA_VIEWS = [0, 10, 14, 20, 31, 45, 60]
BBA_ROT = [-11.1, -11.1, -11.2, -11.3, -11.5, -11.6, -11.8]
BBA_MAG = [1.0, 0.9974, 0.9972, 0.9960, 0.9947, 0.9923, 0.9920]
BBA_DMAG = [-0.0028, 0.0008, 0.0, -0.0, 0.0015, 0.0038, 0.0013]
BBA_SKEW = [0.12, 0.0, -0.05, -0.13, -0.06, -0.12, -0.24]


@functools.lru_cache(maxsize=2)
def _solve(imod_data, axis):
    markers = read_markers(imod_data / f"BB{axis}.fid")
    tilts = read_tilt_angles(imod_data / f"BB{axis}.rawtlt")
    settings = settings_from_com(read_com_section(imod_data / f"align{axis}.com"), tilts)
    sol = align_markers(markers.view, markers.marker, markers.xy, tilts, markers.image_size, settings=settings, warn=False)
    return axis, sol, imod_data


@pytest.fixture(scope="module", params=["a", "b"])
def solved(request, imod_data):
    return _solve(imod_data, request.param)


def test_final_f_at_or_below_imods(solved):
    axis, sol, _ = solved
    assert sol.converged
    assert sol.rms_residual_px <= IMOD_FINAL_F[axis]
    assert sol.rms_residual_px > IMOD_FINAL_F[axis] - 5e-5  # the same optimum, not a different model
    assert sol.mean_residual_px == pytest.approx(IMOD_MEAN[axis], abs=0.001)
    assert np.allclose(sol.xyz_px.mean(axis=0), 0.0, atol=1e-9)  # IMOD's centroid gauge


def test_solved_tilts_match_imods_tlt(solved):
    axis, sol, d = solved
    imod = np.loadtxt(d / f"BB{axis}.tlt")
    assert np.max(np.abs(np.degrees(sol.full_params[:, TILT]) - imod)) < 0.03
    fixed = {"a": 31, "b": 32}[axis]  # the first view of the min-tilt view's group is held at nominal + offset
    assert np.degrees(sol.full_params[fixed, TILT]) == pytest.approx(np.loadtxt(d / f"BB{axis}.rawtlt")[fixed]
                                                                + {"a": -0.5, "b": -2.11}[axis], abs=1e-9)


def test_bba_rotation_mag_stretch_and_skew_match_imods_log(imod_data):
    _, sol, _ = _solve(imod_data, "a")
    p = sol.full_params[BBA_VIEWS]
    np.testing.assert_allclose(np.degrees(p[:, ROT]), BBA_ROT, atol=0.06)
    np.testing.assert_allclose(p[:, MAG], BBA_MAG, atol=1.5e-4)
    np.testing.assert_allclose(p[:, DMAG], BBA_DMAG, atol=4e-4)  # weakly determined (section 3)
    np.testing.assert_allclose(np.degrees(p[:, SKEW]), BBA_SKEW, atol=0.02)
    assert p[2, DMAG] == 0.0 and p[1, SKEW] == 0.0  # the reference group and view are held


@pytest.mark.parametrize("centre, size, n_fids, imod_f", [(85, 330, 11, 0.345506), (255, 210, 9, 0.339802)])
def test_local_patch_with_fixed_xyz_reaches_imods_f(imod_data, centre, size, n_fids, imod_f):
    """BBa patches (1,1) and (3,3) with aligna.com's local options and FixXYZCoordinates 1 (section 4.2):
    the patch's fiducials are those whose global X, Y (IMOD's BBafid.xyz) lie in the patch."""
    _, glob, _ = _solve(imod_data, "a")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    markers = read_markers(imod_data / "BBa.fid")
    ids, fid_xyz = read_fid_xyz(imod_data / "BBafid.xyz")
    lo = centre - size // 2
    x, y = fid_xyz[:, 0] + 0.5, fid_xyz[:, 1] + 0.5  # IMOD's pixel coordinates
    inside = np.sort(ids[(x >= lo) & (x <= lo + size) & (y >= lo) & (y <= lo + size)])
    assert len(inside) == n_fids
    sel = np.isin(markers.marker, inside)
    counts = np.bincount(markers.view[sel], minlength=glob.full_params.shape[0])
    fitted = np.flatnonzero(counts)
    opts = local_options_from_com(read_com_section(imod_data / "aligna.com"))
    local = ModelSettings(patch_mappings(opts, fitted, np.degrees(glob.full_params[:, TILT]), tilts, counts), 0.0)
    assert local.n_geometric == 50
    xyz = glob.xyz_px[np.isin(glob.marker_ids, inside)]
    params, xyz_out, resid, reports = solve_patch(
        np.searchsorted(fitted, markers.view[sel]), np.searchsorted(inside, markers.marker[sel]),
        markers.xy[sel] - glob.image_centre, glob.full_params[fitted], xyz, local, fix_xyz=True)
    assert all(r.converged for r in reports)
    assert imod_f - 5e-5 < np.sqrt(np.mean(np.sum(resid**2, axis=1))) <= imod_f
    np.testing.assert_array_equal(xyz_out, xyz)


def _log_table(path):
    """tiltalign's per-view table: view, rotation, tilt, deltilt, mag, dmag, skew, mean resid."""
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[:3] == ["view", "rotation", "tilt"]) + 1
    rows = []
    for ln in lines[start:]:
        if not ln.strip():
            break
        rows.append([float(x) for x in ln.split()])
    return np.array(rows)


def test_every_views_rotation_mag_stretch_and_skew_match_imods_log(solved):
    axis, sol, d = solved
    log = _log_table(d / f"align{axis}.log")
    assert log.shape == (61, 8)
    p = sol.full_params
    np.testing.assert_allclose(np.degrees(p[:, ROT]), log[:, 1], atol=0.051)  # the log has 0.1 deg
    np.testing.assert_allclose(p[:, MAG], log[:, 4], atol=2e-4)
    np.testing.assert_allclose(p[:, DMAG], log[:, 5], atol=5e-4)  # weakly determined (section 3)
    np.testing.assert_allclose(np.degrees(p[:, SKEW]), log[:, 6], atol=0.02)
