"""The signs of tomogram positioning, decided by simulation (issue 24).

A slab of gold in two layers, tilted by a known angle about y (slope in x) and about x (slope in y), is
projected through a known geometry, aligned, analysed (IMOD's surface analysis) and reconstructed:

- the printed "incremental tilt angle change" and "X axis tilt needed" have IMOD's signs for that slab
  (`positioning`'s docstring derives them from IMOD's ``tilt`` and ``tiltalign``);
- ``reconstruct --level`` and ``--x-axis-tilt <needed> --offset <change>`` pasted as an IMOD user would,
  both give a volume whose bead layers are level (planes fitted to the bead peaks: slope < 0.2 degrees)
  and centred in Z (the markers 20 px off the tilt axis; IMOD's ``SHIFT`` z is negated for `wbp`), and the
  old sign (XAXISTILT added) does not;
- a full-model alignment's ``.xtilt`` is applied as tiltalign's projection model defines it: beads projected
  with per-view X-tilts come back at their true positions in the WBP, and with the opposite sign they do not
  (the full-model WBP tests compare with a reference that shares `wbp`'s formula; this one does not); and a
  slab aligned by the full model with X-tilts solved, written and read back, reconstructs level with its
  ``.xtilt`` and sharper than with the ``.xtilt`` left out or negated.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.model import DMAG, SKEW, XTILT, default_full_params, predict_all
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.conventions import image_centre
from napari_tomoalign.io.alignment import read_alignment_dir, write_alignment
from napari_tomoalign.reconstruction.positioning import analyse_surfaces, wbp_x_tilts
from napari_tomoalign.reconstruction.reconstruct_job import ReconstructOptions
from napari_tomoalign.reconstruction.tomogram_plan import plan_tomogram
from napari_tomoalign.reconstruction.warp import aligned_stack
from napari_tomoalign.reconstruction.wbp import weighted_back_projection

SIZE, N_VIEWS, THICK = 256, 41, 56.0
AXIS_Z_SHIFT = 20.0
SLOPE_X_DEG, SLOPE_Y_DEG = 4.0, 3.0  # the slab: z rises with x by tan 4 deg (turned about y), with y by tan 3 deg


def slab(seed=3, n=36):
    """Beads on the two faces of the tilted slab, at least 22 px apart in x-y; and which are on the bottom."""
    rng = np.random.default_rng(seed)
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform(-0.36 * SIZE, 0.36 * SIZE, 2)
        if all(np.hypot(*(p - q)) > 22.0 for q in pts):
            pts.append(p)
    xy = np.array(pts)
    bottom = np.arange(n) % 2 == 0
    z = (np.where(bottom, -THICK / 2, THICK / 2) + np.tan(np.radians(SLOPE_X_DEG)) * xy[:, 0]
         + np.tan(np.radians(SLOPE_Y_DEG)) * xy[:, 1] + 6.0)
    return np.column_stack([xy, z]), bottom


def geometry(seed=3):
    """True (tilt, rotation, magnification, dx, dy) per view; the reference (0 deg) view's tilt exact."""
    rng = np.random.default_rng(seed)
    nominal = np.linspace(-60.0, 60.0, N_VIEWS)
    vp = np.zeros((N_VIEWS, 5))
    tilt = nominal + rng.normal(0.0, 0.2, N_VIEWS)
    tilt[N_VIEWS // 2] = 0.0
    vp[:, 0] = np.radians(tilt)
    vp[:, 1] = np.radians(86.0 + np.linspace(-0.3, 0.3, N_VIEWS))
    vp[:, 2] = 1.0 + rng.normal(0.0, 0.003, N_VIEWS)
    vp[N_VIEWS // 2, 2] = 1.0
    vp[:, 3:] = rng.normal(0.0, 4.0, (N_VIEWS, 2))
    return nominal, vp


def render(xy_views, sigma=1.3):
    """``(n_views, SIZE, SIZE)`` bright Gaussian beads at ``(n_views, n_beads, 2)`` image positions."""
    g = np.arange(SIZE, dtype=float)
    out = np.zeros((len(xy_views), SIZE, SIZE), np.float32)
    for j, xy in enumerate(xy_views):
        gx = np.exp(-0.5 * ((g[None, :] - xy[:, :1]) / sigma) ** 2)  # (n, SIZE)
        gy = np.exp(-0.5 * ((g[None, :] - xy[:, 1:]) / sigma) ** 2)
        out[j] = np.einsum("ny,nx->yx", gy, gx)
    return out


def bead_peaks(vol, xy_px):
    """The 3-D peak (x, y, z from the volume's centre) of the bead nearest each ``(x, y)`` (from the centre):
    the maximum of the smoothed volume within 7 px in x-y, refined by a centroid over 5 x 5 x 5."""
    sm = ndimage.gaussian_filter(vol.astype(np.float64), 1.0)
    n_z, n_y, n_x = sm.shape
    c = np.array([(n_x - 1) / 2, (n_y - 1) / 2, (n_z - 1) / 2])
    out = []
    for x, y in xy_px:
        ix, iy = int(round(x + c[0])), int(round(y + c[1]))
        box = sm[:, iy - 7:iy + 8, ix - 7:ix + 8]
        k, j, i = np.unravel_index(int(np.argmax(box)), box.shape)
        k, j, i = k, j + iy - 7, i + ix - 7
        sub = np.clip(sm[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3] - sm[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3].min(), 0, None)
        zz, yy, xx = np.meshgrid(np.arange(k - 2, k + 3), np.arange(j - 2, j + 3), np.arange(i - 2, i + 3), indexing="ij")
        w = sub.sum()
        out.append([(xx * sub).sum() / w - c[0], (yy * sub).sum() / w - c[1], (zz * sub).sum() / w - c[2]])
    return np.array(out)


def layer_planes(peaks, bottom):
    """Per layer, the slopes in x and in y (degrees) of the plane fitted to its bead peaks, and its height at
    the volume's centre (px)."""
    planes = []
    for layer in (bottom, ~bottom):
        p = peaks[layer]
        (a, b, c), *_ = np.linalg.lstsq(np.column_stack([p[:, 0], p[:, 1], np.ones(len(p))]), p[:, 2], rcond=None)
        planes.append([*np.degrees(np.arctan([a, b])), c])
    return np.array(planes)


def assert_level_and_centred(peaks, bottom):
    planes = layer_planes(peaks, bottom)
    assert np.all(np.abs(planes[:, :2]) < 0.2), planes
    assert abs(planes[:, 2].mean()) < 1.5 and planes[1, 2] - planes[0, 2] == pytest.approx(THICK, abs=2.0), planes


@pytest.fixture(scope="module")
def aligned_slab(tmp_path_factory):
    """The slab projected, its markers aligned by the default model, the alignment written and read back."""
    xyz, bottom = slab()
    nominal, vp = geometry()
    rng = np.random.default_rng(5)
    true_xy = predict_all(vp, xyz) + image_centre((SIZE, SIZE))
    views, markers = np.meshgrid(np.arange(N_VIEWS), np.arange(len(xyz)), indexing="ij")
    obs = true_xy.reshape(-1, 2) + rng.normal(0.0, 0.2, (views.size, 2))
    al = align_markers(views.ravel(), markers.ravel(), obs, nominal, (SIZE, SIZE), warn=False)
    d = tmp_path_factory.mktemp("slab24")
    write_alignment(al, d, "slab", axis_z_shift_px=AXIS_Z_SHIFT)  # the markers' centre 20 px off the tilt axis
    raw = render(true_xy)
    return al, read_alignment_dir(d), d, raw, bottom


def test_the_surface_analysis_prints_imods_signs_for_a_known_slab(aligned_slab):
    """z rising with x by tan 4 deg: "incremental tilt angle change" about -4 (IMOD adds it to the tilts, and
    tilt angle + d makes the volume's z = 0 the plane of slope -tan d); z rising with y by tan 3 deg: "X axis
    tilt needed" about -3 (IMOD's tilt uses xtilt - XAXISTILT, and X-tilt phi levels the slope tan phi)."""
    al, _, _, _, bottom = aligned_slab
    a = analyse_surfaces(al.xyz_px, 2)
    assert np.array_equal(np.array(a.bottom_of), bottom)
    assert a.tilt_angle_change_deg == pytest.approx(-SLOPE_X_DEG, abs=0.25)
    assert a.x_axis_tilt_needed_deg == pytest.approx(-SLOPE_Y_DEG, abs=0.25)
    for fit in (a.bottom, a.top):
        assert fit.x_axis_tilt_needed_deg == pytest.approx(-SLOPE_Y_DEG, abs=0.4)


def reconstruct(saved, raw, plan):
    ali = aligned_stack(raw, saved.transforms)
    return weighted_back_projection(ali[plan.views], plan.tilts + plan.offset_deg, thickness=plan.thickness,
                                    x_tilt_deg=plan.x_tilt, z_factors=plan.z_factors, shift_px=plan.shift_px)


def test_level_and_imods_pasted_values_give_level_layers_and_the_old_sign_does_not(aligned_slab):
    al, saved, d, raw, bottom = aligned_slab
    levelled = plan_tomogram(saved, d, thickness=None, options=ReconstructOptions(level=2))
    a = levelled.surfaces
    assert levelled.levelled.x_axis_tilt_deg == pytest.approx(a.x_axis_tilt_needed_deg)  # reported as XAXISTILT
    xy = np.loadtxt(d / "slabfid.xyz", usecols=(1, 2))[:, :2] - image_centre((SIZE, SIZE))  # aligned x-y of each bead
    assert abs(levelled.levelled.z_shift_px) == pytest.approx(AXIS_Z_SHIFT, abs=1.0)
    assert_level_and_centred(bead_peaks(reconstruct(saved, raw, levelled), xy), bottom)
    # what an IMOD user pastes (two decimals): --x-axis-tilt <needed> --offset <change> --shift 0 <SHIFT z>
    pasted = ReconstructOptions(x_axis_tilt_deg=round(a.x_axis_tilt_needed_deg, 2),
                                offset_deg=round(a.tilt_angle_change_deg, 2),
                                shift_px=(0.0, round(levelled.levelled.z_shift_px, 1)))
    plan = plan_tomogram(saved, d, thickness=levelled.thickness, options=pasted)
    np.testing.assert_allclose(plan.x_tilt, levelled.x_tilt, atol=0.006)
    assert_level_and_centred(bead_peaks(reconstruct(saved, raw, plan), xy), bottom)
    # the sign this replaced (XAXISTILT added to the X-tilts) doubles the slope in y instead
    wrong = plan_tomogram(saved, d, thickness=levelled.thickness,
                          options=ReconstructOptions(x_axis_tilt_deg=-a.x_axis_tilt_needed_deg,
                                                     offset_deg=a.tilt_angle_change_deg,
                                                     shift_px=(0.0, levelled.levelled.z_shift_px)))
    assert np.all(np.abs(layer_planes(bead_peaks(reconstruct(saved, raw, wrong), xy), bottom)[:, 1]) > 4.0)


def test_an_xtilt_is_applied_as_tiltaligns_model_defines_it():
    """Beads projected by the full model (`alignment.model`, tiltalign's ``Y(t) Xr(phi)``) with a per-view X-tilt
    of about 2 deg come back at their true 3-D positions when the WBP is given the ``.xtilt`` values as they
    are (`wbp_x_tilts` with no XAXISTILT); given the opposite sign, they do not."""
    xyz, _ = slab(seed=4)
    xyz -= xyz.mean(axis=0)
    tilts = np.linspace(-60.0, 60.0, N_VIEWS)
    vp = np.zeros((N_VIEWS, 5))
    vp[:, 0], vp[:, 2] = np.radians(tilts), 1.0
    params = default_full_params(vp)
    phi = 2.07 + 0.8 * np.linspace(-1.0, 1.0, N_VIEWS)  # BBa-like: aligna.com's 2.07 on average, linear in view
    params[:, XTILT] = np.radians(phi)
    views = render(predict_all(params, xyz) + image_centre((SIZE, SIZE)))  # already aligned: no rotation
    for x_tilt, good in ((wbp_x_tilts(phi, 0.0), True), (wbp_x_tilts(-phi, 0.0), False)):
        vol = weighted_back_projection(views, tilts, thickness=128, x_tilt_deg=x_tilt)
        err = np.abs(bead_peaks(vol, xyz[:, :2]) - xyz)
        if good:
            assert err.max() < 0.6, err.max(axis=0)
        else:
            assert np.median(err[:, 2]) > 3.0


def peak_heights(vol, peaks):
    c = (np.array(vol.shape[::-1]) - 1) / 2
    i = np.round(peaks + c).astype(int)
    return vol[i[:, 2], i[:, 1], i[:, 0]]


def test_a_full_model_alignment_with_x_tilts_reconstructs_level_and_sharpest_with_its_xtilt(tmp_path):
    """The slab seen with an X-tilt drifting from -3 to +3 deg over the series (0 at the 0-deg view), aligned by
    tiltalign's model with every view's X-tilt free (``XTiltOption 1``, one rotation): ``--level`` with the
    written ``.xtilt`` gives level layers, and the beads are sharper than with the ``.xtilt`` left out or
    negated. (The X-tilts solved from 0.2 px of noise are within about 0.7 deg of the truth, so the layers are
    level to 0.5 deg here rather than 0.2.)"""
    xyz, bottom = slab()
    nominal, vp = geometry()
    vp[:, 1] = np.radians(86.0)
    params = default_full_params(vp)
    phi = 0.15 * (np.arange(N_VIEWS) - N_VIEWS // 2)
    params[:, XTILT] = np.radians(phi)
    true_xy = predict_all(params, xyz) + image_centre((SIZE, SIZE))
    views, markers = np.meshgrid(np.arange(N_VIEWS), np.arange(len(xyz)), indexing="ij")
    obs = true_xy.reshape(-1, 2) + np.random.default_rng(5).normal(0.0, 0.2, (views.size, 2))
    entries = {"RotationAngle": ["86"], "RotOption": ["-1"], "TiltOption": ["2"], "MagOption": ["1"],
               "MagReferenceView": [str(N_VIEWS // 2 + 1)], "XTiltOption": ["1"], "SurfacesToAnalyze": ["2"]}
    al = align_markers(views.ravel(), markers.ravel(), obs, nominal, (SIZE, SIZE),
                       settings=settings_from_com(entries, nominal), warn=False)
    assert "slab.xtilt" in [p.name for p in write_alignment(al, tmp_path, "slab", axis_z_shift_px=AXIS_Z_SHIFT)]
    saved = read_alignment_dir(tmp_path)
    assert np.abs(saved.x_tilts_deg - phi).max() < 0.8 and abs(saved.x_tilts_deg[-1] - saved.x_tilts_deg[0]) > 5.0
    plan = plan_tomogram(saved, tmp_path, thickness=None, options=ReconstructOptions(level=2))
    assert plan.levelled.x_axis_tilt_deg == pytest.approx(-SLOPE_Y_DEG, abs=0.3)
    xy = np.loadtxt(tmp_path / "slabfid.xyz", usecols=(1, 2)) - image_centre((SIZE, SIZE))
    raw = render(true_xy)
    vol = reconstruct(saved, raw, plan)
    peaks = bead_peaks(vol, xy)
    assert np.all(np.abs(layer_planes(peaks, bottom)[:, :2]) < 0.5), layer_planes(peaks, bottom)
    height = np.median(peak_heights(vol, peaks))
    own = np.asarray(saved.x_tilts_deg)[plan.views]
    for other in (plan.x_tilt - own, plan.x_tilt - 2 * own):  # the .xtilt left out; negated
        vol = reconstruct(saved, raw, replace(plan, x_tilt=other))
        assert height > 1.25 * np.median(peak_heights(vol, bead_peaks(vol, xy)))


def test_a_full_model_alignments_zfac_is_applied_with_imods_sign(tmp_path):
    """The slab (twice as thick) seen with an X-stretch of -2..+2 % and a skew of -1.5..+1.5 deg over the series,
    aligned by the full model (``XStretchOption 1``, ``SkewOption 1``): the written ``.zfac`` is applied as it is
    (tilt.f negates IMOD's Z factors together with its z), and the beads are sharper with it than without it
    or with it negated."""
    xyz, bottom = slab()
    xyz[:, 2] *= 2.0
    nominal, vp = geometry()
    vp[:, 1] = np.radians(86.0)
    params = default_full_params(vp)
    s = np.linspace(-1.0, 1.0, N_VIEWS)
    params[:, DMAG], params[:, SKEW] = 0.02 * s, np.radians(1.5 * s)
    true_xy = predict_all(params, xyz) + image_centre((SIZE, SIZE))
    views, markers = np.meshgrid(np.arange(N_VIEWS), np.arange(len(xyz)), indexing="ij")
    obs = true_xy.reshape(-1, 2) + np.random.default_rng(5).normal(0.0, 0.1, (views.size, 2))
    entries = {"RotationAngle": ["86"], "RotOption": ["-1"], "TiltOption": ["2"], "MagOption": ["1"],
               "MagReferenceView": [str(N_VIEWS // 2 + 1)], "XStretchOption": ["1"], "SkewOption": ["1"]}
    al = align_markers(views.ravel(), markers.ravel(), obs, nominal, (SIZE, SIZE),
                       settings=settings_from_com(entries, nominal), warn=False)
    write_alignment(al, tmp_path, "slab", axis_z_shift_px=AXIS_Z_SHIFT)
    saved = read_alignment_dir(tmp_path)
    plan = plan_tomogram(saved, tmp_path, thickness=None, options=ReconstructOptions(level=2))
    assert np.abs(plan.z_factors).max() > 0.03
    xy = np.loadtxt(tmp_path / "slabfid.xyz", usecols=(1, 2)) - image_centre((SIZE, SIZE))
    raw = render(true_xy)
    heights = []
    for z_factors in (plan.z_factors, None, -plan.z_factors):
        vol = reconstruct(saved, raw, replace(plan, z_factors=z_factors))
        heights.append(np.median(peak_heights(vol, bead_peaks(vol, xy))))
    assert heights[0] > 1.15 * max(heights[1:]), heights
