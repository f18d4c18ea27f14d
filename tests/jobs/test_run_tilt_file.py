"""A tilt file that does not match the views (new user's finding F, session 12: a .rawtlt in SerialEM's order of
acquisition beside a stack sorted by tilt): `run` said only that its own deleted .tlt held a tilt of 94.8 deg;
`align` wrote tilts beyond 90 deg that every reader then refused."""

from __future__ import annotations

import numpy as np
import pytest
from support.beads import write_cryo_series

from napari_tomoalign.alignment.validation import check_tilts_in_range, tilt_file_mismatch
from napari_tomoalign.cli import main
from napari_tomoalign.errors import AlignmentError
from napari_tomoalign.io.tilts import write_tilt_angles


def test_run_refuses_a_tilt_file_in_another_order_naming_it(tmp_path, capsys):
    path, s = write_cryo_series(tmp_path, "ds")
    tilts = s.tilt_angles_deg
    zero = int(np.argmin(np.abs(tilts)))
    order = [zero] + [v for k in range(1, len(tilts)) for v in (zero + k, zero - k) if 0 <= v < len(tilts)]
    write_tilt_angles(tmp_path / "ds.rawtlt", tilts[order], overwrite=True)  # dose-symmetric: 0, 6, -6, 12, ...
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differ from the given ones by up to" in err
    assert f"{tmp_path / 'ds.rawtlt'} does not match the views of {path}" in err
    assert not (tmp_path / "r").exists()
    assert main(["track", str(path), "--bead-diameter-nm", "10", "--output", str(tmp_path / "t.fid")]) == 0
    said = capsys.readouterr().err  # a warning: on standard error, as every warning (cli.warn)
    assert "tomoalign: warning: the solved tilt angles differ" in said and f"{tmp_path / 'ds.rawtlt'} does not match" \
        f" the views of {path}" in said  # said, kept


def test_a_solved_tilt_beyond_90_degrees_is_not_written_and_small_differences_pass():
    solved = np.array([-60.0, -30.0, 0.0, 30.0, 93.9])
    with pytest.raises(AlignmentError, match="the solved tilt of view 5 is 93.9 deg, beyond 90"):
        check_tilts_in_range(solved, np.ones(5, bool))
    check_tilts_in_range(solved, np.array([1, 1, 1, 1, 0], bool))  # an undetermined view: not judged
    given = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    assert tilt_file_mismatch(given + 3.0, given, np.ones(5, bool)) is None  # a stage calibration off by 3 deg
    assert tilt_file_mismatch(given * 1.4, given, np.ones(5, bool)) == (pytest.approx(24.0), 0)


def _tracked(median_px: float, track_views: list[int], diameter_px: float = 20.0):
    """What `misfit_message` reads of a tracking result: its points' residuals (a median and a few wild ones), its fit's
    RMS, the beads' track lengths, the size."""
    from types import SimpleNamespace

    residuals = np.r_[np.full(200, median_px), np.full(3, 80.0), np.nan]
    return SimpleNamespace(alignment=SimpleNamespace(rms_residual_px=7.07), n_beads=len(track_views),
                           residual_px=residuals, quality=SimpleNamespace(n_views=np.array(track_views)),
                           bead_diameter_px=diameter_px, markers=SimpleNamespace(image_size=(1024, 1024)))


def test_beads_that_fit_no_specimen_are_named_with_the_tilt_file_in_acquisition_order():
    """New user's finding (session 13): c05 (1024^2 x 41 at 3 deg, 20 px gold, tracked binned by 2) with its tilts in
    SerialEM's order of acquisition: the tracker followed pieces of 12 views whose fit (median residual 4.2 px, RMS
    7.07) kept the solved tilts within 8 deg of the file, so `tilt_file_mismatch` passed, and `run` wrote a tomogram
    296 px off end to end; the unsorted stack beside the sorted file: median 3.3 px, tracks of 23 views. A good
    tracking's median is 0.26 px (0.13 working pixels); a few wild points do not count."""
    from napari_tomoalign.tracking.jobs import misfit_message

    sorted_tilts = np.arange(-60.0, 61.0, 3.0)
    zero = 20
    acquisition = sorted_tilts[[zero] + [v for k in range(1, 21) for v in (zero + k, zero - k)]]
    short = [12] * 40 + [30] * 30
    msg = misfit_message(_tracked(4.25, short, diameter_px=20.0), acquisition, "acq.tlt", "c05.mrc")
    assert msg == ("the tracked beads do not fit one specimen (median residual 4.25 px, RMS 7.07 px, median track 12 of"
                   " 41 views); acq.tlt is not in order of tilt (SerialEM's order of acquisition, beside a stack sorted"
                   " by tilt?): check that acq.tlt holds the tilt angles of c05.mrc in its order, and the bead diameter")
    other_way = misfit_message(_tracked(3.27, [23] * 60, diameter_px=20.0), sorted_tilts, "c05.rawtlt", "acq.mrc")
    assert other_way is not None and "not in order" not in other_way and "median track 23 of 41" in other_way
    assert misfit_message(_tracked(0.26, [41] * 90), acquisition, "acq.tlt", "c05.mrc") is None  # good, 3 wild points
    assert misfit_message(_tracked(1.9, short, diameter_px=20.0), sorted_tilts, "a", "s") is None  # < 1 working px (2)
    assert misfit_message(_tracked(1.3, short, diameter_px=64.0), sorted_tilts, "a", "s") is None  # 1 px of bin 4
