"""The run path of a batch: a stack without markers goes the way of ``tomoalign run``.

Track the gold beads (`tracking.jobs.track_to_file`), or patches of the specimen with ``patches`` (no gold),
align the tracked markers robustly, then warp the stack and reconstruct a tomogram, writing into
``OUTPUT/NAME/`` what ``tomoalign run`` writes: ``NAME.fid``, ``NAME_markers.csv``, ``NAME_beads.csv`` (or
``NAME_patches.csv``), ``alignment/`` (the files of ``tomoalign align``),
``NAME.ali``, ``NAME_binB.rec`` and, with ``erase_gold``, ``NAME_erased.mrc``. A ``tracking.json`` holds
the tracking's figures for the summary (and for a re-run that skips the series).

The bead diameter is the series' own (``bead_diameter_nm`` or ``bead_diameter_px``), else the batch's.
A diameter in nm is converted with the series' or the batch's ``pixel_size_nm`` when one is given, else
with the stack's header.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.atomic import atomic_open
from ..tracking.binned import stack_tomogram_binning
from ..tracking.jobs import BRANCH_GUESSED
from .series import SeriesSpec
from .task import alignment_figures, alignment_status, export_formats, make_row, one_thread, series_settings, yes_no


@dataclass(frozen=True)
class RunSettings:
    """How a series is tracked and reconstructed (the options of ``tomoalign run``)."""

    diameter_nm: float | None
    diameter_px: float | None
    beads: int | None
    binning: int
    thickness: int | None
    erase_gold: bool
    patches: bool = False  # no gold: patch tracking (the ``patches`` column)
    clumps: str = "skip"  # the ``clumps`` column: skip, or track the beads of clumps too
    dark: bool = True  # the ``polarity`` column: dark beads (bright field), or bright (HAADF STEM)
    shift: tuple[float, float] | None = None  # the ``shift`` column: IMOD's SHIFT x z of the tomogram (run --shift)


def _given(v: Any) -> bool:
    return v is not None and str(v).strip() != ""


def has_bead_diameter(spec: SeriesSpec, defaults: dict[str, Any]) -> bool:
    """True when the series or the batch gives a bead diameter (in nm or px), or asks for patch tracking."""
    if _patches(spec, defaults):
        return True
    return any(_given(v) for v in (spec.bead_diameter_nm, spec.bead_diameter_px, defaults.get("bead_diameter_nm"),
                                   defaults.get("bead_diameter_px")))


def _patches(spec: SeriesSpec, defaults: dict[str, Any]) -> bool:
    try:
        return yes_no(str({**defaults, **spec.options}.get("patches", "") or ""))
    except ValueError as exc:
        raise UsageError(f"patches: {exc}") from None


def _number(v: Any, name: str, kind: type = float) -> Any:
    try:
        x = kind(float(v)) if kind is int else float(v)
    except (TypeError, ValueError):
        raise UsageError(f"{name} {v!r} is not a number") from None
    if kind is int and float(v) != x:
        raise UsageError(f"{name} {v!r} is not a whole number")
    return x


def _diameter(spec: SeriesSpec, defaults: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(nm, px)``, exactly one set: the series' own, else the batch's."""
    for nm, px, where in ((spec.bead_diameter_nm, spec.bead_diameter_px, "the table's row"),
                          (defaults.get("bead_diameter_nm"), defaults.get("bead_diameter_px"), "the batch")):
        if _given(nm) and _given(px):
            raise UsageError(f"{where} gives the bead diameter twice (in nm and in px); give one")
        if _given(nm) or _given(px):
            return (_number(nm, "bead_diameter_nm") if _given(nm) else None,
                    _number(px, "bead_diameter_px") if _given(px) else None)
    raise UsageError("no bead diameter: add a bead_diameter_nm column or pass --bead-diameter-nm")


def run_settings(spec: SeriesSpec, defaults: dict[str, Any]) -> RunSettings:
    """The run options of a series: its table cells, else the batch's defaults. Raises `UsageError`."""
    opts = {**defaults, **spec.options}
    patches = _patches(spec, defaults)
    nm, px = (None, None) if patches else _diameter(spec, defaults)
    beads = _number(opts["beads"], "beads", int) if _given(opts.get("beads")) else None
    binning = _number(opts["bin"], "bin", int) if _given(opts.get("bin")) else stack_tomogram_binning(spec.stack)[0]
    thickness = _number(opts["thickness"], "thickness", int) if _given(opts.get("thickness")) else None
    if binning < 1 or (thickness is not None and thickness < 1):
        raise UsageError(f"bin ({binning}) and thickness ({thickness}) must be at least 1")
    try:
        erase = yes_no(opts.get("erase_gold", "") or "")
    except ValueError as exc:
        raise UsageError(f"erase_gold: {exc}") from None
    if erase and patches:
        raise UsageError("erase_gold needs gold: a series aligned by patch tracking has no beads to erase")
    clumps = str(opts.get("clumps") or "skip").strip().lower()
    if clumps not in ("skip", "track"):
        raise UsageError(f"clumps {opts.get('clumps')!r}: give skip or track")
    polarity = str(opts.get("polarity") or "dark").strip().lower()
    if polarity not in ("dark", "bright"):
        raise UsageError(f"polarity {opts.get('polarity')!r}: give dark or bright")
    return RunSettings(nm, px, beads, binning, thickness, erase, patches, clumps, polarity == "dark",
                       shift_cell(opts.get("shift")))


