"""Step 1's ``.prexg``: etomo's prealignment, for a fiducial model placed on the ``.preali`` shown over the raw ``.st``.

etomo places its fiducial model (``BBa.fid``) on the prealigned stack (``BBa.preali``); its ``.prexg`` maps the raw
stack (``BBa.st``) there. Given one (filled in by itself when the model was placed on a ``.preali``, the stack is a
``.st`` and ``STEM.prexg`` sits beside it; the user can clear or change it), the markers layer holds the raw stack's
pixels, so that its points sit on the beads the user sees and edits them on, and its metadata (`PREXG`) keeps the
prealignment: Align takes the points back to the ``.preali`` and solves with the ``.prexg`` as ``tomoalign align
--prexg`` does (`jobs.align.read_prexg`, the job's ``prexg``), a saved ``.fid`` is put back on the ``.preali`` (the
writer, `file_frame_points`), and the results are drawn over the raw stack (`drawn`). The mapping itself is
`io.prealignment`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import FileEdit
from numpy.typing import NDArray

from ...io.prealignment import alignment_on_raw, to_prealigned, to_raw

PREXG = "tomoalign_prexg"  # a markers layer's metadata while it is shown through a .prexg: path, transforms, size
CLEARED = "tomoalign_prexg_cleared"  # the user cleared the one filled in: not filled in again for this layer


def prexg_of(layer: Any) -> dict[str, Any] | None:
    """The prealignment a markers layer is shown through (``path``, ``transforms``, ``image_size``), or None."""
    meta = getattr(layer, "metadata", None) or {}
    found = meta.get(PREXG)
    return found if isinstance(found, dict) else None


def _mapped(data: NDArray, prexg: dict[str, Any], to: Callable[..., NDArray[np.float64]]) -> NDArray[np.float64]:
    d = np.array(data, dtype=float).reshape(-1, 3)
    pre = np.asarray(prexg["transforms"], dtype=float)
    view = np.round(d[:, 0]).astype(np.intp)
    ok = (view >= 0) & (view < len(pre))
    if ok.any():
        xy = to(pre, view[ok], d[ok][:, [2, 1]], tuple(prexg["image_size"]))
        d[ok, 1], d[ok, 2] = xy[:, 1], xy[:, 0]
    return d


def file_frame_points(data: NDArray, metadata: dict[str, Any] | None) -> NDArray[np.float64]:
    """Points (view, y, x) of a markers layer in its file's frame: back on the ``.preali`` when the layer is shown
    through a ``.prexg``, else as they are."""
    found = (metadata or {}).get(PREXG)
    return _mapped(data, found, to_prealigned) if isinstance(found, dict) else np.asarray(data, dtype=float)


def drawn(result: Any) -> Any:
    """A run's alignment as it is drawn and edited over the raw stack: its observations, residuals and predictions
    through the job's ``.prexg`` (`io.prealignment.alignment_on_raw`), or the alignment itself without one."""
    job = getattr(result, "job", None)
    return alignment_on_raw(result.alignment, job.align.prexg if job is not None else None)


def prexg_beside(image: Any, layer: Any) -> Path | None:
    """etomo's ``STEM.prexg`` beside the raw ``STEM.st`` when ``layer``'s model was placed on the ``.preali``."""
    from ...io.imod_model import placed_on_preali

    stack = getattr(getattr(image, "source", None), "path", None)
    model = getattr(getattr(layer, "source", None), "path", None)
    if not stack or not model or Path(stack).suffix.lower() != ".st" or not placed_on_preali(model):
        return None
    beside = Path(stack).with_suffix(".prexg")
    return beside if beside.is_file() else None


def _is_preali(image: Any) -> bool:
    """Whether the stack layer ``image`` is a prealigned stack (``.preali``), by its file's name or the layer's."""
    path = getattr(getattr(image, "source", None), "path", None) or getattr(image, "name", "")
    return Path(str(path)).suffix.lower() == ".preali"


