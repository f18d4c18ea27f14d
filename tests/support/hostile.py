"""Shared pieces of the hostile-input tests: a small solved series on disk, and running the command line
in a subprocess under a memory cap with its time, peak memory, exit status and stderr recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_tomoalign import simulate_markers
from napari_tomoalign.io import MarkerTable, write_markers_csv
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.io.tilts import write_tilt_angles

SIZE = (96, 80)  # width, height
MEMORY_CAP = 1536 * 2**20  # address space of a child run; real use stays far below


def small_series(d: Path, seed: int = 3) -> dict[str, Path]:
    """Markers (CSV), tilts, a raw stack and the folder `tomoalign align` wrote for them."""
    from napari_tomoalign.cli import main

    sim = simulate_markers(n_views=21, n_markers=14, image_size=SIZE, thickness_px=16, shift_px=2.0, noise_px=0.2,
                           seed=seed)
    d.mkdir(parents=True, exist_ok=True)
    write_markers_csv(d / "m.csv", MarkerTable(sim.view, sim.marker, sim.xy))
    write_tilt_angles(d / "t.tlt", sim.nominal_tilt_angles_deg)
    rng = np.random.default_rng(seed)
    write_mrc(d / "raw.mrc", rng.normal(size=(21, SIZE[1], SIZE[0])).astype(np.float32), 5.0)
    assert main(["align", str(d / "m.csv"), "--tilt-angles", str(d / "t.tlt"), "--image-size", str(SIZE[0]),
                 str(SIZE[1]), "--output", str(d / "al"), "--quiet"]) == 0
    return {"csv": d / "m.csv", "tlt": d / "t.tlt", "stack": d / "raw.mrc", "al": d / "al", "sim": sim}


@dataclass
class Run:
    code: int
    stderr: str
    stdout: str
    seconds: float
    peak_mib: float


_CHILD = r"""
import resource, sys, time
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from napari_tomoalign.cli import main
code = main(sys.argv[2:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stdout)
sys.exit(code)
"""


def run_cli(args: list[str], timeout: float = 60.0, cap: int = MEMORY_CAP) -> Run:
    """``tomoalign ARGS`` in a fresh interpreter with its address space capped; the peak RSS it reports is
    relative to the interpreter after importing the package (the baseline)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _CHILD, str(cap), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    lines = r.stdout.strip().splitlines()
    peak = float(lines[-1]) / 1024 if lines and lines[-1].isdigit() else float("nan")
    return Run(r.returncode, r.stderr, "\n".join(lines[:-1]), time.perf_counter() - t0, peak)


def baseline_mib() -> float:
    """Peak RSS of an interpreter that imported the command line and did nothing."""
    code = "import resource; import napari_tomoalign.cli, napari_tomoalign.workflows; " \
           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(r.stdout.strip()) / 1024


def one_line_error(run: Run, code: int = 2) -> str:
    """Assert the contract for bad input and return the message."""
    assert run.code == code, (run.code, run.stderr[-2000:])
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return run.stderr


def temp_files(d: Path) -> list[Path]:
    return [p for p in d.rglob(".*.tmp")]


def folder_state(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def run_stamp(al_dir: Path) -> dict:
    first = (al_dir / "alignment.json").read_text().splitlines()[0]
    return json.loads(first[len('{"tomoalign_run": '):-1])
