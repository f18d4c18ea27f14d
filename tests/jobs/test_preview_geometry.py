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
