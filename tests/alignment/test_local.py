"""Local alignments against IMOD's own tutorial run (BBa, aligna.com's local options with LocalAlignments 1):
IMOD's surface split, patch layout, per-patch fits and local mean residual."""

import dataclasses

import numpy as np
import pytest
from support.local_reference import fit_mapped

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import local_alignments, solve_patch
from napari_tomoalign.alignment.local_options import grow_patches, local_options_from_com, patch_mappings, surface_groups
from napari_tomoalign.alignment.options import ModelSettings
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.alignment.transforms import (
    aligned_frame,
    aligned_marker_positions,
    frame_from_transforms,
    imod_transforms,
    view_transforms,
)
from napari_tomoalign.errors import AlignmentError
from napari_tomoalign.io.imod import read_fid_xyz
from napari_tomoalign.io.imod_com import read_com_section
from napari_tomoalign.io.imod_model import read_imod_model
from napari_tomoalign.report import local_report


@pytest.fixture(scope="module")
def bba(imod_data):
    """Markers, raw tilts, aligna.com's entries, our global full-model fit, and IMOD's fid.xyz (IMOD pixels)."""
    table = read_imod_model(imod_data / "BBa.fid")
    raw = np.loadtxt(imod_data / "BBa.rawtlt")
    entries = read_com_section(imod_data / "aligna.com")
    sol = align_markers(table.view, table.marker, table.xy, raw, table.image_size, settings=settings_from_com(entries, raw),
                        warn=False)
    _, fid = read_fid_xyz(imod_data / "BBafid.xyz")
    fid[:, :2] += 0.5  # IMOD's pixel coordinates
    return table, raw, entries, sol, fid


def _imod_frame_xf(sol, fid):
    """The transforms of our global fit with its aligned frame placed where IMOD's fid.xyz says IMOD placed it."""
    frame = -(fid.mean(axis=0) - np.array([256.0, 256.0, 0.0]))
    return view_transforms(sol.full_params, frame)


def test_surface_split_is_imods(bba):
    *_, fid = bba
    groups = surface_groups(fid - fid.mean(axis=0))
    assert (np.sum(groups == 1), np.sum(groups == 2)) == (14, 11)  # aligna.log: 14 bottom, 11 top
    assert np.all(fid[groups == 1, 2].mean() < fid[groups == 2, 2].mean())


def test_patch_layout_is_imods(bba):
    _, _, entries, _, fid = bba
    opts = dataclasses.replace(local_options_from_com(entries), surfaces=0)
    grid, patches = grow_patches(opts, (512, 512), fid[:, :2])
    assert (grid.n, grid.start, grid.spacing, grid.min_size) == ((5, 5), (85, 85), (85, 85), (170, 170))
    assert (patches[0].centre, patches[0].size, patches[0].n_markers) == ((85, 85), (330, 330), 11)
    assert (patches[12].centre, patches[12].size, patches[12].n_markers) == ((255, 255), (210, 210), 9)
    assert all(p.n_markers >= 8 for p in patches)
    opts2 = dataclasses.replace(opts, surfaces=2)
    groups = surface_groups(fid - fid.mean(axis=0))
    _, grown = grow_patches(opts2, (512, 512), fid[:, :2], groups)
    for p in grown:  # at least 3 on each surface; some patches had to grow for it
        assert min(np.sum(groups[p.markers] == 1), np.sum(groups[p.markers] == 2)) >= 3
    assert sum(g.size[0] > p.size[0] for g, p in zip(grown, patches)) > 0


