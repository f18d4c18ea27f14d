"""The RELION hand-over names the raw stack given and gives each view its pre-exposure from SerialEM's .mdoc (new
user's finding C, session 12: ``k@NAME.mrc`` for a ``NAME.st`` and pre-exposure 0 for every view, silently)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io import MarkerTable, write_markers_csv
from napari_tomoalign.io.mdoc_dose import pre_exposure
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.simulation.markers import simulate_markers

starfile = pytest.importorskip("starfile")


def _mdoc(tilts, dose=3.0, order=None, prior=False) -> str:
    """A SerialEM .mdoc of the views in stack order; ``order``: the views in the order they were recorded."""
    order = list(range(len(tilts))) if order is None else list(order)
    when = {v: k for k, v in enumerate(order)}
    text = "PixelSpacing = 8\nImageSize = 256 256\n\n[T =     Tilt axis angle = 84.0, binning = 1]\n\n"
    for z, t in enumerate(tilts):
        text += f"[ZValue = {z}]\nTiltAngle = {t:.2f}\nExposureDose = {dose}\n"
        text += f"DateTime = 06-Dec-26  10:{when[z] // 60:02d}:{when[z] % 60:02d}\n"
        text += f"PriorRecordDose = {dose * when[z]}\n\n" if prior else "\n"
    return text


def test_pre_exposure_follows_the_order_of_recording(tmp_path):
    tilts = np.arange(-6.0, 7.0, 3.0)  # -6 -3 0 3 6, recorded dose-symmetrically: 0, 3, -3, 6, -6
    order = [2, 3, 1, 4, 0]
    (tmp_path / "a.mdoc").write_text(_mdoc(tilts, order=order))
    np.testing.assert_allclose(pre_exposure(tmp_path / "a.mdoc", 5), [12.0, 6.0, 0.0, 3.0, 9.0])
    (tmp_path / "b.mdoc").write_text(_mdoc(tilts, order=order, prior=True).replace("ExposureDose = 3.0\n", ""))
    np.testing.assert_allclose(pre_exposure(tmp_path / "b.mdoc", 5), [12.0, 6.0, 0.0, 3.0, 9.0])
    (tmp_path / "c.mdoc").write_text(_mdoc(tilts).replace("DateTime", "Date"))  # no times: stack order
    np.testing.assert_allclose(pre_exposure(tmp_path / "c.mdoc", 5), [0.0, 3.0, 6.0, 9.0, 12.0])
    assert pre_exposure(tmp_path / "a.mdoc", 7) is None  # another series' file: no dose rather than a wrong one
    (tmp_path / "d.mdoc").write_text(_mdoc(tilts, dose=0.0))
    assert pre_exposure(tmp_path / "d.mdoc", 5) is None


def test_convert_to_relion_names_the_stack_and_gives_the_dose(tmp_path, capsys):
    s = simulate_markers(n_views=21, n_markers=12, image_size=(256, 256), seed=2)
    write_markers_csv(tmp_path / "ts.csv", MarkerTable(s.view, s.marker, s.xy, s.image_size, "simulated"))
    write_tilt_angles(tmp_path / "ts.rawtlt", s.nominal_tilt_angles_deg)
    assert main(["align", str(tmp_path / "ts.csv"), "--tilt-angles", str(tmp_path / "ts.rawtlt"), "--image-size", "256",
                 "256", "--magnification", "fixed", "--pixel-size-nm", "0.8", "--output", str(tmp_path / "al"),
                 "--quiet"]) == 0
    mrcfile.new_mmap(tmp_path / "ts.st", shape=(21, 256, 256), mrc_mode=0).close()  # only the header is read
    with mrcfile.open(tmp_path / "ts.st", "r+") as m:
        m.voxel_size = 8.0
    (tmp_path / "ts.st.mdoc").write_text(_mdoc(s.nominal_tilt_angles_deg, dose=2.5))
    stack = str(tmp_path / "ts.st")
    assert main(["convert", str(tmp_path / "al"), "--to", "relion", "--output", str(tmp_path / "rel"), "--stack",
                 stack]) == 0
    assert "note:" not in capsys.readouterr().out
    table = starfile.read(tmp_path / "rel" / "tilt_series" / "ts.star")
    assert list(table["rlnMicrographName"][:2]) == [f"1@{stack}", f"2@{stack}"]
    np.testing.assert_allclose(table["rlnMicrographPreExposure"], 2.5 * np.arange(21))
    from napari_tomoalign.io.alignment import read_alignment_dir
    from napari_tomoalign.jobs.facts import default_thickness_px

    extent = read_alignment_dir(tmp_path / "al").marker_z_extent_px  # the tomogram's default thickness: one fact
    tomo = starfile.read(tmp_path / "rel" / "tomograms.star")
    assert int(tomo["rlnTomoSizeZ"].iloc[0]) == default_thickness_px((256, 256), extent) != 256
    assert main(["convert", str(tmp_path / "al"), "--to", "relion", "--output", str(tmp_path / "rel2")]) == 0
    assert "note: the RELION tilt series names the stack NAME.mrc" in capsys.readouterr().out
