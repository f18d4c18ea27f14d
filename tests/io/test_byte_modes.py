"""Byte tomograms read back as written (new user s14, finding 34: a ``--mode uint8`` tomogram read back wrapped by
mrcfile, which takes any mode 0 as int8). IMOD's rule (mrc_format.txt: mode 0 is "unsigned or signed bytes depending
on flag in imodStamp; only unsigned bytes before IMOD 4.2.23"): our reader, the streamed reconstruction's and the napari
reader give the written values; an unstamped file is signed or unsigned as its header's min and max say (`io.byte_sign`)."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import open_tilt_series, unsigned_bytes, write_mrc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bytes")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    return d


@pytest.mark.parametrize("mode, flags, lo, hi", [("uint8", 0, 0, 255), ("int8", 1, -128, 127)])
def test_a_byte_tomogram_reads_back_the_values_written(demo_dir, tmp_path, capsys, mode, flags, lo, hi):
    from napari_tomoalign._napari.reader import volume_layer

    base = ["reconstruct", str(demo_dir / "sample.mrc"), "--alignment", str(demo_dir), "--bin", "4", "--thickness", "64"]
    assert main([*base, "--output", str(tmp_path / "f.rec"), "--quiet"]) == 0
    ref = mrcfile.read(tmp_path / "f.rec").astype(np.float64)
    mult = float(np.float32((hi - lo + 40) / np.ptp(ref)))  # the whole range and 20 levels beyond each end
    add = float(np.float32((lo - 20) / mult - ref.min()))
    assert main([*base, "--output", str(tmp_path / "b.rec"), "--mode", mode, "--scale", repr(add), repr(mult)]) == 0
    assert f"{mode} values: (density " in capsys.readouterr().out
    want = np.clip(np.rint((ref + add) * mult), lo, hi)
    assert lo in want and hi in want and np.mean((want > lo) & (want < hi)) > 0.9  # the range is used, both ends
    got = open_tilt_series(tmp_path / "b.rec", find_tilts=False).data
    assert got.dtype == np.dtype(mode)
    assert np.abs(np.asarray(got, np.float64) - want).max() <= 1  # float32 rounding of the scale
    layer = volume_layer(tmp_path / "b.rec")[0]  # napari's reader: the same values
    assert np.array_equal(np.asarray(layer), np.asarray(got))
    with mrcfile.open(tmp_path / "b.rec") as m:
        assert m.header.mode == 0 and int(np.frombuffer(m.header.extra2.tobytes()[44:48], "<i4")[0]) == flags
        assert m.data.dtype == np.int8 and np.array_equal(m.data.view(mode), got)  # mrcfile: int8, as the help says


def test_unstamped_bytes_follow_imods_rule(tmp_path):
    data = np.arange(0, 256, dtype=np.uint8).reshape(1, 16, 16)
    with mrcfile.new(tmp_path / "old.mrc") as m:  # mrcfile writes MRC-2014 (nversion 20140) without IMOD's stamp
        m.set_data(data.view(np.int8))
    with mrcfile.open(tmp_path / "old.mrc") as m:
        assert not unsigned_bytes(m.header)  # its header's min -128 and max 127: signed, as IMOD reads it
    assert open_tilt_series(tmp_path / "old.mrc", find_tilts=False).data.dtype == np.int8
    for version in (20140, 0):  # the MRC-2014 number plays no part in IMOD's rule (io.byte_sign)
        with mrcfile.open(tmp_path / "old.mrc", "r+") as m:
            m.header.nversion, m.header.dmin, m.header.dmax = version, 0, 255  # a header saying 0 to 255: unsigned
        got = open_tilt_series(tmp_path / "old.mrc", find_tilts=False).data
        assert got.dtype == np.uint8 and np.array_equal(np.asarray(got), data)
    write_mrc(tmp_path / "ours.mrc", data, 10.0)  # our writer: IMOD's stamp, unsigned flag
    assert np.array_equal(np.asarray(open_tilt_series(tmp_path / "ours.mrc", find_tilts=False).data), data)