@pytest.mark.parametrize("surfaces, imod_mean", [(2, 0.289), (0, 0.284)])
def test_bba_local_mean_residual_reaches_imods(bba, surfaces, imod_mean):
    table, raw, entries, sol, fid = bba
    opts = dataclasses.replace(local_options_from_com(entries), surfaces=surfaces)
    assert opts.fix_xyz and opts.n_patches == (5, 5)
    la = local_alignments(table.view, np.searchsorted(sol.marker_ids, table.marker), table.xy, raw, sol, opts,
                          global_xf=_imod_frame_xf(sol, fid), pixel_size=20.2)
    assert len(la.patches) == 25
    assert la.mean_residual_px <= imod_mean  # IMOD's log rounds to 3 decimals
    lo, hi = la.residual_range_px
    assert round(lo, 3) == 0.259 and round(hi, 3) == 0.312  # IMOD: range 0.259 to 0.312
    first, middle = la.patches[0], la.patches[12]
    assert first.n_unknowns == 50 and first.patch.n_markers == 11
    assert first.rms_residual_px == pytest.approx(0.345506, abs=2e-5)  # IMOD's Final F for patch (1,1)
    assert middle.rms_residual_px == pytest.approx(0.339802, abs=5e-5)  # and for patch (3,3)
    lt = la.local_transforms
    assert (lt.n_patches, lt.start, lt.spacing) == ((5, 5), (85, 85), (85, 85))
    assert round(lt.tilt_increment_deg[0, 0], 2) == 0.18  # doc: local 64.55 against global 64.37
    assert "local mean" in local_report(la)[-1]


def test_dense_patch_fit_and_solve_patch_agree_with_free_markers(bba):
    table, raw, entries, sol, fid = bba
    opts = dataclasses.replace(local_options_from_com(entries), fix_xyz=False)
    inside = (np.abs(fid[:, 0] - 85) <= 165) & (np.abs(fid[:, 1] - 85) <= 165)
    sel = np.isin(table.marker, sol.marker_ids[inside])
    counts = np.bincount(table.view[sel], minlength=len(raw))
    maps = patch_mappings(opts, np.flatnonzero(counts), np.degrees(sol.full_params[:, 0]), raw, counts)
    xyz0 = sol.xyz_px[inside] - sol.xyz_px[inside].mean(axis=0)
    mi = np.searchsorted(sol.marker_ids[inside], table.marker[sel])
    dense = fit_mapped(table.view[sel], mi, table.xy[sel] - 255.5, sol.full_params, xyz0, maps, free_xyz=True)
    settings = ModelSettings(mappings=maps, rotation_angle_deg=0.0)
    *_, resid, _ = solve_patch(table.view[sel], mi, table.xy[sel] - 255.5, sol.full_params, xyz0, settings, fix_xyz=False)
    assert dense.rms_residual_px == pytest.approx(np.sqrt(np.mean(np.sum(resid**2, axis=1))), abs=1e-7)
    assert dense.rms_residual_px < 0.3455  # free markers fit better than held ones


def test_global_frame_from_a_full_fit_places_markers_near_imods(bba):
    *_, sol, fid = bba
    # aligna.com's AxisZShift 17.2 travels with the alignment
    # IMOD shifts x by a 0.1 px scan for the least image loss; y and the axis depth follow the same rules.
    assert np.allclose(aligned_marker_positions(sol)[:, 1] + 0.5, fid[:, 1], atol=0.1)
    # the .xf place the axis with the standard z coefficient, as IMOD's do; the frame fitted back from them
    # with the full model's Z factors (stretch and skew) lies within 0.02 px of it
    assert frame_from_transforms(sol.full_params, imod_transforms(sol))[2] == pytest.approx(17.2, abs=0.02)


def test_local_options_errors(tmp_path):
    with pytest.raises(AlignmentError, match="not both"):
        local_options_from_com({"NumberOfLocalPatchesXandY": ["5,5"], "TargetPatchSizeXandY": ["700,700"]})
    with pytest.raises(AlignmentError, match="two values"):
        local_options_from_com({"NumberOfLocalPatchesXandY": ["5"]})
    opts = local_options_from_com({"LocalTiltOption": ["7"]})
    with pytest.raises(AlignmentError, match="LocalTiltOption 7"):
        patch_mappings(opts, np.arange(5), np.linspace(-40, 40, 5), np.linspace(-40, 40, 5), np.full(5, 9))
    default = local_options_from_com({})
    assert default.n_patches == (5, 5) and not default.fix_xyz and default.code("rotation") == 0


