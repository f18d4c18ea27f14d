"""tomoalign batch: four simulated series on a dask cluster, one broken; resume; a scheduler in other processes;
a mixed batch where a raw stack without markers is tracked (the run path) next to one with markers."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_tomoalign.batch import discover, run_batch
from napari_tomoalign.batch.cli import add_batch_arguments, cmd_batch
from napari_tomoalign.batch.summary import flag_outliers
from napari_tomoalign.io.markers import MarkerTable, write_markers_csv
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.simulation.markers import simulate_markers

distributed = pytest.importorskip("distributed")

NOISE = 0.3


def _make_batch(folder: Path, n: int = 4, broken: int | None = 2) -> tuple[Path, dict]:
    """``n`` simulated series and a CSV table; series ``broken`` has a tilt file one angle short."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    lines = ["name,markers,tilt_angles,image_width,image_height,tilt_axis"]
    for i in range(n):
        s = simulate_markers(n_views=25, n_markers=12, image_size=(512, 512), noise_px=NOISE, seed=10 + i)
        name = f"ts{i:02d}"
        write_markers_csv(folder / f"{name}_markers.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size))
        tilts = s.nominal_tilt_angles_deg[:-1] if i == broken else s.nominal_tilt_angles_deg
        write_tilt_angles(folder / f"{name}.tlt", tilts)
        lines.append(f"{name},{name}_markers.csv,{name}.tlt,512,512,85")
        truth[name] = s
    table = folder / "series.csv"
    table.write_text("\n".join(lines) + "\n")
    return table, truth


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    # a free port: dashboard_address="127.0.0.1:0" still binds 8787 in this distributed, and warns when it is taken
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as c:
            yield c


def _summary(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_three_land_one_is_reported_and_a_rerun_skips_the_three(client, tmp_path):
    table, truth = _make_batch(tmp_path / "in")
    out = tmp_path / "out"
    res = run_batch(table, out, client=client, progress=False)
    status = {r["name"]: r["status"] for r in res.rows}
    assert status == {"ts00": "done", "ts01": "done", "ts02": "failed", "ts03": "done"}
    bad = next(r for r in res.rows if r["name"] == "ts02")
    assert "only 24 tilt angles" in bad["error"] and "\n" not in bad["error"]  # the count mismatch, in one line
    rows = _summary(out / "summary.csv")
    assert [r["name"] for r in rows] == ["ts00", "ts01", "ts02", "ts03"]
    for r in rows:
        if r["status"] != "done":
            continue
        # sqrt(2) x noise per coordinate, less the unknowns' share: the truth the simulation put in
        assert 0.8 * NOISE * np.sqrt(2) * 0.85 < float(r["rms_residual_px"]) < 1.2 * NOISE * np.sqrt(2)
        assert int(r["n_markers"]) == 12 and int(r["n_views"]) == 25 and r["error"] == ""
        info = json.loads((out / r["name"] / "alignment.json").read_text())
        s = truth[r["name"]]
        err = np.abs(np.asarray(info["views"]["tilt_angle_deg"]) - s.true_tilt_angles_deg)
        assert np.median(err) < 0.3  # solved tilts near the true ones (nominal ones are 0.3 deg off)
    assert rows[2]["outlier"] == "true"
    if importlib.util.find_spec("matplotlib"):
        assert res.summary_png == out / "summary.png" and (out / "summary.png").stat().st_size > 1000

    again = run_batch(table, out, client=client, progress=False)
    assert {r["name"]: r["status"] for r in again.rows} == {"ts00": "skipped", "ts01": "skipped", "ts02": "failed",
                                                            "ts03": "skipped"}
    first = {r["name"]: r["rms_residual_px"] for r in res.rows}
    assert all(r["rms_residual_px"] == pytest.approx(first[r["name"]], rel=1e-5) for r in again.rows
               if r["status"] == "skipped")

    later = time.time() + 5
    os.utime(tmp_path / "in" / "ts01.tlt", (later, later))  # an input newer than the outputs: redone
    third = run_batch(table, out, client=client, progress=False)
    assert [r["status"] for r in third.rows] == ["skipped", "done", "failed", "skipped"]
    forced = run_batch(table, out, client=client, progress=False, force=True)
    assert [r["status"] for r in forced.rows] == ["done", "done", "failed", "done"]


def test_folder_and_glob_and_missing_markers(client, tmp_path):
    _make_batch(tmp_path / "in", n=2, broken=None)
    (tmp_path / "in" / "lonely.tlt").write_text("0\n")
    specs = discover(tmp_path / "in")
    assert [s.name for s in specs] == ["ts00", "ts01"]
    assert specs[0].tilt_angles == tmp_path / "in" / "ts00.tlt"
    res = run_batch(str(tmp_path / "in" / "*_markers.csv"), tmp_path / "out", client=client, progress=False,
                    options={"tilt_axis": 85})
    assert [r["status"] for r in res.rows] == ["failed", "failed"]  # CSV markers without a size: said so
    assert "image size" in res.rows[0]["error"]
    from napari_tomoalign.batch import SeriesSpec

    spec = SeriesSpec("beads", stack=tmp_path / "in" / "beads.mrc")
    res = run_batch([spec], tmp_path / "out2", client=client, progress=False)
    assert res.rows[0]["status"] == "no-markers" and "no bead diameter" in res.rows[0]["error"]


def test_outliers_are_flagged():
    rows = [{"name": f"s{i}", "status": "done", "rms_residual_px": 0.4 + 0.01 * i} for i in range(8)]
    rows.append({"name": "bad", "status": "done", "rms_residual_px": 2.0})
    assert flag_outliers(rows) == [False] * 8 + [True]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"})


def test_a_scheduler_and_a_worker_in_their_own_processes(tmp_path, cryo):
    """Two series with markers and one raw stack tracked with the batch-wide --bead-diameter-px, on a worker in
    another process."""
    _make_batch(tmp_path / "in", n=2, broken=None)
    _write_stack(tmp_path / "in", "raw", cryo, cryo.pixel_size_nm)
    table = tmp_path / "in" / "mixed.csv"
    table.write_text("name,stack,markers,tilt_angles,image_width,image_height\n"
                     "ts00,,ts00_markers.csv,ts00.tlt,512,512\nts01,,ts01_markers.csv,ts01.tlt,512,512\nraw,raw.st,,,,\n")
    sched_file = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                     str(sched_file)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), (tmp_path / "scheduler.log").read_text()[-2000:]
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(_start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host",
                             "127.0.0.1"], tmp_path / "worker.log"))
        from dask.distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(1, timeout=60)
        parser = argparse.ArgumentParser()
        add_batch_arguments(parser)
        args = parser.parse_args([str(table), "--output", str(tmp_path / "out"), "--scheduler", address, "--quiet",
                                  "--robust", "--tilt-axis", "85", "--bead-diameter-px", f"{cryo.bead_diameter_px}",
                                  "--bin", "4"])
        assert cmd_batch(args) == 0
        rows = _summary(tmp_path / "out" / "summary.csv")
        assert [(r["name"], r["status"], r["path"]) for r in rows] == [("raw", "done", "run"), ("ts00", "done", "align"),
                                                                       ("ts01", "done", "align")]
        assert int(rows[0]["beads_tracked"]) >= 5 and float(rows[0]["rms_residual_px"]) < 0.5
        assert (tmp_path / "out" / "raw" / "raw_bin4.rec").is_file()
        info = json.loads((tmp_path / "out" / "ts00" / "alignment.json").read_text())
        assert info["options"]["robust"] is True and info["robust"] is not None
        assert (tmp_path / "out" / "ts00" / "ts00.xf").is_file()
    finally:
        # the worker first, and gone, before the scheduler: a worker whose scheduler closes under it while it
        # is closing waits for its connection's time-out (20 s of this test's 23 s were that wait)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def test_stacks_found_by_glob_give_size_and_pixel_size_on_a_default_local_cluster(tmp_path):
    """A glob of stacks: markers and tilts beside each, the size and pixel size from the memory-mapped header;
    run on the default LocalCluster (worker processes on 127.0.0.1), which announces its dashboard."""
    from napari_tomoalign.io.mrc import write_mrc

    folder = tmp_path / "in"
    folder.mkdir()
    s = simulate_markers(n_views=25, n_markers=12, image_size=(160, 128), noise_px=NOISE, seed=3)
    write_mrc(folder / "grid1.mrc", np.zeros((25, 128, 160), np.int8), 7.5)
    write_markers_csv(folder / "grid1_markers.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size))
    write_tilt_angles(folder / "grid1.tlt", s.nominal_tilt_angles_deg)
    notes: list[str] = []
    environ = dict(os.environ)
    res = run_batch(str(folder / "*.mrc"), tmp_path / "out", n_workers=1, progress=False, options={"tilt_axis": 85},
                    log=notes.append)
    assert [r["status"] for r in res.rows] == ["done"], res.rows[0]["error"]
    assert dict(os.environ) == environ  # the nanny's OMP_NUM_THREADS=1 etc. do not stay in this process
    info = json.loads((tmp_path / "out" / "grid1" / "alignment.json").read_text())
    assert info["image_size"] == [160, 128] and info["pixel_size_nm"] == pytest.approx(0.75)
    if importlib.util.find_spec("bokeh"):
        assert res.dashboard and res.dashboard.startswith("http://127.0.0.1:")
        assert any("dashboard" in n for n in notes)


def test_export_to_other_tools_and_a_session_tomograms_star(client, tmp_path):
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.io.convert import read_any

    table, _ = _make_batch(tmp_path / "in", n=3, broken=None)
    out = tmp_path / "out"
    opts = {"magnification": "fixed", "pixel_size_nm": 0.8}
    res = run_batch(table, out, client=client, progress=False, options=opts, export=("aretomo", "relion", "portal"))
    assert [r["status"] for r in res.rows] == ["done"] * 3
    # markers without a stack: RELION's tilt series can name no stack and give no dose, and the notes say so
    assert all(r["notes"].startswith("relion: the RELION tilt series names the stack NAME.mrc")
               and r["notes"].count("relion: ") == 2 and "(a stack column)" in r["notes"] for r in res.rows)
    assert all("relion: RELION's optics were not given and are written as voltage 300 kV" in r["notes"] for r in res.rows)
    for name in ("ts00", "ts01", "ts02"):
        ours = read_alignment_dir(out / name)
        assert (out / name / f"{name}.aln").is_file() and (out / name / f"{name}_portal.json").is_file()
        relion = read_any(out / "tomograms.star", "relion", name=name)
        assert relion.pixel_size_nm == pytest.approx(0.8)
        np.testing.assert_allclose(relion.transforms, ours.transforms, atol=2e-3)
        np.testing.assert_allclose(relion.tilt_angles_deg, ours.tilt_angles_deg, atol=6e-3)
    again = run_batch(table, out, client=client, progress=False, options=opts, export=("aretomo", "relion", "portal"))
    assert [r["status"] for r in again.rows] == ["skipped"] * 3
    more = run_batch(table, out, client=client, progress=False, options=opts, export=("aretomo", "relion", "imod"))
    assert [r["status"] for r in more.rows] == ["skipped"] * 3  # imod's .xf and .tlt are always there
    # done again without --export: each series' relion/ goes, and the session star that named it is moved aside
    # (new user's finding, session 13: RELION's import of the stale one failed)
    plain = run_batch(table, out, client=client, progress=False, options=opts, force=True)
    assert [r["status"] for r in plain.rows] == ["done"] * 3
    assert not (out / "ts00" / "relion" / "tilt_series" / "ts00.star").exists()
    assert not (out / "tomograms.star").exists() and (out / "tomograms.star~").is_file()
    assert any("tomograms.star named tilt series that are gone" in n for n in plain.notes)


# --- The run path: raw stacks without markers, tracked as by 'tomoalign run' ------------------------------------


@pytest.fixture(scope="module")
def cryo(tmp_path_factory):
    """A cryo-like series (10 nm gold at 0.8 nm/px, 256 x 256 x 21 views, Poisson noise) with its truth."""
    from napari_tomoalign.simulation.beads import make_bead_series

    return make_bead_series("cryo", 256, 21, seed=1)


def _write_stack(folder: Path, name: str, s, pixel_nm: float | None = None) -> Path:
    from napari_tomoalign.io.mrc import write_mrc

    folder.mkdir(parents=True, exist_ok=True)
    write_mrc(folder / f"{name}.st", s.images, None if pixel_nm is None else 10.0 * pixel_nm)
    write_tilt_angles(folder / f"{name}.rawtlt", s.tilt_angles_deg)
    return folder / f"{name}.st"


def _prediction_error(markers_csv: Path, predicted_csv: Path, s) -> tuple[float, float]:
    """Median distance of the tracked points to the true bead centres, and of the alignment's predictions (every
    view, tracked or not) to the true centres of the beads they were matched to."""
    from napari_tomoalign.io.markers import read_markers

    t = read_markers(markers_csv)
    d = np.hypot(*(t.xy[:, None, :] - s.true_xy[t.view]).transpose(2, 0, 1))  # (points, true beads)
    localisation = float(np.median(d.min(axis=1)))
    pred = np.loadtxt(predicted_csv, delimiter=",", skiprows=1)
    errs = []
    for m in np.unique(t.marker):
        bead = np.bincount(d[t.marker == m].argmin(axis=1)).argmax()  # the true bead this track follows
        p = pred[pred[:, 1] == m]
        v = p[:, 0].astype(int)
        keep = s.visible[v, bead]
        errs.append(np.hypot(*(p[keep, 2:4] - s.true_xy[v[keep], bead]).T))
    return localisation, float(np.median(np.concatenate(errs)))


def test_a_mixed_batch_tracks_the_stack_without_markers(client, tmp_path, cryo):
    """One series with markers (align), one raw stack with a bead diameter (run: tracked), one stack with neither:
    two land with real outputs, one is reported in one line, and a re-run skips the two."""
    from napari_tomoalign.io.mrc import open_tilt_series

    folder = tmp_path / "in"
    _make_batch(folder, n=1, broken=None)
    _write_stack(folder, "cryo", cryo, cryo.pixel_size_nm)
    _write_stack(folder, "bare", cryo, cryo.pixel_size_nm)
    table = folder / "session.csv"
    table.write_text("name,stack,markers,tilt_angles,image_width,image_height,bead_diameter_nm\n"
                     "ts00,,ts00_markers.csv,ts00.tlt,512,512,\n"
                     "cryo,cryo.st,,,,,10\n"
                     "bare,bare.st,,,,,\n")
    out = tmp_path / "out"
    res = run_batch(table, out, client=client, progress=False, options={"tilt_axis": 85})
    rows = {r["name"]: r for r in res.rows}
    assert {n: (r["status"], r["path"]) for n, r in rows.items()} == {
        "bare": ("no-markers", "none"), "cryo": ("done", "run"), "ts00": ("done", "align")}, res.rows
    assert "no bead diameter" in rows["bare"]["error"] and "\n" not in rows["bare"]["error"]

    run, d = rows["cryo"], out / "cryo"
    for name in ("cryo.fid", "cryo_markers.csv", "cryo_beads.csv", "alignment/alignment.json", "alignment/cryo.xf",
                 "cryo.ali", "cryo_bin2.rec", "tracking.json"):
        assert (d / name).is_file(), name
    localisation, prediction = _prediction_error(d / "cryo_markers.csv", d / "alignment" / "predicted.csv", cryo)
    assert localisation < 0.4 and prediction < 0.5  # pixels, against the simulated truth
    assert np.isfinite(run["rms_residual_px"]) and run["rms_residual_px"] < 0.5
    assert run["beads_tracked"] >= 5 and run["n_views"] == 21
    n_points = len(np.loadtxt(d / "cryo_markers.csv", delimiter=",", skiprows=1))
    beads = np.loadtxt(d / "cryo_beads.csv", delimiter=",", skiprows=1)
    assert run["points_tracked"] == n_points and run["beads_tracked"] == len(beads)
    assert run["tracking_flagged"] == int(beads[:, 7].sum()) <= 0.05 * n_points
    assert run["track_s"] > 0 and run["images_s"] > 0 and run["time_s"] >= run["track_s"] + run["solve_s"]
    assert run["kernel"] == "plain" and rows["ts00"]["kernel"] is None  # no local file, no X-axis tilt; no tomogram
    info = json.loads((d / "alignment" / "alignment.json").read_text())
    assert info["options"]["robust"] is True and info["pixel_size_nm"] == pytest.approx(0.8)
    assert info["inputs"]["markers"] == "tracked"
    ali = open_tilt_series(d / "cryo.ali", find_tilts=False)
    assert ali.data.shape == cryo.images.shape and ali.pixel_size_angstrom == pytest.approx(8.0)
    rec = open_tilt_series(d / "cryo_bin2.rec", find_tilts=False)
    assert rec.data.shape[1:] == (128, 128) and rec.pixel_size_angstrom == pytest.approx(16.0)
    align = rows["ts00"]
    assert align["n_markers"] == 12 and align["rms_residual_px"] < 1.2 * NOISE * np.sqrt(2)
    assert align["beads_tracked"] is None and (out / "ts00" / "ts00.xf").is_file()

    summary = {r["name"]: r for r in _summary(out / "summary.csv")}
    assert summary["cryo"]["beads_tracked"] == str(run["beads_tracked"]) and summary["ts00"]["beads_tracked"] == ""
    assert summary["bare"]["outlier"] == "true"

    again = run_batch(table, out, client=client, progress=False, options={"tilt_axis": 85})
    assert [(r["name"], r["status"]) for r in again.rows] == [("bare", "no-markers"), ("cryo", "skipped"),
                                                              ("ts00", "skipped")]
    skipped = again.rows[1]
    for k in ("rms_residual_px", "beads_tracked", "points_tracked", "tracking_flagged", "n_flagged"):
        assert skipped[k] == pytest.approx(run[k], rel=1e-5), k
    later = time.time() + 5
    os.utime(folder / "cryo.st", (later, later))  # a stack newer than its outputs: tracked again
    third = run_batch(table, out, client=client, progress=False, options={"tilt_axis": 85})
    assert [r["status"] for r in third.rows] == ["no-markers", "done", "skipped"]
    assert third.rows[1]["beads_tracked"] == run["beads_tracked"]


def test_run_options_and_bad_run_input_are_reported_per_series(client, tmp_path, cryo):
    """Batch-wide diameter in nm with the pixel size given (the header has none), gold erased, another binning; bad
    cells and a short tilt file fail their own series in one line."""
    folder = tmp_path / "in"
    _write_stack(folder, "plain", cryo)  # no pixel size in the header
    short = _write_stack(folder, "short", cryo)
    write_tilt_angles(short.with_suffix(".rawtlt"), cryo.tilt_angles_deg[:-1], overwrite=True)
    _write_stack(folder, "twice", cryo)
    _write_stack(folder, "badbin", cryo)
    table = folder / "t.csv"
    table.write_text("stack,bead_diameter_nm,bead_diameter_px,bin,erase_gold\n"
                     "plain.st,,,4,yes\nshort.st,,,,\ntwice.st,10,12.5,,\nbadbin.st,,,two,\n")
    out = tmp_path / "out"
    res = run_batch(table, out, client=client, progress=False,
                    options={"bead_diameter_nm": 10.0, "pixel_size_nm": 0.8, "beads": 6})
    rows = {r["name"]: r for r in res.rows}
    assert rows["plain"]["status"] == "done", rows["plain"]["error"]
    for name, words in (("short", "20 tilt angles"), ("twice", "twice"), ("badbin", "'two' is not a number")):
        assert rows[name]["status"] == "failed" and words in rows[name]["error"], rows[name]["error"]
        assert "\n" not in rows[name]["error"] and rows[name]["path"] == "run"
    d = out / "plain"
    assert (d / "plain_erased.mrc").is_file() and (d / "plain_bin4.rec").is_file()
    info = json.loads((d / "tracking.json").read_text())
    assert info["bead_diameter_px"] == pytest.approx(12.5, rel=0.05) and info["beads_tracked"] <= 6
    localisation, prediction = _prediction_error(d / "plain_markers.csv", d / "alignment" / "predicted.csv", cryo)
    assert localisation < 0.4 and prediction < 0.5
    again = run_batch(table, out, client=client, progress=False,
                      options={"bead_diameter_nm": 10.0, "pixel_size_nm": 0.8, "beads": 6})
    assert {r["name"]: r["status"] for r in again.rows}["plain"] == "skipped"
    moved = run_batch(table, out, client=client, progress=False,  # a batch-wide bin under the table's own
                      options={"bead_diameter_nm": 10.0, "pixel_size_nm": 0.8, "beads": 6, "bin": 2})
    assert {r["name"]: r["status"] for r in moved.rows}["plain"] == "skipped"  # the table's bin 4 wins
    # A forced re-run that fails half-way leaves no finished-looking folder behind, even with older inputs.
    tlt = folder / "plain.rawtlt"
    write_tilt_angles(tlt, cryo.tilt_angles_deg[:-1], overwrite=True)
    past = (folder / "plain.st").stat().st_mtime
    os.utime(tlt, (past, past))
    opts = {"bead_diameter_nm": 10.0, "pixel_size_nm": 0.8, "beads": 6}
    forced = run_batch(table, out, client=client, progress=False, options=opts, force=True)
    after = run_batch(table, out, client=client, progress=False, options=opts)
    assert forced.rows[1]["name"] == after.rows[1]["name"] == "plain"
    assert forced.rows[1]["status"] == after.rows[1]["status"] == "failed"


def test_batch_help_explains_both_paths_and_the_columns(capsys):
    from napari_tomoalign.cli import main

    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    text = capsys.readouterr().out
    for words in ("align ", "run ", "--bead-diameter-nm", "bead_diameter_px", "erase_gold", "tracking_flagged",
                  "no-markers", "--scheduler", "skipped unless --force"):
        assert words in text, words


def test_a_batch_in_which_a_series_failed_exits_3_and_names_it(client, tmp_path, capsys):
    """Exit 1 is a bug's (README); a batch that ran but could not land every series exits 3, as a solve that
    did not converge does, and names each series that failed (new user's finding, session 10)."""
    table, _ = _make_batch(tmp_path / "in")
    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    args = parser.parse_args([str(table), "--output", str(tmp_path / "out"), "--scheduler", client.scheduler.address,
                              "--no-plot"])
    assert cmd_batch(args) == 3
    out = capsys.readouterr().out
    assert "3 done, 1 failed" in out and "\n  ts02: failed: " in out, out


def test_an_export_the_alignment_cannot_give_is_said_on_the_terminal(client, tmp_path, capsys):
    """New user's finding (session 10): exports left out were named only in summary.csv's notes."""
    table, _ = _make_batch(tmp_path / "in")
    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    args = parser.parse_args([str(table), "--output", str(tmp_path / "out"), "--scheduler", client.scheduler.address,
                              "--no-plot", "--export", "relion"])  # markers with no pixel size: RELION needs one
    assert cmd_batch(args) == 3  # ts02 fails, as above
    out = capsys.readouterr().out
    assert "\n  ts00: relion not written (the reason is in summary.csv's notes)" in out, out


def test_a_series_whose_alignment_warns_is_check_said_and_kept_on_a_rerun(client, tmp_path, capsys):
    """New user's finding B (session 12): a series aligned with views left without a transform was "done", its
    warning in alignment.json alone; a re-run that skipped it lost its notes."""
    table, _ = _make_batch(tmp_path / "in", broken=None)
    markers = tmp_path / "in" / "ts01_markers.csv"
    lines = markers.read_text().splitlines()
    markers.write_text("\n".join([lines[0], *[x for x in lines[1:] if int(float(x.split(",")[0])) != 5]]) + "\n")
    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    args = parser.parse_args([str(table), "--output", str(tmp_path / "out"), "--scheduler", client.scheduler.address,
                              "--no-plot"])
    assert cmd_batch(args) == 0  # it landed: a check, not a failure
    out = capsys.readouterr().out
    assert "3 done, 1 check" in out and "\n  ts01: check: 1 view(s) have no markers at all" in out, out
    rows = {r["name"]: r for r in _summary(tmp_path / "out" / "summary.csv")}
    assert rows["ts01"]["status"] == "check" and rows["ts01"]["outlier"] == "true"
    assert "views 6" in rows["ts01"]["notes"] and rows["ts00"]["outlier"] == "false"
    assert cmd_batch(args) == 0  # the re-run skips all four and shows what the first run said
    assert "\n  ts01: check (skipped, as when it ran): 1 view(s) have no markers at all" in capsys.readouterr().out
    rows = {r["name"]: r for r in _summary(tmp_path / "out" / "summary.csv")}
    assert rows["ts01"]["status"] == "skipped" and rows["ts01"]["notes"].startswith("check when run: ")
    assert "have no markers at all" in rows["ts01"]["notes"]


def test_outliers_are_judged_in_nm_across_pixel_sizes():
    """0.56 px at 0.4 nm/px fits as well as 0.3 px at 0.8 nm/px (finding B, session 12: it was the outlier)."""
    rows = [{"name": f"s{i}", "status": "done", "rms_residual_px": 0.29 + 0.01 * i, "pixel_size_nm": 0.8}
            for i in range(5)]
    rows.append({"name": "fine", "status": "done", "rms_residual_px": 0.56, "pixel_size_nm": 0.4})
    assert flag_outliers(rows) == [False] * 6
    rows[-1]["pixel_size_nm"] = None  # a pixel size unknown: in px, as before
    assert flag_outliers(rows)[-1]


def test_a_dead_worker_is_named_in_one_line_and_the_budget_follows_the_worker(client):
    """New user's finding G (session 12): a 4096^2 series outgrew its worker, was run again on three fresh workers
    and reported in dask's several sentences, cut; its tomogram's slabs took half the machine inside a worker."""
    from napari_tomoalign.batch.run_series import WORKER_SHARE, worker_budget
    from napari_tomoalign.batch.task import error_text

    killed = type("KilledWorker", (Exception,), {})("Attempted to run task 'tomoalign-g4k' on 4 different workers...")
    text = error_text(killed)
    assert "\n" not in text and text.startswith("the worker running this series died (out of memory")
    assert worker_budget() is None  # not in a worker: the stream's own default
    from napari_tomoalign.errors import UsageError

    said = error_text(UsageError("the beads measure about 9.9 nm across, not the 30.0 nm given: give"
                                 " --bead-diameter-nm 9.9 (or --bead-diameter-nm auto)"))  # a table's cell, finding B4
    assert said.endswith("set bead_diameter_nm (its table cell, or --bead-diameter-nm) to 9.9 (or auto)")
    said = error_text(UsageError("a.st: no tilt angles beside it; give --tilt-angles FILE (.rawtlt or .tlt)"))
    assert said == "a.st: no tilt angles beside it; add a tilt_angles column (.rawtlt or .tlt)"  # finding N
    limits = client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
    budgets = client.submit(worker_budget, pure=False).result()
    assert budgets in {int(v) // WORKER_SHARE for v in limits.values() if v}


def test_etomo_models_take_their_prexg_and_rawtlt_as_align_does(client, tmp_path):
    """New user's findings J and I (session 12): batch wrote a .fid's .preali transforms as NAME.xf (23 px off the
    raw stack's on BBa's view 33) with the .prexg beside it unused and unsaid, and took NAME.tlt before
    NAME.rawtlt. A prexg column is align's --prexg (one answer); without it, the .prexg beside is named."""
    from napari_tomoalign.cli import main
    from napari_tomoalign.io.imod import read_xf

    bb = Path(__file__).resolve().parents[1] / "data" / "imod-tutorial-BB"
    src = tmp_path / "in"
    src.mkdir()
    for name in ("BBa.fid", "BBa.rawtlt", "BBa.prexg", "BBa.tlt"):  # BBa.tlt: solved angles, as etomo leaves them
        (src / name).write_bytes((bb / name).read_bytes())
    (src / "t.csv").write_text("name,markers,prexg,pixel_size_nm,tilt_axis\nraw,BBa.fid,BBa.prexg,2.02,-12.5\n"
                               "pre,BBa.fid,,2.02,-12.5\n")
    res = run_batch(src / "t.csv", tmp_path / "out", client=client, progress=False)
    rows = {r["name"]: r for r in res.rows}
    assert [r["status"] for r in res.rows] == ["done", "done"]
    assert main(["align", str(src / "BBa.fid"), "--tilt-angles", str(src / "BBa.rawtlt"), "--prexg",
                 str(src / "BBa.prexg"), "--pixel-size-nm", "2.02", "--tilt-axis", "-12.5", "--output",
                 str(tmp_path / "cli"), "--quiet"]) == 0
    np.testing.assert_allclose(read_xf(tmp_path / "out" / "raw" / "raw.xf"), read_xf(tmp_path / "cli" / "BBa.xf"))
    assert abs(read_xf(tmp_path / "out" / "raw" / "raw.xf")[32, 0, 2] - read_xf(bb / "BBa.xf")[32, 0, 2]) < 1.0
    info = json.loads((tmp_path / "out" / "raw" / "alignment.json").read_text())
    assert info["inputs"]["tilt_angles"].endswith("BBa.rawtlt") and info["inputs"]["prexg"].endswith("BBa.prexg")
    assert "the .xf is the .preali's" in rows["pre"]["notes"] and "BBa.prexg" in rows["pre"]["notes"]
    assert "preali" not in rows["raw"]["notes"]


def test_an_axis_against_a_series_mdoc_makes_it_a_check(client, tmp_path, cryo, capsys):
    """New user's finding W (session 12): batch --tilt-axis 84 over a series whose .mdoc says -96 gave the mirror
    tomogram, the warning in the notes alone, status done. The branch guessed near +-90 with no axis at all does not
    make a check (every such series of a session has it)."""
    folder = tmp_path / "in"
    for name in ("mirror", "plain"):
        _write_stack(folder, name, cryo, pixel_nm=0.8)
    (folder / "mirror.st.mdoc").write_text("PixelSpacing = 8\n\n[T =     Tilt axis angle = -96.0, binning = 1]\n\n")
    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    args = parser.parse_args([str(folder), "--output", str(tmp_path / "out"), "--scheduler", client.scheduler.address,
                              "--no-plot", "--bead-diameter-nm", "10", "--tilt-axis", "84", "--beads", "6"])
    assert cmd_batch(args) == 0
    out = capsys.readouterr().out
    assert "1 done, 1 check" in out and "\n  mirror: check: --tilt-axis 84 is the other branch of the -96 deg" in out, out


def test_a_row_that_asks_for_tracking_is_tracked_whatever_lies_beside_its_stack(client, tmp_path, cryo):
    """New user s14: a row with a bead diameter and a thickness took the align path because an earlier run's .fid lay
    beside its stack: no .ali, no tomogram, and no word. Such a row is tracked; markers beside a stack aligned while
    the batch gives a bead diameter are said in the notes."""
    from napari_tomoalign.batch.series import from_table
    from napari_tomoalign.batch.task import series_path
    from napari_tomoalign.io.imod_model import write_imod_model

    folder = tmp_path / "in"
    for name in ("asks", "plain"):
        _write_stack(folder, name, cryo)
        v, b = np.nonzero(cryo.visible)
        write_imod_model(folder / f"{name}.fid", MarkerTable(v, b + 1, cryo.true_xy[v, b], (256, 256), None, 21))
    table = folder / "t.csv"
    table.write_text("stack,bead_diameter_nm,thickness\nasks.st,10,200\nplain.st,,\n")
    specs = {s.name: s for s in from_table(table)}
    assert specs["asks"].markers is None and series_path(specs["asks"], {}) == "run"
    assert specs["plain"].markers is not None and series_path(specs["plain"], {"bead_diameter_nm": 10.0}) == "align"
    res = run_batch(folder / "plain.st", tmp_path / "out", client=client, progress=False,
                    options={"bead_diameter_nm": 10.0, "pixel_size_nm": 0.8})
    row = res.rows[0]
    assert row["path"] == "align" and "plain.fid beside the stack were aligned" in row["notes"], row["notes"]
    assert "bead_diameter_nm" in row["notes"]


def test_a_polarity_column_and_option_reach_the_run_path():
    """New user s14: bright (HAADF STEM) gold could not be tracked in a batch: no polarity column nor option."""
    from napari_tomoalign.batch.run_series import run_settings
    from napari_tomoalign.batch.series import SeriesSpec
    from napari_tomoalign.errors import UsageError

    spec = SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0, options={"polarity": "bright", "bin": "2"})
    assert run_settings(spec, {}).dark is False
    plain = SeriesSpec(name="s", stack=Path("s.st"), bead_diameter_nm=10.0, options={"bin": "2"})
    assert run_settings(plain, {"polarity": "bright"}).dark is False and run_settings(plain, {}).dark is True
    with pytest.raises(UsageError, match="give dark or bright"):
        run_settings(replace(spec, options={"polarity": "grey", "bin": "2"}), {})
    args = argparse.ArgumentParser()
    add_batch_arguments(args)
    assert args.parse_args(["x", "--output", "o", "--polarity", "bright"]).opt_polarity == "bright"


def test_a_bad_shift_cell_is_bad_input_before_any_series_runs(tmp_path):
    """s15 new user: a shift cell of one number failed at run time, after the cluster had started, and named the
    command line's --shift; it is the table's error, with its line, when the table is read."""
    from napari_tomoalign.batch.series import from_table
    from napari_tomoalign.io.errors import FileFormatError

    (tmp_path / "a.st").write_bytes(b"")
    table = tmp_path / "t.csv"
    table.write_text("stack,bead_diameter_nm,shift\na.st,10,72\n")
    with pytest.raises(FileFormatError, match=r"t\.csv, line 2: shift '72': give X and Z in unbinned pixels"):
        from_table(table)
    table.write_text("stack,bead_diameter_nm,shift\na.st,10,0 -105\n")
    assert from_table(table)[0].options["shift"] == "0 -105"
