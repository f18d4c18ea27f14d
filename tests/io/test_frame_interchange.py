"""The formats that record the tomogram's size (RELION's ``rlnTomoSizeX/Y``, the portal's ``volume_dimension``)
record the aligned frame (`reconstruction.frame`: transposed for a non-square image turned nearer 90 degrees than
0, as ``reconstruct`` makes the tomogram), and read back with the image size they were written from."""

import json

import numpy as np
import pytest
import starfile

from napari_tomoalign.io.alignment import SavedAlignment
from napari_tomoalign.io.convert import transforms_from
from napari_tomoalign.io.cryoet_portal import read_portal_alignment, write_portal_alignment
from napari_tomoalign.io.relion import read_relion, write_relion
from napari_tomoalign.reconstruction.frame import frame_size_of, raw_size_for_volume


def _saved(size, axis_deg, n=21, seed=0):
    rng = np.random.default_rng(seed)
    xf = transforms_from(axis_deg + rng.normal(0, 0.3, n), np.ones(n), rng.normal(0, 30, (n, 2)))
    return SavedAlignment(xf, np.linspace(-60, 60, n), np.ones(n, bool), size, 0.0837)


@pytest.mark.parametrize(("size", "axis", "volume"), [
    ((5760, 4092), 85.3, (4092, 5760)), ((5760, 4092), -94.0, (4092, 5760)), ((5760, 4092), 12.0, (5760, 4092)),
    ((4096, 4096), 85.3, (4096, 4096)),
])
def test_relion_records_the_aligned_frame_and_reads_back_the_image_size(tmp_path, size, axis, volume):
    saved = _saved(size, axis)
    assert frame_size_of(saved).size == volume
    write_relion(saved, tmp_path, "k3", thickness_px=1200)
    row = starfile.read(tmp_path / "tomograms.star")
    assert (int(row["rlnTomoSizeX"].iloc[0]), int(row["rlnTomoSizeY"].iloc[0])) == volume
    back = read_relion(tmp_path / "tomograms.star")
    assert back.image_size == size
    np.testing.assert_allclose(back.transforms, saved.transforms, atol=1e-3)
    given = read_relion(tmp_path / "tomograms.star", image_size=size)  # with the stack: the same
    np.testing.assert_allclose(given.transforms, back.transforms, atol=1e-9)


@pytest.mark.parametrize(("size", "axis", "volume"), [
    ((5760, 4092), 85.3, (4092, 5760)), ((5760, 4092), 3.0, (5760, 4092)),
])
def test_the_portal_records_the_aligned_frame_and_reads_back_the_image_size(tmp_path, size, axis, volume):
    saved = _saved(size, axis)
    write_portal_alignment(saved, tmp_path / "a.json", thickness_px=1200)
    dims = json.loads((tmp_path / "a.json").read_text())["volume_dimension"]
    assert (dims["x"], dims["y"]) == pytest.approx((volume[0] * 0.837, volume[1] * 0.837))
    back = read_portal_alignment(tmp_path / "a.json", pixel_size_nm=0.0837)
    assert back.image_size == size
    np.testing.assert_allclose(back.transforms, saved.transforms, atol=1e-9)


def test_a_volume_is_transposed_back_only_when_the_rule_would_have_transposed_it():
    assert raw_size_for_volume((4092, 5760), 85.0) == (5760, 4092)
    assert raw_size_for_volume((4092, 5760), -3.0) == (4092, 5760)
    assert raw_size_for_volume((4096, 4096), 85.0) == (4096, 4096)
    assert raw_size_for_volume((4092, 5760), float("nan")) == (4092, 5760)