def test_local_projection_reproduces_each_patch_fit(bba):
    """The transform chain of the local file: a patch's markers, at their global positions in the tomogram
    frame, projected with the patch's local geometry (`local_projection`, Z factors on) land where their
    observations land in the globally aligned stack, as closely as the patch fit predicts them."""
    from napari_tomoalign.reconstruction.local_warp import local_projection

    table, raw, entries, sol, fid = bba
    xf = _imod_frame_xf(sol, fid)
    opts = dataclasses.replace(local_options_from_com(entries), surfaces=0)
    marker = np.searchsorted(sol.marker_ids, table.marker)
    la = local_alignments(table.view, marker, table.xy, raw, sol, opts, global_xf=xf, write_z_factors=True)
    lp = local_projection(la.local_transforms, np.degrees(sol.full_params[:, 0]), (512, 512), use_z_factors=True)
    tomo = sol.xyz_px - frame_from_transforms(sol.full_params, xf)
    centred = table.xy - 255.5
    aligned = np.einsum("nij,nj->ni", xf[table.view, :, :2], centred) + xf[table.view, :, 2]
    for k in (0, 12, 24):
        res = la.patches[k]
        sel = np.isin(marker, res.patch.markers)
        h = np.column_stack([tomo[marker[sel]], np.ones(sel.sum())])
        pred = np.einsum("nij,nj->ni", lp.matrices[k, table.view[sel]], h)
        mean = np.mean(np.hypot(*(pred - aligned[sel]).T))
        # the aligned stack is scaled by 1/mag (about 0.5 %) against the raw residuals
        assert mean == pytest.approx(res.mean_residual_px, rel=0.015)


def test_free_markers_and_views_without_points(bba):
    """FixXYZCoordinates 0 (markers solved per patch) and a patch that has no point in some views: those
    views are left out of its fit, their increments interpolated."""
    table, raw, entries, sol, fid = bba
    xf = _imod_frame_xf(sol, fid)
    marker = np.searchsorted(sol.marker_ids, table.marker)
    keep = ~(np.isin(table.view, [10, 11, 12]) & (fid[marker, 0] < 300) & (fid[marker, 1] < 300))
    opts = dataclasses.replace(local_options_from_com(entries), surfaces=0, fix_xyz=False)
    args = (table.view[keep], marker[keep], table.xy[keep], raw, sol)
    dense = local_alignments(*args, opts, global_xf=xf)
    first = dense.patches[0]
    assert not np.isin([10, 11, 12], first.views_fitted).any() and len(first.views_fitted) == 58
    inc = dense.local_transforms.tilt_increment_deg[0]
    assert np.allclose(inc[10:13], np.interp([10, 11, 12], [9, 13], inc[[9, 13]]), atol=1e-9)
    assert np.allclose(dense.local_transforms.transforms[0, 10], np.eye(2, 3))
    held = local_alignments(*args, dataclasses.replace(opts, fix_xyz=True), global_xf=xf)
    assert dense.mean_residual_px < held.mean_residual_px  # free markers fit each patch better
    # each patch against the dense numpy reference fit
    for res in dense.patches[:3]:
        sel = keep & np.isin(marker, res.patch.markers)
        counts = np.bincount(table.view[sel], minlength=len(raw))
        fitted = np.flatnonzero(counts)
        maps = patch_mappings(opts, fitted, np.degrees(sol.full_params[:, 0]), raw, counts)
        xyz0 = sol.xyz_px[res.patch.markers] - sol.xyz_px[res.patch.markers].mean(axis=0)
        ref = fit_mapped(np.searchsorted(fitted, table.view[sel]), np.searchsorted(res.patch.markers, marker[sel]),
                         table.xy[sel] - 255.5, sol.full_params[fitted], xyz0, maps, free_xyz=True)
        # (the turn back into the global frame moves the residual by less than 1e-6 px)
        assert res.rms_residual_px == pytest.approx(ref.rms_residual_px, abs=1e-5)


