"""Make the README picture, or look at the plugin on a real screen size.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py docs/napari-tomoalign.png
    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py /tmp/bba.png \\
        --size 1280x800 --bba tests/data/imod-tutorial-BB --pixel-nm 2.02

Default: the sample aligned, the mis-click selected with its residual vector. With ``--bba``: a synthetic
stack at ``--pixel-nm`` with a bead under each of IMOD's BBa markers, the markers opened from
``BBa.fid`` (they take the stack's scale), aligned. With ``--track-demo find|tracked``: a simulated raw
bead series (``--kind cryo``: 10 nm gold at 0.8 nm/px; ``plastic``: 5 px beads at 1.6 nm/px; ``hard``: plastic-like
with clumps, a carbon edge and hot pixels) written as a
``.st`` with its ``.rawtlt`` and opened by the reader, then *Find beads* (the rings on the view nearest
0 degrees) and, for ``tracked``, *Track* (the markers layer, the first point to check selected). The whole
window is saved, docks included.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py docs/tracked-beads.png \\
        --size 1600x1000 --track-demo tracked --kind cryo

With ``--stack``: an existing raw stack (with its ``.rawtlt`` beside it), for example an unbinned 4096 x 4096
set from `simulation.unbinned.write_unbinned_stack`, opened by the reader and taken through ``--track-demo``
with ``--bead-nm`` gold; ``--zoom`` zooms onto the first point to check (1: the whole view).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py docs/tracked-unbinned-1280x800.png \
        --size 1280x800 --stack /tmp/cryo4096.st --bead-nm 10 --track-demo tracked --zoom 3

With ``--com`` and ``--bba``: aligned with that align.com's full model (*more variables*), then the tomogram shown,
its status line naming the back-projection kernel.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py /tmp/kernel.png \\
        --size 1280x800 --bba tests/data/imod-tutorial-BB --pixel-nm 2.02 --com tests/data/imod-tutorial-BB/aligna.com

With ``--returning`` and ``--bba``: the raw stack alone through Find, Track, Align, the tomogram, Compare and Save,
then the dock closed and opened again (step 2; step 1 with the earlier dock's layers), and the saved alignment loaded,
a picture each (``OUT-0open.png`` ... ``OUT-9loaded.png``).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py /tmp/ret-1280.png \\
        --size 1280x800 --bba tests/data/imod-tutorial-BB --pixel-nm 2.02 --returning

With ``--loaded`` and ``--bba``: the markers aligned in the dock and by ``tomoalign align``, whose folder is then loaded
(*Load alignment...*): step 5 with its aligned stack, Compare's list open, the two compared, and Save's list open
after it was saved (``OUT-1shown.png`` ... ``OUT-4saved.png``; the open lists are grabbed from the screen).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py /tmp/loaded.png \\
        --size 1280x800 --bba tests/data/imod-tutorial-BB --pixel-nm 2.02 --loaded

With ``--session``: the sample aligned, then five pictures named after ``out`` (``docs/session-1280.png`` gives
``docs/session-1280-align.png``, ``-fixer.png``, ``-tomogram.png``, ``-compare.png``, ``-save.png``): the dock after
Align (results open), the Bead Fixer's Centre on bead on the first point to check, the tomogram in the dock's slice
view, the comparison of two alignments (zoomed x2), and the dock scrolled to its bottom (step 7).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot.py docs/session-1280.png \\
        --size 1280x800 --session
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


def open_bba(viewer, folder: Path, pixel_nm: float, tmp: Path) -> Path:
    """The synthetic BBa stack and IMOD's markers opened (with no viewer: the stack written, the markers not)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.gui import write_bead_stack

    st, fid = write_bead_stack(tmp, folder / "BBa.fid", folder / "BBa.rawtlt", pixel_nm)
    if viewer is None:
        fid.unlink()
        return st
    viewer.open(str(st), plugin="napari-tomoalign")
    viewer.open(str(fid), plugin="napari-tomoalign")
    return st


