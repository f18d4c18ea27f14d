"""Excluding the lowest tilt moves the reference view, and with it the aligned frame's X origin; the
report says so (s15 new user: the tomogram moved 8 px in X, said only as "reference view 20"). Known truth: the view it
names is the one whose image centre the .xf keeps at the aligned centre in X."""

import re

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod import read_xf


def _align(imod_data, out, capsys, *extra):
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), *extra,
                 "--output", str(out)]) == 0
    return capsys.readouterr().out


def test_the_report_says_the_reference_moved_and_the_origin_with_it(imod_data, tmp_path, capsys):
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    said = _align(imod_data, tmp_path / "all", capsys)
    assert "stands in for" not in said  # the lowest tilt is in the fit: nothing to say
    said = _align(imod_data, tmp_path / "ex", capsys, "--exclude-views", "33-34")  # BBa's +1 and -1 deg views
    m = re.search(r"note: reference view (\d+) \(([-+]\d+\.\d) deg\) stands in for view (\d+) \(([-+]\d+\.\d) deg\), the"
                  r" lowest tilt, which is not in the fit; the X origin follows it \(its image centre stays the aligned"
                  r" centre\)", said)
    assert m, said
    ref, gone = int(m[1]) - 1, int(m[3]) - 1
    assert gone in (32, 33) and abs(tilts[ref]) == 3.0 and f"reference view {ref + 1} (views numbered" in said
    xf = read_xf(tmp_path / "ex" / "BBa.xf")
    assert abs(xf[ref, 0, 2]) < 1e-3  # the reference view's image centre stays on the aligned centre in X
    others = [k for k in range(len(tilts)) if k not in (32, 33, ref)]
    assert np.abs(xf[others, 0, 2]).max() > 0.5  # and no other's need be
