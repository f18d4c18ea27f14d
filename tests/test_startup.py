"""What ``tomoalign align`` loads on the way through a small problem: no numba, scipy or pandas (their
import alone costs more than the whole solve). Checked in a fresh interpreter, by the modules it holds
at the end, not by time (times belong in benchmarks/bench_startup.py). And the lazy parser still shows
every command and each command's own options."""

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_tomoalign import simulate_markers

HEAVY = ("numba", "llvmlite", "scipy", "pandas", "imodmodel", "pydantic", "dask", "mrcfile", "threadpoolctl")
# threadpoolctl is light, but only needed when BLAS threads are limited; it is allowed below.
ALLOWED = {"threadpoolctl"}

_PROBE = """
import json, sys
from napari_tomoalign.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run_cli(args):
    r = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _heavy(modules):
    return sorted({m.split(".")[0] for m in modules} & (set(HEAVY) - ALLOWED))


def test_align_on_an_imod_model_loads_no_heavy_package(tmp_path, imod_data):
    out = _run_cli(["align", imod_data / "BBa.fid", "--tilt-angles", imod_data / "BBa.rawtlt",
                    "--output", tmp_path / "bba", "--quiet"])
    assert out["code"] == 0
    assert _heavy(out["modules"]) == []
    positioning = ("napari_tomoalign.reconstruction", "napari_tomoalign.reconstruction.positioning",  # numpy only
                   "napari_tomoalign.reconstruction.reconstruct_job")  # the standard library only (its MODES)
    assert not any(m.startswith("napari_tomoalign.reconstruction") and m not in positioning for m in out["modules"])
    assert "napari_tomoalign.alignment._kernels" not in out["modules"]  # the plain-numpy loops solved it
    assert (tmp_path / "bba" / "BBa.xf").is_file()


def test_align_on_a_paper_scale_csv_loads_no_heavy_package(tmp_path):
    sim = simulate_markers(n_views=109, tilt_range_deg=(-55, 53), n_markers=30, noise_px=0.5, high_tilt_loss=0.6,
                           dropout=0.05, always_visible=6, image_size=(1024, 1024), seed=1)
    csv, tlt = tmp_path / "p.csv", tmp_path / "p.tlt"
    with open(csv, "w") as f:
        f.write("view,marker,x,y\n")
        np.savetxt(f, np.column_stack([sim.view, sim.marker, sim.xy]), fmt=["%d", "%d", "%.3f", "%.3f"],
                   delimiter=",")
    np.savetxt(tlt, sim.nominal_tilt_angles_deg, fmt="%.2f")
    out = _run_cli(["align", csv, "--tilt-angles", tlt, "--image-size", 1024, 1024, "--tilt-axis", 85,
                    "--output", tmp_path / "out", "--quiet"])
    assert out["code"] == 0
    assert _heavy(out["modules"]) == []
    info = json.loads((tmp_path / "out" / "alignment.json").read_text())
    assert info["rms_residual_px"] < 0.8  # noise 0.5 px: the fit is the real one


def test_help_lists_every_command_and_each_command_keeps_its_options(capsys):
    from napari_tomoalign.cli import build_parser, main

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    for name in ("align", "demo", "aligned-stack", "reconstruct", "track", "run", "convert", "batch"):
        assert name in top
    for name, option in (("track", "--bead-diameter-nm"), ("run", "--erase-gold"), ("convert", "--to"),
                         ("batch", "--scheduler"), ("align", "--robust")):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert option in capsys.readouterr().out, name
    full = build_parser()  # without a command line: every command with its options
    assert full.parse_args(["convert", "x", "--to", "imod", "--output", "y"]).command == "convert"
