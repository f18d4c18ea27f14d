"""Property tests: any solver input either solves to finite numbers or raises a documented error."""

import os
import warnings

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from napari_tomoalign import AlignmentError, AlignmentOptions, align_markers
from napari_tomoalign.alignment.model import predict_all

SETTINGS = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "800")), deadline=None,
                    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    n_views = draw(st.one_of(st.integers(1, 3), st.integers(4, 24), st.integers(4, 24)))
    n_markers = draw(st.one_of(st.integers(1, 2), st.integers(3, 16), st.integers(3, 16)))
    geometry = draw(st.sampled_from(["random", "random", "random", "plane", "one point", "line"]))
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0, 1e5]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if draw(st.integers(0, 5)) == 0:
        tilts = np.full(n_views, draw(st.floats(-60, 60)))  # a single tilt, repeated
    else:
        tilts = np.linspace(-60.0, 60.0, n_views) + rng.normal(0, 1, n_views)
    xyz = rng.uniform(-1, 1, (n_markers, 3)) * scale
    if geometry == "plane":
        xyz[:, 2] = 0.0
    elif geometry == "one point":
        xyz[:] = xyz[0]
    elif geometry == "line":
        xyz[:, 1:] = 0.0
    vp = np.zeros((n_views, 5))
    vp[:, 0] = np.radians(tilts)
    vp[:, 1] = np.radians(draw(st.floats(-180, 180)))
    vp[:, 2] = 1.0
    xy = predict_all(vp, xyz) + rng.normal(0, 0.3, (n_views, n_markers, 2)) * min(scale, 1.0)
    visible = rng.random((n_views, n_markers)) < draw(st.one_of(st.floats(0.05, 1.0), st.just(1.0), st.floats(0.6, 1.0)))
    if draw(st.integers(0, 4)) == 0 and n_markers > 1:
        visible[:, 1:] &= rng.random((n_views, n_markers - 1)) < 0.3  # views with about one marker
    vi, mi = np.nonzero(visible)
    view, marker, pts = vi, mi + 1, xy[vi, mi] + scale
    if draw(st.integers(0, 6)) == 0 and len(view):
        k = rng.integers(0, len(view))
        view, marker, pts = np.append(view, view[k]), np.append(marker, marker[k]), np.vstack([pts, pts[k]])
    size = (int(max(2, 4 * scale)), int(max(2, 4 * scale)))
    options = AlignmentOptions(
        rotation=draw(st.sampled_from(["view", "one", "fixed", "group:3"])),
        tilt=draw(st.sampled_from(["view", "one", "fixed", "group:2"])),
        magnification=draw(st.sampled_from(["view", "one", "fixed"])),
        tilt_axis_deg=float(np.degrees(vp[0, 1])), estimate_tilt_axis=draw(st.booleans()),
        robust=draw(st.booleans()), max_iterations=50,
    )
    return view, marker, pts, tilts, size, options


@SETTINGS
@given(problems())
def test_solver_never_crashes_and_never_returns_nan(problem):
    view, marker, pts, tilts, size, options = problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            al = align_markers(view, marker, pts, tilts, size, options)
    except AlignmentError as exc:
        assert str(exc) and "\n" not in str(exc)
        event(f"refused: {str(exc).split(';')[0][:40]}")
        return
    event("solved")
    used = al.obs_used
    assert used.any()
    assert np.isfinite(al.rms_residual_px)
    assert np.all(np.isfinite(al.residuals_px[used]))
    ok_views, ok_markers = al.view_determined, al.marker_included
    assert np.all(np.isfinite(al.predicted_xy_px[np.ix_(ok_views, ok_markers)]))
    assert np.all(np.isfinite(al.tilt_angles_deg[ok_views]))
    assert np.all(np.isnan(al.tilt_angles_deg[~ok_views]))
