"""A loaded alignment (`dock.loaded`) compared with one aligned in the dock, with no napari, magicgui or Qt.

The dock's Align makes a preview tomogram; a loaded alignment has none. Its tomogram is made as the command line makes
one from a saved alignment, ``tomoalign reconstruct STACK --alignment FILE`` (`file_jobs.reconstruct_to_file`), on the
aligned run's preview grid (its binning and thickness, the preview's low-pass, float32), into a temporary file read
back. The two frames are matched as two runs' are (`reconstruction.compare.frame_offset_px`): by the markers each
alignment puts in its frame, the aligned run's as its ``fid.xyz`` would hold them, the loaded one's from its set's
``fid.xyz``; a set without one (another tool's file) is put on the grid centre on centre, and the dock says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...workflows import PipelineResult
from .loaded import LoadedAlignment

Item = PipelineResult | LoadedAlignment


def loaded_problem(a: Item, b: Item, stack_of: Any) -> str | None:
    """Why ``a`` and ``b`` (one of them loaded) cannot be compared, or None; ``stack_of(result)`` is the file of the
    tilt series an aligned run was made from (None when unknown)."""
    fresh = [x for x in (a, b) if isinstance(x, PipelineResult)]
    if not fresh:
        return ("two loaded alignments: compare a loaded one with one aligned here (its tomogram is made on that one's "
                "grid)")
    run = fresh[0]
    if run.tomogram is None:
        return f"'{run.name}' has no tomogram: align it with its tilt series chosen"
    loaded = b if run is a else a
    assert isinstance(loaded, LoadedAlignment)
    stack = stack_of(run)
    if stack is not None and loaded.stack is not None and Path(stack).resolve() != loaded.stack.resolve():
        return (f"'{run.name}' was aligned on {Path(stack).name} but the loaded alignment was loaded for "
                f"{loaded.stack.name}: compare two alignments of one tilt series")
    return None


def loaded_tomogram(loaded: LoadedAlignment, like: PipelineResult) -> NDArray[np.float32]:
    """``loaded``'s tomogram as ``tomoalign reconstruct`` makes it, on ``like``'s preview grid (module docstring)."""
    import mrcfile

    from ...file_jobs import reconstruct_to_file
    from ...jobs.facts import PREVIEW_LOWPASS
    from ...reconstruction.reconstruct_job import ReconstructOptions

    assert like.tomogram is not None and loaded.stack is not None  # `loaded_problem` said so first
    binning = like.tomogram_binning
    with tempfile.TemporaryDirectory(prefix="tomoalign-compare-") as d:
        out = Path(d) / "loaded.mrc"
        reconstruct_to_file(loaded.stack, loaded.given or loaded.path, out, binning=binning,
                            thickness=like.tomogram.shape[0] * binning, lowpass=PREVIEW_LOWPASS,
                            options=ReconstructOptions(mode="float32"))
        with mrcfile.open(out, permissive=True) as m:
            return np.array(m.data, dtype=np.float32)


def markers_in_frame(item: Item) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """``(ids, (n, 3) positions)`` of the markers in ``item``'s aligned frame, as its ``fid.xyz`` holds them; None for
    a loaded alignment without one."""
    if isinstance(item, PipelineResult):
        from ...alignment.transforms import aligned_marker_positions

        al = item.alignment
        return np.asarray(al.marker_ids, dtype=np.int64), aligned_marker_positions(al, item.axis_z_shift_px)
    saved = item.saved
    if saved.folder is None or not saved.stem or not (saved.folder / f"{saved.stem}fid.xyz").is_file():
        return None
    from ...io.imod import read_fid_xyz

    return read_fid_xyz(saved.folder / f"{saved.stem}fid.xyz")


def loaded_frame(a: Item, b: Item) -> tuple[tuple[NDArray[np.float32], NDArray[np.float32]], str | None]:
    """Both tomograms on a's grid (`reconstruction.compare.tomograms_on_one_grid`), the loaded one's made now, and a
    note when the frames were matched centre on centre (no ``fid.xyz``). The worker's part."""
    from ...reconstruction.compare import frame_offset_px, tomograms_on_one_grid

    run = a if isinstance(a, PipelineResult) else b
    assert isinstance(run, PipelineResult) and run.tomogram is not None  # `loaded_problem` said so first
    ta, tb = (loaded_tomogram(x, run) if isinstance(x, LoadedAlignment) else run.tomogram for x in (a, b))  # one run
    ma, mb = markers_in_frame(a), markers_in_frame(b)
    note = None
    if ma is None or mb is None:
        offset = np.zeros(3)
        note = "the loaded alignment has no fid.xyz beside it: the two frames are matched centre on centre"
    else:
        offset = frame_offset_px(*ma, *mb)
    return tomograms_on_one_grid(ta, tb, offset, run.tomogram_binning), note


def loaded_label(name: str, loaded: LoadedAlignment) -> str:
    """A tomogram panel's label for a loaded alignment, as `logic.comparison_label` labels a run's: RMS first."""
    rms = loaded.rms_px
    return f"RMS {rms:.3f} px: {name}" if rms is not None else f"no residuals: {name}"
