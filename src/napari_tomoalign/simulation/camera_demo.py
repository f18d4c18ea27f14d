"""``tomoalign demo --size N``: a camera-sized tilt series with known truth, for trying the product at the
sizes it is used at (4096 x 4096 at 0.2 nm/px with 10 nm gold spanning 50 px, int16 counts of one or two
electrons per pixel, as a counting camera writes them).

The series is `unbinned.unbinned_scene`'s cryo specimen: built at a coarse pixel (at most 1024 pixels across)
and rendered ``factor`` times finer, view by view into an int16 MRC (`unbinned.write_unbinned_stack`: memory
for one view). The demo then runs ``tomoalign run`` on it as a user would and judges the written ``.xf`` and
``.tlt`` against the truth (`lamella.end_to_end_error`).

Sizes are checked before any work, each refusal one line: the image from 256 to 8192 pixels, 3 to 181 views,
beads of 4 to 200 pixels, and the memory (rendering a view and ``run``'s peak, measured at 4096^2 x 41: 0.74 GB
and 2.1 GB, in proportion to the pixels) and disk (the stack, the ``.ali`` and the tomogram) that are there.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MIN_SIZE, MAX_SIZE, BASE_MAX = 256, 8192, 1024
MIN_VIEWS, MAX_VIEWS = 3, 181
MIN_BEAD_PX, MAX_BEAD_PX = 4.0, 200.0
BASE_PIXEL_NM = 0.8  # the cryo preset's pixel: the default pixel is this over the upsampling factor
RUN_BYTES_PER_PIXEL = 2.1e9 / (4096 * 4096 * 41)  # `run`'s peak per pixel of the stack (new user s13, u15)
RENDER_BYTES_PER_PIXEL = 0.74e9 / (4096 * 4096)  # rendering one view (measured at 4096^2: 735 MB)


@dataclass(frozen=True)
class CameraSeries:
    """What ``--size`` asks for: the image size, views, pixel and bead sizes, and how it is rendered."""

    size: int
    n_views: int
    pixel_nm: float
    bead_nm: float
    factor: int  # the coarse scene is upsampled by this

    @property
    def base(self) -> int:
        return self.size // self.factor

    @property
    def bead_px(self) -> float:
        return self.bead_nm / self.pixel_nm

    def stack_bytes(self) -> int:
        return 2 * self.size * self.size * self.n_views


def plan(size: int, n_views: int = 41, pixel_nm: float | None = None, bead_nm: float = 10.0) -> CameraSeries:
    """The series of ``--size`` (``pixel_nm`` None: 0.8 nm over the factor, 0.2 at 4096), or a `UsageError`."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"--size {size}: give {MIN_SIZE} to {MAX_SIZE} pixels (4096 is a K2/K3/Falcon frame)")
    factor = math.ceil(size / BASE_MAX)
    while size % factor:
        factor += 1
    if size // factor < MIN_SIZE:
        raise UsageError(f"--size {size}: give a multiple of {math.ceil(size / BASE_MAX)} (it is rendered from a"
                         f" specimen of at most {BASE_MAX} pixels, upsampled)")
    if not MIN_VIEWS <= n_views <= MAX_VIEWS:
        raise UsageError(f"--views {n_views}: give {MIN_VIEWS} to {MAX_VIEWS}")
    pix = BASE_PIXEL_NM / factor if pixel_nm is None else float(pixel_nm)
    if not (math.isfinite(pix) and pix > 0) or not (math.isfinite(bead_nm) and bead_nm > 0):
        raise UsageError("--pixel-nm and --bead-nm must be positive numbers")
    series = CameraSeries(int(size), int(n_views), pix, float(bead_nm), factor)
    if not MIN_BEAD_PX <= series.bead_px <= MAX_BEAD_PX:
        raise UsageError(f"beads of {bead_nm:g} nm at {pix:g} nm/px span {series.bead_px:.1f} px; give --pixel-nm and"
                         f" --bead-nm for {MIN_BEAD_PX:g} to {MAX_BEAD_PX:g} px (10 nm gold at 0.2 nm/px: 50 px)")
    return series


def check_room(series: CameraSeries, out_dir: Path) -> None:
    """Refuse a series whose rendering and ``run`` would not fit in the memory available now, or whose files
    would not fit on the output's disk; one line each, with the figures."""
    from ..compute import available_memory_bytes

    pixels = series.size * series.size
    need = max(RENDER_BYTES_PER_PIXEL * pixels, RUN_BYTES_PER_PIXEL * pixels * series.n_views)
    avail = available_memory_bytes()
    if avail is not None and need > 0.8 * avail:
        raise UsageError(f"a {series.size}^2 x {series.n_views} demo needs about {need / 2**30:.1f} GiB of memory (as"
                         f" 'tomoalign run' on it) but {avail / 2**30:.1f} GiB are available; give a smaller --size or"
                         " fewer --views")
    disk = 2.2 * series.stack_bytes()  # the stack, the .ali, a binned tomogram and the tables
    where = out_dir if out_dir.exists() else out_dir.parent if out_dir.parent.exists() else Path(".")
    free = shutil.disk_usage(where).free
    if disk > free:
        raise UsageError(f"a {series.size}^2 x {series.n_views} demo writes about {disk / 2**30:.1f} GiB but"
                         f" {where} has {free / 2**30:.1f} GiB free; write it elsewhere or give a smaller --size")


def write_series(series: CameraSeries, out_dir: Path, seed: int, *, overwrite: bool = False) -> Path:
    """Render the series into ``out_dir/camera<size>.mrc`` (int16) with its ``.rawtlt`` and truth beside it."""
    from ..io.atomic import check_writable
    from .unbinned import unbinned_scene, write_unbinned_stack

    stack = out_dir / f"camera{series.size}.mrc"
    for p in (stack, stack.with_suffix(".rawtlt"), Path(str(stack) + ".truth.npz")):
        check_writable(p, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    scene = unbinned_scene("cryo", series.base, series.factor, series.n_views, seed=seed,
                           pixel_size_nm=series.pixel_nm * series.factor,
                           bead_diameter_px=series.bead_px / series.factor)
    return write_unbinned_stack(stack, scene)


def truth_line(stack: Path, alignment_dir: Path) -> str:
    """The run's ``.xf`` and ``.tlt`` judged against the simulation's truth, end to end."""
    import numpy as np

    from ..alignment.model import TILT
    from ..io.alignment import read_alignment_dir
    from .lamella import end_to_end_error

    truth = np.load(str(stack) + ".truth.npz")
    saved = read_alignment_dir(alignment_dir)
    e2e = end_to_end_error(saved.transforms, saved.tilt_angles_deg, saved.image_size, truth["xy"])
    tilt_err = float(np.max(np.abs(saved.tilt_angles_deg - np.degrees(truth["view_params"][:, TILT]))))
    return (f"against the simulation's truth: every bead's true position through the .xf and .tlt fits one 3-D point"
            f" within {e2e:.3f} px RMS; solved tilts within {tilt_err:.2f} deg of the true ones")
