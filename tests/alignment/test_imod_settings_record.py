"""settings_to_dict (io.alignment_record): the record of an --imod-com run (the command file's option codes and
groupings, and the groups tiltalign forms from them), as plain JSON values, checked against aligna.com and IMOD's log."""

import json

from napari_tomoalign import read_tilt_angles
from napari_tomoalign.alignment.imod_options import read_imod_settings
from napari_tomoalign.io.alignment_record import settings_to_dict


def _record(imod_data, com):
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    return settings_to_dict(read_imod_settings(com, tilts))


def test_record_has_the_com_options_and_the_groups_of_the_tutorial_run(imod_data):
    rec = _record(imod_data, imod_data / "aligna.com")
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec  # plain JSON values
    opts = rec["options"]
    assert opts["TiltOption"] == 5 and opts["TiltDefaultGrouping"] == 5 and opts["MagReferenceView"] == 1
    assert opts["XStretchOption"] == 3 and opts["SkewOption"] == 3 and opts["SkewDefaultGrouping"] == 11
    assert opts["RotationAngle"] == -12.5 and opts["AngleOffset"] == -0.5 and opts["RotOption"] == 1
    assert "ModelFile" not in opts and "OutputTransformFile" not in opts  # file names are not the model
    v = rec["variables"]
    # imod-full-model.md section 3 (aligna.log's table), 1-based
    assert v["tilt"] == {"mode": "linear", "variables": 13, "anchors": "1,3,7,10,15,20,26,38,43,49,54,58,61",
                         "held": "32"}
    assert v["x_stretch"] == {"mode": "block", "variables": 9, "held": "12-18",
                              "groups": "1-2,3-6,7-11,12-18,19-26,27-35,36-43,44-51,52-56,57-61"}
    assert v["skew"] == {"mode": "linear", "variables": 6, "anchors": "1,21,31,41,51,61", "held": "11"}
    assert v["rotation"] == {"mode": "per view", "variables": 61, "held": ""}
    assert v["magnification"] == {"mode": "per view", "variables": 60, "held": "1"}
    assert v["compression"] == {"mode": "fixed", "variables": 0}
    assert rec["geometric_variables"] == 149 and rec["excluded_views"] == ""
    assert rec["angle_offset_deg"] == -0.5 and rec["axis_z_shift_px"] == 17.2


def test_record_lists_excluded_views_and_repeated_entries(imod_data, tmp_path):
    text = (imod_data / "aligna.com").read_text()
    com = tmp_path / "align.com"
    com.write_text(text.replace("\nAngleOffset\t", "\nExcludeList\t1-3\nSeparateGroup\t40-42\n"
                                "SeparateGroup\t50,52\nAngleOffset\t", 1))
    rec = _record(imod_data, com)
    assert rec["excluded_views"] == "1-3" and rec["options"]["ExcludeList"] == "1-3"
    assert rec["options"]["SeparateGroup"] == "40-42; 50,52"
