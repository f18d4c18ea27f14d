"""Readers against truncated, corrupted and hostile files: a clear FileFormatError, quickly, never a crash.

Every case also goes through the napari reader, which must return None or layer data (with an error
notification), never raise. Longer campaigns: ``scripts/fuzz_readers.sh 20000``.
"""

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_tomoalign._napari.reader import napari_get_reader
from napari_tomoalign.io import FileFormatError
from napari_tomoalign.io.markers import MarkerTable, read_markers, write_imod_model, write_markers_csv
from napari_tomoalign.io.mrc import open_tilt_series, write_mrc
from napari_tomoalign.io.tilt_sources import read_mdoc_tilts
from napari_tomoalign.io.tilts import read_tilt_angles

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), deadline=None,
                    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_LIMIT = 64 * 2**20  # no reader may allocate more than this on a file of a few kB


def valid_files(root: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    table = MarkerTable(np.array([0, 1, 2, 0, 1]), np.array([1, 1, 1, 2, 2]), rng.uniform(0, 60, (5, 2)), (64, 64))
    write_mrc(root / "v.mrc", rng.normal(size=(3, 8, 8)).astype(np.float32), 2.0)
    write_imod_model(root / "v.fid", table)
    write_markers_csv(root / "v.csv", table)
    (root / "v.tlt").write_text("-3.0\n0.0\n3.0\n")
    (root / "v.mdoc").write_text("PixelSpacing = 2\n\n[ZValue = 0]\nTiltAngle = -3\n\n[ZValue = 1]\nTiltAngle = 0\n")
    exts = [".mrc", ".fid", ".csv", ".tlt", ".mdoc"]
    if _INTERCHANGE:  # the other tools' formats (issue 22): a 3-view alignment in each
        from napari_tomoalign.io.alignment import SavedAlignment
        from napari_tomoalign.io.aretomo import write_aln
        from napari_tomoalign.io.convert import transforms_from
        from napari_tomoalign.io.cryoet_portal import write_portal_alignment

        xf = transforms_from(np.array([85.0, 85.2, 84.9]), np.ones(3), rng.normal(0, 3, (3, 2)))
        xf[1] = np.nan
        saved = SavedAlignment(xf, np.array([-3.0, 0.0, 3.0]), np.array([True, False, True]), (64, 64), 0.2)
        write_aln(saved, root / "v.aln")
        write_portal_alignment(saved, root / "v.json")
        (root / "v.star").write_text(
            "data_global\n\nloop_\n_rlnTomoName\n_rlnTomoTiltSeriesPixelSize\n_rlnTomoSizeX\n_rlnTomoSizeY\n"
            "_rlnTomoSizeZ\nts 2.0 64 64 32\n\ndata_ts\n\nloop_\n_rlnMicrographName\n_rlnTomoYTilt\n"
            "_rlnTomoZRot\n_rlnTomoXShiftAngst\n_rlnTomoYShiftAngst\n1@ts.mrc -3.0 85.0 1.5 -2.0\n"
            "3@ts.mrc 3.0 84.9 0.5 4.0\n")
        (root / "v.xml").write_text(
            '<TiltSeries AreAnglesInverted="False"><Angles>-3\n0\n3</Angles><UseTilt>True\nFalse\nTrue</UseTilt>'
            "<AxisAngle>85\n85\n85</AxisAngle><AxisOffsetX>1\n2\n3</AxisOffsetX><AxisOffsetY>0\n1\n0</AxisOffsetY>"
            '<CTF><Param Name="PixelSize" Value="2.0" /></CTF></TiltSeries>')
        exts += list(_INTERCHANGE)
    return {ext: (root / f"v{ext}").read_bytes() for ext in exts}


def _interchange_readers() -> dict:
    try:
        import alnfile  # noqa: F401
        import cryoet_alignment  # noqa: F401
        import starfile  # noqa: F401
    except ImportError:  # the 'interchange' extra is not installed
        return {}
    from napari_tomoalign.io.aretomo import read_aln
    from napari_tomoalign.io.cryoet_portal import read_portal_alignment
    from napari_tomoalign.io.relion import read_relion
    from napari_tomoalign.io.warp import read_warp_xml

    return {".aln": read_aln, ".star": read_relion, ".json": lambda p: read_portal_alignment(p, image_size=(64, 64)),
            ".xml": lambda p: read_warp_xml(p, image_size=(64, 64))}


_INTERCHANGE = _interchange_readers()
READERS = {
    ".mrc": open_tilt_series, ".fid": read_markers, ".csv": read_markers, ".tlt": read_tilt_angles,
    ".mdoc": read_mdoc_tilts, **_INTERCHANGE,
}


def check(path: Path) -> None:
    """The reader gives a result or a FileFormatError, fast and small; napari's reader never raises."""
    reader = READERS[path.suffix]
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        reader(path)
    except FileFormatError as exc:
        assert str(exc).startswith(str(path)), str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 10.0  # a hang guard, not a speed test (tracemalloc slows reads; CI is shared)
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MiB for a {path.stat().st_size}-byte file"
    get = napari_get_reader(str(path))
    if get is not None:
        get(str(path))  # may notify an error, must not raise


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return valid_files(tmp_path_factory.mktemp("valid"))


@SETTINGS
@given(ext=st.sampled_from(sorted(READERS)), data=st.data())
def test_mutated_files(seeds, tmp_path_factory, ext, data):
    blob = bytearray(seeds[ext])
    kind = data.draw(st.sampled_from(["truncate", "flip", "splice", "garbage", "empty"]))
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 20))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
    elif kind == "splice":
        i = data.draw(st.integers(0, len(blob)))
        blob = blob[:i] + bytearray(data.draw(st.binary(max_size=64))) + blob[i:]
    elif kind == "garbage":
        blob = bytearray(data.draw(st.binary(max_size=2048)))
    else:
        blob = bytearray()
    path = tmp_path_factory.mktemp("fuzz") / f"f{ext}"
    path.write_bytes(bytes(blob))
    check(path)