def test_target_size_layout_follows_imods_formula(bba):
    *_, fid = bba
    opts = dataclasses.replace(local_options_from_com({}), n_patches=None, target_size_px=(200, 200))
    grid, patches = grow_patches(opts, (512, 512), fid[:, :2])
    extent = fid[:, 0].max() - fid[:, 0].min() + 10
    n = max(2, int((extent - 200) / (200 * 0.5) + 1))
    size = int(extent / (n - 0.5 * (n - 1)))
    if size > 1.05 * 200:
        n += 1
        size = int(extent / (n - 0.5 * (n - 1)))
    assert grid.n[0] == n and grid.min_size[0] == size
    assert grid.start[0] == int(fid[:, 0].min() - 5 + size // 2)
    assert len(patches) == grid.n[0] * grid.n[1]


def test_frame_of_a_default_alignment_is_the_one_its_xf_places(bba):
    table, raw, *_ = bba
    al = align_markers(table.view, table.marker, table.xy, raw, table.image_size, warn=False)
    frame = aligned_frame(al, 17.2)
    found = frame_from_transforms(al.full_params, imod_transforms(al, 17.2))  # as local_alignments finds it
    assert np.allclose(found, [frame.x0_px, frame.y0_px, frame.z0_px], atol=1e-9)


def test_full_model_transforms_reproduce_imods_tltxf(bba, imod_data):
    """The transforms the refinements are composed with: ours from our full-model fit, placed in the frame
    that IMOD's own .tltxf implies, against that .tltxf; the frame against IMOD's fid.xyz."""
    from napari_tomoalign.io.imod import read_xf

    *_, sol, fid = bba
    imod = read_xf(imod_data / "BBa.tltxf")
    frame = frame_from_transforms(sol.full_params, imod)
    assert np.allclose(frame, -(fid.mean(axis=0) - [256.0, 256.0, 0.0]), atol=0.05)
    ours = view_transforms(sol.full_params, frame)
    assert np.abs(ours[:, :, :2] - imod[:, :, :2]).max() < 1e-3  # dmag is weakly determined (doc, section 3)
    assert np.abs(ours[:, :, 2] - imod[:, :, 2]).max() < 0.15


def test_from_an_imod_alignment_end_to_end(bba, imod_data):
    """The path a command line takes: align with aligna.com (full model, as an Alignment), its .xf, then
    the local alignments; the patches are IMOD's because the aligned frame is (within 0.03 px)."""
    from napari_tomoalign.alignment.solver import align_markers_imod

    table, raw, entries, _, fid = bba
    al = align_markers_imod(table.view, table.marker, table.xy, raw, table.image_size, imod_data / "aligna.com")
    xf = imod_transforms(al, 17.2)
    marker_xy = al.xyz_px[:, :2] - frame_from_transforms(al.full_params, xf)[:2] + 256.0  # as local_alignments has it
    assert np.abs(marker_xy - fid[:, :2]).max() < 0.03
    la = local_alignments(table.view, al.obs_marker, table.xy, raw, al, local_options_from_com(entries), global_xf=xf)
    assert la.mean_residual_px <= 0.289 and la.options.surfaces == 2


def test_patches_that_all_grew_to_the_same_fiducials_are_said_to_add_nothing():
    """New user s14: 10 beads on a 4096^2 view; every patch grew past the image to reach 8 fiducials, and 25 patches
    reported the same RMS without a word."""
    from types import SimpleNamespace as NS

    def patches(rms):
        return [NS(patch=NS(ix=i, iy=0, centre=(i, 0), size=(5000, 5000), n_markers=8), n_unknowns=40,
                   rms_residual_px=r, mean_residual_px=r) for i, r in enumerate(rms)]

    same = NS(patches=patches([0.8429] * 25), residual_range_px=(0.8429, 0.8429), mean_residual_px=0.8429)
    assert "add nothing" in local_report(same)[-1]
    differ = NS(patches=patches([0.30, 0.31]), residual_range_px=(0.30, 0.31), mean_residual_px=0.305)
    assert "add nothing" not in "\n".join(local_report(differ))
