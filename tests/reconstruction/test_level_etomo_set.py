"""``reconstruct --level`` on etomo's folder (IMOD's .xf and .tlt): without tiltalign's NAMEfid.xyz it says to put that
file beside the .xf (s15 new user: it said "run 'tomoalign align' again", which an etomo user has not run); with it the
level is aligna.log's (IMOD's own solution of the tutorial's BBa)."""

import shutil

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc


def test_an_etomo_folder_without_fid_xyz_is_told_to_put_it_beside_the_xf(imod_data, tmp_path, capsys):
    et = tmp_path / "et"
    et.mkdir()
    shutil.copy(imod_data / "BBa.tltxf", et / "BBa.xf")  # the .preali's transforms, as etomo's tilt.com takes them
    shutil.copy(imod_data / "BBa.tlt", et / "BBa.tlt")
    stack = tmp_path / "BBa.preali"
    write_mrc(stack, np.random.default_rng(0).integers(90, 110, (61, 512, 512), dtype=np.uint8), 20.2)  # geometry only
    for alignment in (et, et / "BBa.xf"):
        assert main(["reconstruct", str(stack), "--alignment", str(alignment), "--level", "--bin", "8",
                     "--output", str(tmp_path / "l.rec"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "tiltalign's BBafid.xyz (align.com's OutputFidXYZFile), and it is not beside" \
            " BBa.xf; put it there" in err and "align' again" not in err, err
    assert not (tmp_path / "l.rec").exists()
    shutil.copy(imod_data / "BBafid.xyz", et / "BBafid.xyz")  # the fix it names
    assert main(["reconstruct", str(stack), "--alignment", str(et), "--level", "--bin", "8",
                 "--output", str(tmp_path / "l.rec")]) == 0
    out = capsys.readouterr().out
    # aligna.log: "Average X axis tilt needed = 2.07", "Total tilt angle change = 0.34"
    assert "angle offset +0.34 deg (IMOD's OFFSET), X-axis tilt +2.07 deg" in out, out
