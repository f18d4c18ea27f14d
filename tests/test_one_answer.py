"""One answer from every front end: the same markers and tilt angles through ``tomoalign align``, the Python
API, ``tomoalign batch`` and the dock's Align and *Save alignment* (a real viewer) give the same ``.xf``,
``.tlt`` and ``fid.xyz``, for the default model and for IMOD's full model with the tutorial's ``aligna.com``
(``AxisZShift 17.2``, which every front end must take from the file). And ``tomoalign run`` gives what
``track`` + ``align --robust`` + ``reconstruct`` by hand give."""

from pathlib import Path

import numpy as np
import pytest
from support.gui import first_look

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.tilts import read_tilt_angles

XF_PX, TLT_DEG = 1e-3, 1e-4
CASES = {"default": [], "aligna": ["--imod-com"]}


FID_XYZ_PX = 0.01 + 1e-9  # fid.xyz holds 2 decimals, as IMOD's: equal up to the rounding of the last digit


def _fid_xyz(path: Path) -> np.ndarray:
    """``(n, 3)`` X, Y, Z of a ``fid.xyz`` in the order of its marker ids."""
    rows = np.array([[float(v) for v in line.split()[:6]] for line in path.read_text().splitlines() if line.strip()])
    return rows[np.argsort(rows[:, 5], kind="stable"), 1:4]


def assert_same_alignment(a: Path, b: Path, stem: str, what: str) -> None:
    xa, xb = read_xf(a / f"{stem}.xf"), read_xf(b / f"{stem}.xf")
    assert np.abs(xa[:, :, :2] - xb[:, :, :2]).max() < 1e-6, what
    assert np.abs(xa[:, :, 2] - xb[:, :, 2]).max() < XF_PX, what
    assert np.abs(read_tilt_angles(a / f"{stem}.tlt") - read_tilt_angles(b / f"{stem}.tlt")).max() < TLT_DEG, what
    za, zb = _fid_xyz(a / f"{stem}fid.xyz"), _fid_xyz(b / f"{stem}fid.xyz")
    assert za.shape == zb.shape and np.abs(za - zb).max() <= FID_XYZ_PX, what


def _cli(imod_data: Path, out: Path, case: str) -> None:
    com = ["--imod-com", str(imod_data / "aligna.com")] if case == "aligna" else []
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), *com,
                 "--output", str(out), "--quiet"]) == 0


def _python_api(imod_data: Path, out: Path, case: str) -> None:
    """The top-level namespace only, and nothing passed by hand that the align.com holds (its AxisZShift)."""
    import napari_tomoalign as nt

    m = nt.read_markers(imod_data / "BBa.fid")
    tilts = nt.read_tilt_angles(imod_data / "BBa.rawtlt")
    if case == "aligna":
        al = nt.align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com")
    else:
        al = nt.align_markers(m.view, m.marker, m.xy, tilts, m.image_size, nt.AlignmentOptions(), warn=False)
    nt.save_alignment(al, out, "BBa")


