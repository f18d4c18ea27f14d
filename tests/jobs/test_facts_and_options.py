"""The job layer's facts, each stated once (`jobs.facts`), and the solver's options declared once
(`jobs.solver_options`): the command line, ``batch``'s columns and the dock's values convert the same way."""

import argparse

import numpy as np
import pytest

from napari_tomoalign.alignment.options import AlignmentOptions, VariableOption
from napari_tomoalign.errors import UsageError
from napari_tomoalign.jobs import facts
from napari_tomoalign.jobs.solver_options import (
    SOLVER_OPTIONS,
    add_solver_arguments,
    option_values,
    settings_from_args,
    solver_settings,
)


def test_one_default_thickness_for_reconstruct_run_batch_and_the_dock():
    # a quarter of the larger side, or every marker inside with 10% + 16 px on each side (even), at most 4 x
    assert facts.default_thickness_px((4096, 4096), None) == 1024
    assert facts.default_thickness_px((512, 512), 10.0) == 128
    assert facts.default_thickness_px((512, 512), 200.0) == 2 * int(np.ceil((1.1 * 200 + 16) / 1)) // 1
    assert facts.default_thickness_px((100, 60), 1e6) == 400


def test_one_bead_diameter_range_and_nm_through_the_pixel_size():
    assert facts.bead_diameter_px(None, 12.5, None) == 12.5
    assert facts.bead_diameter_px(10.0, None, 0.8, image_size=(4096, 4096)) == pytest.approx(12.5)
    for nm, px, pix in ((None, 1.0, None), (None, 250.0, None), (10.0, 5.0, 0.8), (None, None, 1.0)):
        with pytest.raises(UsageError):
            facts.bead_diameter_px(nm, px, pix)
    with pytest.raises(UsageError, match="records no pixel size"):
        facts.bead_diameter_px(10.0, None, None)
    with pytest.raises(UsageError, match="not Angstrom"):
        facts.bead_diameter_px(100.0, None, 0.2, image_size=(512, 512))  # 500 px: an Angstrom slip
    assert facts.pixel_size_nm(None, 0.0) is None and facts.pixel_size_nm(None, 2.02) == pytest.approx(0.202)
    with pytest.warns(UserWarning, match="using 0.5 nm/px as given"):
        assert facts.pixel_size_nm(0.5, 2.02) == 0.5


def test_the_command_line_batch_and_the_dock_convert_options_alike():
    values = {"tilt_axis": "-12.5", "rotation": "group:4", "tilt": "one", "magnification": "fixed",
              "reference_view": "3", "no_initial_stage": "yes", "robust_tracks": "1", "robust_scale": "2.5",
              "max_iterations": "50", "axis_z_shift": "17.2"}
    from_table = solver_settings(values)  # batch: text cells
    p = argparse.ArgumentParser()
    add_solver_arguments(p)
    argv = [x for k, v in values.items() for x in ([f"--{k.replace('_', '-')}"] + ([] if v in ("yes", "1") else [v]))]
    from_cli = settings_from_args(p.parse_args(argv))
    o = from_table.options
    assert from_cli == from_table
    assert o == AlignmentOptions(rotation=VariableOption("group", 4), tilt="one", magnification="fixed",
                                 tilt_axis_deg=-12.5, reference_view=2, initial_stage=False, robust=True,
                                 robust_tracks=True, robust_scale=2.5, max_iterations=50)
    assert from_table.axis_z_shift_px == 17.2 and from_table.any_model_option
    back = solver_settings(option_values(o, 17.2))  # the dock's way back and forth
    assert back.options == o and back.axis_z_shift_px == 17.2
    assert {a.name for a in SOLVER_OPTIONS} == set(option_values(o))


def test_empty_values_leave_the_defaults_and_bad_values_name_the_option():
    assert solver_settings({"rotation": "", "robust": None}).options == AlignmentOptions()
    assert not solver_settings({}).any_model_option
    with pytest.raises(UsageError, match="--max-iterations 'many'"):
        solver_settings({"max_iterations": "many"})
    with pytest.raises(UsageError, match="numbers views from 1"):
        solver_settings({"reference_view": "0"})
    with pytest.raises(UsageError, match="--reference-view 62 is not a view of this 61-view series"):
        solver_settings({"reference_view": 62}).check_views(61)


