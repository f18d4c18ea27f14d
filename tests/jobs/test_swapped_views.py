"""Views swapped in the stack against the tilt file: the free per-view tilt recovers them, and the alignment now
names them, once (new user s13: views 10 and 11 swapped were recovered silently)."""

import numpy as np
import pytest

from napari_tomoalign.io.markers import MarkerTable
from napari_tomoalign.jobs.align import AlignJob, run_align_job, solve, with_order_note
from napari_tomoalign.jobs.facts import views_out_of_order
from napari_tomoalign.simulation.markers import simulate_markers


@pytest.fixture(scope="module")
def truth():
    return simulate_markers(n_views=41, n_markers=25, seed=3)


def _job(truth, swaps=()):
    view = truth.view.copy()
    for a, b in swaps:  # the images of views a and b trade places; the tilt file stays in order
        view[truth.view == a], view[truth.view == b] = b, a
    return AlignJob(MarkerTable(view, truth.marker, truth.xy, (1024, 1024)), truth.nominal_tilt_angles_deg,
                    (1024, 1024))


def test_a_swapped_pair_is_named_with_its_solved_and_given_angles(truth, tmp_path):
    al = solve(_job(truth, [(10, 11)]))
    [note] = [w for w in al.warnings if "out of order" in w]
    assert "views 11 and 12 solved at -27.2 and -30.1 deg where -30.0 and -27.0 were given (swapped" in note
    # the solved tilts are the true ones, in the stack's order (the swap recovered)
    true = np.degrees(truth.true_view_params[:, 0])
    assert abs(al.tilt_angles_deg[10] - true[11]) < 0.3 and abs(al.tilt_angles_deg[11] - true[10]) < 0.3
    assert with_order_note(al).warnings.count(note) == 1  # said once, however often it is asked
    folder = run_align_job(_job(truth, [(10, 11)]), tmp_path / "al", alignment=al)  # run's path: the tracker's fit
    assert folder.alignment.warnings.count(note) == 1


def test_two_pairs_and_none(truth):
    al = solve(_job(truth, [(5, 6), (30, 31)]))
    note = views_out_of_order(al)
    assert note is not None and "views 6 and 7 " in note and "views 31 and 32 " in note
    assert views_out_of_order(solve(_job(truth))) is None  # in order: nothing said


def test_another_series_tilt_file_is_not_called_a_swap(truth):
    from dataclasses import replace

    al = solve(_job(truth))
    shifted = replace(al, nominal_tilt_angles_deg=al.nominal_tilt_angles_deg + 3.0)  # every view one step off
    assert views_out_of_order(shifted) is None
