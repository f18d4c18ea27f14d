"""The dock's pure functions: no napari, magicgui or Qt here, so they are tested without a viewer.

Arrays follow napari's order for points, ``(view, y, x)`` in pixels of the tilt series, and the
core's order for positions, ``(x, y)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...alignment.options import AlignmentOptions, VariableOption
from ...alignment.result import Alignment
from ...alignment.stages import Stage
from ...conventions import view_number
from ...io.imod import apply_transform
from ...io.table import MarkerTable
from ...jobs.preview import JobStep, PreviewJob
from ...jobs.solver_options import solver_settings

VARIABLE_CHOICES = {"per view": "view", "one for all": "one", "fixed": "fixed", "grouped": "group"}
AXIS_CHOICES = ("estimate", "estimate near the angle", "use the angle as given")
# Share of the progress bar for each stage of a run: (start, end) in percent.
# The share of the progress bar of each stage of the solve and step of the job, by the names they report.
STAGE_SHARES = {Stage.INITIAL.value: (0, 10), Stage.MAIN.value: (10, 30), Stage.WARM.value: (0, 45),
                Stage.TILT.value: (30, 45), Stage.ROBUST.value: (45, 50), JobStep.LEAVE_OUT.value: (45, 50),
                JobStep.ALIGNED_STACK.value: (50, 80), JobStep.TOMOGRAM.value: (80, 100)}
COUNTED_STEPS = {step.value for step in JobStep}  # these report items done out of a known total
ITERATION_STAGES_EXPECTED = 30  # a solver stage rarely needs more iterations: the bar fills by then
FLAGGED_RGBA = (1.0, 0.55, 0.0, 1.0)
DUPLICATE_RGBA = (1.0, 0.0, 0.0, 1.0)
CHECK_RGBA = (1.0, 1.0, 1.0, 1.0)  # points tracking marked to check (weak, flagged or not in its fit): no
# marker hue is white, so a thick white outline cannot be read as a marker's colour


def view_index(view: NDArray) -> NDArray[np.int64]:
    """Whole view numbers of napari's (possibly fractional) first coordinate."""
    return np.round(np.asarray(view, dtype=float)).astype(np.int64) if len(view) else np.zeros(0, np.int64)


def duplicate_mask(view: NDArray, marker: NDArray) -> NDArray[np.bool_]:
    """``(n,)`` True for every point whose marker has another point in the same view."""
    v, m = view_index(view), np.asarray(marker, dtype=np.int64)
    if v.size == 0:
        return np.zeros(0, bool)
    _, inverse, counts = np.unique(np.column_stack([v, m]), axis=0, return_inverse=True, return_counts=True)
    return counts[np.asarray(inverse).ravel()] > 1


def duplicate_pairs(view: NDArray, marker: NDArray) -> list[tuple[int, int]]:
    """Sorted ``(view, marker)`` pairs that have more than one point."""
    dup = duplicate_mask(view, marker)
    v, m = view_index(view)[dup], np.asarray(marker, dtype=np.int64)[dup]
    return sorted({(int(a), int(b)) for a, b in zip(v, m)})


def duplicates_text(pairs: Sequence[tuple[int, int]], limit: int = 4) -> str:
    """One line for the dock: how many duplicated (view, marker) pairs and the first few."""
    if not pairs:
        return "none"
    shown = ", ".join(f"marker {m} in view {view_number(v)}" for v, m in pairs[:limit])
    return f"{len(pairs)}: {shown}" + (" ..." if len(pairs) > limit else "")


def next_marker_id(marker: NDArray) -> int:
    """The id after the largest one in use (1 for an empty layer)."""
    m = np.asarray(marker, dtype=np.int64)
    return int(m.max()) + 1 if m.size else 1


def point_borders(view: NDArray, marker: NDArray, flagged_pairs: set[tuple[int, int]],
                  check: NDArray | None = None) -> tuple[NDArray, NDArray]:
    """``(n, 4)`` border colours and ``(n,)`` relative widths: red for duplicates, orange for points
    the robust fit flagged, a thicker white outline for points tracking marked to check (``check``, ``(n,)``), a thin
    dark outline otherwise."""
    v, m = view_index(view), np.asarray(marker, dtype=np.int64)
    dup = duplicate_mask(v, m)
    flagged = np.array([(int(a), int(b)) in flagged_pairs for a, b in zip(v, m)], dtype=bool)
    marked = np.zeros(len(v), bool) if check is None else np.asarray(check, dtype=bool)
    border = np.tile(np.array([0.0, 0.0, 0.0, 0.6]), (len(v), 1))
    border[marked] = CHECK_RGBA
    border[flagged] = FLAGGED_RGBA
    border[dup] = DUPLICATE_RGBA
    # relative to the point's size, on both edges of the ring: 0.25-0.3 filled a 96 px ring (a 4096^2 series' beads)
    # into a white disc over the very bead to check (new user's finding, session 13)
    return border, np.where(dup | flagged, 0.12, np.where(marked, 0.1, 0.05))