def _batch(imod_data: Path, root: Path, case: str) -> Path:
    from dask.distributed import LocalCluster

    table = root / f"{case}.csv"
    com = str(imod_data / "aligna.com") if case == "aligna" else ""
    table.write_text(f"name,markers,tilt_angles,imod_com\nBBa,{imod_data / 'BBa.fid'},{imod_data / 'BBa.rawtlt'},"
                     f"{com}\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      dashboard_address="127.0.0.1:0") as cluster:  # None still binds 8787
        assert main(["batch", str(table), "--output", str(root / f"batch-{case}"), "--scheduler",
                     cluster.scheduler_address, "--quiet", "--no-plot"]) == 0
    return root / f"batch-{case}" / "BBa"


def _dock(viewer, imod_data: Path, outs: dict[str, Path], qtbot) -> None:
    from napari_tomoalign._napari.widget import AlignWidget

    layers = viewer.open(str(imod_data / "BBa.fid"), plugin="napari-tomoalign")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
    first_look()
    assert isinstance(widget, AlignWidget)
    try:
        widget.inputs.markers.value = layers[0]
        widget.inputs.tilt_file.value = str(imod_data / "BBa.rawtlt")
        widget.options.warm_start.value = False
        for case, out in outs.items():
            out.mkdir()
            widget.options.more.value = case == "aligna"
            # the (greyed-out) simple-model choices left as a user left them: the align.com's options rule
            widget.options.robust.value = case == "aligna"
            widget.options.imod_com.value = str(imod_data / "aligna.com")
            assert widget.start_alignment() is not None, widget.status.text()
            qtbot.waitUntil(lambda: not widget.busy, timeout=600_000)
            widget.saving.save_dir.value = str(out)
            stem = widget.saving.save_alignment()[0].parent.glob("*.xf")
            assert next(stem).name == "BBa.xf"
    finally:
        widget.teardown()


def test_align_the_api_batch_and_the_dock_give_one_answer(imod_data, tmp_path, make_napari_viewer, qtbot):
    dock = {case: tmp_path / f"dock-{case}" for case in CASES}
    _dock(make_napari_viewer(), imod_data, dock, qtbot)
    for case in CASES:
        cli, api = tmp_path / f"cli-{case}", tmp_path / f"api-{case}"
        _cli(imod_data, cli, case)
        _python_api(imod_data, api, case)
        batch = _batch(imod_data, tmp_path, case)
        for other, name in ((api, "the Python API"), (batch, "tomoalign batch"), (dock[case], "the dock")):
            assert_same_alignment(cli, other, "BBa", f"{case}: tomoalign align and {name}")
    # the align.com's AxisZShift 17.2 moved the frame: the cases differ where the shift enters
    a, b = read_xf(tmp_path / "cli-default" / "BBa.xf"), read_xf(tmp_path / "cli-aligna" / "BBa.xf")
    assert np.abs(a[:, 0, 2] - b[:, 0, 2]).max() > 1.0


def test_reference_view_numbered_from_one_in_the_error(imod_data, tmp_path, capsys):
    assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"),
                 "--reference-view", "100", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--reference-view 100 is not a view of this 61-view series; give one from 1 to 61" in err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def beads(tmp_path_factory):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    d = tmp_path_factory.mktemp("run")
    s = make_bead_series("plastic", size=256, n_views=41, seed=2)
    path = d / "beads.st"
    write_mrc(path, s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (d / "beads.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    return path, s


def test_run_gives_what_track_align_and_reconstruct_give_by_hand(beads):
    from napari_tomoalign.io.mrc import open_tilt_series

    path, s = beads
    run, hand = path.parent / "run", path.parent / "hand"
    d = ["--bead-diameter-px", f"{s.bead_diameter_px}"]
    assert main(["run", str(path), *d, "--output", str(run), "--quiet"]) == 0
    assert main(["track", str(path), *d, "--output", str(hand / "beads.fid"), "--quiet"]) == 0
    assert main(["align", str(hand / "beads.fid"), "--tilt-angles", str(path.with_suffix(".rawtlt")), "--robust",
                 "--output", str(hand / "alignment"), "--quiet"]) == 0
    assert main(["reconstruct", str(path), "--alignment", str(hand / "alignment"), "--bin", "2",
                 "--output", str(hand / "beads_bin2.rec"), "--quiet"]) == 0
    assert (run / "beads.fid").read_bytes() == (hand / "beads.fid").read_bytes()  # one tracking
    assert_same_alignment(run / "alignment", hand / "alignment", "beads", "run and track + align by hand")
    import napari_tomoalign as nt

    api = nt.run_to_folder(path, path.parent / "run-api", bead_diameter_px=s.bead_diameter_px)
    assert_same_alignment(run / "alignment", path.parent / "run-api" / "alignment", "beads", "run and the API's")
    assert api.tomogram.read_bytes() == (run / "beads_bin2.rec").read_bytes()
    a = open_tilt_series(run / "beads_bin2.rec", find_tilts=False).data
    b = open_tilt_series(hand / "beads_bin2.rec", find_tilts=False).data
    assert a.shape == b.shape and a.dtype == b.dtype  # the same default thickness and mode
    # one function and one order (bin the raw view, then warp it): run's tomogram is reconstruct's, to the
    # float rounding of the two warps and the 1e-3 px by which the two alignments may differ
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999
    assert np.abs(a - b).max() < 1e-3 * np.abs(b).max()


def test_run_with_an_align_com_solves_the_full_model_as_align_does_by_hand(beads, imod_data):
    """``run --imod-com``: the tracked markers aligned with IMOD's full model (as etomo's alignment step), the
    command file's AxisZShift placing the frame; the same as ``align --imod-com`` on the tracked markers."""
    import json

    path, s = beads
    com = path.parent / "align.com"
    text = (imod_data / "aligna.com").read_text().replace("RotationAngle\t-12.5", f"RotationAngle\t{s.tilt_axis_deg}")
    com.write_text(text.replace("AxisZShift\t17.2", "AxisZShift\t6.0"))
    run, hand = path.parent / "run-com", path.parent / "hand-com"
    d = ["--bead-diameter-px", f"{s.bead_diameter_px}"]
    assert main(["run", str(path), *d, "--imod-com", str(com), "--output", str(run), "--quiet"]) == 0
    assert main(["track", str(path), *d, "--output", str(hand / "beads.fid"), "--quiet"]) == 0
    assert main(["align", str(hand / "beads.fid"), "--tilt-angles", str(path.with_suffix(".rawtlt")), "--imod-com",
                 str(com), "--output", str(hand / "alignment"), "--quiet"]) == 0
    assert_same_alignment(run / "alignment", hand / "alignment", "beads", "run --imod-com and align --imod-com")
    info = json.loads((run / "alignment" / "alignment.json").read_text())
    assert info["inputs"]["imod_com"] == str(com) and (run / "alignment" / "beads.xtilt").exists()
    assert (run / "beads_bin2.rec").exists()
    # batch's imod_com column on a raw stack: tracked, then the same full model
    from dask.distributed import LocalCluster

    table = path.parent / "raw.csv"
    table.write_text(f"name,stack,tilt_angles,bead_diameter_px,imod_com\nbeads,{path},{path.with_suffix('.rawtlt')},"
                     f"{s.bead_diameter_px},{com.name}\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      dashboard_address="127.0.0.1:0") as cluster:
        assert main(["batch", str(table), "--output", str(path.parent / "batch-com"), "--scheduler",
                     cluster.scheduler_address, "--quiet", "--no-plot"]) == 0
    assert_same_alignment(run / "alignment", path.parent / "batch-com" / "beads" / "alignment", "beads",
                          "run --imod-com and batch's imod_com column")
