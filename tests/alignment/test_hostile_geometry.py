"""Degenerate geometry is an error that names the problem, never a "converged" result (issue 15, class 6)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tomoalign import AlignmentError, AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.cli import main


@pytest.fixture(scope="module")
def sim():
    return simulate_markers(n_views=21, n_markers=12, noise_px=0.3, seed=1)


def _call(sim, options=None, **over):
    args = dict(views=sim.view, markers=sim.marker, xy=sim.xy, tilt_angles_deg=sim.nominal_tilt_angles_deg,
                image_size=sim.image_size)
    args.update(over)
    return align_markers(options=options, **args)


def test_all_markers_at_one_point(sim):
    with pytest.raises(AlignmentError, match="all markers lie within 1 px of one point"):
        _call(sim, xy=np.tile([[500.0, 400.0]], (len(sim.view), 1)))


@pytest.mark.parametrize("value", [1e150, -1e150, 1e7])
def test_coordinates_far_outside_the_image(sim, value):
    xy = sim.xy.copy()
    xy[4, 0] = value
    with pytest.raises(AlignmentError, match=r"outside the 1024 x 1024 image .*row 4"):
        _call(sim, xy=xy)


@pytest.mark.parametrize("size", [(1e23, 1e23), (0, 100), (np.nan, 5), (2_000_000, 10)])
def test_absurd_image_sizes(sim, size):
    with pytest.raises(AlignmentError, match="image size must be two numbers from 1 to"):
        _call(sim, image_size=size)


def test_wrong_image_size_puts_markers_outside(sim):
    with pytest.raises(AlignmentError, match="check the image size"):
        _call(sim, image_size=(256, 256))


def test_no_tilt_range(sim):
    with pytest.raises(AlignmentError, match="tilt range of only 0 deg"):
        _call(sim, tilt_angles_deg=np.zeros(21))


def test_zero_total_weight(sim):
    with pytest.raises(AlignmentError, match="weights add up to zero"):
        align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size,
                      weights=np.zeros(len(sim.view)))


@pytest.mark.parametrize("axis", [np.nan, np.inf, -np.inf, 1e300])
def test_nan_tilt_axis_option(axis):
    with pytest.raises(ValueError, match="tilt-axis angle must be a finite"):
        AlignmentOptions(tilt_axis_deg=axis)


@pytest.mark.parametrize("ids", [
    lambda m: m.astype(np.int64) + 2**62,                      # int64 near overflow: no false duplicates
    lambda m: np.where(m == 1, 2**53 + 1, m).astype(np.int64),  # beyond 2**53: would merge as floats
    lambda m: np.where(m == 1, 2.0**60, m).astype(float),
])
def test_marker_ids_beyond_2_53_are_refused(sim, ids):
    with pytest.raises(AlignmentError, match="below 2\\*\\*53"):
        _call(sim, markers=ids(sim.marker))


def test_large_but_exact_ids_work_and_stay_apart(sim):
    ids = sim.marker.astype(np.int64) + (2**53 - 100)
    al = _call(sim, markers=ids)
    assert al.n_markers == 12 and al.converged and int(al.marker_ids.max()) == 2**53 - 100 + 12


def test_group_size_of_twenty_digits():
    with pytest.raises(ValueError, match="group size must be a whole number"):
        AlignmentOptions(rotation="group:12345678901234567890")


def test_cli_all_tilts_zero(tmp_path, capsys, imod_data):
    (tmp_path / "zero.tlt").write_text("0\n" * 61)
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(tmp_path / "zero.tlt"),
               "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "tilt range of only 0 deg" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_image_size_too_large(tmp_path, capsys, imod_data):
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
               "--image-size", "100000000", "100000000", "--output", str(tmp_path / "o")])
    assert rc == 2 and "--image-size must be" in capsys.readouterr().err


def test_zero_weight_observations_do_not_make_a_view_determinable():
    from napari_tomoalign.alignment.validation import determinable

    v = np.array([0, 1, 0, 1, 2, 2])
    mi = np.array([0, 0, 1, 1, 0, 1])
    w = np.array([1.0, 1, 1, 1, 0, 0])
    view_ok, _ = determinable(v, mi, 3, 2, 2)
    assert view_ok.all()
    view_ok, _ = determinable(v, mi, 3, 2, 2, weights=w)
    assert view_ok.tolist() == [True, True, False]


def test_check_solution_refuses_nan():
    from napari_tomoalign.alignment.validation import check_solution

    vp, xyz = np.zeros((3, 5)), np.zeros((2, 3))
    check_solution(vp, xyz, np.ones(3, bool))
    vp[1, 2] = np.nan
    with pytest.raises(AlignmentError, match="no finite solution for 1 view"):
        check_solution(vp, xyz, np.ones(3, bool))
    check_solution(vp, xyz, np.array([True, False, True]))  # undetermined views may be NaN
