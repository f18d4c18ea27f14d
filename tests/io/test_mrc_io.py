"""MRC tilt series: memory-mapped reading, where tilt angles come from, and the napari writers."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign._napari.reader import napari_get_reader
from napari_tomoalign._napari.writer import write_image_mrc, write_markers_fid, write_markers_table
from napari_tomoalign.io import FileFormatError, read_markers
from napari_tomoalign.io.checked_stack import CheckedStack
from napari_tomoalign.io.mrc import open_tilt_series, write_mrc
from napari_tomoalign.io.tilt_sources import read_mdoc_tilts

TILTS = np.array([0.0, 3.0, -3.0, 6.0, -6.0])  # dose-symmetric order: not sorted, and must stay so


def stack(tmp_path, name="ts.st", **kw):
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    return write_mrc(tmp_path / name, data, 2.5, **kw), data


def mdoc_text(angles):
    head = "PixelSpacing = 2.5\nImageFile = ts.st\n\n[T = SerialEM: test]\n\n"
    return head + "".join(f"[ZValue = {i}]\nTiltAngle = {a}\nMagnification = 53000\n\n" for i, a in enumerate(angles))


def test_reader_gives_a_memory_mapped_image_with_scale_and_tilts(tmp_path):
    path, data = stack(tmp_path, tilt_angles_deg=TILTS)
    reader = napari_get_reader(str(path))
    [(arr, kwargs, kind)] = reader(str(path))
    # the file's memory map, whose views are read with checked file reads (a truncated file: an error, not SIGBUS)
    assert kind == "image" and isinstance(arr, CheckedStack) and not arr.flags.owndata
    np.testing.assert_array_equal(arr, data)
    assert kwargs["scale"] == pytest.approx((1.0, 0.25, 0.25))  # 2.5 A = 0.25 nm
    np.testing.assert_allclose(kwargs["metadata"]["tilt_angles_deg"], TILTS)
    assert kwargs["metadata"]["tilt_source"].endswith("ts.tlt")


def test_tilt_sources_in_order(tmp_path):
    path, _ = stack(tmp_path)
    assert open_tilt_series(path).tilt_angles_deg is None
    # 3. the extended header (SerialEM: hundredths of a degree in the first short of each section)
    with mrcfile.open(path, "r+") as m:
        ext = np.zeros((5, 4), dtype=np.int16)
        ext[:, 0] = np.round(TILTS * 100)
        m.set_extended_header(ext.view(np.uint8).reshape(-1).view("V1"))
        m.header.exttyp = b"SERI"
        raw = bytearray(m.header.tobytes())
        raw[128:132] = np.array([8, 1], dtype="<i2").tobytes()  # IMOD's nint and nreal
        m.header.extra2 = np.frombuffer(bytes(raw[112:196]), dtype=m.header.extra2.dtype)[0]
    ts = open_tilt_series(path)
    np.testing.assert_allclose(ts.tilt_angles_deg, TILTS)
    assert ts.tilt_source == "extended header (SerialEM)"
    # 2. a SerialEM .mdoc, by ZValue
    (tmp_path / "ts.st.mdoc").write_text(mdoc_text(TILTS + 0.5))
    ts = open_tilt_series(path)
    np.testing.assert_allclose(ts.tilt_angles_deg, TILTS + 0.5)
    assert ts.tilt_source.endswith("ts.st.mdoc")
    # 1. a raw stack takes .rawtlt before .tlt (a .tlt beside it holds solved angles); an aligned .ali the .tlt
    (tmp_path / "ts.tlt").write_text("\n".join(str(a + 2) for a in TILTS))
    np.testing.assert_allclose(open_tilt_series(path).tilt_angles_deg, TILTS + 2)
    (tmp_path / "ts.rawtlt").write_text("\n".join(str(a + 1) for a in TILTS))
    np.testing.assert_allclose(open_tilt_series(path).tilt_angles_deg, TILTS + 1)
    aligned = tmp_path / "ts.ali"
    aligned.write_bytes(path.read_bytes())
    np.testing.assert_allclose(open_tilt_series(aligned).tilt_angles_deg, TILTS + 2)


def test_fei_extended_header(tmp_path):
    path = tmp_path / "fei.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((5, 4, 4), np.float32))
        ext = np.zeros(5, dtype=mrcfile.dtypes.get_ext_header_dtype(b"FEI1"))
        ext["Alpha tilt"] = TILTS
        ext["Metadata size"] = ext.dtype.itemsize
        m.set_extended_header(ext)
        m.header.exttyp = b"FEI1"
    ts = open_tilt_series(path)
    np.testing.assert_allclose(ts.tilt_angles_deg, TILTS)
    assert ts.tilt_source == "extended header (FEI1)"


def test_bad_tilt_file_opens_the_stack_without_angles(tmp_path):
    path, _ = stack(tmp_path)
    (tmp_path / "ts.tlt").write_text("1\n2\n")
    with pytest.raises(FileFormatError, match="has 2 tilt angles but ts.st has 5 views"):
        open_tilt_series(path)
    [(_, kwargs, _)] = napari_get_reader(str(path))(str(path))
    assert kwargs["metadata"]["tilt_angles_deg"] is None
    assert "2 tilt angles" in kwargs["metadata"]["tilt_source"]


@pytest.mark.parametrize("text, message", [
    ("[ZValue = 0]\nTiltAngle = 1\n[ZValue = 0]\nTiltAngle = 2\n", "ZValues"),
    ("[ZValue = 0]\nTiltAngle = 95\n", "outside"),
    ("PixelSpacing = 1\n", "no \\[ZValue\\] sections|not a readable"),
])
def test_bad_mdoc_is_named(tmp_path, text, message):
    (tmp_path / "x.mdoc").write_text(text)
    with pytest.raises(FileFormatError, match=message):
        read_mdoc_tilts(tmp_path / "x.mdoc")


@pytest.mark.parametrize("content", [b"", b"MRC" * 10, b"\x00" * 1024, b"\x00" * 2000])
def test_foreign_or_broken_mrc_is_refused(tmp_path, content):
    p = tmp_path / "bad.mrc"
    p.write_bytes(content)
    assert napari_get_reader(str(p)) is None
    with pytest.raises(FileFormatError):
        open_tilt_series(p)


def test_image_writer_round_trip_and_backup(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 8, 9)).astype(np.float32)
    meta = {"scale": (1.0, 0.4, 0.4), "metadata": {"tilt_angles_deg": TILTS}}
    out = tmp_path / "saved.mrc"
    # A raw stack's angles are nominal: they go to a .rawtlt (an aligned .ali's would go to a .tlt).
    assert write_image_mrc(str(out), data, meta) == [str(out), str(tmp_path / "saved.rawtlt")]
    ts = open_tilt_series(out)
    np.testing.assert_array_equal(ts.data, data)
    assert ts.pixel_size_angstrom == pytest.approx(4.0)
    np.testing.assert_allclose(ts.tilt_angles_deg, TILTS)
    write_image_mrc(str(out), data * 2, meta)  # the first file is kept as saved.mrc~
    np.testing.assert_array_equal(open_tilt_series(tmp_path / "saved.mrc~").data, data)
    np.testing.assert_array_equal(open_tilt_series(out).data, data * 2)
    assert not list(tmp_path.glob(".*.tmp"))


def test_marker_writers_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(2)
    view = np.array([0, 1, 2, 0, 2, 1, 3])
    ids = np.array([3, 3, 3, 7, 7, 12, 12])  # gaps in the ids
    points = np.column_stack([view, rng.uniform(0, 100, 7), rng.uniform(0, 120, 7)]).round(3)
    meta = {"features": {"marker": ids}, "metadata": {"image_size": (128, 110)}}
    for name, writer in (("m.fid", write_markers_fid), ("m.csv", write_markers_table)):
        path = tmp_path / name
        writer(str(path), points, meta)
        [(data, kwargs, _)] = napari_get_reader(str(path))(str(path))
        order = np.lexsort((data[:, 0], kwargs["features"]["marker"]))
        want = np.lexsort((points[:, 0], ids))
        np.testing.assert_allclose(data[order], points[want], atol=1e-4)
        np.testing.assert_array_equal(kwargs["features"]["marker"][order], ids[want])
    assert read_markers(tmp_path / "m.fid").image_size == (128, 110)
    with pytest.raises(ValueError, match="no 'marker' feature"):
        write_markers_fid(str(tmp_path / "x.fid"), points, {"features": {}})


def test_a_file_the_process_may_not_map_is_not_called_unreadable(tmp_path):
    """New user's finding (session 10): under `ulimit -v` a valid stack was 'not a readable MRC file ([Errno 12]
    Cannot allocate memory)'. It is a limit of the process, and the command line says so (exit 2)."""
    import subprocess
    import sys

    path = tmp_path / "big.st"
    m = mrcfile.new_mmap(path, shape=(5, 8000, 8000), mrc_mode=2, overwrite=True)  # 1.2 GiB of holes
    m.voxel_size = 2.0
    m.close()
    (tmp_path / "big.rawtlt").write_text("-60\n-30\n0\n30\n60\n")
    code = ("import resource, sys\n"
            "from napari_tomoalign.cli import main\n"
            "vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize:')).split()[1]) * 1024\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * 2**20, resource.RLIM_INFINITY))\n"
            f"sys.exit(main(['track', {str(path)!r}, '--bead-diameter-px', '12', '--output',"
            f" {str(tmp_path / 't.fid')!r}]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "may not map the 1.2 GiB file" in run.stderr and "not a readable" not in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and not (tmp_path / "t.fid").exists()
