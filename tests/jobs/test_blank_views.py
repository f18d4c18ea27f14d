"""``aligned-stack`` says how many views an alignment warped and how many it filled blank, and why (s15 new user: "41
aligned views" while the excluded views were all fill). Known truth: the views excluded with --exclude-views are the
ones the output holds constant, and the count and list are theirs."""

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import open_tilt_series, write_mrc


def test_aligned_stack_counts_blank_views_apart_and_says_why(imod_data, tmp_path, capsys):
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--exclude-views",
                 "5-6,30", "--output", str(tmp_path / "al"), "--quiet"]) == 0
    stack = tmp_path / "BBa.preali"  # noise of the markers' frame: every warped view varies, a blank one does not
    write_mrc(stack, np.random.default_rng(1).normal(100, 10, (61, 512, 512)).astype(np.float32), 20.2)
    out = tmp_path / "a.ali"
    assert main(["aligned-stack", str(stack), "--alignment", str(tmp_path / "al"), "--output", str(out), "--bin", "4"]) == 0
    said = capsys.readouterr().out
    assert "wrote" in said and "61 views (58 aligned) of 128 x 128" in said and "3 filled blank (views 5-6,30: not in" \
        " the alignment's fit, excluded or without markers, as its report says): give IMOD's tilt EXCLUDELIST 5-6,30" \
        " for this stack" in said, said
    ali = np.asarray(open_tilt_series(out, find_tilts=False).data)
    blank = [k + 1 for k in range(61) if np.ptp(ali[k]) == 0]
    assert blank == [5, 6, 30]
    capsys.readouterr()
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--output", str(tmp_path / "all"), "--quiet"]) == 0
    assert main(["aligned-stack", str(stack), "--alignment", str(tmp_path / "all"), "--output", str(tmp_path / "b.ali"),
                 "--bin", "4"]) == 0
    said = capsys.readouterr().out
    assert "61 aligned views of 128 x 128" in said and "blank" not in said  # every view warped: as before


def test_a_view_without_markers_is_counted_blank_too(imod_data, tmp_path, capsys):
    from napari_tomoalign.io import read_markers

    table = read_markers(imod_data / "BBa.fid")
    keep = np.asarray(table.view) != 9  # view 10 (from 1) loses all its points
    csv = tmp_path / "m.csv"
    np.savetxt(csv, np.column_stack([np.asarray(table.view)[keep], np.asarray(table.marker)[keep],
                                     np.asarray(table.xy)[keep]]),
               delimiter=",", header="view,marker,x,y", comments="", fmt=["%d", "%d", "%.3f", "%.3f"])
    w, h = table.image_size
    assert main(["align", str(csv), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--image-size", str(w), str(h),
                 "--exclude-views", "30", "--output", str(tmp_path / "al"), "--quiet"]) == 0
    stack = tmp_path / "BBa.preali"
    write_mrc(stack, np.random.default_rng(2).normal(100, 10, (61, 512, 512)).astype(np.float32), 20.2)
    capsys.readouterr()
    assert main(["aligned-stack", str(stack), "--alignment", str(tmp_path / "al"), "--output", str(tmp_path / "a.ali"),
                 "--bin", "4"]) == 0
    said = capsys.readouterr().out
    assert "61 views (59 aligned)" in said and "2 filled blank (views 10,30: not in the alignment's fit" in said \
        and "EXCLUDELIST 10,30 for this stack" in said, said
