"""The align job's checks at the file boundary: a tilt file from another run is refused before any solve."""

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io import read_markers


def test_an_imod_model_records_the_view_count_of_its_stack(imod_data):
    table = read_markers(imod_data / "BBa.fid")
    assert table.n_views == 61 and int(table.view.max()) < 61


def test_a_tilt_file_of_another_length_is_refused(imod_data, tmp_path, capsys):
    angles = np.loadtxt(imod_data / "BBa.rawtlt")
    long = tmp_path / "long.rawtlt"
    np.savetxt(long, np.concatenate([angles, angles]), fmt="%.2f")
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(long), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "holds 122 tilt angles" in err and "61-view stack" in err
    assert not (tmp_path / "out").exists()


def test_the_right_tilt_file_still_aligns(imod_data, tmp_path):
    rc = main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--output",
               str(tmp_path / "out"), "--quiet"])
    assert rc == 0 and len(np.loadtxt(tmp_path / "out" / "BBa.tlt")) == 61


def test_an_image_size_other_than_the_models_is_refused(imod_data, tmp_path, capsys):
    """New user's finding (session 9): --image-size 1024 1024 silently replaced the 512 x 512 BBa.fid records."""
    args = ["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--quiet"]
    rc = main([*args, "--image-size", "1024", "1024", "--output", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 2 and "records an image size of 512 x 512, not 1024 x 1024" in err and err.count("\n") == 1
    assert not (tmp_path / "a").exists()
    assert main([*args, "--image-size", "512", "512", "--output", str(tmp_path / "b")]) == 0  # the same: fine


def test_an_alignment_that_did_not_converge_is_named_when_it_is_used(imod_data, tmp_path):
    """New user's finding (session 9): aligned-stack and reconstruct used a non-converged folder without a word."""
    from napari_tomoalign.io.mrc import write_mrc

    stack = tmp_path / "BBa.st"
    write_mrc(stack, np.zeros((61, 512, 512), np.float32), 20.2)
    args = ["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--quiet"]
    assert main([*args, "--max-iterations", "1", "--output", str(tmp_path / "a")]) == 3
    assert main([*args, "--output", str(tmp_path / "b")]) == 0
    import pytest

    from napari_tomoalign import aligned_stack_to_file
    from napari_tomoalign.errors import AlignmentWarning

    with pytest.warns(AlignmentWarning, match="did not converge; its transforms are used as they are"):
        aligned_stack_to_file(stack, tmp_path / "a", tmp_path / "a.ali", binning=4)
    aligned_stack_to_file(stack, tmp_path / "b", tmp_path / "b.ali", binning=4)  # converged: no warning (errors here)
