"""Step 4, running: the job in a worker thread, its progress, Cancel, and showing the result in small
steps so that the GUI never stalls long.

Nothing process-wide outlives the runner: CPython's full garbage collection (about 0.2 s over all
that napari holds) is held off only while a run is shown, and `teardown` gives it back even when the
dock closes mid-run.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from magicgui.widgets import ProgressBar
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, QTimer, Signal

from ...errors import Cancelled
from ...io.errors import FileFormatError
from ...jobs.preview import PipelineResult, PreviewJob, run_preview
from .logic import progress_percent
from .ui import button, row

WARM_UP_DELAY_MS = 300  # after the dock's first paint
PROGRESS_EVERY_S = 0.25  # at most four progress updates a second
STEP_GAP_MS = 2  # between display steps, so that the event loop gets a turn between them
Step = Callable[[], "list[Step] | None"]


def run_job(job: PreviewJob, **kw: Any) -> tuple[tuple[PipelineResult, Any, Any] | None, BaseException | None]:
    """The worker's function (``kw``: `run_preview`'s threads, progress and should_stop): the result, its report's
    plot and IMOD's surface analysis of its markers (`jobs.align.surface_analysis`, as ``tomoalign align`` reports
    it; None where there is none). Expected failures come back as values, so Qt never sees a raise."""
    from ...errors import AlignmentError
    from ...jobs.align import surface_analysis
    from ...report import report_plot

    try:
        result = run_preview(job, **kw)
        surfaces = None if result.job is None else surface_analysis(result.job.align, result.alignment,
                                                                    result.axis_z_shift_px)
        return (result, report_plot({result.name: result.alignment}, size_px=(320, 260)), surfaces), None
    except (Cancelled, AlignmentError, FileFormatError, ValueError) as exc:
        return None, exc


def warm_up_quietly(done: threading.Event) -> None:
    """Load the compiled kernels and matplotlib in the background, rather than during the first Align."""
    from ...workflows import warm_up

    try:
        warm_up()
        # napari keeps a Points layer's features in pandas: 300 modules, 0.5-1.6 s, which the first Find beads
        # on a stack without markers would otherwise import on the GUI thread.
        import pandas  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except Exception:  # a failed warm-up only means the first Align loads the kernels itself
        pass
    finally:
        done.set()


class GcHold:
    """Hold CPython's automatic garbage collection off, and give it back exactly once."""

    def __init__(self) -> None:
        self._held = False

    def hold(self) -> None:
        if not self._held and gc.isenabled():
            gc.disable()
            self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            gc.enable()


