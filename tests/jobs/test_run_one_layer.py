"""New user s14: gold on one face of a thick plastic section; ``run`` centred its tomogram on the beads and cut the
section in half without a word. It says so now (and alignment.json and a batch's notes carry it)."""

import json
from dataclasses import replace

import numpy as np

from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.io.tilts import write_tilt_angles
from napari_tomoalign.jobs.run import RunJob, run_job
from napari_tomoalign.simulation.beads import bead_scene, render_view


def _series(tmp_path, one_face: bool):
    scene = bead_scene("plastic", 256, 31, seed=4, beads_per_mpx=500.0, thickness_px=60.0)
    z = scene.bead_xyz[:, 2]
    if one_face:  # every bead on the top face
        scene = replace(scene, bead_xyz=np.column_stack([scene.bead_xyz[:, :2], np.abs(z)]))
    path = tmp_path / ("one.st" if one_face else "two.st")
    write_mrc(path, np.stack([render_view(scene, j) for j in range(31)]), 20.0)
    write_tilt_angles(path.with_suffix(".rawtlt"), scene.nominal_tilt_deg)
    return path, scene.params["bead_diameter_px"]


def test_run_says_when_the_beads_lie_in_one_layer(tmp_path):
    for one_face in (True, False):
        path, d = _series(tmp_path, one_face)
        out = tmp_path / path.stem
        res = run_job(RunJob(path, out, bead_diameter_px=d))
        said = [w for w in res.alignment.warnings if "lie in one layer" in w]
        assert bool(said) == one_face, res.alignment.warnings
        recorded = json.loads((out / "alignment" / "alignment.json").read_text())
        assert ("lie in one layer" in json.dumps(recorded)) == one_face