MRC_FIELDS = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "mx": 28, "nsymbt": 92}


@SETTINGS
@given(field=st.sampled_from(sorted(MRC_FIELDS)), value=st.sampled_from([-1, 0, 1, 7, 2**20, 2**31 - 1, -(2**31)]),
       swap=st.booleans())
def test_hostile_mrc_headers(seeds, tmp_path_factory, field, value, swap):
    blob = bytearray(seeds[".mrc"])
    blob[MRC_FIELDS[field] : MRC_FIELDS[field] + 4] = struct.pack("<i", value)
    if swap:  # claim big-endian in the machine stamp, so every header word reads byte-swapped
        blob[212:214] = b"\x11\x11"
    path = tmp_path_factory.mktemp("hostile") / "h.mrc"
    path.write_bytes(bytes(blob))
    check(path)


def test_enormous_declared_sizes_are_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((2, 4, 4), np.float32))
    raw = bytearray(path.read_bytes())
    raw[0:12] = struct.pack("<3i", 100000, 100000, 100000)  # 4e15 bytes of data claimed
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError):
        open_tilt_series(path)
    check(path)


@pytest.mark.parametrize("content", [b"view,marker,x,y\r\x00", b"view,marker,x,y\n0,1,\x00,2\n",
                                     b"view,marker,x,y\n1e300,1,2,3\n", b"view,marker,x,y\n\"0,1,2,3\n"])
def test_csv_found_by_fuzzing(tmp_path, content):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match="f.csv"):
        read_markers(path)
    check(path)


def test_mdoc_found_by_fuzzing(tmp_path):
    path = tmp_path / "f.mdoc"
    path.write_bytes(b"PixelSpacing = 2\n\x11[ZValue = 0]\nTiltAngle =\x00-3\n\n[ZValue = 1]\nTiltAngle = 0\n")
    with pytest.raises(FileFormatError, match="f.mdoc"):
        read_mdoc_tilts(path)
    check(path)


# --- IMOD models: structure-aware mutations of the chunks, read in a child process under a memory cap ---

_FID_CHILD = r"""
import json, resource, sys, time, tracemalloc
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from napari_tomoalign.io import FileFormatError
from napari_tomoalign.io.markers import read_markers
for path in sys.argv[2:]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        read_markers(path)
        outcome = "ok"
    except FileFormatError as exc:
        outcome = "refused" if str(exc).startswith(path) else "unnamed: " + str(exc)
    except BaseException as exc:
        outcome = f"crash: {type(exc).__name__}: {exc}"
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"path": path, "outcome": outcome, "s": time.perf_counter() - t0, "peak": peak}), flush=True)
"""


