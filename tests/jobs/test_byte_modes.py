"""Byte stacks (MRC mode 0, unsigned as IMOD writes them, or signed) keep their mode: the aligned stack as
``newstack`` keeps it (``aligned-stack`` and the dock's save), the tomogram as IMOD's ``tilt`` writes the input's
mode unless ``MODE`` is given (new user s13: "a byte stack gives a uint16 .ali and an int16 tomogram")."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.alignment import read_alignment_dir
from napari_tomoalign.io.modes import tomogram_mode
from napari_tomoalign.io.mrc import open_tilt_series, unsigned_bytes, write_mrc
from napari_tomoalign.reconstruction.warp import aligned_stack


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bytes")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    return d


def _byte_stack(demo_dir, tmp_path, dtype):
    with mrcfile.open(demo_dir / "sample.mrc") as m:
        raw, voxel = m.data.astype(np.float32), float(m.voxel_size.x)
    lo, hi = np.percentile(raw, [0.1, 99.9])
    info = np.iinfo(dtype)
    data = np.clip(np.rint(info.min + (raw - lo) / (hi - lo) * 255), info.min, info.max).astype(dtype)
    path = tmp_path / f"{np.dtype(dtype).name}.st"
    write_mrc(path, data, voxel)
    return path, data


def test_the_tomogram_mode_follows_the_input_as_tilt_does():
    assert tomogram_mode(np.uint8) == "uint8" and tomogram_mode(np.int8) == "int8"
    assert tomogram_mode(np.uint16) == "int16" and tomogram_mode(np.dtype(">i2")) == "int16"
    assert tomogram_mode(np.float32) == "float32" and tomogram_mode(np.float16) == "float32"
    assert tomogram_mode(np.uint8, "float32") == "float32"


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_a_byte_stack_gives_a_byte_ali_and_tomogram(demo_dir, tmp_path, dtype):
    stack, data = _byte_stack(demo_dir, tmp_path, dtype)
    ali, rec = tmp_path / "b.ali", tmp_path / "b.rec"
    assert main(["aligned-stack", str(stack), "--alignment", str(demo_dir), "--output", str(ali), "--quiet"]) == 0
    saved = read_alignment_dir(demo_dir)
    info = np.iinfo(dtype)
    want = np.clip(np.rint(aligned_stack(data.astype(np.float32), saved.transforms)), info.min, info.max)
    with mrcfile.open(ali, header_only=True) as m:
        assert int(m.header.mode) == 0 and unsigned_bytes(m.header) == (dtype == np.uint8)
    got = np.asarray(open_tilt_series(ali, find_tilts=False).data)
    assert got.dtype == dtype and np.abs(got.astype(np.int16) - want).max() <= 1  # the warp's float32 rounding

    assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(rec), "--bin", "4",
                 "--thickness", "96", "--quiet"]) == 0
    as_float = tmp_path / "f.rec"
    assert main(["reconstruct", str(stack), "--alignment", str(demo_dir), "--output", str(as_float), "--bin", "4",
                 "--thickness", "96", "--mode", "float32", "--quiet"]) == 0
    with mrcfile.open(rec, header_only=True) as m:
        assert int(m.header.mode) == 0 and unsigned_bytes(m.header) == (dtype == np.uint8)
    vol = np.asarray(open_tilt_series(rec, find_tilts=False).data)
    with mrcfile.open(as_float) as m:
        ref = m.data.copy()
    assert vol.dtype == dtype and len(np.unique(vol)) > 64  # IMOD's SCALE chosen for the byte range
    inside = (vol > np.iinfo(dtype).min) & (vol < np.iinfo(dtype).max)  # gold beyond the range is clipped
    assert inside.mean() > 0.99 and np.corrcoef(vol[inside].astype(float), ref[inside])[0, 1] > 0.999


def test_the_dock_saves_an_aligned_stack_in_its_source_mode(tmp_path):
    from napari_tomoalign._napari.writer import write_image_mrc

    views = np.linspace(-20.0, 300.0, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    meta = {"metadata": {"tilt_angles_deg": [-1.0, 0.0, 1.0], "tilt_kind": "solved", "source_dtype": "uint8"}}
    written = write_image_mrc(str(tmp_path / "a.ali"), views, meta)
    with mrcfile.open(written[0], header_only=True) as m:
        assert int(m.header.mode) == 0 and unsigned_bytes(m.header)
    got = np.asarray(open_tilt_series(written[0], find_tilts=False).data)
    assert np.array_equal(got, np.clip(np.rint(views), 0, 255).astype(np.uint8))
    meta["metadata"].pop("source_dtype")  # an image of no integer source stays float32
    written = write_image_mrc(str(tmp_path / "b.ali"), views, meta)
    with mrcfile.open(written[0]) as m:
        assert int(m.header.mode) == 2 and np.array_equal(m.data, views)
