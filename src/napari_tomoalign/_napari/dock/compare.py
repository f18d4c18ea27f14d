"""Step 6, comparing two alignments honestly: both tomograms on one grid (the same Z origin and
thickness, `reconstruction.compare.tomograms_on_one_grid`), one above the other in the dock's slice view
(`tomograms.SliceView`) at the same section, each panel labelled with its alignment's name and RMS, and both
reports together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox

from ...alignment.transforms import aligned_marker_positions
from ...reconstruction.compare import frame_offset_px, tomograms_on_one_grid
from ...workflows import PipelineResult
from .logic import comparison_label
from .report_view import ReportView
from .state import Runs
from .status import refuse
from .tomograms import SliceView
from .ui import button, form


def comparison_problem(a: PipelineResult, b: PipelineResult) -> str | None:
    """Why the two runs' tomograms cannot be compared, or None."""
    if a.tomogram is None or b.tomogram is None:
        return "both alignments need a tomogram: align them with a tilt series chosen"
    if a.tomogram_binning != b.tomogram_binning:
        return "the two tomograms were binned differently; align both on the same stack"
    return None


def common_frame(a: PipelineResult, b: PipelineResult) -> tuple[Any, Any]:
    """The two tomograms resampled onto one grid (GUI-free work; the dock runs it in a worker), lined up by their markers
    as each tomogram holds them: with the axis Z shift its run was placed with (an align.com's ``AxisZShift``)."""
    problem = comparison_problem(a, b)
    if problem or a.tomogram is None or b.tomogram is None:
        raise ValueError(problem)
    offset = frame_offset_px(a.alignment.marker_ids, aligned_marker_positions(a.alignment, a.axis_z_shift_px),
                             b.alignment.marker_ids, aligned_marker_positions(b.alignment, b.axis_z_shift_px))
    return tomograms_on_one_grid(a.tomogram, b.tomogram, offset, a.tomogram_binning)


def frame_and_plot(a: PipelineResult, b: PipelineResult) -> tuple[tuple[Any, Any], Any]:
    """`common_frame` and the two runs' report plot (matplotlib takes 0.2-0.5 s to draw it): the worker's part."""
    from ...report import report_plot
    from .report_view import PLOT_SIZE

    return common_frame(a, b), report_plot({a.name: a.alignment, b.name: b.alignment}, size_px=PLOT_SIZE)


BEAD_REACH = 1  # sections either side of a section whose beads it shows (a bead spans a few binned sections)


def bead_section(result: PipelineResult, n_z: int) -> tuple[int, int] | None:
    """The XY section of ``result``'s preview tomogram (``n_z`` sections, `reconstruction.wbp`'s grid: the tilt
    axis at the middle one, or a grid as thick centred the same way) nearest the most beads, by their solved
    z (``fid.xyz``'s, with the run's axis Z shift), and how many beads lie within `BEAD_REACH` of it; None
    without solved markers inside the volume. The middle section of a thin specimen often holds no bead at all,
    only the missing wedge's streaks. X-axis tilt and Z factors are left out: they move a bead a section or so
    across the field."""
    al = result.alignment
    z = aligned_marker_positions(al, result.axis_z_shift_px)[al.marker_included, 2]
    return section_of_beads(z, result.tomogram_binning, n_z)


def section_of_beads(z: Any, binning: int, n_z: int) -> tuple[int, int] | None:
    """`bead_section` of beads at ``z`` (unbinned pixels from the tilt axis) in a tomogram of ``n_z`` sections
    binned by ``binning``."""
    z = np.asarray(z, dtype=float)
    k = np.rint(z[np.isfinite(z)] / binning + (n_z - 1) / 2.0).astype(int)
    k = k[(k >= 0) & (k < n_z)]
    if not k.size:
        return None
    near = np.convolve(np.bincount(k, minlength=n_z), np.ones(2 * BEAD_REACH + 1, dtype=int), mode="same")
    best = int(np.argmax(near))
    return best, int(near[best])


def voxel_nm(result: PipelineResult) -> float:
    return float(result.alignment.pixel_size_nm or 1.0) * result.tomogram_binning


