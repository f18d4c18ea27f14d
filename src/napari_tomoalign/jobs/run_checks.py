"""The run job's checks before any work (`run.run_job`): what would only fail after minutes of tracking is said
at once, in one line, with nothing written.

- `check_alignment_folder`: an output folder holding another series' ``alignment/`` (one folder, one run).
- `check_budget`: a ``--memory`` too small for even the thinnest tomogram the run can make.
- `check_disk_space`: a disk without room for the run's image files (the aligned stack, the tomogram and the
  erased stack, in their modes, from the stack's size): the writers reserve their space only when the image step
  starts, after the tracking (new user's finding, session 13: a full disk was found after 9.7 s of tracking).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .run import RunJob

SMALL_FILES_BYTES = 16 * 2**20  # the markers, the alignment folder and the bead table, beside the image files
HEADER_BYTES = 1024  # an MRC file's header (no extended header written)


def check_alignment_folder(folder: Path, job: RunJob, overwrite: bool) -> None:
    """A folder's ``alignment/`` of another series is refused before the tracking, naming it: one output folder
    holds one run (its ``alignment/`` is not named by the stem)."""
    if overwrite or not (folder / "alignment.json").exists():
        return
    from ..io.alignment import run_stamp
    from ..io.errors import FileFormatError

    try:
        stem = str(run_stamp(folder)["stem"])
    except (FileFormatError, OSError, KeyError, TypeError):  # a damaged record: its writer says what is wrong, as before
        return
    what = f"the run of {stem}" if stem != job.stem else "an earlier run"
    raise UsageError(f"{folder.parent} holds {what} (alignment/); give {Path(job.stack).name} another --output, or"
                     " --force to replace it")


def check_budget(job: RunJob) -> None:
    """A ``--memory`` too small for even the thinnest tomogram the run can make is refused before the tracking
    (`stream.slab_rows`' own refusal, for the given thickness or the least the default gives: a quarter of the
    image), not after minutes of work."""
    from ..io.mrc import open_tilt_series
    from ..reconstruction.stream import slab_rows
    from .facts import default_thickness_px

    n, rows, cols = open_tilt_series(job.stack, find_tilts=False).data.shape
    b = job.binning
    thickness = job.thickness or default_thickness_px((cols, rows), None)
    slab_rows(int(job.memory_bytes or 0), n, (rows // b, cols // b), max(1, thickness // b), 4, 0)


def image_bytes(job: RunJob) -> dict[str, int]:
    """The bytes of the run's image files, by name, from the stack's size and the outputs' modes: the aligned
    stack (``--mode``, else the input's integer mode, else float32; ``--size``'s frame, else the raw frame's
    pixels, which a transposed frame keeps), the tomogram (int16 for an integer input, else float32; the given
    thickness, else the least the default gives: a quarter of the image) and, with ``--erase-gold``, the erased
    stack. The tomogram of a thicker default is larger: this is what the run needs at least."""
    import numpy as np

    from ..io.mrc import open_tilt_series
    from .facts import default_thickness_px
    from .images import output_mode

    data = open_tilt_series(job.stack, find_tilts=False).data
    n, rows, cols = data.shape
    b, stem = job.binning, job.stem
    nx, ny = job.size if job.size is not None else (cols, rows)
    thickness = job.thickness or default_thickness_px((cols, rows), None)
    tomogram_item = 2 if data.dtype.kind in "iu" else 4
    sizes = {f"{stem}.ali": n * nx * ny * output_mode(data.dtype, job.ali_mode).itemsize,
             f"{stem}_bin{b}.rec": max(1, thickness // b) * (ny // b) * (nx // b) * tomogram_item}
    if job.erase_gold:
        sizes[f"{stem}_erased.mrc"] = n * rows * cols * np.dtype(output_mode(data.dtype, None)).itemsize
    return {name: size + HEADER_BYTES for name, size in sizes.items()}


def check_disk_space(job: RunJob) -> None:
    """A `UsageError` when the disk of the output folder (or of its nearest folder that exists) has less room
    free than the run's files need (`image_bytes`, and `SMALL_FILES_BYTES` for the rest): before the tracking,
    not when the image step reserves its files' space after it."""
    sizes = image_bytes(job)
    need = sum(sizes.values()) + SMALL_FILES_BYTES
    folder = Path(job.output_dir).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # a file system that cannot tell: the writers' own reservation says it, as before
        return
    if need <= free:
        return
    files = ", ".join(f"{name} {_size(size)}" for name, size in sizes.items())
    raise UsageError(f"{job.output_dir}: the run needs at least {_size(need)} ({files}) but its disk has {_size(free)}"
                     f" free; free some space or write the output elsewhere")


def _size(n_bytes: int) -> str:
    """``n_bytes`` in the unit that reads best (MB or GB, powers of 1000 as ``df -H``)."""
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{max(n_bytes / 1e6, 0.1):.1f} MB"
