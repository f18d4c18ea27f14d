"""The end of a batch: ``summary.csv`` (one row per series) and ``summary.png`` (RMS per series, outliers flagged)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_open, atomic_path
from .task import ROW_FIELDS

CSV_FIELDS = (*ROW_FIELDS, "outlier")


def flag_outliers(rows: list[dict[str, Any]], k: float = 3.0) -> list[bool]:
    """True for series whose RMS lies above ``median + max(k * MADN, 0.25 * median)`` of the batch, and for
    failed, unconverged or ``check`` ones (an alignment warning).

    The RMS is compared in nm when every series with one knows its pixel size (a batch of 0.4 and 0.8 nm/px
    series fits the same in nm, not in px), else in px (`rms_values`). MADN is the median absolute deviation
    scaled by 1.4826 (the standard deviation for normal data); the floor of 25 % above the median keeps a batch
    of near-identical series from flagging hundredths of a pixel. With fewer than 4 RMS values only failures and
    warnings are flagged.
    """
    rms, _ = rms_values(rows)
    vals = [v for v in rms if math.isfinite(v)]
    out = [r["status"] in ("failed", "no-markers", "not-converged", "check") for r in rows]
    if len(vals) < 4:
        return out
    med = _median(vals)
    madn = 1.4826 * _median([abs(v - med) for v in vals])
    cut = med + max(k * madn, 0.25 * med)
    return [o or (math.isfinite(v) and v > cut) for o, v in zip(out, rms)]


def rms_values(rows: list[dict[str, Any]]) -> tuple[list[float], str]:
    """Each row's RMS residual (NaN without one) and its unit: ``"nm"`` when every row with an RMS has a pixel
    size, else ``"px"``."""
    px = [float(r["rms_residual_px"]) if _finite(r.get("rms_residual_px")) else math.nan for r in rows]
    pix = [float(r["pixel_size_nm"]) if _finite(r.get("pixel_size_nm")) else math.nan for r in rows]
    if all(p > 0 for v, p in zip(px, pix) if math.isfinite(v)) and any(map(math.isfinite, px)):
        return [v * p for v, p in zip(px, pix)], "nm"
    return px, "px"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_summary_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write the rows (with an ``outlier`` column) as CSV, atomically."""
    flags = flag_outliers(rows)
    with atomic_open(path, overwrite=True) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for r, o in zip(rows, flags):
            w.writerow([_fmt(r.get(k)) for k in ROW_FIELDS] + [str(bool(o)).lower()])
    return path


NAMED_TICKS = 60  # up to this many series, each is named on the plot's axis


def write_summary_png(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Plot RMS per series (outliers red and named, tracked series ringed, failures marked at the bottom); None
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        return None
    flags = flag_outliers(rows)
    fig = Figure(figsize=(max(7.5, min(21.5, 0.12 * len(rows) + 5.5)), 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(rows)))
    rms, unit = rms_values(rows)
    ok = [i for i in x if not flags[i] and _finite(rms[i])]
    bad = [i for i in x if flags[i] and _finite(rms[i])]
    failed = [i for i in x if not _finite(rms[i])]
    ax.scatter(ok, [rms[i] for i in ok], s=14, color="tab:blue", label="RMS residual")
    ax.scatter(bad, [rms[i] for i in bad], s=24, color="tab:red", label="flagged: outlier or check")
    tracked = [i for i in ok + bad if rows[i].get("path") == "run"]
    if tracked:  # series whose markers were tracked (the run path): ringed
        ax.scatter(tracked, [rms[i] for i in tracked], s=70, facecolors="none", edgecolors="tab:green",
                   label="markers tracked")
    for i in bad:
        ax.annotate(rows[i]["name"], (i, rms[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if failed:
        ax.scatter(failed, [0.0] * len(failed), marker="x", color="black", label="failed / no result", clip_on=False)
        for i in failed:
            ax.annotate(rows[i]["name"], (i, 0.0), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if len(rows) <= NAMED_TICKS:  # every series named on the axis, to find it by name
        ax.set_xticks(x, [str(r["name"]) for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("series (summary.csv order)")
    ax.set_ylabel(f"RMS residual ({unit})")
    ax.set_title(f"{len(rows)} series: {len(ok)} within the batch's spread, {len(bad)} flagged, {len(failed)} failed")
    ax.set_ylim(bottom=0.0, top=1.12 * max([rms[i] for i in ok + bad] or [1.0]))  # room for the names
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the plot: it hides no point
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    return path