def open_bead_series(viewer, kind: str, tmp: Path) -> float:
    """A simulated raw bead series as a user has it (an MRC with its pixel size, a .rawtlt beside it),
    opened by the plugin's reader; returns the bead diameter in nm."""
    import numpy as np

    from napari_tomoalign.io.mrc import write_mrc
    from napari_tomoalign.simulation.beads import make_bead_series

    s = (make_bead_series("cryo", size=512, n_views=41, seed=2) if kind == "cryo"
         else make_bead_series(kind, size=512, n_views=41, seed=2, pixel_size_nm=1.6))
    st = tmp / f"{kind}-beads.st"
    write_mrc(st, s.images, s.pixel_size_nm * 10.0)
    np.savetxt(tmp / f"{kind}-beads.rawtlt", s.tilt_angles_deg, fmt="%.2f")
    viewer.open(str(st), plugin="napari-tomoalign")
    return float(s.bead_diameter_px * s.pixel_size_nm)


def open_stack(viewer, path: Path) -> None:
    """A raw stack as a user opens it (the reader finds the .rawtlt beside it)."""
    viewer.open(str(path), plugin="napari-tomoalign")


def track_demo(viewer, widget, stage: str, diameter_nm: float, zoom: float = 1.0) -> None:
    """Find beads (and Track, for ``stage == "tracked"``) as a user would, waiting for the worker."""
    widget.beads.diameter_nm.value = diameter_nm
    widget.beads.find()
    while widget.busy:
        pump(0.02)
    if stage == "tracked":
        widget.beads.track()
        while widget.busy:
            pump(0.02)
        widget.triage.go_to_next_residual()  # the first point worth a check, selected in its view
    for step in widget.steps[2:]:
        step.set_expanded(False)  # steps 1 and 2 in view; the rest fold
    centre = viewer.scene.camera.center
    viewer.reset_view()
    if zoom > 1 and stage == "tracked":  # onto the point to check, ``zoom`` times closer than the whole view
        viewer.scene.camera.zoom = viewer.scene.camera.zoom * zoom
        viewer.scene.camera.center = centre


def shoot(viewer, widget, path: str) -> None:
    pump(0.6)
    viewer.screenshot(path, canvas_only=False, flash=False)
    print(f"wrote {path}: {widget.status.text()}")


def show_text_above(widget, child) -> None:
    """Scroll the dock so that ``child``'s top is at the foot of the dock: what is above it fills the view."""
    area = widget.steps_area
    y = child.mapTo(area.widget(), child.rect().topLeft()).y()
    area.verticalScrollBar().setValue(max(0, y - area.viewport().height() + 4))


def session(viewer, widget, out: str) -> None:
    """The sample through Align, the Bead Fixer, Show tomogram and Compare, a picture of each."""
    stem = out.removesuffix(".png")

    def wait(worker=None) -> None:
        pump(0.05)
        while widget.busy or (worker is not None and worker.is_running):
            pump(0.02)

    widget.start_alignment()
    wait()
    shoot(viewer, widget, f"{stem}-align.png")
    show_text_above(widget, widget.report.plot)  # the report's end: IMOD's surface analysis
    shoot(viewer, widget, f"{stem}-surfaces.png")
    widget.triage.go_to_next_residual()  # the mis-click: moved to its predicted position, then centred on its bead
    viewer.scene.camera.zoom = 2.5
    widget.triage.move_selected_to_predicted()
    wait(widget.fixer.centre())
    pump(0.3)
    widget.scroll_to(widget.triage.widget.native)
    shoot(viewer, widget, f"{stem}-fixer.png")
    widget.show_tomogram()
    pump(0.3)
    widget.scroll_to(widget.tomograms.widget)
    shoot(viewer, widget, f"{stem}-tomogram.png")
    widget.options.every_view_only.value = True
    widget.start_alignment()
    wait()
    widget.comparison.compare_a.value, widget.comparison.compare_b.value = "all markers", "markers in every view"
    wait(widget.comparison.compare())
    while len(widget.tomograms.shown) < 2:
        pump(0.05)
    from napari_tomoalign._napari.dock.zoom import ZoomState

    widget.tomograms.set_zoom(ZoomState().zoomed(2.0, (0.5, 0.5)))  # both panels zoomed x2, as the wheel does
    pump(0.3)
    widget.scroll_to(widget.tomograms.widget)
    shoot(viewer, widget, f"{stem}-compare.png")
    bar = widget.steps_area.verticalScrollBar()
    bar.setValue(bar.maximum())  # as far down as the dock scrolls: step 7's buttons in view
    shoot(viewer, widget, f"{stem}-save.png")


