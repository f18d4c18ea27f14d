"""``align --exclude-views`` (views numbered from 1), for the default model and for an align.com: the same as
IMOD's ``ExcludeList`` in the command file, and the same as leaving those views' points out by hand."""

import json

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod import read_xf


def _align(imod_data, out, *extra):
    return main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), *extra,
                 "--output", str(out), "--quiet"])


def test_exclude_views_with_an_align_com_is_its_exclude_list(imod_data, tmp_path):
    com = tmp_path / "excluded.com"
    text = (imod_data / "aligna.com").read_text()
    com.write_text(text.replace("AngleOffset\t-0.5", "AngleOffset\t-0.5\nExcludeList\t1-2,61"))
    assert _align(imod_data, tmp_path / "opt", "--imod-com", str(imod_data / "aligna.com"),
                  "--exclude-views", "1-2,61") == 0
    assert _align(imod_data, tmp_path / "com", "--imod-com", str(com)) == 0
    a, b = read_xf(tmp_path / "opt" / "BBa.xf"), read_xf(tmp_path / "com" / "BBa.xf")
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() < 1e-4  # every view has a transform, as tiltalign's
    determined = json.loads((tmp_path / "opt" / "alignment.json").read_text().split("\n", 1)[0][:-1]
                            .split(": ", 1)[1])["view_determined"]
    assert [k + 1 for k, d in enumerate(determined) if not d] == [1, 2, 61]


def test_exclude_views_with_the_default_model_leaves_their_points_out(imod_data, tmp_path):
    from napari_tomoalign.io import read_markers

    assert _align(imod_data, tmp_path / "opt", "--exclude-views", "30, 5-6") == 0
    table = read_markers(imod_data / "BBa.fid")
    keep = ~np.isin(table.view, [4, 5, 29])
    csv = tmp_path / "kept.csv"
    np.savetxt(csv, np.column_stack([table.view[keep], table.marker[keep], table.xy[keep]]), delimiter=",",
               header="view,marker,x,y", comments="", fmt=["%d", "%d", "%.3f", "%.3f"])
    w, h = table.image_size
    assert main(["align", str(csv), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--image-size", str(w), str(h),
                 "--output", str(tmp_path / "hand"), "--quiet"]) == 0
    a, b = read_xf(tmp_path / "opt" / "BBa.xf"), read_xf(tmp_path / "hand" / "kept.xf")
    ok = np.all(np.isfinite(b), axis=(1, 2))
    assert not ok[[4, 5, 29]].any() or np.allclose(a[~ok], b[~ok], equal_nan=True)
    assert np.abs(a[ok] - b[ok]).max() < 2e-3  # the same fit (the CSV's 3 decimals against the model's floats)


@pytest.mark.parametrize("views, message", [("0-2", "give view numbers from 1"), ("62", "not a view of this 61-view"),
                                            ("41-39", "41-39 runs backwards: write 39-41"),
                                            ("1-60", "at least two must stay")])
def test_bad_excluded_views_are_one_line_errors(imod_data, tmp_path, capsys, views, message):
    assert _align(imod_data, tmp_path / "o", "--exclude-views", views) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_excluded_views_are_named_as_excluded_not_as_empty(imod_data):
    """The default model names the views the user excluded as excluded (a view without markers would be
    "no markers at all"), and the fit is the one without their points."""
    from napari_tomoalign import align_markers
    from napari_tomoalign.io import read_markers

    table = read_markers(imod_data / "BBa.fid")
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    args = (table.view, table.marker, table.xy, tilts, table.image_size)
    al = align_markers(*args, excluded_views=[4, 5, 29], warn=False)
    assert any("views 5-6,30 excluded (--exclude-views)" in w for w in al.warnings)
    assert not any("no markers at all" in w for w in al.warnings)
    keep = ~np.isin(table.view, [4, 5, 29])
    by_hand = align_markers(table.view[keep], table.marker[keep], table.xy[keep], tilts, table.image_size,
                            warn=False)
    assert abs(al.rms_residual_px - by_hand.rms_residual_px) < 1e-9
    with pytest.raises(Exception, match="excluded view 62 is not a view"):
        align_markers(*args, excluded_views=[61], warn=False)