class Comparison:
    """Pick two alignments by name and show their tomograms side by side."""

    def __init__(self, runs: Runs, tomograms: SliceView, report: ReportView, status: Callable[..., None]) -> None:
        self._runs, self._tomograms, self._report, self._status = runs, tomograms, report, status
        self.compare_a = ComboBox(label="compare", choices=self._names, nullable=True)
        self.compare_b = ComboBox(label="with", choices=self._names, nullable=True)
        self.compare_button = button("Compare side by side", "both tomograms on one grid, one above the other, one slider")
        self.widget = form(self.compare_a, self.compare_b)
        self.widget.append(self.compare_button)
        self.compare_button.changed.connect(lambda *_: self.compare())
        self.worker: Any = None
        self.reveal: Callable[[], None] = lambda: None  # the dock unfolds the slice view's step

    def _names(self, _w: Any = None) -> list[str]:
        return self._runs.names()  # those made, then those loaded (`dock.loaded_compare`)

    def refresh(self, newest: str | None = None) -> None:
        self.compare_a.reset_choices()
        self.compare_b.reset_choices()
        names = self._names()
        if newest is not None:
            self.compare_a.value = newest
        if len(names) > 1 and self.compare_b.value in (None, self.compare_a.value):
            self.compare_b.value = next(n for n in reversed(names) if n != self.compare_a.value)

    def compare(self) -> Any:
        """Start the resampling in a worker; the panels appear when it is done."""
        from napari.qt.threading import create_worker

        a, b = self.compare_a.value, self.compare_b.value
        if a is None or b is None or a == b:
            refuse(self._status, "cannot compare: align twice under two names first (for example with and without "
                   "'only markers seen in every view'), then pick both")
            return None
        if a in self._runs.loaded or b in self._runs.loaded:
            return self._compare_loaded(a, b)
        ra, rb = self._runs.results[a], self._runs.results[b]
        problem = comparison_problem(ra, rb)  # checked here, so that nothing is raised in a worker
        if problem:
            refuse(self._status, f"cannot compare: {problem}")
            return None
        worker = create_worker(frame_and_plot, ra, rb, _start_thread=False)
        worker.returned.connect(lambda out: self.show(ra, rb, *out))
        worker.errored.connect(lambda exc: self._failed(exc))
        self.worker = worker
        self._status(f"putting '{a}' and '{b}' on one grid...")
        worker.start()
        return worker

    def _compare_loaded(self, a: str, b: str) -> Any:
        """`compare` with a loaded alignment: its tomogram made as ``tomoalign reconstruct`` makes it, in the worker."""
        from napari.qt.threading import create_worker

        from .loaded_compare import loaded_frame, loaded_problem

        runs = self._runs
        items = [runs.loaded[n] if n in runs.loaded else runs.results[n] for n in (a, b)]
        problem = loaded_problem(items[0], items[1], lambda r: stack_file(runs.source(r.name)[1]))
        if problem:
            refuse(self._status, f"cannot compare: {problem}")
            return None
        run = next(x for x in items if isinstance(x, PipelineResult))

        def work() -> tuple[Any, Any]:
            from ...report import report_plot
            from .report_view import PLOT_SIZE

            return loaded_frame(items[0], items[1]), report_plot({run.name: run.alignment}, size_px=PLOT_SIZE)

        worker = create_worker(work, _start_thread=False)
        worker.returned.connect(lambda out: self.show_loaded((a, b), items, *out))
        worker.errored.connect(lambda exc: self._failed(exc))
        self.worker = worker
        self._status(f"making the tomogram of the loaded alignment as tomoalign reconstruct does, then putting '{a}' "
                     f"and '{b}' on one grid...")
        worker.start()
        return worker

    def show_loaded(self, names: tuple[str, str], items: list[Any], framed: tuple[Any, str | None],
                    plot: Any = None) -> list[str]:
        """`show` with a loaded alignment (``framed``: the two volumes and a note, `loaded_compare.loaded_frame`): its
        panel labelled by its residuals, its report lines under the aligned run's report."""
        from .loaded_compare import loaded_label, markers_in_frame

        (volumes, note), run = framed, next(x for x in items if isinstance(x, PipelineResult))
        labels = [comparison_label(n, x.alignment) if isinstance(x, PipelineResult) else loaded_label(n, x)
                  for n, x in zip(names, items)]
        n_z = volumes[0].shape[0]  # the grid is a's: the section of a's beads
        marked = None if items[0] is run else markers_in_frame(items[0])
        beads = (bead_section(run, n_z) if items[0] is run else None if marked is None else
                 section_of_beads(marked[1][:, 2], run.tomogram_binning, n_z))
        shown = self._tomograms.show([(volumes[0], voxel_nm(run), labels[0]), (volumes[1], voxel_nm(run), labels[1])],
                                     start=beads[0] if beads else None)
        loaded = next(x for x in items if x is not run)
        self._report.show([run], plot=plot, more=loaded.report())
        self.reveal()
        self._status(f"comparing '{names[0]}' (top) with '{names[1]}' (bottom) on one grid, step 6, "
                     f"{self._tomograms.section_said(beads)}"
                     + (f"; {note}" if note else ""))
        return shown

    def _failed(self, exc: BaseException) -> None:
        refuse(self._status, f"cannot compare: {exc}")

    def show(self, ra: PipelineResult, rb: PipelineResult, volumes: tuple[Any, Any], plot: Any = None) -> list[str]:
        """The two panels and both reports (``plot``: drawn in the worker; drawn here when not given)."""
        beads = bead_section(ra, volumes[0].shape[0])  # the grid is a's, centred as thick as the thicker
        shown = self._tomograms.show([(volumes[0], voxel_nm(ra), comparison_label(ra.name, ra.alignment)),
                                       (volumes[1], voxel_nm(rb), comparison_label(rb.name, rb.alignment))],
                                      start=beads[0] if beads else None)
        self._report.show([ra, rb], plot=plot)
        self.reveal()
        self._status(f"comparing '{ra.name}' (top) with '{rb.name}' (bottom) on one grid, step 6, "
                     f"{self._tomograms.section_said(beads)}")
        return shown


def stack_file(image: Any) -> str | None:
    """The file an image layer was opened from, or None."""
    return getattr(getattr(image, "source", None), "path", None)