def returning(viewer, widget, out: str, tmp: Path, pixel_nm: float) -> None:
    """A user on a raw BBa stack (beads, no markers): Find, Track, Align, the tomogram, Align on the markers in every
    view, Compare, Save (the alignment of 'all markers' with its .ali), then the dock closed and opened again (it
    starts from the stack's bead settings): a picture of each, named after ``out``."""
    stem = out.removesuffix(".png")

    def wait(dock, worker=None) -> None:
        pump(0.05)
        while dock.busy or (worker is not None and worker.is_running):
            pump(0.02)
        pump(0.3)

    def shot(dock, name: str) -> None:
        shoot(viewer, dock, f"{stem}-{name}.png")

    shot(widget, "0open")
    for action, name in ((widget.beads.find, "1find"), (widget.beads.track, "2track"),
                         (widget.start_alignment, "3align")):
        action()
        wait(widget)
        shot(widget, name)
    widget.show_tomogram()
    pump(0.3)
    widget.scroll_to(widget.tomograms.widget)
    shot(widget, "4tomogram")
    widget.options.every_view_only.value = True
    widget.start_alignment()
    wait(widget)
    widget.comparison.compare_a.value, widget.comparison.compare_b.value = "all markers", "markers in every view"
    wait(widget, widget.comparison.compare())
    widget.scroll_to(widget.tomograms.widget)
    shot(widget, "5compare")
    (tmp / "saved").mkdir()
    widget.saving.save_dir.value = tmp / "saved"
    widget.saving.which.value, widget.saving.with_aligned.value = "all markers", True
    widget.saving.save_markers(tmp / "saved" / "BBa.fid")
    widget.saving.save_alignment()
    widget.scroll_to(widget.saving.widget.native)
    shot(widget, "6saved")
    widget.teardown()
    viewer.window.remove_dock_widget(widget)
    pump(0.5)
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Align tilt series")
    while widget.opening:
        pump(0.02)
    widget.steps[1].set_expanded(True)
    pump(0.3)
    widget.scroll_to(widget.steps[1])
    shot(widget, "7reopened")
    widget.scroll_to(widget.steps[0])  # step 1: the earlier dock's layers, said in one line
    shot(widget, "8earlier")
    widget.earlier.reuse()
    widget.loader.load(tmp / "saved" / "alignment.json")  # the saved alignment, its residuals as after Align
    widget.reveal_step(4)
    pump(0.5)
    shot(widget, "9loaded")
    widget.teardown()