def track_data(view: NDArray, marker: NDArray, yx: NDArray) -> NDArray[np.float64]:
    """napari Tracks data ``(n, 4)`` = (track id, view, y, x): one track per marker, one point per view
    (a duplicated point would give a track two positions at one time; the first is kept)."""
    v, m = view_index(view), np.asarray(marker, dtype=np.int64)
    yx = np.asarray(yx, dtype=float).reshape(-1, 2)
    order = np.lexsort((v, m))
    data = np.column_stack([m[order], v[order], yx[order]]).astype(float)
    first = np.ones(len(data), bool)
    first[1:] = (np.diff(data[:, 0]) != 0) | (np.diff(data[:, 1]) != 0)
    return data[first]


def residual_order(al: Alignment) -> NDArray[np.intp]:
    """Observation indices for triage: flagged points first, each group by decreasing residual."""
    res = np.hypot(*al.residuals_px.T)
    used = np.flatnonzero(al.obs_used)
    flagged = al.flagged[used]
    return used[np.lexsort((-res[used], ~flagged))]


def flagged_pairs(al: Alignment) -> set[tuple[int, int]]:
    """``(view, marker id)`` of every point the robust fit flagged."""
    ids = al.marker_ids[al.obs_marker]
    return {(int(al.obs_view[k]), int(ids[k])) for k in np.flatnonzero(al.flagged)}


def progress_percent(stage: str, done: int, total: int) -> int:
    """Overall progress in percent for a report ``(stage, done, total)`` from the worker.

    Solver stages report iterations against a generous limit, so they fill their share after
    `ITERATION_STAGES_EXPECTED` iterations; the image steps report views done out of all views.
    """
    lo, hi = STAGE_SHARES.get(stage, (0, 100))
    if stage in COUNTED_STEPS:
        frac = done / max(total, 1)
    else:
        frac = done / ITERATION_STAGES_EXPECTED
    return int(round(lo + min(1.0, max(0.0, frac)) * (hi - lo)))


def variable_option(label: str, group_size: int) -> VariableOption:
    mode = VARIABLE_CHOICES[label]
    return VariableOption("group", int(group_size)) if mode == "group" else VariableOption(mode)  # type: ignore[arg-type]


def option_values_of(*, rotation: str, tilt: str, magnification: str, group_size: int, axis_mode: str,
                     axis_angle_deg: float, initial_stage: bool, robust: bool, robust_scale: float) -> dict[str, Any]:
    """The solver's option values (`jobs.solver_options`, by name) of the dock's choices (labels as in
    `VARIABLE_CHOICES` and `AXIS_CHOICES`)."""
    return {
        "rotation": str(variable_option(rotation, group_size)), "tilt": str(variable_option(tilt, group_size)),
        "magnification": str(variable_option(magnification, group_size)),
        "tilt_axis": None if axis_mode == "estimate" else float(axis_angle_deg),
        "no_axis_estimate": axis_mode == "use the angle as given", "no_initial_stage": not initial_stage,
        "robust": bool(robust), "robust_scale": float(robust_scale),
    }


def build_options(**choices: Any) -> AlignmentOptions:
    """`AlignmentOptions` from the dock's choices (`option_values_of`), converted by the one converter of the
    command line, ``batch`` and the dock (`jobs.solver_options.solver_settings`)."""
    return solver_settings(option_values_of(**choices)).options


def dock_job(table: MarkerTable, tilts: NDArray, size: tuple[int, int], pixel_size_nm: float | None, images: Any,
             options: AlignmentOptions, settings: dict[str, Any], start: Alignment | None, stem: str,
             prexg: tuple[str, NDArray] | None = None) -> PreviewJob:
    """The dock's typed job (`jobs.preview.PreviewJob`) from the markers, the tilts, the image and the choices
    (``settings``: `OptionsSection.settings`); ``prexg`` (its path and `jobs.align.read_prexg`'s transforms): the markers
    are the ``.preali``'s, the job's ``.xf`` the raw stack's, as ``tomoalign align --prexg`` makes it.
    No aligned stack is made: the dock shows one warped view by view
    (`results.ResultLayers.show_aligned_stack`), so an Align holds no full-resolution copy of the series."""
    from pathlib import Path

    from ...jobs.align import AlignJob
    from ...jobs.solver_options import SolverSettings

    com = settings.get("imod_com")
    # with an align.com its tiltalign options are the model: the dock's (greyed out) choices do not apply
    align = AlignJob(table, np.asarray(tilts, dtype=float), (int(size[0]), int(size[1])),
                     SolverSettings(AlignmentOptions() if com else options), pixel_size_nm, Path(com) if com else None,
                     bool(settings.get("leave_out")) and not com, prexg=None if prexg is None else prexg[1], stem=stem,
                     inputs={"markers_layer": stem, **({"prexg": prexg[0]} if prexg is not None else {})})
    return PreviewJob(align, images, name=settings["name"],
                      only_markers_in_every_view=bool(settings["only_markers_in_every_view"]),
                      make_aligned_stack=False, tomogram_thickness_px=settings.get("tomogram_thickness_px"),
                      start=start)


