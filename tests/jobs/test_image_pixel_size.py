"""``reconstruct`` and ``aligned-stack --pixel-size-nm``: a stack whose header is wrong (1 A, "unknown" to many
converters) used with the alignment that ``run``/``align --pixel-size-nm`` solved at its true pixel size."""

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc


@pytest.fixture(scope="module")
def solved(tmp_path_factory, imod_data):
    """BB's alignment solved at 2.02 nm, and a 512^2 stack of its 61 views whose header says 1 A."""
    d = tmp_path_factory.mktemp("pix")
    out = d / "al"
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--tilt-axis",
                 "-12.5", "--pixel-size-nm", "2.02", "--output", str(out), "--quiet"]) == 0
    stack = d / "pix1.mrc"
    rng = np.random.default_rng(3)
    write_mrc(stack, rng.normal(100, 10, (61, 512, 512)).astype(np.float32), 1.0)  # 0.1 nm: the header is wrong
    return d, out, stack


@pytest.mark.filterwarnings("default:the stack.s header says:UserWarning")
@pytest.mark.parametrize("command,extra", [("aligned-stack", []), ("reconstruct", ["--thickness", "64"])])
def test_a_wrong_header_is_overridden_and_the_output_gets_the_size_given(solved, command, extra, capsys):
    d, al, stack = solved
    out = d / f"{command}.mrc"
    base = [command, str(stack), "--alignment", str(al), "--output", str(out), "--bin", "8", "--force", *extra]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 0.1 nm pixels but the alignment was solved at 2.02 nm" in err
    assert "give the stack the markers were placed on, or, if this is it and its header is wrong, --pixel-size-nm" \
           " 2.02" in err  # both ways out
    assert main([*base, "--pixel-size-nm", "2.02", "--quiet"]) == 0
    assert "using 2.02 nm/px as given" in capsys.readouterr().err  # said, as run says it
    with mrcfile.open(out, header_only=True) as m:
        assert float(m.voxel_size.x) == pytest.approx(8 * 20.2, rel=1e-5)
    assert main([*base, "--pixel-size-nm", "1.5"]) == 2  # a size given that is not the alignment's is refused too
    assert "was given 1.5 nm pixels but the alignment was solved at 2.02 nm" in capsys.readouterr().err
