"""Mode-0 bytes signed or unsigned by IMOD's rule (`io.byte_sign`; IMOD's readBytesSigned), and a one-line warning when a
signed read looks like wrapped unsigned bytes (s15 new user: an unstamped MRC-2014 byte stack, 79% of it above 127,
was read signed and failed with a bead-size message)."""

import warnings

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.byte_sign import IMOD_STAMP, looks_wrapped, signed_bytes
from napari_tomoalign.io.mrc import open_tilt_series


@pytest.fixture(scope="module")
def bright_bytes(tmp_path_factory):
    """The demo's views as unsigned bytes, bright (most values above 127, as the new user's), and a copy of them."""
    d = tmp_path_factory.mktemp("bytesign")
    assert main(["demo", "--output", str(d), "--quiet"]) == 0
    with mrcfile.open(d / "sample.mrc") as m:
        raw = m.data.astype(np.float64)
    lo, hi = np.percentile(raw, [0.1, 99.9])
    data = np.clip(np.rint(60 + (raw - lo) / (hi - lo) * 190), 0, 255).astype(np.uint8)
    assert np.mean(data > 127) > 0.6
    return d, data


def _unstamped(path, data, dmin, dmax):
    """An MRC-2014 file as a program that knows no IMOD stamp writes it, with the header's min and max given."""
    with mrcfile.new(path) as m:
        m.set_data(data.view(np.int8))
        m.header.dmin, m.header.dmax = dmin, dmax
    with mrcfile.open(path, header_only=True) as m:
        assert int(m.header.nversion) // 10 == 2014 and not m.header.extra2.tobytes()[40:48].strip(b"\0")
    return path


def test_an_unstamped_mrc_2014_byte_stack_whose_header_says_0_to_255_is_read_unsigned(bright_bytes, tmp_path):
    _, data = bright_bytes
    path = _unstamped(tmp_path / "u.st", data, 0.0, 255.0)
    got = open_tilt_series(path, find_tilts=False).data
    assert got.dtype == np.uint8 and np.array_equal(np.asarray(got), data)  # as IMOD reads it


def test_wrapped_bytes_are_said_in_one_line_with_the_fix(bright_bytes, tmp_path, monkeypatch, capsys):
    demo, data = bright_bytes
    path = _unstamped(tmp_path / "w.st", data, -128.0, 127.0)  # the header of the signed view: IMOD too reads signed
    said = (r"read as signed \(no IMOD stamp, and the header's min -128 and max 127 say signed\), but they look like"
            r" unsigned bytes read wrapped .*READ_MODE0_SIGNED=-2")
    with pytest.warns(UserWarning, match=said):
        got = open_tilt_series(path, find_tilts=False).data
    assert got.dtype == np.int8
    out = tmp_path / "a.ali"
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside pytest: the command line prints it (its one place for warnings)
        assert main(["aligned-stack", str(path), "--alignment", str(demo), "--output", str(out), "--bin", "4"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tomoalign: warning: {path}: its bytes (MRC mode 0)"), err
    monkeypatch.setenv("READ_MODE0_SIGNED", "-2")  # the fix it gives: IMOD's variable, honoured here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = open_tilt_series(path, find_tilts=False).data
    assert got.dtype == np.uint8 and np.array_equal(np.asarray(got), data)


def test_signed_bytes_about_zero_are_not_called_wrapped(bright_bytes, tmp_path):
    _, data = bright_bytes
    signed = (data.astype(np.int16) - 150).clip(-128, 127).astype(np.int8)  # the same images, signed, about 0
    assert not looks_wrapped(signed) and looks_wrapped(data.view(np.int8))
    assert not looks_wrapped(np.arange(-128, 128, dtype=np.int8))  # the whole range, evenly: neither
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = open_tilt_series(_unstamped(tmp_path / "s.st", signed, -128.0, 127.0), find_tilts=False).data
    assert got.dtype == np.int8 and np.array_equal(np.asarray(got), signed)


def _header(tmp_path, dmin, dmax, stamp, flags):
    """The header of a small mode-0 file with the given min, max and IMOD stamp and flags."""
    import struct

    with mrcfile.new(tmp_path / "h.mrc", overwrite=True) as m:
        m.set_data(np.zeros((2, 2), np.int8))
        m.header.dmin, m.header.dmax = dmin, dmax
    with open(tmp_path / "h.mrc", "r+b") as f:
        f.seek(152)
        f.write(struct.pack("<ii", stamp, flags))
    with mrcfile.open(tmp_path / "h.mrc", header_only=True) as m:
        return m.header.copy()


@pytest.mark.parametrize("dmin, dmax, stamp, flags, env, signed", [
    (-5, 100, 0, 0, None, True), (0, 200, 0, 0, None, False), (-100, 130, 0, 0, None, True),
    (-1, 250, 0, 0, None, False), (0, 100, 0, 0, None, False),  # IMOD's min/max rule, unstamped
    (-128, 127, 0, 0, "-1", False), (0, 255, 0, 0, "1", True),  # READ_MODE0_SIGNED overrides an unstamped file
    (-128, 127, IMOD_STAMP, 0, None, False), (0, 255, IMOD_STAMP, 1, None, True),  # the stamp's flag decides
    (0, 255, IMOD_STAMP, 1, "-1", True), (0, 255, IMOD_STAMP, 1, "-2", False), (0, 0, IMOD_STAMP, 0, "2", True),
])
def test_imods_rule(tmp_path, monkeypatch, dmin, dmax, stamp, flags, env, signed):
    if env is None:
        monkeypatch.delenv("READ_MODE0_SIGNED", raising=False)
    else:
        monkeypatch.setenv("READ_MODE0_SIGNED", env)
    assert signed_bytes(_header(tmp_path, dmin, dmax, stamp, flags)) == signed
