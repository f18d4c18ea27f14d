"""Markers placed on a ``.preali`` (etomo's fiducial model) give an ``.xf`` for that stack: the command line says it
after ``align``, the dock when it shows the alignment on the raw ``.st`` (it takes no ``.prexg``), from one predicate
(`io.imod_model.placed_on_preali`), which ``reconstruct``'s warning (`file_jobs.preali_note`) uses too."""

import shutil

import pytest

from napari_tomoalign.io.imod_model import TRACKED_ON, placed_on_preali, read_imod_model, write_imod_model
from napari_tomoalign.jobs.align import prealigned_note


def test_etomos_model_is_placed_on_the_preali_and_the_note_names_the_raw_stack(imod_data, tmp_path):
    fid = imod_data / "BBa.fid"
    assert placed_on_preali(fid)
    assert prealigned_note(fid).startswith("note: the .xf applies to the stack the model was made on")
    said = prealigned_note(fid, tmp_path / "BBa.st")
    assert said.startswith("BBa.fid was placed on the .preali (etomo's fiducial model)") and "not for BBa.st" in said
    assert prealigned_note(fid, tmp_path / "BBa.preali") is None  # shown on the stack it was placed on
    assert prealigned_note(fid, tmp_path / "BBa.mrc") is None  # as `file_jobs.preali_note`: a raw stack is a .st


@pytest.mark.parametrize("made_on, placed", [("BBa.st", False), ("BBa.preali", True)])
def test_a_model_tracked_here_is_placed_on_the_stack_its_name_says(made_on, placed, imod_data, tmp_path):
    write_imod_model(tmp_path / "BBa.fid", read_imod_model(imod_data / "BBa.fid"), n_views=61, name=TRACKED_ON + made_on)
    assert placed_on_preali(tmp_path / "BBa.fid") is placed
    assert (prealigned_note(tmp_path / "BBa.fid", tmp_path / "BBa.st") is not None) is placed


def test_other_marker_files_are_not(imod_data, tmp_path):
    csv = tmp_path / "markers.csv"
    csv.write_text("view,marker,x,y\n0,1,10.0,12.0\n")
    assert not placed_on_preali(csv) and prealigned_note(csv, tmp_path / "BBa.st") is None
    shutil.copy(imod_data / "BBa.fid", tmp_path / "BBa.mod")  # IMOD's other name for a model: the same
    assert placed_on_preali(tmp_path / "BBa.mod")
