"""``run`` loads its image step's compiled kernels and bins the raw views for the tomogram on a second core
during the tracking: in a fresh process, the image step then loads no kernel itself and is handed the binned
views, and the files are those of a run with one thread (where nothing is done beside), byte for byte."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

_PROBE = """
import json, sys
from pathlib import Path
from napari_tomoalign.jobs import run as runmod
from napari_tomoalign.jobs.run import RunJob, run_job
from napari_tomoalign.reconstruction import bp_kernels, warp

kernels = (warp._warp_linear, warp._bin, bp_kernels.wbp_blocks)
seen = {}
images = runmod._images

def counted(*a, **k):
    seen["prebinned"] = a[5] is not None
    seen["before"] = [len(f.signatures) for f in kernels]
    out = images(*a, **k)
    seen["after"] = [len(f.signatures) for f in kernels]
    return out

runmod._images = counted
threads = None if sys.argv[3] == "none" else int(sys.argv[3])
run_job(RunJob(Path(sys.argv[1]), Path(sys.argv[2]), bead_diameter_px=float(sys.argv[4])), threads=threads)
print(json.dumps(seen))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing is loaded beside")
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_the_image_step_finds_its_kernels_loaded_and_writes_what_one_thread_writes(tmp_path, dtype):
    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("plastic", size=256, n_views=13, seed=3)
    img = s.images.astype(np.float64)
    write_mrc(tmp_path / "b.st", np.rint(1000.0 + 300.0 * (img - img.mean()) / img.std()).astype(dtype),
              10.0 * s.pixel_size_nm)
    (tmp_path / "b.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    seen = {}
    for threads in ("none", "1"):
        r = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "b.st"), str(tmp_path / threads), threads,
                            str(s.bead_diameter_px)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        seen[threads] = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["none"]["after"] == seen["none"]["before"]  # loaded beside, before the image step
    assert seen["1"]["after"] != seen["1"]["before"]  # one thread: the image step loads them itself
    assert seen["none"]["prebinned"] and not seen["1"]["prebinned"]
    for name in ("b.fid", "b.ali", "b_bin2.rec", "alignment/b.xf"):
        assert (tmp_path / "none" / name).read_bytes() == (tmp_path / "1" / name).read_bytes(), name
