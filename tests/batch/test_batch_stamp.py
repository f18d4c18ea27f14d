"""A batch series' run stamp (`batch.stamp`): a folder holds one run's files, a resumed batch never keeps results
of other inputs or options, a torn run is redone, and files no batch wrote are replaced only with force. The
worker's function (`process_series`) is called directly: no cluster needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from napari_tomoalign.batch import discover, is_finished, process_series
from napari_tomoalign.batch.stamp import KEPT, STAMP, begin, discard_unfinished
from napari_tomoalign.io.markers import MarkerTable, write_markers_csv
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.simulation.markers import simulate_markers


def _series(folder: Path, name: str = "ts00", seed: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    s = simulate_markers(n_views=25, n_markers=12, image_size=(512, 512), noise_px=0.3, seed=seed)
    write_markers_csv(folder / f"{name}_markers.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size))
    write_tilt_angles(folder / f"{name}.tlt", s.nominal_tilt_angles_deg)
    table = folder / "series.csv"
    table.write_text(f"name,markers,tilt_angles,image_width,image_height\n{name},{name}_markers.csv,{name}.tlt,512,512\n")
    return table


@pytest.fixture
def batch(tmp_path):
    table = _series(tmp_path / "in")
    spec = discover(table)[0]
    out = tmp_path / "out"
    out.mkdir()
    return spec, out


def _files(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}


def test_a_finished_run_is_stamped_last_and_skipped_until_an_input_option_or_output_changes(batch):
    spec, out = batch
    opts = {"pixel_size_nm": 0.8, "magnification": "fixed"}
    row = process_series(spec, str(out), opts, ("aretomo",))
    assert row["status"] == "done" and row["notes"] == ""
    d = out / spec.name
    info = json.loads((d / STAMP).read_text())
    assert info["state"] == "finished" and info["export"] == ["aretomo"]
    assert set(info["outputs"]) == _files(d) - {STAMP} and "ts00.aln" in info["outputs"]
    assert info["inputs"]["markers"]["size"] == spec.markers.stat().st_size
    assert is_finished(spec, out, ("aretomo",), opts) and is_finished(spec, out, (), opts)
    assert not is_finished(spec, out, ("relion",), opts)  # a new export: redone
    assert not is_finished(spec, out, ("aretomo",), {**opts, "pixel_size_nm": 0.5})  # another option
    assert is_finished(spec, out, ("aretomo",), {**opts, "beads": "6"})  # a run-path option: not this series'
    os.utime(spec.tilt_angles, ns=(spec.tilt_angles.stat().st_mtime_ns - 10**9,) * 2)  # older, but not the same
    assert not is_finished(spec, out, ("aretomo",), opts)


def test_changed_options_redo_the_series_and_leave_one_runs_files(batch):
    """New user's finding 10: the re-run without the exports kept the old .aln beside the new alignment."""
    spec, out = batch
    d = out / spec.name
    process_series(spec, str(out), {"pixel_size_nm": 0.8}, ("aretomo", "cdp"))
    assert {"ts00.aln", "ts00_portal.json"} <= _files(d)
    row = process_series(spec, str(out), {"pixel_size_nm": 0.8, "tilt_axis": "80"}, ())
    assert row["status"] == "done" and row["notes"] == "redone: options changed since the last run"
    assert not {"ts00.aln", "ts00_portal.json"} & _files(d)  # the earlier run's exports are gone with it
    info = json.loads((d / STAMP).read_text())
    assert info["options"]["tilt_axis"] == "80" and set(info["outputs"]) == _files(d) - {STAMP}


