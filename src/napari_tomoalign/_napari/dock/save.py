"""Step 7, saving: the markers (IMOD ``.fid`` or CSV, in the stack's pixels) and the alignment (what
``tomoalign align`` writes). Nothing is overwritten unless the checkbox says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, FileEdit
from napari.utils.notifications import show_info

from ..writer import write_markers
from .naming import stack_stem
from .state import Runs
from .status import refuse
from .ui import button, form, row

MARKER_FILTERS = "IMOD fiducial model (*.fid);;Markers CSV (*.csv)"


class SaveSection:
    """Save markers and Save alignment."""

    def __init__(self, runs: Runs, markers_layer: Callable[[], Any], status: Callable[..., None],
                 image_layer: Callable[[], Any] = lambda: None) -> None:
        self._runs, self._markers_layer, self._status = runs, markers_layer, status
        self._image_layer = image_layer
        self.on_markers_saved: list[Callable[[], None]] = []  # the journal marks its state saved
        self.save_dir = FileEdit(label="folder", mode=FileDialogMode.EXISTING_DIRECTORY, value=None,
                                 tooltip="where Save alignment writes")
        self.overwrite = CheckBox(text="overwrite existing files", value=False)
        self.save_markers_button = button("Save markers...", "the markers layer as an IMOD .fid or a CSV, in pixels")
        self.save_button = button("Save alignment", "alignment.json, .xf, .tlt, fid.xyz, .resid and CSV tables")
        self.widget = form(self.save_dir)
        self.widget.extend([self.overwrite, row(self.save_markers_button, self.save_button)])
        self.save_markers_button.changed.connect(lambda *_: self.save_markers())
        self.save_button.changed.connect(lambda *_: self.save_alignment())

    def save_markers(self, path: str | Path | None = None) -> list[str]:
        """Write the markers layer to ``path`` (asks for one when None); the suffix picks the format."""
        layer = self._markers_layer()
        if layer is None:
            refuse(self._status, "markers not saved: choose a markers layer")
            return []
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            start = str(Path(str(self.save_dir.value or ".")) / f"{stack_stem(self._image_layer(), layer)}.fid")
            path, _ = QFileDialog.getSaveFileName(None, "Save markers", start, MARKER_FILTERS)
            if not path:
                return []
        meta = {"features": layer.features, "metadata": layer.metadata}
        try:
            written = write_markers(path, layer.data, meta)
        except (ValueError, OSError) as exc:
            refuse(self._status, f"markers not saved: {exc}")
            return []
        self._status(f"saved {len(layer.data)} marker points to {written[0]}")
        for callback in self.on_markers_saved:
            callback()
        return written

    def save_alignment(self) -> list[Path]:
        """Write the last alignment as `tomoalign align` does (`jobs.preview.save_result`: the same writer, axis
        Z shift and prealignment as the command line's)."""
        from ...io.atomic import OverwriteError
        from ...jobs.preview import save_result

        runs = self._runs
        if runs.last is None:
            refuse(self._status, "alignment not saved: align first")
            return []
        target = str(self.save_dir.value or "")
        if target in ("", "."):
            refuse(self._status, "alignment not saved: choose a folder to save it in")
            return []
        stem = stack_stem(runs.image, runs.markers)
        try:
            paths = save_result(runs.last, target, stem, overwrite=bool(self.overwrite.value),
                                extra={"markers_layer": getattr(runs.markers, "name", stem), "name": runs.last.name})
        except OverwriteError as exc:
            name = Path(str(exc).split(" already exists")[0]).name
            refuse(self._status, f"not saved: {name} already exists in {target}; tick 'overwrite existing files' "
                   "or choose another folder")
            return []
        except OSError as exc:
            refuse(self._status, f"not saved: {exc}")
            return []
        show_info(f"saved {len(paths)} files to {target}")
        self._status(f"saved '{runs.last.name}' to {target}: {', '.join(p.name for p in paths[:3])}"
                     + (f" and {len(paths) - 3} more" if len(paths) > 3 else ""))
        return paths
