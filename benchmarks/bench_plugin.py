"""The plugin as a user meets it: opening a large stack, responsiveness during Align, Align end to end.

    xvfb-run -a .venv/bin/python benchmarks/bench_plugin.py

1. Opening a 2048 x 2048 x 120 int16 MRC in napari (our reader, memory-mapped), against reading the
   same file into RAM with mrcfile in the same run.
2. Main-thread stalls while Align runs on the sample: a 5 ms QTimer records when the event loop gets
   to it; the longest gap between ticks is the longest time the GUI could not respond.
3. Align end to end on the sample (solve, aligned stack, preview tomogram, layers shown).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mrcfile
import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_tomoalign._widget import AlignWidget
from napari_tomoalign.io.mrc import write_mrc


def pump(app, seconds=0.05):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def bench_open(viewer, app) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.st"
        data = np.zeros((120, 2048, 2048), dtype=np.int16)
        data[:, ::64, :] = 100
        write_mrc(path, data, 2.0)
        del data
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            layers = viewer.open(str(path), plugin="napari-tomoalign")
            app.processEvents()
            times.append(time.perf_counter() - t0)
            for ly in layers:
                viewer.layers.remove(ly)
        t0 = time.perf_counter()
        with mrcfile.open(path) as m:
            np.array(m.data)
        t_read = time.perf_counter() - t0
    print(f"open 2048 x 2048 x 120 int16 in napari: median {np.median(times):.3f} s (target < 1 s); "
          f"mrcfile reading it into RAM: {t_read:.2f} s")


def bench_align(viewer, app, runs: int = 4) -> None:
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    widget.warm_start.value = False  # every run is a fresh solve
    viewer.window.add_dock_widget(widget)
    while not widget.warmed_up.is_set():  # the widget loads its kernels in the background when it opens
        pump(app, 0.05)
    pump(app, 0.5)
    for run in range(runs):
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(5)
        timer.timeout.connect(lambda ticks=ticks: ticks.append(time.perf_counter()))
        timer.start()
        pump(app, 0.1)
        t0 = time.perf_counter()
        widget.start_alignment()
        while widget.busy:
            app.processEvents()
            time.sleep(0.001)
        t_total = time.perf_counter() - t0
        pump(app, 0.1)
        timer.stop()
        gaps = np.diff(np.asarray(ticks)) * 1000
        during = gaps[np.asarray(ticks[1:]) > t0]
        r = widget._last
        steps = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in r.timings_s.items())
        label = "first (new layers)" if run == 0 else f"run {run + 1}"
        print(f"align {label:<20} end to end {t_total:.2f} s ({steps}); longest main-thread stall "
              f"{during.max():.0f} ms, 99th percentile {np.percentile(during, 99):.0f} ms")
        print("    display steps: " + ", ".join(f"{n} {t:.0f} ms" for n, t in widget.display_times_ms))


def main() -> None:
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    bench_open(viewer, app)
    bench_align(viewer, app)
    viewer.close()


if __name__ == "__main__":
    main()
