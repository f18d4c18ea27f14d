"""The dock's resident memory over a session: a 0.5 GB stack opened, then three Aligns under three names
(each kept for Compare), the aligned frame shown and a few views looked at after each; then the aligned stack
saved from its layer (File > Save Selected Layer).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/dock_memory.py [--size 2048] [--aligns 3]

The stack: ``--size``² x 61 int16 (2048: 0.51 GB) with a dark bead at each of IMOD's BBa markers (scaled
from its 512² views), IMOD's ``BBa.fid`` scaled the same way beside it, both opened by the plugin's reader. The
resident set (psutil, else ``/proc/self/statm``) is printed after each stage, and the peak (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

BBA = Path(__file__).resolve().parents[1] / "tests" / "data" / "imod-tutorial-BB"


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is in the venv
        import os

        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pump(seconds: float) -> None:
    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def write_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    from napari_tomoalign.io.markers import read_markers, write_imod_model
    from napari_tomoalign.io.mrc import write_mrc

    table = read_markers(BBA / "BBa.fid")
    f = size / table.image_size[0]
    table.xy = table.xy * f
    table.image_size = (size, size)
    n = int(table.view.max()) + 1
    rng = np.random.default_rng(1)
    stack = np.empty((n, size, size), np.int16)
    for v in range(n):  # view by view: the script's own peak stays near the stack's size
        stack[v] = 1000 + rng.normal(0, 30, (size, size))
    r = int(3 * 2.5 * f)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    for v, (x, y) in zip(table.view, table.xy):
        cx, cy = int(round(x)), int(round(y))
        if r <= cx < size - r and r <= cy < size - r:
            patch = 600.0 * np.exp(-((xx + cx - x) ** 2 + (yy + cy - y) ** 2) / (2 * (2.5 * f) ** 2))
            stack[v, cy - r : cy + r + 1, cx - r : cx + r + 1] -= patch.astype(np.int16)
    st = folder / "BBm.st"
    write_mrc(st, stack, 2.02 * 10.0 / f)
    del stack
    shutil.copy(BBA / "BBa.rawtlt", folder / "BBm.rawtlt")
    write_imod_model(folder / "BBm.fid", table)
    return st, folder / "BBm.fid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--aligns", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        st, fid = write_inputs(Path(tmp), args.size)
        print(f"stack {st.stat().st_size / 2**30:.2f} GiB; inputs written: rss {rss_mb():.0f} MB")
        viewer = napari.Viewer()
        viewer.open(str(st), plugin="napari-tomoalign")
        viewer.open(str(fid), plugin="napari-tomoalign")
        _, widget = viewer.window.add_plugin_dock_widget("napari-tomoalign", "Align tilt series")
        pump(2.0)
        print(f"opened, dock added: rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
        for k in range(args.aligns):
            widget.options.result_name.value = f"align {k + 1}"
            t0 = time.perf_counter()
            assert widget.start_alignment() is not None, widget.status.text()
            while widget.busy:
                pump(0.2)
            took = time.perf_counter() - t0
            widget.results.frame.value = "aligned stack"
            for view in (0, 30, 60, 31):
                viewer.dims.set_current_step(0, view)
                pump(0.5)
            widget.results.frame.value = "raw stack"
            pump(0.5)
            print(f"Align {k + 1} ({took:.1f} s, {widget.status.text()[:40]}...): rss {rss_mb():.0f} MB, "
                  f"peak {peak_mb():.0f} MB")
        t0 = time.perf_counter()
        viewer.layers["aligned stack"].save(str(Path(tmp) / "BBm.ali"), plugin="napari-tomoalign")
        print(f"aligned stack saved ({time.perf_counter() - t0:.1f} s, "
              f"{(Path(tmp) / 'BBm.ali').stat().st_size / 2**30:.2f} GiB): rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
        viewer.close()


if __name__ == "__main__":
    main()
