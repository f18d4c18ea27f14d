"""Top-level packages of the GUI stack that the core must never import."""

GUI_MODULES = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "superqt")


def write_bead_stack(folder, fid, rawtlt, pixel_size_nm, name="BBa", size=512):
    """A synthetic raw stack ``folder/NAME.st`` (61 views of ``size`` x ``size``, the given pixel size)
    with a dark bead wherever the IMOD model ``fid`` has a marker, plus copies of the model and of
    ``rawtlt`` beside it, as IMOD keeps them. Returns the paths of the stack and of the model copy."""
    import shutil
    from pathlib import Path

    import numpy as np

    from napari_tomoalign.io.markers import read_markers
    from napari_tomoalign.io.mrc import write_mrc

    folder = Path(folder)
    table = read_markers(fid)
    n_views = int(table.view.max()) + 1
    stack = np.full((n_views, size, size), 100.0, dtype=np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    for v, (x, y) in zip(table.view, table.xy):
        cx, cy = int(round(x)), int(round(y))
        if 6 <= cx < size - 6 and 6 <= cy < size - 6:
            patch = 60.0 * np.exp(-((xx + cx - x) ** 2 + (yy + cy - y) ** 2) / (2 * 2.5**2))
            stack[v, cy - 6 : cy + 7, cx - 6 : cx + 7] -= patch
    st = folder / f"{name}.st"
    write_mrc(st, stack, pixel_size_nm * 10.0)
    shutil.copy(rawtlt, folder / f"{name}.rawtlt")
    shutil.copy(fid, folder / f"{name}.fid")
    return st, folder / f"{name}.fid"


def dock_on(viewer, stack, markers):
    """``(dock, image layer)``: the tilt series ``stack`` and the ``markers`` opened by this plugin, the dock added
    and its first look taken (`first_look`), as a user opens them and then the dock."""
    from napari_tomoalign._napari.widget import AlignWidget

    [image] = viewer.open(str(stack), plugin="napari-tomoalign")
    viewer.open(str(markers), plugin="napari-tomoalign")
    widget = AlignWidget(viewer)
    viewer.window.add_dock_widget(widget)
    first_look()
    return widget, image


def first_look() -> None:
    """Let a new dock build its sections and take its first look at the viewer's layers, which it does over the
    next turns of the event loop (as when a user opens it from napari's menu)."""
    import time

    from qtpy.QtWidgets import QApplication

    from napari_tomoalign._napari.widget import AlignWidget

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if not any(isinstance(w, AlignWidget) and w.opening for w in QApplication.allWidgets()):
            return
        time.sleep(0.002)
    raise AssertionError("the dock did not take its first look at the layers within 60 s")
