"""The image step of the run job (`run.run_job`): the aligned stack and the binned tomogram in one pass over the
raw stack, from the alignment folder just written.

Each raw view is read once, erased (if asked), warped into the aligned stack (in the input's integer mode
unless ``ali_mode`` says otherwise) and, binned then warped as ``reconstruct`` makes it, kept for the
back-projection; then the tomogram is streamed by ``reconstruct``'s own function
(`reconstruction.reconstruct_job.reconstruct_alignment`) from the same folder, so that it is ``reconstruct``'s
tomogram of that folder.

With two threads or more (no cap from the caller; numba's loops safe in two threads at once) and nothing to
erase, the aligned stack is warped and written on a thread of its own while the others bin and warp the views
for the tomogram and make it: two jobs of one thread each side by side, rather than each on two threads one
after the other, whose compiled loops wait for each other at every view and which leave the second core idle
during the file writes. Every pixel and voxel is computed on its own, so the files are the same either way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import UsageError

if TYPE_CHECKING:
    from .align import AlignJob, FolderResult
    from .run import RunJob


def run_images(job: RunJob, ajob: AlignJob, folder: FolderResult, diameter_px: float, overwrite: bool,
               prebinned: Any = None) -> tuple[Path, Path, Path | None, Any, dict]:
    """The run's ``.ali``, ``_binN.rec`` (and ``_erased.mrc``) from the raw stack and the alignment ``folder``
    (the module docstring), their aligned frame (`reconstruction.frame.frame_size_of`: transposed for an axis near 90
    degrees, or the job's ``size``) and what the tomogram's plan found (with ``--level``: ``surfaces`` and
    ``levelled``); ``prebinned``: the raw views binned already (`run._prebin`), or None."""
    import numba

    from ..conventions import angstrom_from_nm
    from ..io.alignment import read_alignment_dir
    from ..io.atomic import atomic_path
    from ..io.mrc import MrcStreamWriter, open_tilt_series
    from ..reconstruction.erase import GoldEraser
    from ..reconstruction.frame import frame_size_of
    from ..tracking._spread import threadsafe_loops
    from ..tracking._views import release_view
    from . import facts
    from .images import check_frame, check_memory, output_mode

    b, folder_dir = job.binning, Path(folder.paths[0]).parent
    saved = read_alignment_dir(folder_dir)
    frame = frame_size_of(saved, job.size)
    check_frame(frame, b)
    series = open_tilt_series(job.stack, find_tilts=False)
    n, rows, cols = series.data.shape
    thickness = job.thickness or facts.default_thickness_px((cols, rows), saved.marker_z_extent_px)
    if thickness < b:
        raise UsageError(f"--thickness {thickness} is less than one binned pixel (--bin {b})")
    ny, nx = frame.shape(b)
    # The binned views are held; the volume is streamed in slabs (with local alignments too).
    check_memory(4 * nx * ny * 2 * n, "the reconstruction")
    pix_a = angstrom_from_nm(facts.pixel_size_nm(job.pixel_size_nm, series.pixel_size_angstrom))
    erase = GoldEraser.from_alignment(folder.alignment, diameter_px) if job.erase_gold else None
    out, stem = Path(job.output_dir), job.stem
    ali_path, rec_path = out / f"{stem}.ali", out / f"{stem}_bin{b}.rec"
    erased_path = out / f"{stem}_erased.mrc" if erase is not None else None
    modes = (output_mode(series.data.dtype, job.ali_mode), output_mode(series.data.dtype, None))
    binned = np.empty((n, ny, nx), dtype=np.float32)
    threads = numba.get_num_threads()
    info: dict = {}

    def tomogram() -> None:
        info.update(_tomogram(job, ajob, folder, saved, binned, rec_path, thickness, pix_a, overwrite))

    def binned_views() -> None:
        for j in range(n):
            binned_view(series.data[j] if prebinned is None else None, saved.transforms[j], b,
                        None if prebinned is None else prebinned[j], binned[j], series.data.shape[1:])
            release_view(series.data, j)

    with ExitStack() as stack:
        writers = []
        for path, mode in zip((ali_path, erased_path), modes):
            if path is not None:
                tmp = stack.enter_context(atomic_path(path, overwrite))
                w = MrcStreamWriter(tmp, (n, *(frame.shape() if path == ali_path else (rows, cols))), mode, pix_a)
                stack.callback(w.abort)  # a no-op once closed
                writers.append(w)
        if erase is None and threads > 1 and threadsafe_loops():
            _beside_tomogram(stack, lambda: aligned_views(job, series, saved, writers, modes, frame=frame),
                             binned_views, tomogram, threads, rec_path)
            return ali_path, rec_path, erased_path, frame, info
        aligned_views(job, series, saved, writers, modes, erase, (binned, b, prebinned), frame)
    tomogram()
    return ali_path, rec_path, erased_path, frame, info


def aligned_views(job: RunJob, series: Any, saved: Any, writers: list, modes: tuple, erase: Any = None,
                  binning: tuple | None = None, frame: Any = None) -> None:
    """Each raw view erased (if ``erase``; into ``writers[1]``) and warped into the aligned stack (``writers[0]``,
    of the aligned ``frame``; None: the raw one), with ``binning`` ``(binned, b, prebinned)`` also binned and
    warped into ``binned``; then the files closed."""
    from ..reconstruction.warp import warp_view
    from ..tracking._views import release_view
    from .images import check_finite_view, in_mode

    for j in range(series.data.shape[0]):
        raw = series.data[j]
        if erase is not None:
            raw = erase(j, raw)
            writers[1].write(in_mode(raw, modes[1]))
        view = warp_view(raw, saved.transforms[j], out_shape=None if frame is None else frame.shape())
        check_finite_view(job.stack, j, view)
        writers[0].write(in_mode(view, modes[0]))
        if binning is not None:
            binned, b, prebinned = binning
            binned_view(raw, saved.transforms[j], b, None if prebinned is None else prebinned[j], binned[j],
                        series.data.shape[1:])
        release_view(series.data, j)  # a memory map's pages of the view: not held by this process (a 4k stack's GBs)
    for w in writers:
        w.close()


def binned_view(raw: Any, xf: Any, binning: int, prebinned: Any, out: NDArray[np.float32],
                raw_shape: tuple[int, ...]) -> None:
    """A raw view binned then warped by ``xf`` into ``out``, as ``reconstruct`` makes it
    (`reconstruction.warp.warp_view`); from ``prebinned``, the view binned already, when given: the same
    matrix (about the centre of ``raw_shape``, the unbinned view's rows and columns), fill (the binned view's mean) and
    kernel, so the same pixels (`tests/jobs/test_run_beside.py`)."""
    from ..reconstruction.warp import pull_matrix, warp_view, warp_with_matrix

    if prebinned is None:
        warp_view(raw, xf, binning=binning, out_shape=out.shape, out=out)
        return
    fill = float(prebinned.mean())
    xf = np.asarray(xf, dtype=float)
    if not np.all(np.isfinite(xf)):
        out[...] = fill
        return
    warp_with_matrix(prebinned, pull_matrix(xf, prebinned.shape, out.shape, binning, raw_shape), out, fill)


def _beside_tomogram(stack: ExitStack, aligned: Any, binned_views: Any, tomogram: Any, threads: int,
                     rec_path: Path) -> None:
    """``aligned()`` (the aligned stack) on a thread of its own while this one, with the other threads, makes
    ``binned_views()`` and ``tomogram()``. The aligned stack's files are kept (by ``stack``) only when both are
    made; a tomogram made while the aligned stack failed is removed."""
    from ..compute import compiled_threads

    pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="aligned-stack", initializer=_one_thread))
    done = pool.submit(aligned)
    try:
        with compiled_threads(max(1, threads - 1)):
            binned_views()
            tomogram()
    finally:
        failed = done.exception() is not None  # waits for the aligned stack
    if failed:
        rec_path.unlink(missing_ok=True)
        done.result()


def _one_thread() -> None:
    import numba

    numba.set_num_threads(1)


def _tomogram(job: RunJob, ajob: AlignJob, folder: FolderResult, saved: Any, binned: NDArray[np.float32],
              rec_path: Path, thickness: int, pix_a: float | None, overwrite: bool) -> dict:
    """The tomogram of the binned aligned views, streamed by ``reconstruct``'s function, with the local alignments the
    job solved when it did (as ``reconstruct --local``), ``--shift`` and ``--level`` (`tomogram_plan`), whose
    surface analysis and levelling are returned (``surfaces``, ``levelled``), and the kernel that back-projected it
    (``kernel``, `reconstruction.kernel_choice.KernelChoice`)."""
    from ..conventions import nm_from_angstrom
    from ..reconstruction.frame import frame_size_of
    from ..reconstruction.reconstruct_job import ReconstructOptions, reconstruct_alignment

    b, folder_dir = job.binning, Path(folder.paths[0]).parent
    voxel_a = pix_a * b if pix_a else None
    frame = frame_size_of(saved, job.size)  # the run's aligned frame (`run_images`)
    options = ReconstructOptions(memory_bytes=job.memory_bytes, shift_px=job.shift_px, level=job.level)
    given = job.thickness if job.level is not None else thickness  # --level picks the thickness unless it is given

    local = None if folder.local is None else folder_dir / ajob.local_file_name()  # the local alignments it solved
    return reconstruct_alignment(job.stack, saved, folder_dir, rec_path, binning=b, thickness=given, lowpass=None,
                                 options=options, voxel_angstrom=voxel_a, overwrite=overwrite, aligned=binned,
                                 frame=frame, local_file=local, stack_pixel_nm=nm_from_angstrom(pix_a))


__all__ = ["aligned_views", "binned_view", "run_images"]