def loaded(viewer, widget, out: str, tmp: Path, st: Path) -> None:
    """An alignment of the command line loaded beside the dock's own: shown, offered, compared and saved."""
    from napari_tomoalign.cli import main as cli

    stem = out.removesuffix(".png")
    widget.start_alignment()
    while widget.busy:
        pump(0.02)
    cli(["align", str(st.with_suffix(".fid")), "--tilt-angles", str(st.with_suffix(".rawtlt")), "--output",
         str(tmp / "cli"), "--quiet"])
    widget.loader.load(tmp / "cli" / "alignment.json")
    widget.results.frame.value = "aligned stack"
    viewer.dims.set_point(0, 30)
    for step in widget.steps[2:4]:
        step.set_expanded(False)
    widget.reveal_step(4)
    pump(0.5)
    shoot(viewer, widget, f"{stem}-1shown.png")

    def grab(combo, name: str) -> None:  # an open list is a window of its own: grabbed from the screen
        widget.scroll_to(combo.native)
        pump(0.3)
        combo.native.showPopup()
        pump(0.5)
        QApplication.primaryScreen().grabWindow(0).save(f"{stem}-{name}.png")
        print(f"wrote {stem}-{name}.png: {widget.status.text()}")
        combo.native.hidePopup()

    comparison = widget.comparison
    comparison.compare_b.value = widget.runs.last.name
    grab(comparison.compare_a, "2lists")
    worker = comparison.compare()
    while worker is not None and worker.is_running or len(widget.tomograms.shown) < 2:
        pump(0.05)
    widget.scroll_to(widget.tomograms.widget)
    shoot(viewer, widget, f"{stem}-3compared.png")
    (tmp / "saved").mkdir()
    widget.saving.save_dir.value, widget.saving.with_aligned.value = tmp / "saved", True
    widget.saving.save_alignment()
    grab(widget.saving.which, "4saved")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/napari-tomoalign.png")
    parser.add_argument("--size", default="1600x1000", help="window size WxH")
    parser.add_argument("--bba", type=Path, help="folder with BBa.fid and BBa.rawtlt")
    parser.add_argument("--pixel-nm", type=float, default=2.02)
    parser.add_argument("--frame", choices=("raw stack", "aligned stack"), default="raw stack")
    parser.add_argument("--track-demo", choices=("find", "tracked"), help="show the bead step on a simulated series")
    parser.add_argument("--kind", choices=("cryo", "plastic", "hard"), default="cryo", help="the series of --track-demo")
    parser.add_argument("--stack", type=Path, help="a raw stack (its .rawtlt beside it) for --track-demo")
    parser.add_argument("--bead-nm", type=float, default=10.0, help="the gold's diameter for --stack")
    parser.add_argument("--zoom", type=float, default=1.0, help="--track-demo tracked: zoom onto the point to check")
    parser.add_argument("--session", action="store_true", help="four pictures: after Align, the Bead Fixer, the "
                        "tomogram, the comparison")
    parser.add_argument("--loaded", action="store_true", help="with --bba: an alignment of tomoalign align loaded, shown, "
                        "compared and saved (a picture each)")
    parser.add_argument("--com", type=Path, help="with --bba: align with this align.com's full model (more variables),"
                        " then show the tomogram (its status line names the kernel)")
    parser.add_argument("--returning", action="store_true", help="with --bba: the raw stack only, Find, Track, Align, "
                        "tomogram, Compare, Save, the dock closed and reopened (a picture each)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(width, height)
    pump(0.3)  # the window has its size before a file is opened, as on a screen (napari fits the view to it)
    with tempfile.TemporaryDirectory() as tmp:
        if args.track_demo and args.stack:
            open_stack(viewer, args.stack)
            diameter_nm = args.bead_nm
        elif args.track_demo:
            diameter_nm = open_bead_series(viewer, args.kind, Path(tmp))
        elif args.bba and args.returning:
            open_stack(viewer, open_bba(None, args.bba, args.pixel_nm, Path(tmp)))
        elif args.bba:
            st = open_bba(viewer, args.bba, args.pixel_nm, Path(tmp))
        else:
            viewer.open_sample("napari-tomoalign", "beads")
        widget = AlignWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Align tilt series")
        while widget.opening:  # the dock builds its steps and looks at the layers over the next turns
            pump(0.02)
        if args.track_demo:
            track_demo(viewer, widget, args.track_demo, diameter_nm, args.zoom)
            pump(0.5)
            viewer.screenshot(args.out, canvas_only=False, flash=False)
            print(f"wrote {args.out}: {widget.status.text()}")
            widget.teardown()
            viewer.close()
            return
        if args.returning:
            returning(viewer, widget, args.out, Path(tmp), args.pixel_nm)
            viewer.close()
            return
        if args.loaded and args.bba:
            loaded(viewer, widget, args.out, Path(tmp), st)
            widget.teardown()
            viewer.close()
            return
        if args.session:
            session(viewer, widget, args.out)
            widget.teardown()
            viewer.close()
            return
        if args.bba:
            widget.options.axis_mode.value = "estimate near the angle"
            widget.options.axis_angle.value = -12.5
        if args.bba and args.com:
            widget.options.more.value, widget.options.imod_com.value = True, str(args.com)
        widget.start_alignment()
        while widget.busy:
            pump(0.02)
        if args.com:  # the tomogram in the dock's slice view, its status line at the bottom
            widget.show_tomogram()
            pump(0.5)
            widget.scroll_to(widget.tomograms.widget)
            pump(0.5)
            viewer.screenshot(args.out, canvas_only=False, flash=False)
            print(f"wrote {args.out}: {widget.status.text()}")
            widget.teardown()
            viewer.close()
            return
        widget.results.frame.value = args.frame
        if not args.bba and args.frame == "raw stack":
            widget.triage.go_to_next_residual()  # the mis-click, selected in its view
            viewer.reset_view()  # the whole view beside the dock: every marker, the mis-click's red vector among them
        else:
            viewer.dims.set_point(0, 30)
            viewer.reset_view()
        for step in widget.steps[2:4]:
            step.set_expanded(False)  # the markers and the options: the results, the report and its plot in view
        pump(0.5)
        viewer.screenshot(args.out, canvas_only=False, flash=False)
        print(f"wrote {args.out}: {widget.status.text()}")
        widget.teardown()
        viewer.close()


if __name__ == "__main__":
    main()