class HeapFreeze:
    """Move the objects napari already holds out of the garbage collector's sight while the dock is open.

    A full collection walks every object of the process: about 0.2 s over what napari holds, in whichever
    thread happens to allocate (the warm-up, or the GUI). Frozen objects are not walked, so later full
    collections are short. `release` gives them back (the dock leaves nothing process-wide changed).
    """

    def __init__(self) -> None:
        self._frozen = False

    def hold(self) -> None:
        if not self._frozen:
            gc.freeze()
            self._frozen = True

    def release(self) -> None:
        if self._frozen:
            self._frozen = False
            gc.unfreeze()


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued Qt connection)."""

    progress = Signal(str, int, int, str)


class Runner:
    """A start button and Cancel, the progress bar, and the worker between them.

    By default it runs `run_job` (an Align); the bead step makes a second runner with its own button, job
    function (``work``), busy text and progress shares (``percent``). ``locked`` buttons are disabled too
    while a job runs.
    """

    def __init__(self, status: Callable[[str], None], text: str = "Align",
                 tooltip: str = "solve the alignment, then make the aligned stack and a tomogram",
                 work: Callable[..., tuple[Any, BaseException | None]] = run_job, busy_text: str = "aligning...",
                 percent: Callable[[str, int, int], int] = progress_percent) -> None:
        self._status = status
        self._work, self._busy_text, self._percent = work, busy_text, percent
        self.align_button = button(text, tooltip)
        self.cancel_button = button("Cancel", "stop at the next iteration or view; nothing changes", enabled=False)
        self.locked: list[Any] = []  # other buttons that start jobs: disabled while one runs
        self.progress = ProgressBar(min=0, max=100, value=0, label="progress")
        self.widget = row(self.align_button, self.cancel_button)
        self.busy = False  # from Align until the result is shown (or the run failed or was cancelled)
        self.display_times_ms: list[tuple[str, float]] = []  # how long each display step held the GUI
        self.started = 0.0
        self._stop = threading.Event()
        self._gc = GcHold()
        self._heap = HeapFreeze()
        self._worker: Any = None
        self._last_progress = 0.0
        self._closed = False  # torn down: a worker's last progress signals must not reach deleted widgets
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self.warmed_up = threading.Event()

    def warm_up(self) -> None:
        """Load the kernels in the background once the new dock has been drawn, so that the two do not
        stall the GUI at the same moment."""
        self._heap.hold()
        self._warm_thread = threading.Thread(target=warm_up_quietly, args=(self.warmed_up,), daemon=True)
        QTimer.singleShot(WARM_UP_DELAY_MS, lambda: self._warm_thread.start())

    def start(self, job: PreviewJob | dict[str, Any], on_result: Callable[..., None],
              on_failure: Callable[[BaseException], None], work: Callable[..., Any] | None = None,
              busy_text: str | None = None) -> Any:
        """Run ``job`` (a typed job for `run_job`, or the keyword arguments of ``work``) in a worker; report
        back on the GUI thread (``on_result(*value)``)."""
        from napari.qt.threading import create_worker

        if self.busy:
            return None
        self._stop.clear()
        threads = max(1, (os.cpu_count() or 2) - 1)  # one core stays with the GUI
        args = job if isinstance(job, dict) else {"job": job}
        worker = create_worker(work or self._work, **args, threads=threads, progress=self._bridge.progress.emit,
                               should_stop=self._stop.is_set, _start_thread=False)

        def returned(outcome: tuple) -> None:
            value, error = outcome
            if error is not None:
                errored(error)
            else:
                on_result(*value)

        def errored(exc: BaseException) -> None:
            self.finish()
            try:  # a failed run leaves no bar part-filled (new user s14: "20%" after a failure)
                self.progress.value = 0
            except RuntimeError:  # the dock was closed meanwhile: its bar is gone
                self._closed = True
            on_failure(exc)

        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        # Adding result layers makes a full collection due; hold it off until the run is shown.
        self._gc.hold()
        self.busy = True
        self.started = time.perf_counter()
        self._set_buttons(running=True)
        self.progress.value = 0
        self._status(busy_text or self._busy_text)
        worker.start()
        return worker

    def cancel(self, *_: Any) -> None:
        """Ask the worker to stop at its next iteration or view."""
        if self.busy:
            self._stop.set()
            self._status("cancelling...")

    @property
    def stopping(self) -> bool:
        """True once Cancel was pressed during the current job."""
        return self._stop.is_set()

    def _on_progress(self, stage: str, done: int, total: int, text: str) -> None:
        if self._closed:  # napari closed while a Track ran (new user's finding M, session 12: tracebacks)
            return
        now = time.perf_counter()
        if now - self._last_progress < PROGRESS_EVERY_S and done < total:
            return  # each update lays out and repaints part of the window (10-40 ms on software OpenGL)
        self._last_progress = now
        try:
            self.progress.value = self._percent(stage, done, total)
            self._status(text)
        except RuntimeError:  # napari's window closed without the dock's teardown: its widgets are gone
            self._closed = True

    def _on_finished(self) -> None:
        self._worker = None

    def finish(self) -> None:
        """The run is over (shown, failed or cancelled): give back the GC and the buttons."""
        self._gc.release()
        self.busy = False
        self._set_buttons(running=False)

    def _set_buttons(self, running: bool) -> None:
        for b in (self.align_button, *self.locked):
            b.enabled = not running
        self.cancel_button.enabled = running

    def run_steps(self, steps: list[Step]) -> None:
        """Run each step on its own turn of the Qt event loop; a step may return more steps to run next."""

        def next_step() -> None:
            if not steps:
                return
            step = steps.pop(0)
            t0 = time.perf_counter()
            try:
                more = step()
            except Exception as exc:  # a display problem must not leave the dock busy
                steps.clear()
                show_error(f"could not show the result: {exc}")
                self.finish()
                return
            steps[0:0] = more or []
            self.display_times_ms.append((getattr(step, "__name__", "step"), 1000 * (time.perf_counter() - t0)))
            if steps:
                # A timer, not a posted call: Qt holds timers back while posted events are pending.
                QTimer.singleShot(STEP_GAP_MS, next_step)

        self.display_times_ms = []
        QTimer.singleShot(0, next_step)

    def teardown(self) -> None:
        """The dock is closing: stop any run and leave nothing process-wide changed."""
        self._closed = True
        self._stop.set()
        self._gc.release()
        self._heap.release()
        self.busy = False
