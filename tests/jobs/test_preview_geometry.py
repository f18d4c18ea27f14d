"""The dock's preview tomogram honours IMOD's full model as `reconstruct` does: X-axis tilts and Z factors."""

import numpy as np

from napari_tomoalign import align_markers, align_markers_imod, read_markers, read_tilt_angles
from napari_tomoalign.alignment.transforms import x_tilts_deg
from napari_tomoalign.jobs.preview import full_model_geometry


def test_an_align_com_alignment_gives_the_preview_its_x_tilt_and_z_factors(imod_data):
    table = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    full = align_markers_imod(table.view, table.marker, table.xy, tilts, table.image_size, imod_data / "aligna.com")
    xt, zf = full_model_geometry(full)
    assert xt is None and np.allclose(np.nan_to_num(x_tilts_deg(full)), 0.0)  # aligna.com solves no X-tilt
    assert zf is not None and zf.shape == (len(tilts), 2) and np.all(np.isfinite(zf)) and np.abs(zf).max() > 1e-3
    plain = align_markers(table.view, table.marker, table.xy, tilts, table.image_size)
    assert full_model_geometry(plain) == (None, None)  # the default model keeps the plain kernel


def test_the_preview_of_a_non_square_series_at_84_degrees_is_transposed_and_its_markers_land_on_the_beads():
    """The dock's aligned stack takes the job layer's frame (`reconstruction.frame`), and the dock's aligned markers
    (`_napari.dock.logic.aligned_points`, GUI-free) are placed in it: on the beads of the aligned views."""
    from napari_tomoalign import simulate_markers
    from napari_tomoalign._napari.dock.logic import aligned_points
    from napari_tomoalign.workflows import run_alignment

    sim = simulate_markers(n_views=21, n_markers=12, image_size=(160, 96), thickness_px=20, noise_px=0.05,
                           tilt_axis_deg=84.0, shift_px=3.0, seed=4)
    images = np.zeros((21, 96, 160), np.float32)
    yy, xx = np.mgrid[0:96, 0:160]
    for v, (x, y) in zip(sim.view, sim.xy):
        images[v] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    res = run_alignment(images, sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, (160, 96),
                        tomogram_thickness_px=20, tomogram_binning=2)
    assert res.frame.transposed and res.aligned.shape == (21, 160, 96) and res.tomogram.shape == (10, 80, 48)
    data = np.column_stack([sim.view, sim.xy[:, 1], sim.xy[:, 0]]).astype(float)

    def on_beads(frame):
        points, _ = aligned_points(res.alignment, res.transforms, data, sim.marker, frame)
        v, r, c = np.rint(points).astype(int).T
        ok = (r >= 0) & (r < 160) & (c >= 0) & (c < 96)
        return ok.mean(), res.aligned[v[ok], r[ok], c[ok]].mean()

    inside, value = on_beads(res.frame)
    assert inside > 0.8 and value > 0.85  # a bead's peak is 1
    inside, value = on_beads(None)  # placed about the raw frame's centre (the dock before): off the beads
    assert value < 0.3


def test_a_big_aligned_stack_is_made_view_by_view_and_the_tomogram_from_views_warped_binned(monkeypatch):
    """New user's finding (session 13): the dock's Align made a 4096^2 x 41 aligned stack in memory (2.75 GB) for a
    hidden layer, and the dock process reached 7.5 GB. Past `LAZY_BYTES` (made tiny here) the layer's data warps the
    view asked for; it equals the whole aligned stack view for view, and the preview tomogram from views warped
    binned agrees with the one from the whole stack binned."""
    from napari_tomoalign import simulate_markers
    from napari_tomoalign.reconstruction import aligned_views
    from napari_tomoalign.reconstruction.aligned_views import AlignedViews
    from napari_tomoalign.reconstruction.compare import normalised_cross_correlation
    from napari_tomoalign.reconstruction.warp import aligned_stack
    from napari_tomoalign.workflows import run_alignment

    sim = simulate_markers(n_views=21, n_markers=12, image_size=(128, 96), thickness_px=20, noise_px=0.05,
                           tilt_axis_deg=-12.0, shift_px=3.0, seed=5)
    from scipy import ndimage

    images = ndimage.gaussian_filter(np.random.default_rng(2).normal(size=(21, 96, 128)), (0, 2, 2)).astype(np.float32)
    yy, xx = np.mgrid[0:96, 0:128]
    for v, (x, y) in zip(sim.view, sim.xy):
        images[v] += 4 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))

    def run():
        return run_alignment(images, sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, (128, 96),
                             tomogram_thickness_px=24, tomogram_binning=2)

    whole = run()
    monkeypatch.setattr(aligned_views, "LAZY_BYTES", 1000)
    lazy = run()
    assert isinstance(lazy.aligned, AlignedViews) and not isinstance(whole.aligned, AlignedViews)
    assert lazy.aligned.shape == whole.aligned.shape and lazy.aligned.dtype == np.float32
    np.testing.assert_array_equal(lazy.aligned[7], whole.aligned[7])
    np.testing.assert_array_equal(lazy.aligned[-1, 10:20, ::3], whole.aligned[-1, 10:20, ::3])
    np.testing.assert_array_equal(lazy.aligned[2:5], whole.aligned[2:5])
    np.testing.assert_array_equal(np.asarray(lazy.aligned), aligned_stack(images, lazy.transforms,
                                                                          out_shape=whole.aligned.shape[1:]))
    assert lazy.tomogram.shape == whole.tomogram.shape
    assert normalised_cross_correlation(lazy.tomogram, whole.tomogram) > 0.98
