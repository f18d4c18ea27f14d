"""Local alignments as the command line runs them (`local_jobs`), on IMOD's tutorial axis a."""

from __future__ import annotations

import numpy as np
import pytest
from support.paths import DATA

from napari_tomoalign.errors import UsageError
from napari_tomoalign.local_jobs import find_local_file, local_file_name, solve_local, wants_local


@pytest.fixture(scope="module")
def bba_global():
    from napari_tomoalign.alignment.solver import align_markers_imod
    from napari_tomoalign.io.markers import read_markers
    from napari_tomoalign.io.tilt_sources import read_tilt_angles

    m = read_markers(DATA / "BBa.fid")
    raw = read_tilt_angles(DATA / "BBa.rawtlt")
    al = align_markers_imod(m.view, m.marker, m.xy, raw, m.image_size, DATA / "aligna.com")
    return m, raw, al


def test_aligna_local_options_reach_imods_local_mean(bba_global):
    m, raw, al = bba_global
    job = solve_local(al, m.view, m.xy, raw, "BBa", DATA / "aligna.com", 0.0)
    s = job.summary()
    assert s["file"] == "BBalocal.xf"  # aligna.com's OutputLocalFile
    assert s["patches"] == 25 and s["patch_grid"] == [5, 5]
    assert s["mean_residual_px"] <= 0.289  # IMOD: 0.289 with the tutorial's surface analysis
    lo, hi = s["residual_range_px"]
    assert 0.25 < lo < hi < 0.32
    # the local file carries every view of every patch, with the Z factors aligna.com asks for
    lt = job.result.local_transforms
    assert lt.transforms.shape[:2] == (25, len(raw)) and lt.z_factors is not None
    assert np.all(np.isfinite(lt.transforms))


def test_without_a_command_file_the_etomo_defaults_are_used(bba_global):
    m, raw, al = bba_global
    job = solve_local(al, m.view, m.xy, raw, "BBa", None, 17.2)
    assert job.file_name == "BBalocal.xf" and job.result.options.fix_xyz
    assert job.result.options.codes["rotation"] == 3 and job.result.mean_residual_px < 0.30


def test_command_file_switches(tmp_path):
    assert not wants_local(DATA / "aligna.com")  # LocalAlignments 0
    com = tmp_path / "align.com"
    com.write_text((DATA / "aligna.com").read_text().replace("LocalAlignments\t0", "LocalAlignments\t1")
                   .replace("OutputLocalFile\tBBalocal.xf", "OutputLocalFile\t/elsewhere/mylocal.xf"))
    assert wants_local(com)
    assert local_file_name("BBa", com) == "mylocal.xf"  # written beside the other outputs, by its name
    assert local_file_name("BBa") == "BBalocal.xf"


def test_finding_the_local_file(tmp_path):
    with pytest.raises(UsageError, match="align with --local first"):
        find_local_file(tmp_path, None)
    (tmp_path / "BBalocal.xf").write_text("x")
    with pytest.raises(UsageError, match="BBalocal.xf is not part of it"):  # the stamp names no local file
        find_local_file(tmp_path, None)
    (tmp_path / "otherlocal.xf").write_text("x")
    assert find_local_file(tmp_path, "otherlocal.xf").name == "otherlocal.xf"
    with pytest.raises(UsageError, match="missing"):
        find_local_file(tmp_path, "gone.xf")


def test_run_with_local_alignments_takes_a_memory_budget_as_reconstruct_local_does(tmp_path):
    """`run --imod-com` with LocalAlignments 1 and --memory: refused from session 10 (the local tomogram was made in
    memory, whatever the budget), taken since session 19 (the local WBP is streamed in slabs as the global one)."""
    from napari_tomoalign.jobs.run import RunJob

    com = tmp_path / "align.com"
    com.write_text((DATA / "aligna.com").read_text().replace("LocalAlignments\t0", "LocalAlignments\t1"))
    assert RunJob(tmp_path / "s.st", tmp_path / "o", bead_diameter_nm=10, imod_com=com,
                  memory_bytes=2**30).memory_bytes == 2**30
    assert RunJob(tmp_path / "s.st", tmp_path / "o", bead_diameter_nm=10, imod_com=DATA / "aligna.com",
                  memory_bytes=2**30).memory_bytes == 2**30
