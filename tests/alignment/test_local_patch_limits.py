"""An align.com's local patch grid is bounded: a grid of millions of patches (each a solve of its own) is
refused in one line before any work, where it used to run for hours."""
import time

import numpy as np
import pytest

from napari_tomoalign.alignment.local_options import MAX_PATCHES_PER_AXIS, local_options_from_com, patch_grid
from napari_tomoalign.cli import main
from napari_tomoalign.errors import AlignmentError


@pytest.mark.parametrize("counts", ["3000,3000", "101,5", "0,5", "2.5,5", "-3,4"])
def test_patch_counts_beyond_the_limit_are_refused(counts):
    with pytest.raises(AlignmentError, match=f"from 1 to {MAX_PATCHES_PER_AXIS} per axis"):
        local_options_from_com({"NumberOfLocalPatchesXandY": [counts]})


def test_counts_within_the_limit_are_kept():
    assert local_options_from_com({"NumberOfLocalPatchesXandY": ["100,3"]}).n_patches == (100, 3)
    assert local_options_from_com({"NumberOfLocalPatchesXandY": ["5,5"]}).n_patches == (5, 5)


@pytest.mark.parametrize("target", ["0,700", "nan,700"])
def test_unusable_target_sizes_are_refused(target):
    with pytest.raises(AlignmentError, match="TargetPatchSizeXandY"):
        local_options_from_com({"TargetPatchSizeXandY": [target]})


def test_a_tiny_target_size_over_a_wide_extent_is_refused():
    """Target mode's count comes from the fiducials' extent: 1 px targets over 4096 px is refused too."""
    opts = local_options_from_com({"TargetPatchSizeXandY": ["1,1"], "MinSizeOrOverlapXandY": ["0.5,0.5"]})
    xy = np.array([[10.0, 10.0], [4000.0, 4000.0]])
    with pytest.raises(AlignmentError, match="gives .* patches along X"):
        patch_grid(opts, (4096, 4096), xy)


def test_align_refuses_a_huge_grid_in_an_align_com_before_any_work(imod_data, tmp_path, capsys):
    com = tmp_path / "a.com"
    text = (imod_data / "aligna.com").read_text()
    text = text.replace("LocalAlignments\t0", "LocalAlignments\t1").replace(
        "NumberOfLocalPatchesXandY\t5,5", "NumberOfLocalPatchesXandY\t3000,3000")
    assert "3000,3000" in text and "LocalAlignments\t1" in text
    com.write_text(text)
    out = tmp_path / "o"
    start = time.perf_counter()
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
               "--imod-com", str(com), "--local", "--output", str(out)])
    assert time.perf_counter() - start < 20  # it hung for hours (each of 9 million patches is a solve)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and f"{com}: NumberOfLocalPatchesXandY '3000,3000'" in err, err
    assert not out.exists()


def test_run_refuses_the_grid_before_tracking(imod_data, tmp_path, capsys):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.io.tilts import write_tilt_angles

    com = tmp_path / "a.com"
    com.write_text((imod_data / "aligna.com").read_text().replace("LocalAlignments\t0", "LocalAlignments\t1")
                   .replace("NumberOfLocalPatchesXandY\t5,5", "NumberOfLocalPatchesXandY\t5,3000"))
    stack, tlt = tmp_path / "s.mrc", tmp_path / "s.tlt"
    write_mrc(stack, np.zeros((5, 64, 64), np.float32), 5.0)
    write_tilt_angles(tlt, np.linspace(-40, 40, 5))
    out = tmp_path / "o"
    rc = main(["run", str(stack), "--tilt-angles", str(tlt), "--bead-diameter-nm", "10", "--imod-com", str(com),
               "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "NumberOfLocalPatchesXandY '5,3000'" in err and err.count("tomoalign: error") == 1, err
    assert not out.exists()