def _chunks(blob: bytes) -> list[tuple[int, int]]:
    """(start, end) of each chunk as far as the model is well formed (at least the header's end)."""
    out, pos = [], 240
    while pos + 8 <= len(blob):
        tag = blob[pos : pos + 4]
        if tag == b"IEOF":
            return out + [(pos, pos + 4)]
        if tag == b"OBJT":
            end = pos + 4 + 176
        elif tag == b"CONT":
            end = pos + 20 + 12 * struct.unpack(">i", blob[pos + 4 : pos + 8])[0]
        else:
            end = pos + 8 + struct.unpack(">I", blob[pos + 4 : pos + 8])[0]
        if not pos < end <= len(blob):
            break
        out.append((pos, end))
        pos = end
    return out or [(min(240, len(blob)), min(248, len(blob)))]


def _mutate_fid(blob: bytes, rng: np.random.Generator) -> bytes:
    chunks = _chunks(blob)
    big = [-1, 0, 1, 2, 2**20, 2**31 - 1, -(2**31), 2**30 + 7]
    kind = rng.integers(7)
    b = bytearray(blob)
    s, e = chunks[rng.integers(len(chunks))]
    if kind == 0:  # a count or size field of some chunk
        b[s + 4 : s + 8] = struct.pack(">i", int(rng.choice(big + [int(rng.integers(-50, 5000))])))
    elif kind == 1:  # a chunk inserted: any known tag, hostile counts
        tag = [b"CONT", b"MESH", b"OBJT", b"SIZE", b"IMAT", b"IEOF", b"MOST"][rng.integers(7)]
        body = struct.pack(">ii", int(rng.choice(big)), int(rng.choice(big))) + bytes(int(rng.integers(0, 64)))
        b[s:s] = tag + body
    elif kind == 2:  # a contour header hidden inside a sized chunk (the 12.8 GB case)
        inner = b"CONT" + struct.pack(">iIii", int(rng.choice(big)), 0, 0, 0)
        b[s:s] = b"SIZE" + struct.pack(">I", len(inner) + 8) + inner + bytes(8)
    elif kind == 3:  # nesting and repetition: one chunk copied many times
        b[s:s] = bytes(b[s:e]) * int(rng.integers(2, max(3, 200_000 // max(1, e - s))))
    elif kind == 4:  # a chunk deleted
        del b[s:e]
    elif kind == 5:  # cut at or near a chunk boundary
        b = b[: max(0, s + int(rng.integers(-3, 9)))]
    else:  # the header: image size and the first bytes
        at = int(rng.choice([0, 4, 136, 140, 144, 236]))
        b[at : at + 4] = struct.pack(">i", int(rng.choice(big)))
    return bytes(b)


def test_fid_chunk_mutations_under_a_memory_cap(tmp_path):
    rng = np.random.default_rng(int(os.environ.get("FUZZ_SEED", "15")) if os.environ.get("FUZZ_RANDOM") != "1"
                                else None)
    table = MarkerTable(np.repeat(np.arange(6), 3), np.tile([1, 2, 4], 6), rng.uniform(0, 60, (18, 2)), (64, 64))
    write_imod_model(tmp_path / "base.fid", table)
    base = (tmp_path / "base.fid").read_bytes()
    base = base[:-4] + b"SIZE" + struct.pack(">I", 12) + bytes(12) + base[-4:]  # a sized chunk to aim at
    n = max(50, int(os.environ.get("FUZZ_EXAMPLES", "1000")) // 4)
    paths = []
    for k in range(n):
        blob = base
        for _ in range(int(rng.integers(1, 4))):
            blob = _mutate_fid(blob, rng)
        paths.append(tmp_path / f"m{k}.fid")
        paths[-1].write_bytes(blob)
    cap = 1024 * 2**20
    r = subprocess.run([sys.executable, "-c", _FID_CHILD, str(cap), str(paths[0]), *map(str, paths)],
                       capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and len(results) == n + 1, r.stderr[-2000:]
    for res in results[1:]:  # the first read compiled the walk
        assert res["outcome"] in ("ok", "refused"), res
        assert res["s"] < 2.0, res
        assert res["peak"] < 64 * 2**20, res
