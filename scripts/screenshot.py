"""Make the README picture, or look at the plugin on a real screen size.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py docs/napari-tomoalign.png
    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py /tmp/bba.png \\
        --size 1280x800 --bba tests/data/imod-tutorial-BB --pixel-nm 2.02

Default: the sample aligned, the mis-click selected with its residual vector. With ``--bba``: a synthetic
stack at ``--pixel-nm`` with a bead under each of IMOD's BBa markers, the markers opened from
``BBa.fid`` (they take the stack's scale), aligned. The whole window is saved, docks included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_tomoalign._napari.widget import AlignWidget


def pump(seconds: float) -> None:
    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def open_bba(viewer, folder: Path, pixel_nm: float, tmp: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gui_modules import write_bead_stack

    st, fid = write_bead_stack(tmp, folder / "BBa.fid", folder / "BBa.rawtlt", pixel_nm)
    viewer.open(str(st), plugin="napari-tomoalign")
    viewer.open(str(fid), plugin="napari-tomoalign")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/napari-tomoalign.png")
    parser.add_argument("--size", default="1600x1000", help="window size WxH")
    parser.add_argument("--bba", type=Path, help="folder with BBa.fid and BBa.rawtlt")
    parser.add_argument("--pixel-nm", type=float, default=2.02)
    parser.add_argument("--frame", choices=("raw stack", "aligned stack"), default="raw stack")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(width, height)
    with tempfile.TemporaryDirectory() as tmp:
        if args.bba:
            open_bba(viewer, args.bba, args.pixel_nm, Path(tmp))
        else:
            viewer.open_sample("napari-tomoalign", "beads")
        widget = AlignWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Align tilt series")
        if args.bba:
            widget.options.axis_mode.value = "estimate near the angle"
            widget.options.axis_angle.value = -12.5
        widget.start_alignment()
        while widget.busy:
            pump(0.02)
        widget.results.frame.value = args.frame
        if not args.bba and args.frame == "raw stack":
            widget.triage.go_to_next_residual()  # the mis-click
            viewer.scene.camera.zoom = 1.6
        else:
            viewer.dims.set_point(0, 30)
            viewer.reset_view()
        widget.steps[3].set_expanded(False)  # the options: the results and the report come into view
        pump(0.5)
        viewer.screenshot(args.out, canvas_only=False, flash=False)
        print(f"wrote {args.out}: {widget.status.text()}")
        widget.teardown()
        viewer.close()


if __name__ == "__main__":
    main()
