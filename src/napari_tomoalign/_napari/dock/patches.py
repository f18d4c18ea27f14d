"""Step 2 without gold: *markers from: no beads (patch tracking)*.

The bead step's source choice switches its controls: for patch tracking, the patch size (0: 3/32 of the
image), the patches' overlap and the contour length replace the bead diameter and *Find beads*, and
*Track* runs `track_patches` in the same worker (progress, Cancel). The contours fill a new, ordinary
markers layer, drawn light (small thin rings, no labels, half transparent) so that thousands of points
neither hide the image nor stall the viewer; Align, the residuals, triage and the comparison work on it.
The legend gives the report: patches laid, used and dropped (and why), contours, points, the fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox, SpinBox
from napari.layers import Points
from napari.utils.notifications import show_info

from ...errors import AlignmentError, Cancelled
from ...tracking.patches import PatchOptions, PatchTrackingResult
from ..layers import frame_of, markers_to_points
from .bead_logic import tracking_percent, visit_order
from .ui import form

GOLD, PATCHES = "gold beads", "no beads (patch tracking)"
PATCH_OPACITY = 0.6
PATCH_SHARES = {"coarse": (0, 15), "track": (15, 90), "fit": (90, 100)}


def patch_job(*, stack: Any, tilts: np.ndarray, tilt_axis_deg: float | None, options: PatchOptions, threads: int,
              progress: Callable, should_stop: Callable) -> tuple[tuple[PatchTrackingResult] | None, BaseException | None]:
    """The worker's patch tracking: `track_patches` with the dock's progress and Cancel; failures as values."""
    from ...tracking.patches import track_patches

    try:
        result = track_patches(stack, tilts, tilt_axis_deg=tilt_axis_deg, options=options, threads=threads,
                               progress=progress, should_stop=should_stop)
        return (result,), None
    except (Cancelled, AlignmentError, ValueError) as exc:  # PatchTrackingError is an AlignmentError
        return None, exc


def patch_percent(stage: str, done: int, total: int) -> int:
    lo, hi = PATCH_SHARES.get(stage, (0, 100))
    return int(round(lo + min(1.0, max(0.0, done / max(total, 1))) * (hi - lo)))


def is_patch_layer(layer: Any) -> bool:
    """Whether a markers layer holds patch contours: each contour is a marker only within its run of views,
    so the model's '?' rings where it was not tracked (every contour in every other view) mean nothing and
    would bury the image; the dock's results leave them out for such a layer."""
    return str(getattr(layer, "metadata", {}).get("source", "")).startswith("patch tracking")


