"""The run path of a batch: a stack without markers goes the way of ``tomoalign run``.

Track the gold beads (`tracking.jobs.track_to_file`), align the tracked markers robustly, then warp the
stack and reconstruct a tomogram, writing into ``OUTPUT/NAME/`` what ``tomoalign run`` writes:
``NAME.fid``, ``NAME_markers.csv``, ``NAME_beads.csv``, ``alignment/`` (the files of ``tomoalign align``),
``NAME.ali``, ``NAME_binB.rec`` and, with ``erase_gold``, ``NAME_erased.mrc``. A ``tracking.json`` holds
the tracking's figures for the summary (and for a re-run that skips the series).

The bead diameter is the series' own (``bead_diameter_nm`` or ``bead_diameter_px``), else the batch's.
A diameter in nm is converted with the series' or the batch's ``pixel_size_nm`` when one is given, else
with the stack's header.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.atomic import atomic_open
from .series import SeriesSpec
from .task import alignment_figures, build_options, make_row, one_thread, solve_and_write, yes_no

DEFAULT_BIN = 2  # as tomoalign run


@dataclass(frozen=True)
class RunSettings:
    """How a series is tracked and reconstructed (the options of ``tomoalign run``)."""

    diameter_nm: float | None
    diameter_px: float | None
    beads: int | None
    binning: int
    thickness: int | None
    erase_gold: bool


def _given(v: Any) -> bool:
    return v is not None and str(v).strip() != ""


def has_bead_diameter(spec: SeriesSpec, defaults: dict[str, Any]) -> bool:
    """True when the series or the batch gives a bead diameter (in nm or px)."""
    return any(_given(v) for v in (spec.bead_diameter_nm, spec.bead_diameter_px, defaults.get("bead_diameter_nm"),
                                   defaults.get("bead_diameter_px")))


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
    nm, px = _diameter(spec, defaults)
    beads = _number(opts["beads"], "beads", int) if _given(opts.get("beads")) else None
    binning = _number(opts["bin"], "bin", int) if _given(opts.get("bin")) else DEFAULT_BIN
    thickness = _number(opts["thickness"], "thickness", int) if _given(opts.get("thickness")) else None
    if binning < 1 or (thickness is not None and thickness < 1):
        raise UsageError(f"bin ({binning}) and thickness ({thickness}) must be at least 1")
    try:
        erase = yes_no(opts.get("erase_gold", "") or "")
    except ValueError as exc:
        raise UsageError(f"erase_gold: {exc}") from None
    return RunSettings(nm, px, beads, binning, thickness, erase)


def run_outputs(spec: SeriesSpec, out_root: Path, defaults: dict[str, Any]) -> list[Path]:
    """Every file the run path writes for this series (``tracking.json`` last)."""
    from ..io.alignment import output_names

    s = run_settings(spec, defaults)
    d, n = Path(out_root) / spec.name, spec.name
    files = [f"{n}.fid", f"{n}_beads.csv", f"{n}_markers.csv", *(f"alignment/{x}" for x in output_names(n)),
             f"{n}.ali", f"{n}_bin{s.binning}.rec", *([f"{n}_erased.mrc"] if s.erase_gold else []), "tracking.json"]
    return [d / f for f in files]


def _tracking_figures(result: Any) -> dict[str, Any]:
    return dict(beads_tracked=int(result.n_beads), points_tracked=len(result.markers),
                tracking_flagged=int(result.flagged.sum()), tracking_weak=int(result.weak.sum()))


def _tilts(spec: SeriesSpec, result: Any):
    """The nominal tilt angles the tracker used (read again only if it could not fit an alignment)."""
    if result.alignment is not None:
        return result.alignment.nominal_tilt_angles_deg
    from ..io.mrc import open_tilt_series
    from ..io.tilts import read_tilt_angles

    if spec.tilt_angles is not None:
        return read_tilt_angles(spec.tilt_angles)
    return open_tilt_series(spec.stack, find_tilts=True).tilt_angles_deg  # type: ignore[arg-type]


def run_series(spec: SeriesSpec, out: Path, defaults: dict[str, Any], export: tuple[str, ...], t0: float
               ) -> dict[str, Any]:
    """Track, align robustly, warp and reconstruct one series into ``out``; return its summary row."""
    from ..io.markers import write_markers_csv
    from ..tracking.jobs import track_to_file

    s = run_settings(spec, defaults)
    options, z_shift = build_options({**defaults, **spec.options})
    if not _given(spec.options.get("robust", defaults.get("robust"))):
        options = replace(options, robust=True)  # as tracking.jobs.run_options: a mistracked point must not pull
    pix = spec.pixel_size_nm or (float(defaults["pixel_size_nm"]) if _given(defaults.get("pixel_size_nm")) else None)
    nm, px = s.diameter_nm, s.diameter_px
    if nm is not None and pix:
        if not nm > 0:
            raise UsageError(f"the bead diameter must be a positive number of nm, not {nm}")
        px = nm / pix  # the pixel size given wins over the header's, as on the align path
        nm = None
    (out / "tracking.json").unlink(missing_ok=True)  # written last: the series counts as finished only with it
    import scipy.fft

    # scipy.fft's default workers capped too (FFTs that ask for workers=-1 explicitly still take every core)
    with one_thread(), scipy.fft.set_workers(1):
        t1 = time.perf_counter()
        tracked = track_to_file(spec.stack, out / f"{spec.name}.fid",  # type: ignore[arg-type]
                                tilt_angles_path=spec.tilt_angles, bead_diameter_nm=nm, bead_diameter_px=px,
                                tilt_axis_deg=options.tilt_axis_deg, n_beads=s.beads, overwrite=True, threads=1,
                                clumps=str({**defaults, **spec.options}.get("clumps") or "skip").strip().lower())
        track_s = time.perf_counter() - t1
        result = tracked.result
        table = result.markers
        size = table.image_size or (0, 0)  # always set: the tracker knows the stack's size
        write_markers_csv(out / f"{spec.name}_markers.csv", table, overwrite=True)
        inputs = {"stack": str(spec.stack), "markers": "tracked", "tilt_angles": tracked.tilt_source}
        al, solve, written, notes = solve_and_write(
            table, _tilts(spec, result), size, pix or tracked.pixel_size_nm, options, z_shift,
            out / "alignment", spec.name, inputs, export, export_dir=out)
        images = _images(spec, out, s, al, result.bead_diameter_px)
    figures = _tracking_figures(result)
    _write_tracking_json(out / "tracking.json", figures, result, tracked.tilt_source)
    notes = "; ".join([*result.warnings, *([notes] if notes else [])])
    return make_row(spec.name, "done" if al.converged else "not-converged", path="run", **alignment_figures(al),
                    **figures, time_s=time.perf_counter() - t0, track_s=track_s, solve_s=solve, write_s=written,
                    images_s=images, notes=notes, output=str(out))


def _images(spec: SeriesSpec, out: Path, s: RunSettings, al: Any, diameter_px: float) -> float:
    """The gold-erased stack (if asked), the aligned stack and the tomogram; return their time."""
    from ..tracking.jobs import erase_gold_to_file
    from ..workflows import aligned_stack_to_file, reconstruct_to_file

    t1 = time.perf_counter()
    source: Any = spec.stack
    if s.erase_gold:
        source = erase_gold_to_file(spec.stack, al, diameter_px, out / f"{spec.name}_erased.mrc",  # type: ignore[arg-type]
                                    overwrite=True)
    aligned_stack_to_file(source, out / "alignment", out / f"{spec.name}.ali", overwrite=True)
    reconstruct_to_file(source, out / "alignment", out / f"{spec.name}_bin{s.binning}.rec", binning=s.binning,
                        thickness=s.thickness, overwrite=True)
    return time.perf_counter() - t1


def _write_tracking_json(path: Path, figures: dict[str, Any], result: Any, tilt_source: str) -> None:
    info = {**figures, "bead_diameter_px": float(result.bead_diameter_px), "seed_view": int(result.seed_view),
            "tilt_source": tilt_source, "timings_s": {k: round(float(v), 4) for k, v in result.timings_s.items()},
            "warnings": list(result.warnings)}
    with atomic_open(path, overwrite=True) as f:
        json.dump(info, f, indent=1)
