"""`io.prealignment`: etomo's ``.prexg`` both ways, against a known prealignment applied to known points, IMOD's own
``.xf`` convention (`io.imod.apply_transform`) and IMOD's tutorial files."""

import numpy as np

from napari_tomoalign.alignment.options import AlignmentOptions
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.conventions import image_centre
from napari_tomoalign.io.imod import apply_transform, compose_xf, read_xf
from napari_tomoalign.io.markers import read_markers
from napari_tomoalign.io.prealignment import alignment_on_raw, raw_transforms, to_prealigned, to_raw, vectors_to_raw
from napari_tomoalign.io.tilts import read_tilt_angles

SIZE = (512, 400)


def known_prealignment(n_views: int, seed: int = 3) -> np.ndarray:
    """A rotation, a magnification and a shift per view, as etomo's cross-correlation leaves them."""
    rng = np.random.default_rng(seed)
    angle = np.radians(rng.uniform(-4, 4, n_views))
    mag = rng.uniform(0.97, 1.03, n_views)
    pre = np.zeros((n_views, 2, 3))
    pre[:, 0, 0], pre[:, 0, 1] = mag * np.cos(angle), -mag * np.sin(angle)
    pre[:, 1, 0], pre[:, 1, 1] = mag * np.sin(angle), mag * np.cos(angle)
    pre[:, :, 2] = rng.uniform(-30, 30, (n_views, 2))
    return pre


def test_a_known_prealignment_is_recovered_both_ways():
    pre = known_prealignment(7)
    rng = np.random.default_rng(5)
    view = rng.integers(0, 7, 200)
    raw = rng.uniform(0, 400, (200, 2))
    preali = np.array([apply_transform(pre[v], p[None], image_centre(SIZE))[0] for v, p in zip(view, raw)])
    np.testing.assert_allclose(to_prealigned(pre, view, raw, SIZE), preali, atol=1e-9)  # IMOD's .xf, about the centre
    np.testing.assert_allclose(to_raw(pre, view, preali, SIZE), raw, atol=1e-9)
    step = rng.normal(0, 2, (200, 2))  # a displacement carries the linear part alone
    moved = to_raw(pre, view, preali + step, SIZE) - to_raw(pre, view, preali, SIZE)
    np.testing.assert_allclose(vectors_to_raw(pre, view, step), moved, atol=1e-9)


def test_raw_transforms_are_xfproduct_and_keep_an_unsolved_views_prealignment(imod_data):
    pre, tlt = read_xf(imod_data / "BBa.prexg"), read_xf(imod_data / "BBa.tltxf")
    tlt[4] = np.nan
    got = raw_transforms(pre, tlt)
    np.testing.assert_array_equal(np.delete(got, 4, 0), np.delete(compose_xf(pre, tlt), 4, 0))
    np.testing.assert_array_equal(got[4], pre[4])


def test_an_alignment_of_etomos_model_drawn_on_the_raw_stack(imod_data):
    """BBa's model (placed on the .preali) solved, then drawn through BBa.prexg: each observation is the raw stack's
    point the .prexg takes to the click, and prediction - observation is still the residual."""
    m = read_markers(imod_data / "BBa.fid")
    al = align_markers(m.view, m.marker, m.xy, read_tilt_angles(imod_data / "BBa.rawtlt"), (512, 512),
                       AlignmentOptions(tilt_axis_deg=-12.5, estimate_tilt_axis=True), warn=False)
    pre = read_xf(imod_data / "BBa.prexg")
    raw = alignment_on_raw(al, pre)
    assert alignment_on_raw(al, None) is al
    np.testing.assert_allclose(to_prealigned(pre, raw.obs_view, raw.obs_xy_px, (512, 512)), al.obs_xy_px, atol=1e-9)
    predicted = raw.predicted_xy_px[raw.obs_view, raw.obs_marker]
    np.testing.assert_allclose(predicted - raw.obs_xy_px, raw.residuals_px, atol=1e-6)  # predicted minus observed
    assert np.abs(raw.obs_xy_px - al.obs_xy_px).max() > 5.0  # the prealignment really moves them
    np.testing.assert_allclose(np.hypot(*raw.residuals_px.T).mean(), np.hypot(*al.residuals_px.T).mean(), rtol=0.05)
    assert raw.xyz_px is al.xyz_px and raw.tilt_angles_deg is al.tilt_angles_deg  # the model itself is the .preali's
