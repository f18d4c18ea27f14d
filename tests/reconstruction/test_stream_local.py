"""A tomogram with local alignments streamed in slabs of rows (`stream.reconstruct_streamed` with ``local``), against
the one made whole in memory (`wbp.weighted_back_projection` with ``local``): BBa's local file at bin 2."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
from support.bba_local import bba_local_projection

from napari_tomoalign.reconstruction.local_warp import LocalProjection
from napari_tomoalign.reconstruction.stream import AlignedRows, reconstruct_streamed
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


@pytest.fixture(scope="module")
def bba_half(imod_data):
    """BBa's local file for 256 x 256 views (the 512 x 512 one binned by 2), its tilts, and band-limited noise."""
    lp, tilts = bba_local_projection(imod_data)
    m = lp.matrices.copy()
    m[..., 3] /= 2.0
    half = LocalProjection(m, lp.n_patches, (lp.start_px[0] / 2, lp.start_px[1] / 2),
                           (lp.spacing_px[0] / 2, lp.spacing_px[1] / 2))
    rng = np.random.default_rng(8)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.rfftfreq(256), indexing="ij"))
    views = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(61, 256, 256))) * (f < 0.3)).astype(np.float32)
    return half, tilts, views


@pytest.mark.parametrize("slab, shift", [(64, (0.0, 0.0)), (128, (6.0, -10.0)), (None, (0.0, 0.0))])
def test_the_streamed_local_tomogram_is_the_one_made_in_memory(bba_half, tmp_path, slab, shift):
    lp, tilts, views = bba_half
    keep = np.arange(61) != 30  # one view left out
    whole = weighted_back_projection(views, tilts, thickness=48, local=lp, lowpass_cutoff=0.35, use_view=keep,
                                     shift_px=shift)
    out = tmp_path / "local.rec"
    use = np.flatnonzero(keep)
    memory = None if slab else 285 * 2**20  # room for a block or two of rows a slab: picked, whole blocks of 64
    res = reconstruct_streamed(AlignedRows(views, use), tilts[use], out, thickness=48, radial=(0.35, 0.05), slab=slab,
                               shift_px=shift, local=lp.subset(use), memory_bytes=memory)
    assert res.kernel.kernel == "one-row" and res.kernel.model == "local alignments"
    assert res.slab_rows % 64 == 0 and res.slab_rows < 256
    with mrcfile.open(out, permissive=True) as m:
        got = m.data.astype(np.float64)
    assert got.shape == whole.shape == (48, 256, 256)
    # the same but for rounding: rows counted from each slab's first held row (`local_slab`)
    assert np.sqrt(np.mean((got - whole) ** 2)) <= 2e-4 * whole.std()
    assert np.abs(got - whole).max() <= 5e-3 * np.abs(whole).max()