def tilt_summary(tilts: NDArray | None, source: str | None) -> str:
    """What the dock shows about the angles: how many, their range, and where they came from."""
    if tilts is None or len(tilts) == 0:
        return f"no angles ({source or 'none found'}): give a tilt file"
    t = np.asarray(tilts, dtype=float)
    return f"{t.size} angles, {t.min():.0f}..{t.max():.0f} deg, from {source or 'unknown'}"


def residual_vectors(al: Alignment, exaggeration: float, from_edge_px: float = 0.0
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """napari Vectors ``(n, 2, 3)`` along each used observation's exaggerated residual (raw frame, pixels), starting
    ``from_edge_px`` out from the point in the residual's direction (on its ring, so that a short arrow is not hidden
    inside it), and ``(n, 4)`` colours: red beyond 3 x RMS, yellow otherwise."""
    used = al.obs_used
    return residual_arrows(al.obs_view[used], al.obs_xy_px[used], al.residuals_px[used], al.rms_residual_px,
                           exaggeration, from_edge_px)


def residual_arrows(view: NDArray, xy: NDArray, residual: NDArray, rms_px: float, exaggeration: float,
                    from_edge_px: float = 0.0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`residual_vectors` of observations given as arrays (a saved ``.resid``'s: view, (x, y), (dx, dy))."""
    start = np.column_stack([view, xy[:, 1], xy[:, 0]]).astype(float)
    d = np.asarray(residual, dtype=float) * float(exaggeration)
    length = np.hypot(d[:, 0], d[:, 1])
    unit = np.divide(d, length[:, None], out=np.zeros_like(d), where=length[:, None] > 0)
    start[:, 1] += float(from_edge_px) * unit[:, 1]
    start[:, 2] += float(from_edge_px) * unit[:, 0]
    vectors = np.stack([start, np.column_stack([np.zeros(len(d)), d[:, 1], d[:, 0]])], axis=1)
    big = np.hypot(*np.asarray(residual, dtype=float).T) > 3.0 * max(rms_px, 1e-9)
    colours = np.where(big[:, None], [[1.0, 0.2, 0.2, 1.0]], [[1.0, 0.85, 0.1, 1.0]])
    return vectors, colours


def predicted_gap_points(al: Alignment) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Points ``(n, 3)`` (view, y, x) where the model puts a marker that was not clicked in a view,
    inside the image (raw frame, pixels), and their marker ids."""
    seen = np.zeros((al.n_views, al.n_markers), bool)
    seen[al.obs_view, al.obs_marker] = True
    vi, mi = np.nonzero(~seen & al.view_determined[:, None] & al.marker_included[None, :])
    p = al.predicted_xy_px[vi, mi]
    w, h = al.image_size
    inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
    vi, mi, p = vi[inside], mi[inside], p[inside]
    return np.column_stack([vi, p[:, 1], p[:, 0]]).astype(float), al.marker_ids[mi]


def aligned_points(al: Alignment, transforms: NDArray[np.float64], data: NDArray, marker: NDArray,
                   frame: Any = None) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Marker points ``(n, 3)`` (view, y, x) of the raw frame, taken into the aligned frame by each
    view's transform (the `imod_transforms` the aligned stack was made with; ``frame``, the preview's
    `reconstruction.frame.FrameSize`, places them in a transposed frame); points of views left
    out of the fit are dropped."""
    d = np.asarray(data, dtype=float).reshape(-1, 3)
    v = view_index(d[:, 0])
    ok = (v >= 0) & (v < len(transforms))
    ok[ok] &= np.all(np.isfinite(transforms[v[ok]].reshape(-1, 6)), axis=1)
    out = d[ok].copy()
    for j in np.unique(v[ok]):
        rows = v[ok] == j
        pts = out[rows][:, [2, 1]]
        xy = apply_transform(transforms[j], pts, al.image_centre) if frame is None else frame.to_aligned(
            transforms[j], pts)
        out[np.flatnonzero(rows), 1], out[np.flatnonzero(rows), 2] = xy[:, 1], xy[:, 0]
    return out, np.asarray(marker, dtype=np.int64)[ok]


def comparison_label(name: str, al: Alignment) -> str:
    """The label of a tomogram panel: the RMS residual first (a narrow panel cuts the end of its label off),
    then the alignment's name."""
    return f"RMS {al.rms_residual_px:.3f} px: {name} ({int(al.marker_included.sum())} markers)"


def safe_stem(name: str) -> str:
    """A file stem from a layer name (letters, digits, '-', '_', '.')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "markers"


def same_axis_options(last: Any, options: Any) -> bool:
    """Whether ``options`` ask for the tilt axis as the last Align's job did. A warm start keeps the last solution's
    axis branch, so a changed axis choice (the tomogram's hand rides on it) solves afresh: the dock gave the branch
    of the first Align whatever angle was asked after it (new user s14)."""
    job = getattr(last, "job", None)
    if job is None:
        return False
    before = job.align.settings.options
    return (before.tilt_axis_deg, before.estimate_tilt_axis) == (options.tilt_axis_deg, options.estimate_tilt_axis)
