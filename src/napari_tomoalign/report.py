"""The report of an alignment, for the command line and the napari dock alike: text and plots.

`text_report` gives the lines (`local_report` those of local alignments); `report_plot` draws per-view RMS
residual against nominal tilt, and the solved minus nominal tilt, for one alignment or several overlaid,
off-screen with matplotlib's Agg renderer (safe in a worker thread), as an RGBA image, so a GUI only has to
show a picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .alignment.full_layout import PARAM_OF_KIND
from .alignment.result import Alignment
from .conventions import format_views
from .io.alignment_record import flagged_points

if TYPE_CHECKING:
    from .alignment.leaveout import LeaveOutError
    from .alignment.local import LocalAlignments


def plots_available() -> bool:
    """Whether matplotlib is installed (it is optional: the ``napari`` extra brings it)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


NO_PLOTS = "the plots need matplotlib: pip install matplotlib (or napari-tomoalign[napari])"


def report_plot(alignments: dict[str, Alignment], size_px: tuple[int, int] = (324, 306), dpi: int = 90
                ) -> NDArray | None:
    """``(rows, cols, 4)`` uint8 image of the per-view plots of the named alignments, or None without
    matplotlib (`NO_PLOTS` says how to get it)."""
    if not plots_available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for name, al in alignments.items():
        rms, _ = al.per_view_residual_px()
        ax1.plot(al.nominal_tilt_angles_deg, rms, ".-", ms=3, lw=0.8, label=name)
        ax2.plot(al.nominal_tilt_angles_deg, al.tilt_angles_deg - al.nominal_tilt_angles_deg, ".-", ms=3, lw=0.8)
    ax1.set_ylabel("view RMS (px)", fontsize=8)
    ax2.set_ylabel("solved - nominal (deg)", fontsize=8)
    ax2.set_xlabel("nominal tilt (deg)", fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if len(alignments) > 1:
        ax1.legend(fontsize=7)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _with_nm(value_px: float, pixel_size_nm: float | None) -> str:
    return f"{value_px:.4f} px" + (f" ({value_px * pixel_size_nm:.3f} nm)" if pixel_size_nm else "")


def text_report(
    al: Alignment,
    *,
    name: str | None = None,
    leave_out: LeaveOutError | None = None,
    timings_s: dict[str, float] | None = None,
    warnings: bool = True,
) -> list[str]:
    """The report's lines: residuals, tilt axis and reference views, what each stage did, the worst views
    and markers, flagged points, leave-out errors, what was left out, and the solver's warnings.

    Views are numbered from 1 everywhere in the text, as IMOD numbers them (the arrays stay 0-based).
    The headline RMS is over every point in the fit, unweighted (IMOD's ``Final F`` for the full model);
    each stage line gives the RMS that stage minimised, weighted by the fit's weights (the robust weights
    in a robust stage), so the two can differ.
    """
    nm = al.pixel_size_nm
    lines = [] if name is None else [f"[{name}]"]
    lines.append(
        f"RMS residual {_with_nm(al.rms_residual_px, nm)} unweighted over all points in the fit, mean residual"
        f" {_with_nm(al.mean_residual_px, nm)}, {int(al.obs_used.sum())} observations,"
        f" {int(al.marker_included.sum())} markers, {int(al.view_determined.sum())} views"
        + ("" if al.converged else "; NOT CONVERGED")
    )
    lines.extend(_axis_lines(al))
    if al.stages:
        lines.append("stages (weighted RMS: the RMS each stage minimised, with the fit's weights):")
    for s in al.stages:
        lines.append(f"  stage {s.name:<8} {s.iterations:3d} iterations {s.wall_time_s * 1e3:8.1f} ms"
                     f"  weighted RMS {s.rms_residual_px:.4f} px  {'converged' if s.converged else s.message}")
    for step, seconds in (timings_s or {}).items():
        if step != "solve":
            lines.append(f"  {step:<14} {seconds * 1e3:8.1f} ms")
    lines.append("worst views: " + _worst(al.per_view_residual_px()[0], np.arange(1, al.n_views + 1)))
    lines.append("worst markers: " + _worst(al.per_marker_residual_px()[0], al.marker_ids))
    if al.robust_weights is not None:
        pts = flagged_points(al)
        shown = ", ".join(f"marker {p['marker']} view {p['view'] + 1} ({p['residual_px']:.2f} px)" for p in pts[:5])
        lines.append(f"robust fit: {len(pts)} point(s) weigh below 0.5" + (f": {shown}" if pts else "")
                     + (" ..." if len(pts) > 5 else ""))
    if leave_out is not None:
        robust = "" if leave_out.overall_robust_px is None else f", robust {leave_out.overall_robust_px:.4f} px"
        worst = np.argsort(-np.nan_to_num(leave_out.per_marker_px, nan=-1.0))[:3]
        lines.append(f"leave-out error {leave_out.overall_px:.4f} px{robust}; worst markers: "
                     + ", ".join(f"{int(leave_out.marker_ids[k])} ({leave_out.per_marker_px[k]:.3f} px)" for k in worst))
    lines.extend(_full_model_lines(al))
    if warnings:  # the command line prints them apart, on standard error (`cli.warn`)
        lines.extend(f"warning: {w}" for w in al.warnings)
    return lines


def _worst(rms: NDArray[np.float64], labels: NDArray[np.int64], n: int = 3) -> str:
    """The ``n`` largest finite values of ``rms``, largest first, each as ``label (value px)``."""
    order = np.argsort(np.where(np.isfinite(rms), -rms, np.inf))[:n]
    return ", ".join(f"{labels[k]} ({rms[k]:.3f} px)" for k in order if np.isfinite(rms[k]))


def local_report(la: LocalAlignments) -> list[str]:
    """The report of local alignments: a heading, one line per patch, then the local mean and its range."""
    out = ["Local alignments:"]
    out += [f"patch {p.patch.ix + 1},{p.patch.iy + 1} centre {p.patch.centre} size {p.patch.size[0]}x"
            f"{p.patch.size[1]}: {p.patch.n_markers} fiducials, {p.n_unknowns} unknowns, RMS "
            f"{p.rms_residual_px:.4f} px, mean {p.mean_residual_px:.3f} px" for p in la.patches]
    lo, hi = la.residual_range_px
    out.append(f"Residual error local mean: {la.mean_residual_px:.3f} px, range {lo:.3f} to {hi:.3f}")
    rms = [p.rms_residual_px for p in la.patches]
    if len(la.patches) > 1 and len({p.patch.n_markers for p in la.patches}) == 1 and max(rms) - min(rms) < 1e-4:
        out.append(f"note: every patch grew to hold the same {la.patches[0].patch.n_markers} fiducials (too few beads"
                   " for patches of their own): these local alignments are the global one, and add nothing")
    return out


REFERENCE_KINDS = (("magnification", "magnification 1"), ("tilt", "tilt held"), ("rotation", "rotation held"),
                   ("compression", "compression 1"), ("x_stretch", "X-stretch 0"), ("skew", "skew 0"),
                   ("x_tilt", "X-tilt 0"))


def _axis_lines(al: Alignment) -> list[str]:
    """The tilt axis and the reference views (1-based)."""
    ref = al.reference_view + 1
    settings = al.settings
    if not settings.from_com:
        source, given = al.tilt_axis_source, getattr(al.options, "tilt_axis_deg", None)
        if source == "given" and given is not None and abs((al.tilt_axis_deg - given + 180) % 360 - 180) > 0.005:
            source = f"solved from the given {given:g}"  # the rotations solved moved it (new user's nit, session 13)
        return [f"tilt axis {al.tilt_axis_deg:.2f} deg ({source}, {al.branch}); reference view {ref}"
                " (views numbered from 1)", *_reference_moved(al)]
    held = []
    for kind, label in REFERENCE_KINDS:
        m = settings.mappings[kind]  # views held while others of the kind are solved
        views = np.flatnonzero((m.var_a < 0) & (m.var_b < 0))
        if m.n_vars and len(views):
            held.append(f"{label} at view{'s' if len(views) > 1 else ''} {format_views(views)}")
    refs = "; ".join(held) if held else "none held"
    return [f"solved tilt axis {al.tilt_axis_deg:.2f} deg at the minimum-tilt view {ref} ({al.tilt_axis_source})",
            f"references the align.com holds (views numbered from 1, as IMOD prints them): {refs}"]


def _reference_moved(al: Alignment) -> list[str]:
    """A line when the reference view is not the series' lowest tilt because that view is not in the fit (excluded,
    or without markers): the tilt and magnification are held at another view, as tiltalign does. The X origin does not
    follow it: it goes where the least image is lost over all views (`alignment.transforms.x_origin`), which one view
    left out hardly moves (BBa without its +-1 deg views: 0.003 px at most, 0.29 when session 15 kept the reference
    view's centre; 8 px on the series of session 15's new user, who found it unsaid)."""
    if getattr(al.options, "reference_view", None) is not None:
        return []  # chosen by the user
    tilts = np.abs(al.output_tilt_angles_deg())
    if not np.isfinite(tilts).all():
        return []
    lowest = np.flatnonzero(tilts <= tilts.min() + 1e-6)
    out = [int(v) for v in lowest if not al.view_determined[v]]
    if al.reference_view in lowest or not out:
        return []
    t = al.output_tilt_angles_deg()
    ref, v = al.reference_view, out[0]
    return [f"note: reference view {ref + 1} ({t[ref]:+.1f} deg) stands in for view {v + 1} ({t[v]:+.1f} deg), the"
            f" lowest tilt, which is not in the fit: its tilt and magnification are held, as tiltalign does (the X"
            " origin is still where the least image is lost over all views)"]


FULL_KINDS = (("x_stretch", "X-stretch", 1.0, 4), ("skew", "skew (deg)", 180.0 / np.pi, 2),
              ("x_tilt", "X-tilt (deg)", 180.0 / np.pi, 2), ("compression", "compression", 1.0, 4))


def _full_model_lines(al: Alignment) -> list[str]:
    """Solved X-stretch, skew (and X-tilt, compression, beam tilt when solved) per group, 1-based views.

    Block groups print one value per run of views; linear groups print the value at each anchor view
    (the values between anchors are interpolated). Held groups and views are marked ``ref``.
    """
    lines = []
    for kind, label, scale, decimals in FULL_KINDS:
        m = al.settings.mappings[kind]
        if m.n_vars == 0:
            continue
        values = al.full_params[:, PARAM_OF_KIND[kind]] * scale
        fixed = (m.var_a < 0) & (m.var_b < 0)
        if np.any(m.w_b > 0):  # linear: the anchors and the held view
            views = sorted(set(m.anchor_view.tolist()) | set(np.flatnonzero(fixed).tolist()))
            parts = [f"{v + 1}: {values[v]:.{decimals}f}" + (" ref" if fixed[v] else "")
                     + ("" if al.view_determined[v] else " (view not in the fit)") for v in views]
            lines.append(f"{label}, linear between views: " + ", ".join(parts))
            continue
        starts = np.flatnonzero(np.r_[True, m.var_a[1:] != m.var_a[:-1]])
        ends = np.r_[starts[1:], len(values)] - 1
        parts = [f"{a + 1}-{b + 1}: {values[a]:.{decimals}f}" + (" ref" if fixed[a] else "")
                 + ("" if al.view_determined[a:b + 1].any() else " (no view in the fit)") for a, b in zip(starts, ends)]
        lines.append(f"{label} by group of views: " + ", ".join(parts))
    if al.settings.beam_tilt_free or al.beam_tilt_deg:
        lines.append(f"beam tilt {al.beam_tilt_deg:.3f} deg" + ("" if al.settings.beam_tilt_free else " (fixed)"))
    return lines
