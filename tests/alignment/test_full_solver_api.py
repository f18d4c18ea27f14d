"""The full-model entry point as the local alignments use it: subsets of markers, warm starts, markers free
or held, views without points, cancellation and one-line errors."""

import functools

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.errors import AlignmentError
from napari_tomoalign.alignment.full_layout import build_layout
from napari_tomoalign.alignment.full_solver import solve_full_model, start_params
from napari_tomoalign.alignment.grouping import per_view_mapping
from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.errors import Cancelled
from napari_tomoalign.io.imod_com import read_com_section


@functools.lru_cache(maxsize=1)
def _bba(imod_data):
    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    settings = settings_from_com(read_com_section(imod_data / "aligna.com"), tilts)
    return m, tilts, settings, solve_full_model(m.view, m.marker, m.xy, m.image_size, settings, tilt_angles_deg=tilts)


def test_warm_start_on_a_subset_reaches_the_cold_optimum(imod_data):
    m, tilts, settings, glob = _bba(imod_data)
    keep = ~np.isin(m.marker, [3, 7, 11])
    cold = solve_full_model(m.view[keep], m.marker[keep], m.xy[keep], m.image_size, settings, tilt_angles_deg=tilts)
    start = solve_full_model(m.view[keep], m.marker[keep], m.xy[keep], m.image_size, settings, start=glob)
    assert start.iterations < cold.iterations
    assert len(start.reports) == 1  # every marker had a start position: no placing stage
    # the warm start's unknowns are increments on the global solution, so the gauge references differ
    # by the global values: compare the fit, not the parameters
    assert start.rms_residual_px == pytest.approx(cold.rms_residual_px, abs=2e-6)
    assert list(start.marker_ids) == [i for i in glob.marker_ids if i not in (3, 7, 11)]


def test_new_markers_are_placed_before_the_warm_solve(imod_data):
    m, tilts, settings, glob = _bba(imod_data)
    ids = np.where(m.marker == 5, 99, m.marker)  # marker 5 renamed: unknown to the previous solution
    sol = solve_full_model(m.view, ids, m.xy, m.image_size, settings, start=glob)
    assert len(sol.reports) == 2 and sol.rms_residual_px == pytest.approx(glob.rms_residual_px, abs=2e-6)
    with pytest.raises(AlignmentError, match=r"markers \[99\] have no position"):
        solve_full_model(m.view, ids, m.xy, m.image_size, settings, start=glob, fix_xyz=True)


def test_views_without_points_keep_their_values_and_drop_their_unknowns(imod_data):
    m, tilts, settings, glob = _bba(imod_data)
    keep = ~np.isin(m.view, [0, 1, 2])
    counts = np.bincount(m.view[keep], minlength=len(tilts))
    local = settings_from_com(read_com_section(imod_data / "aligna.com"), np.degrees(glob.params[:, 0]), counts,
                              local=True)
    sol = solve_full_model(m.view[keep], m.marker[keep], m.xy[keep], m.image_size, local, start=glob, fix_xyz=True)
    assert sol.converged and not sol.view_included[:3].any() and sol.view_included[3:].all()
    np.testing.assert_array_equal(sol.params[:3, 3:5], glob.params[:3, 3:5])  # shifts of empty views untouched
    np.testing.assert_array_equal(sol.xyz_px, glob.xyz_px)
    assert np.isfinite(sol.residuals_px).all()
    every = build_layout(local.mappings, glob.params, 0.0, False, np.ones(len(tilts), bool))
    lay = build_layout(local.mappings, glob.params, 0.0, False, sol.view_included)
    assert every.n_q - lay.n_q == 2 * 3  # the empty views' shifts; their groups reach views with points
    per_view = build_layout({"rotation": per_view_mapping(len(tilts))}, glob.params, 0.0, False, sol.view_included)
    assert per_view.n_q == 2 * 58 + 58  # an unknown that only empty views use is dropped too
    assert np.all(per_view.slot_col[:3][per_view.slot_raw[:3] >= 0] == -1)


def test_cancel_and_bad_input(imod_data):
    m, tilts, settings, _ = _bba(imod_data)
    with pytest.raises(Cancelled):
        solve_full_model(m.view, m.marker, m.xy, m.image_size, settings, tilt_angles_deg=tilts,
                         should_stop=lambda: True)
    with pytest.raises(AlignmentError, match="nominal tilt angles or a previous solution"):
        solve_full_model(m.view, m.marker, m.xy, m.image_size, settings)
    with pytest.raises(AlignmentError, match="view numbers must be 0 to 60"):
        solve_full_model(m.view + 1, m.marker, m.xy, m.image_size, settings, tilt_angles_deg=tilts)
    p = start_params(settings, tilts)
    assert np.degrees(p[31, 0]) == pytest.approx(tilts[31] - 0.5) and np.degrees(p[0, 1]) == pytest.approx(-12.5)


def test_sparse_schur_path_reaches_the_same_optimum(imod_data, monkeypatch):
    from napari_tomoalign.alignment import _lm

    m, tilts, settings, glob = _bba(imod_data)
    monkeypatch.setattr(_lm, "DENSE_F_BYTES", 0)  # force the marker-by-marker reduction
    sol = solve_full_model(m.view, m.marker, m.xy, m.image_size, settings, tilt_angles_deg=tilts)
    assert sol.rms_residual_px == pytest.approx(glob.rms_residual_px, abs=1e-7)
    np.testing.assert_allclose(sol.params[:, :3], glob.params[:, :3], atol=1e-5)
