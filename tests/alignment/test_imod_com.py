"""Reading tiltalign's options from IMOD's own align.com: the same mappings as IMOD's log, and a clear
error for options that are not carried out."""

import numpy as np
import pytest
from support.imod_log import imod_label

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.errors import UsageError
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.imod_com import read_com_section


@pytest.mark.parametrize("axis, offset, z_shift", [("a", -0.5, 17.2), ("b", -2.11, 18.7)])
def test_tutorial_command_files_give_imods_149_variables(imod_data, axis, offset, z_shift):
    entries = read_com_section(imod_data / f"align{axis}.com")
    assert entries["TiltOption"] == ["5"] and entries["RotationAngle"] == ["-12.5"]
    s = settings_from_com(entries, np.loadtxt(imod_data / f"BB{axis}.rawtlt"))
    assert s.n_geometric == 149  # as IMOD's log: '149 geometric variables'
    assert (s.angle_offset_deg, s.axis_z_shift_px, s.rotation_angle_deg) == (offset, z_shift, -12.5)
    assert s.mappings["compression"].n_vars == 0 and s.mappings["x_tilt"].n_vars == 0
    assert [imod_label(s.mappings["tilt"], v) for v in (0, 1)] == ["1", "1+3"]


def test_unsupported_options_are_named(tmp_path, imod_data):
    com = tmp_path / "align.com"
    com.write_text((imod_data / "aligna.com").read_text().replace("AngleOffset", "ProjectionStretch 1\nAngleOffset"))
    with pytest.raises(UsageError, match="not supported: ProjectionStretch"):
        settings_from_com(read_com_section(com), np.loadtxt(imod_data / "BBa.rawtlt"))
    com.write_text("$tiltalign -StandardInput\nTiltOption 5\nFancyNewOption 3\n")
    with pytest.raises(UsageError, match="not supported: FancyNewOption"):
        settings_from_com(read_com_section(com), np.linspace(-60, 60, 61))
    com.write_text("$newstack -StandardInput\nInputFile a.st\n")
    with pytest.raises(FileFormatError, match="no '\\$tiltalign' section"):
        read_com_section(com)


def test_robust_fitting_options_are_read(imod_data):
    entries = read_com_section(imod_data / "aligna.com")
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    s = settings_from_com({**entries, "RobustFitting": ["1"], "KFactorScaling": ["0.8"], "WeightWholeTracks": ["1"]},
                          tilts)
    assert s.robust and s.robust_scale == 0.8 and s.robust_tracks
    assert not settings_from_com(entries, tilts).robust


def test_beam_tilt_search_is_solved_as_a_variable(imod_data):
    entries = read_com_section(imod_data / "aligna.com")
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    search = settings_from_com({**entries, "BeamTiltOption": ["2"]}, tilts)
    assert search.beam_tilt_free and search.n_geometric == 150 and "BeamTiltOption 2" in search.notes[0]
    assert not settings_from_com(entries, tilts).notes
    with pytest.raises(UsageError, match="BeamTiltOption must be 0"):
        settings_from_com({**entries, "BeamTiltOption": ["3"]}, tilts)


def test_poorly_determined_combinations_are_noted(imod_data):
    entries = read_com_section(imod_data / "aligna.com")
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    notes = settings_from_com({**entries, "BeamTiltOption": ["1"], "XTiltOption": ["3"], "CompOption": ["3"]},
                              tilts).notes
    assert [n.split(" is solved")[0] for n in notes] == ["compression", "X-tilt", "beam tilt"]
