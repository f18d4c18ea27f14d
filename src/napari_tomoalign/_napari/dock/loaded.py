"""A saved alignment read back for the dock's stack (*Load alignment...*), with no napari, magicgui or Qt.

It is read by the command line's own job function, `jobs.images.open_stack_and_alignment` (what ``tomoalign
aligned-stack`` and ``reconstruct`` do with ``--alignment``): a ``tomoalign align`` folder (its ``alignment.json``
or ``.xf``), checked against its run stamp, or an IMOD/etomo set (``NAME.xf`` with ``NAME.tlt``), or another tool's
file that ``convert`` reads; then checked against the stack it is loaded for (image size, views, pixel size): a file
of another run or another stack is refused in one line. The residuals are the set's own ``NAME.resid`` (IMOD's
format; `tomoalign align` writes one too), read with `io.imod.read_resid`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...io.alignment import SavedAlignment
from ...io.errors import FileFormatError


@dataclass
class LoadedAlignment:
    """A saved alignment and its residuals (``view``, ``xy`` and ``residual`` of each used observation, None when
    the set has no ``.resid``), ``notes`` what the readers said (provenance, warnings)."""

    name: str
    path: Path
    saved: SavedAlignment
    view: NDArray[np.intp] | None
    xy: NDArray[np.float64] | None
    residual: NDArray[np.float64] | None
    notes: list[str]
    given: Path | None = None  # the file or folder the user chose (what --alignment takes)
    stack: Path | None = None  # the tilt series it was read and checked for

    def choice_name(self) -> str:
        """Its name in Save's and Compare's lists: the file chosen (an ``alignment.json`` or a folder with its folder's
        name), marked as loaded."""
        p = self.given or self.path
        shown = f"{p.parent.name}/{p.name}" if p.name == "alignment.json" else f"{p.name}/" if p.is_dir() else p.name
        return f"{shown} (loaded)"

    @property
    def rms_px(self) -> float | None:
        if self.residual is None or not len(self.residual):
            return None
        return float(np.sqrt(np.mean(np.sum(self.residual**2, axis=1))))

    def summary(self) -> str:
        """One line: what was loaded, its views and its residuals."""
        s = self.saved
        views = f"{int(s.view_determined.sum())} of {len(s.view_determined)} views"
        rms = self.rms_px
        resid = (f"RMS {rms:.3f} px over {len(self.residual)} residuals" if rms is not None and self.residual is not None
                 else "no .resid beside it: no residuals to show")
        return f"loaded '{self.name}' from {self.path}: {views}, {resid}"


    def elsewhere(self) -> str:
        """Where a tomogram of a loaded alignment is made: in Compare, or by the command line."""
        return ("its aligned stack is step 5's 'aligned stack'; its tomogram is made by Compare (step 6, beside an "
                f"Align's), or by tomoalign reconstruct --alignment {self.given or self.path}")

    def report(self, worst: int = 5) -> list[str]:
        """The lines step 5's report shows: the summary, the readers' notes, and the views of largest RMS."""
        lines = [self.summary(), *self.notes, f"shown for its residuals; {self.elsewhere()}"]
        if self.view is not None and self.residual is not None and len(self.view):
            n = len(self.saved.transforms)
            sq = np.bincount(self.view, weights=np.sum(self.residual**2, axis=1), minlength=n)
            count = np.bincount(self.view, minlength=n)
            rms = np.sqrt(np.divide(sq, count, out=np.zeros(n), where=count > 0))
            order = [int(k) for k in np.argsort(-rms)[:worst] if count[k]]
            lines.append("largest RMS by view: " + ", ".join(f"view {k + 1} {rms[k]:.3f} px" for k in order))
        return lines


def stack_path_of(image: Any) -> Path:
    """The file the image layer was opened from (ValueError with a message when it has none)."""
    if image is None:
        raise ValueError("choose the tilt series the alignment was made for (step 1)")
    path = getattr(getattr(image, "source", None), "path", None)
    if not path or not Path(path).is_file():
        raise ValueError(f"'{image.name}' was not opened from a file, so the alignment cannot be checked against it: "
                         "open the tilt series with File > Open, then load its alignment")
    return Path(path)


def load_alignment(path: str | os.PathLike[str], stack_path: str | os.PathLike[str]) -> LoadedAlignment:
    """The alignment at ``path`` (a folder, its alignment.json or .xf, an IMOD set) for the stack at ``stack_path``,
    checked as the command line checks it; `FileFormatError` (one line) when it does not belong to that stack."""
    from ...jobs.images import open_stack_and_alignment

    with warnings.catch_warnings(record=True) as caught:  # said in the dock, not raised
        warnings.simplefilter("always")
        _, saved, _ = open_stack_and_alignment(stack_path, path)
    notes = [str(w.message) for w in caught]
    if saved.provenance:
        notes.insert(0, saved.provenance)
    where = saved.folder if saved.folder is not None else Path(path)
    view = xy = residual = None
    resid = saved.folder / f"{saved.stem}.resid" if saved.folder is not None and saved.stem else None
    if resid is not None and resid.is_file():
        from ...io.imod import read_resid

        view, xy, residual = read_resid(resid)
        n = len(saved.transforms)
        if len(view) and (view.min() < 0 or view.max() >= n):
            raise FileFormatError(f"{resid}: residuals in view {int(view.max()) + 1} of an alignment of {n} views: "
                                  "the .resid of another run; align again or remove it")
    return LoadedAlignment(saved.stem or where.name, where, saved, view, xy, residual, notes, Path(path),
                           Path(stack_path))


def save_loaded(loaded: LoadedAlignment, directory: str | os.PathLike[str], stem: str, overwrite: bool) -> list[Path]:
    """The loaded alignment written into ``directory`` as ``tomoalign convert ALIGNMENT --to imod --name STEM`` writes
    it (`io.convert.convert`): IMOD's ``STEM.xf`` and ``STEM.tlt``, with the ``fid.xyz``, ``.resid``, ``.xtilt``,
    ``.zfac`` and local file of its set carried; the set the dock and the command line load back."""
    from ...io.convert import convert

    saved = loaded.saved
    return convert(saved, "imod", directory, name=stem, n_views=len(saved.transforms), overwrite=overwrite)
