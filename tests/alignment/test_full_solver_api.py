"""IMOD's settings through the one solver: warm starts on subsets of markers, new markers, a patch's views
without points (`local.solve_patch`), cancellation, the start values and the sparse reduction."""

import functools

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.full_layout import build_layout
from napari_tomoalign.alignment.grouping import per_view_mapping
from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import solve_patch
from napari_tomoalign.alignment.local_options import local_options_from_com, patch_mappings
from napari_tomoalign.alignment.options import ModelSettings, start_params
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.errors import Cancelled
from napari_tomoalign.io.imod_com import read_com_section


@functools.lru_cache(maxsize=1)
def _bba(imod_data):
    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    settings = settings_from_com(read_com_section(imod_data / "aligna.com"), tilts)
    return m, tilts, settings, align_markers(m.view, m.marker, m.xy, tilts, m.image_size, settings=settings, warn=False)


def _iterations(al):
    return sum(s.iterations for s in al.stages)


def test_warm_start_on_a_subset_reaches_the_cold_optimum(imod_data):
    m, tilts, settings, glob = _bba(imod_data)
    keep = ~np.isin(m.marker, [3, 7, 11])
    args = (m.view[keep], m.marker[keep], m.xy[keep], tilts, m.image_size)
    cold = align_markers(*args, settings=settings, warn=False)
    warm = align_markers(*args, settings=settings, start=glob, warn=False)
    assert _iterations(warm) < _iterations(cold)
    assert [s.name for s in warm.stages] == ["full"]  # every marker had a start position: no placing stage
    assert warm.rms_residual_px == pytest.approx(cold.rms_residual_px, abs=2e-6)
    assert list(warm.marker_ids) == [i for i in glob.marker_ids if i not in (3, 7, 11)]


def test_new_markers_are_placed_before_the_warm_solve(imod_data):
    m, tilts, settings, glob = _bba(imod_data)
    ids = np.where(m.marker == 5, 99, m.marker)  # marker 5 renamed: unknown to the previous solution
    al = align_markers(m.view, ids, m.xy, tilts, m.image_size, settings=settings, start=glob, warn=False)
    assert [s.name for s in al.stages] == ["full"] and al.rms_residual_px == pytest.approx(glob.rms_residual_px,
                                                                                          abs=2e-6)


def test_views_without_points_keep_their_values_and_drop_their_unknowns(imod_data):
    m, tilts, _, glob = _bba(imod_data)
    keep = ~np.isin(m.view, [0, 1, 2])
    counts = np.bincount(m.view[keep], minlength=len(tilts))
    opts = local_options_from_com(read_com_section(imod_data / "aligna.com"))
    local = ModelSettings(patch_mappings(opts, np.arange(len(tilts)), glob.tilt_angles_deg, tilts, counts), 0.0)
    marker = np.searchsorted(glob.marker_ids, m.marker[keep])
    params, xyz, resid, reports = solve_patch(m.view[keep], marker, m.xy[keep] - glob.image_centre,
                                              glob.full_params, glob.xyz_px, local, fix_xyz=True)
    assert all(r.converged for r in reports)
    np.testing.assert_array_equal(params[:3, 3:5], glob.full_params[:3, 3:5])  # shifts of empty views untouched
    np.testing.assert_array_equal(xyz, glob.xyz_px)
    assert np.isfinite(resid).all()
    included = counts > 0
    every = build_layout(local.mappings, glob.full_params, 0.0, False, np.ones(len(tilts), bool))
    lay = build_layout(local.mappings, glob.full_params, 0.0, False, included)
    assert every.n_q - lay.n_q == 2 * 3  # the empty views' shifts; their groups reach views with points
    per_view = build_layout({"rotation": per_view_mapping(len(tilts))}, glob.full_params, 0.0, False, included)
    assert per_view.n_q == 2 * 58 + 58  # an unknown that only empty views use is dropped too
    assert np.all(per_view.slot_col[:3][per_view.slot_raw[:3] >= 0] == -1)


def test_cancel_and_start_values(imod_data):
    m, tilts, settings, _ = _bba(imod_data)
    with pytest.raises(Cancelled):
        align_markers(m.view, m.marker, m.xy, tilts, m.image_size, settings=settings, should_stop=lambda: True)
    p = start_params(settings, tilts)
    assert np.degrees(p[31, 0]) == pytest.approx(tilts[31] - 0.5) and np.degrees(p[0, 1]) == pytest.approx(-12.5)


def test_sparse_schur_path_reaches_the_same_optimum(imod_data, monkeypatch):
    from napari_tomoalign.alignment import _lm

    m, tilts, settings, glob = _bba(imod_data)
    monkeypatch.setattr(_lm, "DENSE_F_BYTES", 0)  # force the marker-by-marker reduction
    al = align_markers(m.view, m.marker, m.xy, tilts, m.image_size, settings=settings, warn=False)
    assert al.rms_residual_px == pytest.approx(glob.rms_residual_px, abs=1e-7)
    np.testing.assert_allclose(al.full_params[:, :3], glob.full_params[:, :3], atol=1e-5)