def test_an_edited_output_or_a_torn_run_is_redone_never_kept(batch):
    spec, out = batch
    d = out / spec.name
    process_series(spec, str(out), {}, ())
    xf = d / "ts00.xf"
    xf.write_text(xf.read_text().replace("0", "1", 1))  # another run's (or a hand-edited) file in its place
    assert not is_finished(spec, out, (), {})
    row = process_series(spec, str(out), {}, ())
    assert row["notes"] == "redone: ts00.xf changed since the run that wrote it"
    first = _files(d)
    # A run torn after its first file (SIGKILL, power cut): the stamp says started, the finished run is kept aside.
    from napari_tomoalign.batch.task import output_paths

    begin(spec, d, output_paths(spec, out, (), {}), {}, (), "align", False)
    (d / "ts00.xf").write_text("torn\n")
    assert not is_finished(spec, out, (), {})
    kept = {f for f in _files(d) if f.startswith(f"{KEPT}/")}
    assert _files(d) - kept == {STAMP, "ts00.xf"}  # one (torn) run's files in the folder
    assert {f.removeprefix(f"{KEPT}/") for f in kept} == first  # the finished run's, whole, aside
    row = process_series(spec, str(out), {}, ())
    assert row["status"] == "done" and row["notes"] == "redone: the previous run did not finish"
    assert _files(d) == first and is_finished(spec, out, (), {})


def test_a_forced_rerun_that_fails_or_is_stopped_puts_the_finished_run_back(batch, monkeypatch):
    """New user's finding (session 9): Ctrl-C during ``batch --force`` deleted finished series."""
    spec, out = batch
    d = out / spec.name
    process_series(spec, str(out), {}, ())
    before = {f: (d / f).read_bytes() for f in _files(d)}
    import napari_tomoalign.batch.task as task

    def broken(spec, out, *a, **k):
        (out / "ts00.xf").write_text("half of a new run\n")
        raise OSError("disk full")

    monkeypatch.setattr(task, "_align", broken)
    row = process_series(spec, str(out), {}, (), force=True)
    assert row["status"] == "failed" and row["notes"] == "the earlier finished run's files are kept"
    assert {f: (d / f).read_bytes() for f in _files(d)} == before and is_finished(spec, out, (), {})
    # Stopped: the batch discards the started run once its workers are gone.
    from napari_tomoalign.batch.task import output_paths

    begin(spec, d, output_paths(spec, out, (), {}), {}, (), "align", True)
    (d / "ts00.xf").write_text("half\n")
    assert discard_unfinished(d)
    assert {f: (d / f).read_bytes() for f in _files(d)} == before and is_finished(spec, out, (), {})


def test_files_no_batch_stamped_are_replaced_only_with_force(batch):
    spec, out = batch
    d = out / spec.name
    d.mkdir()
    (d / "ts00.xf").write_text("etomo's own\n")
    (d / "notes.txt").write_text("the user's\n")
    row = process_series(spec, str(out), {}, ())
    assert row["status"] == "failed" and (d / "ts00.xf").read_text() == "etomo's own\n"
    assert row["error"].startswith(str(d)) and "no batch run stamped (ts00.xf)" in row["error"]
    assert "--force" in row["error"] and "\n" not in row["error"] and "Error:" not in row["error"]
    row = process_series(spec, str(out), {}, (), force=True)
    assert row["status"] == "done" and row["notes"] == "redone: --force"
    # The user's own file is not the run's: kept, and not listed (a later re-run leaves it alone too).
    assert (d / "notes.txt").read_text() == "the user's\n"
    assert "notes.txt" not in json.loads((d / STAMP).read_text())["outputs"]
    process_series(spec, str(out), {"tilt_axis": "80"}, ())
    assert (d / "notes.txt").is_file()


def test_a_stopped_run_is_discarded_with_the_temporaries_of_its_dead_workers(batch):
    spec, out = batch
    d = out / spec.name
    from napari_tomoalign.batch.task import output_paths

    begin(spec, d, output_paths(spec, out, (), {}), {}, (), "align", False)
    (d / "ts00.xf").write_text("half\n")
    (d / "sub").mkdir()
    dead = 2**22 + 12345  # beyond pid_max's default: no such process
    (d / "sub" / f".ts00.tlt.{dead}.abcdefgh.tmp").write_text("x")
    discard_unfinished(d)
    assert not (d / "ts00.xf").exists() and not (d / STAMP).exists()
    assert not list(d.rglob("*.tmp"))
