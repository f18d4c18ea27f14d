"""Hostile input round 3, the classes the first round left: bad images, tilts and option types through the
Python API (one clear error naming the view or the parameter, never a silent wrong result)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_tomoalign import AlignmentOptions, align_markers, track_beads
from napari_tomoalign.reconstruction.warp import aligned_stack
from napari_tomoalign.reconstruction.wbp import weighted_back_projection


def _stack(n_views: int = 5, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(100, 5, (n_views, size, size)).astype(np.float32), np.linspace(-60, 60, n_views)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixel_names_the_view(bad):
    stack, tilts = _stack()
    stack[3, 7, 9] = bad
    with pytest.raises(ValueError, match="view 4 of the aligned stack holds NaN or infinite"):
        weighted_back_projection(stack, tilts, thickness=8)
    use = np.ones(5, bool)
    use[3] = False
    assert np.all(np.isfinite(weighted_back_projection(stack, tilts, thickness=8, use_view=use)))
    xf = np.tile(np.array([[1.0, 0, 0], [0, 1, 0]]), (5, 1, 1))
    with pytest.raises(ValueError, match="view 4 of the stack holds NaN or infinite"):
        aligned_stack(stack, xf)
    xf[3] = np.nan  # a view undetermined by the fit is filled with its mean: still refused
    with pytest.raises(ValueError, match="view 4 of the stack"):
        aligned_stack(stack, xf)
    with pytest.raises(ValueError, match="view 4 of the tilt series holds NaN or infinite"):
        track_beads(stack, tilts, 4.0)


def test_float64_beyond_float32_is_refused():
    stack, tilts = _stack()
    big = stack.astype(np.float64)
    big[1, 0, 0] = 1e308  # finite, but infinite once the view is filtered in float32
    with pytest.raises(ValueError, match="view 2 of the aligned stack holds NaN or infinite pixels"):
        weighted_back_projection(big, tilts, thickness=8)


@pytest.mark.parametrize("tilt", [90.0, -90.0, 95.0, -120.0])
def test_wbp_refuses_tilts_at_or_beyond_90(tilt):
    stack, tilts = _stack()
    tilts[2] = tilt
    with pytest.raises(ValueError, match=f"view 3 has a tilt of {tilt:g} deg; .* strictly between -90 and 90"):
        weighted_back_projection(stack, tilts, thickness=8)
    use = np.array([1, 1, 0, 1, 1], bool)  # left out: no longer a problem
    assert np.all(np.isfinite(weighted_back_projection(stack, tilts, thickness=8, use_view=use)))


_OBS = ([0, 1], [0, 0], [[10.0, 20.0], [30.0, 40.0]], [0.0, 10.0], (100, 100))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"tilt_axis_deg": "abc"}, ValueError, "tilt-axis angle must be a finite number"),
    ({"estimate_tilt_axis": "no"}, TypeError, "estimate_tilt_axis must be True or False, got 'no'"),
    ({"robust": 1}, TypeError, "robust must be True or False"),
    ({"max_iterations": "200"}, ValueError, "max_iterations must be a whole number"),
    ({"rotation": 3}, TypeError, "rotation must be a VariableOption"),
])
def test_option_types_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        AlignmentOptions(**kwargs)


@pytest.mark.parametrize(("position", "value", "message"), [
    (0, None, "views must be one whole number per observation, got None"),
    (1, "ab", "markers must be one whole number per observation"),
    (2, None, "xy must be the"),
    (2, [["a", 2], [3, 4]], "xy must be the .*could not convert string"),
    (3, None, "tilt_angles_deg must be one tilt angle"),
    (4, "abc", "image_size must be"),
])
def test_align_markers_arrays_are_named(position, value, message):
    args = list(_OBS)
    args[position] = value
    with pytest.raises(ValueError, match=message):
        align_markers(*args)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"options": "x"}, TypeError, "options must be AlignmentOptions or None, got str"),
    ({"settings": {}}, TypeError, "settings must be ModelSettings or None, got dict"),
    ({"start": 3}, TypeError, "start must be Alignment or None"),
    ({"pixel_size_nm": "0.2"}, ValueError, "pixel_size_nm must be a positive number"),
    ({"pixel_size_nm": float("nan")}, ValueError, "pixel_size_nm must be a positive number"),
])
def test_align_markers_keywords_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        align_markers(*_OBS, **kwargs)


def _read_only_run(source: Path, code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``code`` with ``source`` read-only: by its permissions, or (root ignores them) by a read-only bind
    mount in a private mount namespace; skip when neither can make it read-only."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() != 0:
        for p in [source, *source.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
    elif shutil.which("unshare"):
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, str(source), *cmd]
    else:
        pytest.skip("cannot make a folder read-only for root here")
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    if run.returncode != 0 and "mount" in run.stderr and "Traceback" not in run.stderr:
        pytest.skip(f"no read-only bind mount here: {run.stderr.strip()}")
    return run


def test_read_only_install_caches_numba_elsewhere(tmp_path):
    import napari_tomoalign

    ro = tmp_path / "ro"
    shutil.copytree(Path(napari_tomoalign.__file__).parent, ro / "napari_tomoalign",
                    ignore=shutil.ignore_patterns("__pycache__"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=str(ro), HOME=str(ro / "no-home"), TMPDIR=str(tmp))  # no writable home either
    code = ("import numpy as np, napari_tomoalign; from napari_tomoalign.reconstruction.warp import bin_image;"
            "print(napari_tomoalign.__file__, bin_image(np.ones((8, 8), np.float32), 2).sum())")
    try:
        run = _read_only_run(ro, code, env)
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(ro / "napari_tomoalign" / "__init__.py"), "16.0"]
    assert list((tmp / f"napari-tomoalign-{os.getuid()}" / "numba").rglob("*.nbi"))  # the cache is there


def test_sigterm_during_run_leaves_nothing_half_written(tmp_path):
    import mrcfile

    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.io.tilts import write_tilt_angles
    from napari_tomoalign.simulation.beads import make_bead_series

    s = make_bead_series("plastic", 384, 31, seed=1)
    write_mrc(tmp_path / "s.mrc", s.images, None)
    write_tilt_angles(tmp_path / "s.rawtlt", s.tilt_angles_deg)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "napari_tomoalign.cli", "run", str(tmp_path / "s.mrc"),
                             "--bead-diameter-px", str(s.bead_diameter_px), "--output", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(12000):  # the fiducial model is written first; the aligned stack and tomogram follow
            if (out / "s.fid").exists() or proc.poll() is not None:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["tomoalign: terminated; no output was changed by the unfinished step"]
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob("*.tmp"))
    assert not (out / "s_bin2.rec").exists()
    if (out / "s.ali").exists():  # an aligned stack that is there is whole
        with mrcfile.open(out / "s.ali", permissive=False) as m:
            assert m.data.shape == (31, 384, 384)
