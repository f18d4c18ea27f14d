"""Step 7, saving: the markers (IMOD ``.fid`` or CSV, in the stack's pixels) and the alignment (what
``tomoalign align`` writes; for an alignment loaded from a file, what ``tomoalign convert --to imod`` writes from it,
`loaded.save_loaded`). Nothing is overwritten unless the checkbox says so.

The buttons write in a worker thread (`start`): each file is written atomically and synced to disk, which
can hold a busy disk for a few tenths of a second. `save_markers` and `save_alignment` write at once and
return the paths (for scripts and tests); both ways share the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, FileEdit
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
        self.which = ComboBox(label="alignment", choices=[], tooltip="the alignment Save alignment writes (of those "
                              "this dock made, by name, and those loaded): the last one unless another is chosen")
        runs.on_add.append(lambda result: self._offer(result.name))
        runs.on_load.append(self._offer)
        self.save_dir = FileEdit(label="folder", mode=FileDialogMode.EXISTING_DIRECTORY, value=None,
                                 tooltip="where Save alignment writes")
        self.overwrite = CheckBox(text="overwrite existing files", value=False)
        self.with_aligned = CheckBox(text="with the aligned stack (.ali)", value=False,
                                     tooltip="Save alignment also writes the aligned stack, full size, in the stack's "
                                             "mode: as tomoalign aligned-stack writes it from the saved alignment")
        self.save_markers_button = button("Save markers...", "the markers layer as an IMOD .fid or a CSV, in pixels")
        self.save_button = button("Save alignment", "alignment.json, .xf, .tlt, fid.xyz, .resid and CSV tables (a "
                                  "loaded alignment: its .xf and .tlt, with its fid.xyz and .resid, as tomoalign convert "
                                  "--to imod)")
        self.widget = form(self.which, self.save_dir)
        self.widget.extend([self.overwrite, self.with_aligned, row(self.save_markers_button, self.save_button)])
        self.save_markers_button.changed.connect(lambda *_: self.start(self.markers_job()))
        self.save_button.changed.connect(lambda *_: self.start(self.alignment_job()))
        self.worker: Any = None  # the worker of the last save started by a button, until it finishes

    def _offer(self, name: str) -> None:
        """The alignments to choose from, the one just made (or loaded) chosen."""
        self.which.choices = self._runs.names()
        self.which.value = name

    # ------------------------------------------------------------------ at once (scripts and tests)
    def save_markers(self, path: str | Path | None = None) -> list[str]:
        """Write the markers layer to ``path`` (asks for one when None); the suffix picks the format."""
        return self._run_now(self.markers_job(path))

    def save_alignment(self) -> list[Path]:
        """Write the alignment chosen (the last one made unless another is chosen) as `tomoalign align` does
        (`jobs.preview.save_result`: the same writer, axis Z shift and prealignment as the command line's)."""
        return self._run_now(self.alignment_job())

    def _run_now(self, job: SaveJob | None) -> list:
        if job is None:
            return []
        return job.done(*job.write())

    # ------------------------------------------------------------------ in a worker (the buttons)
    def start(self, job: SaveJob | None) -> Any:
        """Write ``job``'s files in a worker thread; its outcome is told on the GUI thread."""
        from napari.qt.threading import create_worker

        if job is None:
            return None
        worker = create_worker(job.write, _start_thread=False)
        worker.returned.connect(lambda outcome: job.done(*outcome))
        worker.finished.connect(lambda: setattr(self, "worker", None))
        self.worker = worker
        self._status("saving...")
        worker.start()
        return worker

    # ------------------------------------------------------------------ the jobs
    def markers_job(self, path: str | Path | None = None) -> SaveJob | None:
        """The markers layer's points copied now, written to ``path`` (asked for when None), or None."""
        layer = self._markers_layer()
        if layer is None:
            refuse(self._status, "markers not saved: choose a markers layer")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            start = str(Path(str(self.save_dir.value or ".")) / f"{stack_stem(self._image_layer(), layer)}.fid")
            path, _ = QFileDialog.getSaveFileName(None, "Save markers", start, MARKER_FILTERS)
            if not path:
                return None
        data, meta = layer.data.copy(), {"features": layer.features.copy(), "metadata": dict(layer.metadata)}

        def write() -> tuple[Any, BaseException | None]:
            try:
                return write_markers(path, data, meta), None
            except (ValueError, OSError) as exc:
                return None, exc

        def done(written: Any, exc: BaseException | None) -> list[str]:
            if exc is not None:
                refuse(self._status, f"markers not saved: {exc}")
                return []
            self._status(f"saved {len(data)} marker points to {written[0]}")
            for callback in self.on_markers_saved:
                callback()
            return written

        return SaveJob(write, done)

    def alignment_job(self) -> SaveJob | None:
        """Writing the alignment chosen (`jobs.preview.save_result`) into the chosen folder, or None."""
        from ...jobs.preview import save_result

        runs = self._runs
        if self.which.value is not None and str(self.which.value) in runs.loaded:
            return self.loaded_job(str(self.which.value))
        last = runs.results.get(str(self.which.value)) if self.which.value is not None else runs.last
        if last is None:
            refuse(self._status, "alignment not saved: align first")
            return None
        target = str(self.save_dir.value or "")
        if target in ("", "."):
            refuse(self._status, "alignment not saved: choose a folder to save it in")
            return None
        markers, image = runs.source(last.name)  # the series it was made from, not the last run's
        stem, overwrite = stack_stem(image, markers), bool(self.overwrite.value)
        extra = {"markers_layer": getattr(markers, "name", stem), "name": last.name}
        analysis = runs.surfaces.get(last.name)  # in alignment.json as `tomoalign align` writes it
        sections = None if analysis is None else {"surface_analysis": analysis.as_dict()}
        ali = aligned_stack_writer(last, image, Path(target) / f"{stem}.ali", overwrite) \
            if self.with_aligned.value else None
        if self.with_aligned.value and ali is None:
            refuse(self._status, f"alignment not saved: '{last.name}' was aligned without its tilt series in the dock, "
                   "so there is no aligned stack to write; untick 'with the aligned stack'")
            return None

        write = _writing(lambda: save_result(last, target, stem, overwrite=overwrite, extra=extra, sections=sections),
                         ali, overwrite)
        return SaveJob(write, self._told(last.name, target, ali is not None))

    def loaded_job(self, name: str) -> SaveJob | None:
        """Writing the loaded alignment ``name`` into the chosen folder as ``tomoalign convert --to imod`` writes it
        (`loaded.save_loaded`), with its aligned stack when asked (as a made one's), or None."""
        from .loaded import save_loaded

        loaded, (markers, image) = self._runs.loaded[name], self._runs.source(name)
        target = str(self.save_dir.value or "")
        if target in ("", "."):
            refuse(self._status, "alignment not saved: choose a folder to save it in")
            return None
        stem, overwrite = stack_stem(image, markers), bool(self.overwrite.value)
        ali = loaded_stack_writer(loaded, image, Path(target) / f"{stem}.ali", overwrite) \
            if self.with_aligned.value else None
        if self.with_aligned.value and ali is None:
            refuse(self._status, f"alignment not saved: the tilt series '{name}' was loaded for has left the viewer, "
                   "so there is no aligned stack to write; untick 'with the aligned stack'")
            return None

        return SaveJob(_writing(lambda: save_loaded(loaded, target, stem, overwrite), ali, overwrite),
                       self._told(name, target, ali is not None))

    def _told(self, name: str, target: str, with_ali: bool) -> Callable[[Any, BaseException | None], list[Path]]:
        """What a save says when done (the GUI thread): the files written, or why none were."""
        from ...io.atomic import OverwriteError

        def done(paths: Any, exc: BaseException | None) -> list[Path]:
            if isinstance(exc, OverwriteError):
                file = Path(str(exc).split(" already exists")[0]).name
                refuse(self._status, f"not saved: {file} already exists in {target}; tick 'overwrite existing "
                       "files' or choose another folder")
                return []
            if exc is not None:
                refuse(self._status, f"not saved: {exc}")
                return []
            show_info(f"saved {len(paths)} files to {target}")
            ali_said = f", with the aligned stack {paths[-1].name}" if with_ali else ""  # asked for: named (s16)
            self._status(f"saved '{name}' to {target}: {', '.join(p.name for p in paths[:3])}"
                         + (f" and {len(paths) - 3} more" if len(paths) > 3 else "") + ali_said)
            return paths

        return done


def aligned_stack_writer(result: Any, image: Any, path: Path, overwrite: bool) -> tuple[Path, Callable[[], Path]] | None:
    """``path`` and the call that writes ``result``'s aligned stack of ``image`` there (`writer.write_aligned_views`,
    in the stack's mode), or None when ``image`` is not the series it aligned."""
    from .results import warpable

    if image is None or not warpable(result, image):
        return None
    return _views_writer(image, result.transforms, result.frame.shape(), result.alignment.pixel_size_nm, path,
                         overwrite)


def _writing(save: Callable[[], list[Path]], ali: tuple[Path, Callable[[], Path]] | None, overwrite: bool
             ) -> Callable[[], tuple[Any, BaseException | None]]:
    """A save's work in the worker: ``save()`` (the alignment's files), then the aligned stack ``ali`` (its path and
    writer) when asked, refused before any file is written when it exists; ``(paths, None)``, or ``(None, the
    error)`` for the GUI thread to say (`SaveSection._told`)."""
    from ...io.atomic import OverwriteError

    def write() -> tuple[Any, BaseException | None]:
        try:
            if ali is not None and ali[0].exists() and not overwrite:
                raise OverwriteError(f"{ali[0]} already exists")
            paths = save()
            return paths + ([ali[1]()] if ali is not None else []), None
        except (OSError, ValueError) as exc:  # OverwriteError is one; FileFormatError a ValueError
            return None, exc

    return write


def loaded_stack_writer(loaded: Any, image: Any, path: Path, overwrite: bool) -> tuple[Path, Callable[[], Path]] | None:
    """`aligned_stack_writer` of a loaded alignment (`dock.loaded`), in the frame ``tomoalign aligned-stack`` gives it
    (`frame.frame_size_of`), or None when ``image`` is gone or not its series."""
    from ...reconstruction.frame import frame_size_of

    saved = loaded.saved
    shape: tuple[int, ...] = tuple(getattr(getattr(image, "data", None), "shape", ()))
    if len(shape) != 3 or shape[0] != len(saved.transforms):
        return None
    return _views_writer(image, saved.transforms, frame_size_of(saved).shape(), saved.pixel_size_nm, path, overwrite)


def _views_writer(image: Any, transforms: Any, frame_shape: tuple[int, int], pixel: float | None, path: Path,
                  overwrite: bool) -> tuple[Path, Callable[[], Path]]:
    from ...jobs.images import output_mode
    from ...reconstruction.aligned_views import AlignedViews
    from ..writer import write_aligned_views

    views = AlignedViews(image.data, transforms, frame_shape)
    pixel = pixel or image.metadata.get("pixel_size_nm")
    mode = output_mode(image.data.dtype, None)
    return path, lambda: write_aligned_views(path, views, mode, 10.0 * pixel if pixel else None, overwrite)


class SaveJob(NamedTuple):
    """``write()`` (any thread; expected failures come back as values) and ``done(value, error)`` (the GUI
    thread: the status, the journal, the paths)."""

    write: Callable[[], tuple[Any, BaseException | None]]
    done: Callable[[Any, BaseException | None], list]