def shift_cell(v: Any) -> tuple[float, float] | None:
    """The ``shift`` cell (``X Z`` or ``X,Z``, unbinned pixels, as ``run --shift``) or the batch's ``--shift``."""
    if not _given(v):
        return None
    parts = list(v) if isinstance(v, (list, tuple)) else [p for p in re.split(r"[,\s]+", str(v).strip()) if p]
    if len(parts) != 2:
        raise UsageError(f"shift {v!r}: give X and Z in unbinned pixels, such as '0 -105' (IMOD's SHIFT)")
    x, z = (_number(p, "shift") for p in parts)
    if not (math.isfinite(x) and math.isfinite(z)):
        raise UsageError(f"shift {v!r}: give finite shifts in unbinned pixels")
    return x, z


def run_outputs(spec: SeriesSpec, out_root: Path, defaults: dict[str, Any]) -> list[Path]:
    """Every file the run path writes for this series (``tracking.json`` last)."""
    from ..io.alignment import output_names

    s = run_settings(spec, defaults)
    d, n = Path(out_root) / spec.name, spec.name
    full = (spec.options.get("imod_com") or defaults.get("imod_com")) not in (None, "")
    quality = f"{n}_patches.csv" if s.patches else f"{n}_beads.csv"
    files = [f"{n}.fid", quality, f"{n}_markers.csv",
             *(f"alignment/{x}" for x in output_names(n, full_model=full)),
             f"{n}.ali", f"{n}_bin{s.binning}.rec", *([f"{n}_erased.mrc"] if s.erase_gold else []), "tracking.json"]
    return [d / f for f in files]


def _tracking_figures(result: Any) -> dict[str, Any]:
    return dict(beads_tracked=int(result.n_beads), points_tracked=len(result.markers),
                tracking_flagged=int(result.flagged.sum()), tracking_weak=int(result.weak.sum()))


def run_series(spec: SeriesSpec, out: Path, defaults: dict[str, Any], export: tuple[str, ...], t0: float
               ) -> dict[str, Any]:
    """Track, align robustly (or with the series' align.com), warp and reconstruct one series into ``out``
    (`jobs.run.run_job`, as ``tomoalign run``); return its summary row."""
    from ..jobs.run import RunJob, run_job

    s = run_settings(spec, defaults)
    settings, com = series_settings({**defaults, **spec.options}, tracked=True)
    pix = spec.pixel_size_nm or (float(defaults["pixel_size_nm"]) if _given(defaults.get("pixel_size_nm")) else None)
    job = RunJob(spec.stack, out, bead_diameter_nm=s.diameter_nm, bead_diameter_px=s.diameter_px,  # type: ignore[arg-type]
                 tilt_angles_path=spec.tilt_angles, settings=settings, imod_com=com,
                 n_beads=s.beads, binning=s.binning, thickness=s.thickness, erase_gold=s.erase_gold,
                 pixel_size_nm=pix, name=spec.name, patches=s.patches, clumps=s.clumps, dark=s.dark, shift_px=s.shift,
                 memory_bytes=worker_budget())
    (out / "tracking.json").unlink(missing_ok=True)  # written last: the series counts as finished only with it
    import scipy.fft

    # scipy.fft's default workers capped too (FFTs that ask for workers=-1 explicitly still take every core)
    with one_thread(), scipy.fft.set_workers(1):
        res = run_job(job, overwrite=True, threads=1)
        t1 = time.perf_counter()
        al = res.alignment
        notes = export_formats(al, out, spec.name, export, res.folder.axis_z_shift_px, spec.stack) if export else ""
        export_s = time.perf_counter() - t1
    result: Any = res.tracked.result
    if s.patches:
        figures = result.batch_figures()
        result.write_json(out / "tracking.json", res.tracked.tilt_source)
    else:
        figures = _tracking_figures(result)
        _write_tracking_json(out / "tracking.json", figures, result, res.tracked.tilt_source)
    notes = "; ".join([*result.warnings, *filter(None, [res.frame_note()]), *al.warnings, *([notes] if notes else [])])
    t = res.timings_s
    status = alignment_status(al)
    if status == "done" and any(str(w).startswith("warning:") and BRANCH_GUESSED not in str(w) for w in result.warnings):
        status = "check"  # a tilt file, an axis against the .mdoc's (new user's finding W, session 12: in the notes
        # alone); not the branch guessed near +-90 with no axis from anywhere, which every such series of a session has
    return make_row(spec.name, status, path="run", **alignment_figures(al),
                    **figures, time_s=time.perf_counter() - t0, track_s=t["track"], solve_s=t["align"],
                    write_s=export_s, images_s=t["images"], kernel=res.kernel.name if res.kernel is not None else "",
                    notes=notes, output=str(out))


WORKER_SHARE = 3  # a batch worker's tomogram slabs may use a third of its memory limit (the tracking, the rest)


def worker_budget() -> int | None:
    """The tomogram's memory budget in a dask worker: `WORKER_SHARE` of the worker's memory limit (the default,
    half of what the machine has available, is for a process alone; several workers share the machine, and the
    nanny kills one that outgrows its limit), or None outside a worker or without a limit."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        return None
    return int(limit) // WORKER_SHARE if limit else None


def _write_tracking_json(path: Path, figures: dict[str, Any], result: Any, tilt_source: str) -> None:
    info = {**figures, "bead_diameter_px": float(result.bead_diameter_px), "seed_view": int(result.seed_view),
            "tilt_source": tilt_source, "timings_s": {k: round(float(v), 4) for k, v in result.timings_s.items()},
            "warnings": list(result.warnings)}
    with atomic_open(path, overwrite=True) as f:
        json.dump(info, f, indent=1)
