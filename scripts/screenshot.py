"""Make the README picture: the sample aligned in napari, with residual vectors and predicted markers.

Run under a display, e.g.::

    xvfb-run -a -s "-screen 0 2400x1600x24" .venv/bin/python scripts/screenshot.py docs/napari-tomoalign.png
"""

import sys
import time

import napari
from qtpy.QtWidgets import QApplication

from napari_tomoalign._napari.widget import AlignWidget


def main(out: str) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1800, 1300)
    viewer.open_sample("napari-tomoalign", "beads")
    widget = AlignWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Align tilt series")
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [560], Qt.Orientation.Horizontal)
    widget.start_alignment()
    app = QApplication.instance()
    while widget.busy:
        app.processEvents()
        time.sleep(0.01)
    sample = viewer.layers["sample tilt series"].metadata["sample"]
    viewer.layers["sample tilt series"].visible = True
    viewer.layers["aligned stack"].visible = False
    k, view = widget.go_to_next_residual()  # the mis-click
    viewer.camera.zoom = 1.6
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    win = viewer.window._qt_window
    win.grab().save(out)  # the whole window, docks included
    print(f"wrote {out}: view {view}, point {k} (the mis-click is {sample.misclick})")
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/napari-tomoalign.png")
