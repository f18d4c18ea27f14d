"""``tomoalign reconstruct`` says which kernel back-projected the tomogram, and why, in one line after the ``wrote``
line (`reconstruction.kernel_choice`): BBa's alignment from aligna.com, with its local file (the one-row kernel and
its slabs) and without (IMOD's full model: its X-axis tilt and its kernel); nothing for the plain geometry."""

import numpy as np
import pytest
from scipy import ndimage

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc


@pytest.fixture(scope="module")
def bba(tmp_path_factory, imod_data):
    """BBa aligned as etomo's aligna.com asks (X-axis tilt, local alignments), and a 512 x 512 stack of its size:
    smoothed noise (the kernel depends on the geometry only)."""
    d = tmp_path_factory.mktemp("bba")
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--imod-com",
                 str(imod_data / "aligna.com"), "--local", "--output", str(d / "al"), "--quiet"]) == 0
    noise = np.random.default_rng(0).normal(0, 300, (61, 512, 512))
    write_mrc(d / "BBa.mrc", ndimage.gaussian_filter(noise, (0, 1, 1)).astype(np.int16), None)
    return d


def reconstruct(bba, out, *extra):
    return main(["reconstruct", str(bba / "BBa.mrc"), "--alignment", str(bba / "al"), "--bin", "2", "--thickness",
                 "160", "--output", str(out), *extra])


def test_reconstruct_says_the_local_kernel_and_its_slabs(bba, tmp_path, capsys):
    assert reconstruct(bba, tmp_path / "local.rec", "--local") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith(f"wrote {tmp_path / 'local.rec'}: 256 x 256 x 80 (x, y, z) from 61 views")
    said = lines[-1]
    assert said.startswith("local alignments: one-row kernel, slabs of ") and " sections (slab error " in said
    assert said.endswith(" px, within 0.15)")
    lo, hi = (int(v) for v in said.split("slabs of ")[1].split(" sections")[0].split("-"))
    assert 4 <= lo < hi <= 48


def test_reconstruct_says_the_full_models_kernel(bba, tmp_path, capsys):
    """Without --local, aligna.com's full model: Z factors and no X-axis tilt, by the one-row kernel within its limit;
    with --x-axis-tilt 2.07 (aligna.log's "X axis tilt needed", subtracted as IMOD's tilt does) `bp_full`'s exact
    kernel, the one-row kernel's lanes drifting beyond its limit."""
    assert reconstruct(bba, tmp_path / "full.rec") == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("full model (Z factors): one-row kernel, slabs of ") and said.endswith(", within 0.05)")
    assert reconstruct(bba, tmp_path / "level.rec", "--x-axis-tilt", "2.07") == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("full model (X-axis tilt -2.07 deg (.xtilt minus XAXISTILT), Z factors): exact kernel, the"
                           " one-row kernel would be off (lane drift ") and said.endswith(" px > 0.05)")


def test_quiet_and_the_plain_kernel_say_nothing(bba, tmp_path, capsys):
    assert reconstruct(bba, tmp_path / "q.rec", "--local", "--quiet") == 0
    assert capsys.readouterr().out == ""
    (tmp_path / "plain").mkdir()
    for name in ("BBa.xf", "BBa.tlt"):  # IMOD's own global solution: no X-axis tilt, no local file
        (tmp_path / "plain" / name).write_bytes((bba / "al" / name).read_bytes())
    assert main(["reconstruct", str(bba / "BBa.mrc"), "--alignment", str(tmp_path / "plain" / "BBa.xf"), "--bin", "2",
                 "--thickness", "160", "--output", str(tmp_path / "p.rec")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"wrote {tmp_path / 'p.rec'}")


def test_an_xtilt_of_zeros_is_not_said_applied(bba, tmp_path, capsys):
    """aligna.com does not solve an X-axis tilt: its .xtilt is all zeros, applies nothing, and the notes say only
    the Z factors were applied."""
    assert np.all(np.loadtxt(bba / "al" / "BBa.xtilt") == 0)
    assert reconstruct(bba, tmp_path / "z.rec") == 0
    out = capsys.readouterr().out
    assert "applied the alignment's Z factors (.zfac), as IMOD's tilt does" in out and "X-axis tilts" not in out