class PrealignedInput:
    """The ``.prexg`` file input of step 1 and the markers layer it is applied to."""

    def __init__(self, status: Callable[..., None], undo: Any = None) -> None:
        self._status, self.undo = status, undo
        self.file = FileEdit(label=".prexg", mode=FileDialogMode.EXISTING_FILE, filter="*.prexg", nullable=True,
                             tooltip="etomo's .prexg, for a fiducial model placed on the .preali shown over the raw"
                                     " .st: the markers are drawn through it, Align and Save give the raw stack's .xf")
        self._image: Any = None
        self._layer: Any = None
        self._quiet = False
        self.file.changed.connect(self._chosen)

    def _show(self, path: str | Path | None) -> None:
        self._quiet = True
        try:
            self.file.value = Path(path) if path else None
        finally:
            self._quiet = False

    def follow(self, image: Any, layer: Any) -> None:
        """The inputs changed: show the chosen markers layer's ``.prexg``; fill in etomo's when it applies."""
        self._image, self._layer = image, layer
        own = prexg_of(layer)
        if own is not None and _is_preali(image):  # the stack the model was placed on: its own frame, no .prexg
            self.apply(None)
            self._show(None)
            self._status(f"'{layer.name}' shown on {image.name} in its file's own frame: it was placed on the .preali,"
                         " so the .prexg does not apply (choose the raw .st to draw it through the .prexg)")
            return
        if own is not None or layer is None:
            self._show(own["path"] if own is not None else None)
            return
        beside = None if layer.metadata.get(CLEARED) else prexg_beside(image, layer)
        self._show(beside)
        if beside is not None and not self.apply(beside):
            layer.metadata[CLEARED] = True  # said once, not at every change of the inputs
            self._show(None)

    def _chosen(self, *_: Any) -> None:
        if self._quiet:
            return
        text = str(self.file.value or "").strip()
        path = None if text in ("", ".") else text
        if path is None and self._layer is not None and prexg_of(self._layer) is not None:
            self._layer.metadata[CLEARED] = True
        if not self.apply(path):
            own = prexg_of(self._layer)
            self._show(own["path"] if own is not None else None)

    def apply(self, path: str | Path | None) -> bool:
        """Show the markers layer through the ``.prexg`` at ``path`` (None: in its file's own frame); False, said in
        one line, when it cannot be (no stack or markers chosen, a .prexg of another series)."""
        from ...errors import UsageError
        from ...io.errors import FileFormatError
        from ...jobs.align import read_prexg
        from .status import refuse

        layer, image = self._layer, self._image
        if layer is None:
            if path is not None:
                refuse(self._status, ".prexg not used: choose the markers layer (etomo's .fid) first")
            return path is None
        new: dict[str, Any] | None = None
        if path is not None:
            if image is None:
                refuse(self._status, ".prexg not used: choose the raw tilt series (.st) first")
                return False
            try:
                pre = read_prexg(path, int(image.data.shape[0]))
            except (UsageError, FileFormatError, OSError, ValueError) as exc:
                refuse(self._status, f".prexg not used: {exc}")
                return False
            new = {"path": str(path), "transforms": pre,
                   "image_size": (int(image.data.shape[2]), int(image.data.shape[1]))}
        self._remap(layer, new)
        self._status(f"'{layer.name}' shown on {image.name} through {Path(new['path']).name} (placed on the .preali)"
                     if new is not None else f"'{layer.name}' shown in its file's own frame (no .prexg)")
        return True

    def _remap(self, layer: Any, new: dict[str, Any] | None) -> None:
        """The layer's points moved from the frame they are shown in to ``new``'s (its file's frame when None)."""
        old = prexg_of(layer)
        if old is None and new is None:
            return
        data = file_frame_points(layer.data, layer.metadata)
        data = _mapped(data, new, to_raw) if new is not None else data
        if new is None:
            layer.metadata.pop(PREXG, None)
        else:
            layer.metadata[PREXG] = new
        with self.undo.editing() if self.undo is not None else nullcontext():
            layer.data = data
        if self.undo is not None:
            self.undo.forget(layer)  # snapshots of the other frame would put points elsewhere