def test_one_gold_erasure_from_memory_or_from_a_folder_with_a_prexg(imod_data, tmp_path):
    """The in-memory alignment (as `run` erases) and the saved folder (as `aligned-stack --erase-gold` erases)
    put the beads at the same raw-stack positions, the .prexg undone in both."""
    from napari_tomoalign.jobs.align import align_job, run_align_job
    from napari_tomoalign.reconstruction.erase import GoldEraser

    job = align_job(imod_data / "BBa.fid", imod_data / "BBa.rawtlt", prexg=imod_data / "BBa.prexg")
    res = run_align_job(job, tmp_path / "al")
    mem = GoldEraser.from_alignment(res.alignment, 8.0, prexg=job.prexg)
    disk = GoldEraser.from_folder(tmp_path / "al", 8.0, res.alignment.n_views)
    plain = GoldEraser.from_alignment(res.alignment, 8.0)
    moved = 0.0
    for j in range(res.alignment.n_views):
        a, b = mem.positions(j), disk.positions(j)
        assert a.shape == b.shape and (len(a) == 0 or np.abs(a - b).max() < 1e-3)
        moved = max(moved, float(np.abs(a - plain.positions(j)).max()) if len(a) else 0.0)
    assert moved > 1.0  # without the .prexg the beads would be erased in the wrong places
    img = np.random.default_rng(1).normal(100.0, 5.0, (512, 512)).astype(np.float32)
    np.testing.assert_array_equal(mem(30, img), mem(30, img))  # view j's noise is seeded by (seed, j)


def test_a_given_pixel_size_that_the_header_contradicts_is_used_and_said(capsys):
    """New user's finding (session 10): --pixel-size-nm 0.4 on a 0.8 nm/px stack halved every output's scale
    without a word; and 0 was blamed on the file. Now: used (it is the way to mend a wrong header), and said."""
    import warnings

    from napari_tomoalign.cli import main

    with pytest.warns(UserWarning, match=r"header says 0\.8 nm/px; using 0\.4 nm/px as given"):
        assert facts.pixel_size_nm(0.4, 8.0) == 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert facts.pixel_size_nm(0.802, 8.0) == 0.802  # within 1 %: the same pixel size, said more precisely
        assert facts.pixel_size_nm(0.4, None) == 0.4 and facts.pixel_size_nm(None, 8.0) == 0.8
    for command in (["track", "x.st", "--bead-diameter-nm", "10"], ["run", "x.st", "--bead-diameter-nm", "10"],
                    ["align", "x.fid", "--tilt-angles", "x.tlt"]):
        code = main([*command, "--output", "o", "--pixel-size-nm", "0"])
        err = capsys.readouterr().err
        assert code == 2 and "--pixel-size-nm" in err and "positive number of nanometres" in err, err


def test_run_to_folder_takes_the_command_lines_options(monkeypatch, tmp_path):
    """New user's finding (session 10): the README calls run_to_folder 'the job of the command line', but it had
    no --memory, --patches, --clumps, --polarity or --mode."""
    import napari_tomoalign.jobs.run as run
    from napari_tomoalign.io.mrc import write_mrc

    write_mrc(tmp_path / "s.st", np.zeros((3, 64, 96), np.float32), 8.0)  # the default binning reads its header
    jobs = []
    monkeypatch.setattr(run, "run_job", lambda job, **kw: jobs.append(job))
    run.run_to_folder(tmp_path / "s.st", tmp_path / "o", bead_diameter_nm=10, clumps="track", dark=False,
                      ali_mode="float32", memory_bytes=2**30)
    run.run_to_folder(tmp_path / "s.st", tmp_path / "o", patches=True)
    beads, patches = jobs
    assert (beads.clumps, beads.dark, beads.ali_mode, beads.memory_bytes, beads.patches) == (
        "track", False, "float32", 2**30, False)
    assert patches.patches and patches.clumps == "skip" and patches.memory_bytes is None
    assert beads.binning == patches.binning == 2  # the command line's default for a small stack
