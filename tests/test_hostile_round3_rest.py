"""Hostile input round 3, the classes the first round left: bad images, tilts and option types through the
Python API (one clear error naming the view or the parameter, never a silent wrong result)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tomoalign import track_beads
from napari_tomoalign.reconstruction.warp import aligned_stack
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


def _stack(n_views: int = 5, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(100, 5, (n_views, size, size)).astype(np.float32), np.linspace(-60, 60, n_views)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixel_names_the_view(bad):
    stack, tilts = _stack()
    stack[3, 7, 9] = bad
    with pytest.raises(ValueError, match="view 4 of the aligned stack holds NaN or infinite"):
        weighted_back_projection(stack, tilts, thickness=8)
    use = np.ones(5, bool)
    use[3] = False
    assert np.all(np.isfinite(weighted_back_projection(stack, tilts, thickness=8, use_view=use)))
    xf = np.tile(np.array([[1.0, 0, 0], [0, 1, 0]]), (5, 1, 1))
    with pytest.raises(ValueError, match="view 4 of the stack holds NaN or infinite"):
        aligned_stack(stack, xf)
    xf[3] = np.nan  # a view undetermined by the fit is filled with its mean: still refused
    with pytest.raises(ValueError, match="view 4 of the stack"):
        aligned_stack(stack, xf)
    with pytest.raises(ValueError, match="view 4 of the tilt series holds NaN or infinite"):
        track_beads(stack, tilts, 4.0)


def test_float64_beyond_float32_is_refused():
    stack, tilts = _stack()
    big = stack.astype(np.float64)
    big[1, 0, 0] = 1e308  # finite, but infinite once the view is filtered in float32
    with pytest.raises(ValueError, match="view 2 of the aligned stack holds NaN or infinite pixels"):
        weighted_back_projection(big, tilts, thickness=8)


@pytest.mark.parametrize("tilt", [90.0, -90.0, 95.0, -120.0])
def test_wbp_refuses_tilts_at_or_beyond_90(tilt):
    stack, tilts = _stack()
    tilts[2] = tilt
    with pytest.raises(ValueError, match=f"view 3 has a tilt of {tilt:g} deg; .* strictly between -90 and 90"):
        weighted_back_projection(stack, tilts, thickness=8)
    use = np.array([1, 1, 0, 1, 1], bool)  # left out: no longer a problem
    assert np.all(np.isfinite(weighted_back_projection(stack, tilts, thickness=8, use_view=use)))