def patch_points(result: PatchTrackingResult, name: str, image: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Points data and layer arguments for the contours: light rings, a hue per contour, no labels."""
    data, kwargs = markers_to_points(result.markers, name)
    size = max(6.0, result.patch_size_px / 8.0)
    flagged = result.flagged
    kwargs.update(frame_of(image), size=size, border_width=0.08, border_color="black", opacity=PATCH_OPACITY,
                  text=None, features={"marker": result.markers.marker, "check": flagged},
                  feature_defaults={"marker": 1, "check": False})
    kwargs["metadata"] = {**kwargs["metadata"], "source": f"patch tracking on {image.name}",
                          "tilt_angles_deg": image.metadata.get("tilt_angles_deg"),
                          "tilt_source": image.metadata.get("tilt_source")}
    return data, kwargs


class PatchPanel:
    """The source choice of step 2 and the patch-tracking controls; `BeadSection` owns the runner."""

    def __init__(self, beads: Any) -> None:
        self._beads = beads
        self.source = ComboBox(label="markers from", choices=[GOLD, PATCHES], value=GOLD,
                               tooltip="gold beads, or the specimen's own texture when there is no gold")
        self.patch_size = SpinBox(label="patch size (px)", min=0, max=100_000, value=0,
                                  tooltip="side of the square patches; 0: 3/32 of the image")
        self.overlap = FloatSpinBox(label="patch overlap", min=0.0, max=0.9, step=0.05, value=PatchOptions.overlap,
                                    tooltip="fraction by which neighbouring patches overlap")
        self.length = SpinBox(label="contour length (views)", min=4, max=10_000, value=16,
                              tooltip="each patch's track is cut into contours this long, overlapping by a quarter"
                                      " (at most 4 views)")
        self.options = form(self.patch_size, self.overlap, self.length)
        self.options.native.setVisible(False)
        self.source.changed.connect(lambda *_: self.switch())

    @property
    def on(self) -> bool:
        return self.source.value == PATCHES

    def switch(self) -> None:
        """Show the controls of the chosen source."""
        b = self._beads
        for w in (b.diameter_nm, b.view, b.with_clumps, b.info):
            b.widget.layout.setRowVisible(w.native, not self.on)  # the row's label too
        b.find_button.native.setVisible(not self.on)
        self.options.native.setVisible(self.on)
        b.runner.align_button.text = "Track patches" if self.on else "Track"

    def gather(self) -> dict[str, Any]:
        """The patch-tracking job (ValueError with a message when the input is not ready)."""
        image = self._beads._inputs.image.value
        if image is None:
            raise ValueError("choose (or open) a tilt series first")
        tilts, _ = self._beads._inputs.tilt_angles()
        if len(tilts) != image.data.shape[0]:
            raise ValueError(f"{len(tilts)} tilt angles for {image.data.shape[0]} views: give the stack's tilt file")
        n = int(self.length.value)
        opt = PatchOptions(patch_size=int(self.patch_size.value) or None, overlap=float(self.overlap.value), length=n,
                           length_overlap=min(4, n // 4))
        opt.check(image.data.shape[1:])
        options = self._beads._options
        axis = None if options.axis_mode.value == "estimate" else float(options.axis_angle.value)
        return {"stack": image.data, "tilts": np.asarray(tilts, dtype=float), "tilt_axis_deg": axis, "options": opt}

    def track(self) -> Any:
        b = self._beads
        image = b._inputs.image.value
        try:
            job = self.gather()
        except ValueError as exc:
            return b._refuse(exc)
        b.runner._percent = patch_percent

        def failed(exc: BaseException) -> None:
            b.runner._percent = tracking_percent
            b._on_failure(exc)

        return b.runner.start(job, lambda result: self._on_tracked(result, image), failed, work=patch_job,
                              busy_text="tracking patches...")

    def _on_tracked(self, result: PatchTrackingResult, image: Any) -> None:
        b = self._beads
        made: list[Points] = []
        data, kwargs = patch_points(result, f"{image.name} patches", image)

        def add() -> None:
            made.append(Points(data, **kwargs))
            b._viewer.layers.append(made[0])

        def choose() -> None:
            b._inputs.markers.reset_choices()
            b._inputs.markers.value = made[0]
            b._panel.flagged = set()
            b._panel.ids.value = "none"  # thousands of contour numbers would hide the image (the user may show them)
            b._panel.refresh()
            t = result.markers
            flagged = result.flagged
            visits = visit_order(t.view, t.marker, result.residual_px, np.where(flagged, 0, 1),
                                 {0: "flagged by patch tracking's robust fit"})
            b._runs.tracked(made[0], image, result.alignment, visits)
            b._options.robust.value = True  # patch contours are aligned robustly, as tracking did (and the CLI)

        def tell() -> None:
            b._viewer.layers.selection.active = made[0]
            b.show_legend(result.summary().replace("\n", "<br>"))
            b._status(f"patch tracking: {result.n_contours} contours, {len(result.markers)} points; Align next"
                      " (robust fitting on)")
            for w in result.warnings:
                show_info(w)

        b.runner.run_steps([add, choose, tell, self._done])

    def _done(self) -> None:
        b = self._beads
        b.runner._percent = tracking_percent
        b._done()
