"""The bead step's work off the main thread: Find beads and Track as the dock's worker runs them, with the
diameter measured first as on the command line, and the command line's advice in the dock's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...conventions import view_number
from ...errors import AlignmentError, Cancelled, UsageError
from ...tracking.beads import BeadCandidates
from ...tracking.result import TrackingResult


def find_job(*, image: Any, view: int, diameter_px: float, threads: int, progress: Callable, should_stop: Callable,
             pixel_size_nm: float | None = None, dark: bool = True
             ) -> tuple[tuple[BeadCandidates] | None, BaseException | None]:
    """The worker's Find beads: the diameter given is measured on the view first, as Track and the command line
    do (`diameter.resolve_diameter`: a near one is replaced by the measure, a far one refused with the measure
    to give), then the beads are found at that diameter; expected failures come back as values."""
    from ...tracking.binned import find_beads_as_tracked
    from ...tracking.diameter import resolve_diameter

    try:
        progress("find", 0, 1, f"measuring the beads of view {view_number(view)}...")
        plane = np.asarray(image[view], dtype=np.float32)
        measured = resolve_diameter(plane[None], np.zeros(1), diameter_px, pixel_size_nm,
                                    "nm" if pixel_size_nm else "px", dark=dark)
        return (find_beads_as_tracked(plane, measured, dark),), None  # as Track finds them: on unbinned data, binned
    except UsageError as exc:  # the beads measure far from the diameter given
        return None, UsageError(dock_hint(str(exc)))
    except ValueError as exc:  # BeadFindingError is one
        return None, exc


def track_job(*, stack: Any, tilts: np.ndarray, diameter_px: float, tilt_axis_deg: float | None, seed_view: int,
              seeds_xy: np.ndarray | None, threads: int, progress: Callable, should_stop: Callable,
              pixel_size_nm: float | None = None, clumps: str = "skip", dark: bool = True
              ) -> tuple[tuple[TrackingResult, str | None] | None, BaseException | None]:
    """The worker's Track, as the command line's: the diameter given is measured on the data first
    (`diameter.resolve_diameter`: a near one is replaced by the measure, a far one refused with the measure to
    give), then `track_beads` with the dock's progress and Cancel, and the command line's hint afterwards;
    expected failures as values, in the dock's words."""
    from ...jobs.threads import thread_limit
    from ...tracking.binned import check_tracking_memory
    from ...tracking.diameter import resolve_diameter
    from ...tracking.jobs import diameter_hint, misfit_message, tilt_file_warning
    from ...tracking.pipeline import TRACKING_THREADS, track_beads

    try:
        check_tracking_memory(tuple(stack.shape[1:]), diameter_px, "this tilt series")
        with thread_limit(min(threads, TRACKING_THREADS) if threads else TRACKING_THREADS):
            measured = resolve_diameter(stack, tilts, diameter_px, pixel_size_nm, "nm" if pixel_size_nm else "px",
                                        dark=dark, seed_view=seed_view)  # on the view Track starts from, as the CLI
        result = track_beads(stack, tilts, measured, tilt_axis_deg=tilt_axis_deg, seed_view=seed_view,
                             seeds_xy=seeds_xy, clumps=clumps, threads=threads, progress=progress,
                             should_stop=should_stop, dark=dark)
        hint = diameter_hint(np.asarray(stack[result.seed_view]), result, measured, pixel_size_nm)
        result.warnings += [w for w in [tilt_file_warning(result, tilts, "the tilt angles", "this tilt series")] if w]
        misfit = misfit_message(result, tilts, "the tilt file", "this tilt series")  # as `run` refuses, `track` warns
        result.warnings += [f"warning: {misfit}"] if misfit else []
        return (result, dock_hint(hint)), None
    except UsageError as exc:  # the beads measure far from the diameter given
        return None, UsageError(dock_hint(str(exc)))
    except (Cancelled, AlignmentError, ValueError) as exc:
        return None, exc


def dock_hint(hint: str | None) -> str | None:
    """The command line's diameter advice in the dock's words (its spin box, not ``--bead-diameter-nm``)."""
    if hint is None:
        return None
    for unit, box in (("nm", "'bead diameter (nm)'"), ("px", "the bead diameter (px)")):
        hint = hint.replace(f" (or --bead-diameter-{unit} auto)", "").replace(f"--bead-diameter-{unit} D", f"{box}")
        hint = hint.replace(f"try --bead-diameter-{unit} ", f"set {box} to ").replace(
            f"give --bead-diameter-{unit} ", f"set {box} to ")
    return hint.replace(", or check the polarity (--polarity)", ", or check the beads' polarity")
