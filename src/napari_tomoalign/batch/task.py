"""What a worker does for one series: read, align, write; and the 'already finished' check.

`process_series` never raises: a failure becomes a row with ``status = "failed"`` and a one-line
``error``, so one broken series never stops the others. It runs on one thread (compiled loops and
BLAS), so a worker with one thread holds one series at a time; stacks are only memory-mapped, for
their size, pixel size and tilt angles.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .series import SeriesSpec

ROW_FIELDS = ("name", "status", "rms_residual_px", "mean_residual_px", "n_markers", "n_views", "n_observations",
              "n_flagged", "converged", "time_s", "solve_s", "write_s", "error", "notes", "output")

# Where each exported format goes in a series' folder (see `io.convert`); IMOD's .xf/.tlt are always there.
EXPORT_TARGETS = {"aretomo": "{name}.aln", "cdp": "{name}_portal.json", "relion": "relion"}

# A bead tracker for series without markers: ``tracker(spec, out_dir) -> markers path``. The 'run' command
# (bead tracking, being built) registers itself here; until then such series are reported as "no-markers".
Tracker = Callable[[SeriesSpec, Path], Path]


def output_paths(spec: SeriesSpec, out_root: Path, export: tuple[str, ...] = ()) -> list[Path]:
    """The files ``tomoalign align`` writes for this series, and those of the exported formats."""
    from ..io.alignment import output_names

    d = out_root / spec.name
    extra = [d / "relion" / "tomograms.star" if f == "relion" else d / EXPORT_TARGETS[f].format(name=spec.name)
             for f in export if f in EXPORT_TARGETS]
    return [d / n for n in output_names(spec.name)] + extra


def is_finished(spec: SeriesSpec, out_root: Path, export: tuple[str, ...] = ()) -> bool:
    """True when every output exists and the oldest is newer than the newest input."""
    outs = output_paths(spec, out_root, export)
    try:
        oldest = min(p.stat().st_mtime for p in outs)
        newest_in = max((p.stat().st_mtime for p in spec.inputs), default=0.0)
    except OSError:
        return False
    return oldest >= newest_in


def row_from_json(spec: SeriesSpec, out_root: Path, status: str) -> dict[str, Any]:
    """A summary row from a finished series' ``alignment.json``."""
    d = out_root / spec.name
    row = make_row(spec.name, status, output=str(d))
    try:
        info = json.loads((d / "alignment.json").read_text())
        row.update(rms_residual_px=info["rms_residual_px"], mean_residual_px=info["mean_residual_px"],
                   n_markers=sum(x is not None for x in info["markers"]["x_px"]),
                   n_views=sum(bool(b) for b in info["views"]["determined"]),
                   n_observations=info["n_observations_used"],
                   n_flagged=(info.get("robust") or {}).get("n_flagged", 0), converged=info["converged"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        row["error"] = f"alignment.json unreadable: {exc}"
    return row


def make_row(name: str, status: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
    row.update(name=name, status=status, error="")
    row.update(kw)
    return row


def _flag(v: str) -> bool:
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError(f"{v!r} is not a yes/no value")


def build_options(opts: dict[str, Any]):
    """``(AlignmentOptions, axis_z_shift_px)`` from batch/table option values (strings or numbers)."""
    from ..alignment.options import AlignmentOptions, VariableOption

    kw: dict[str, Any] = {}
    for key in ("rotation", "tilt", "magnification"):
        if opts.get(key) not in (None, ""):
            v = opts[key]
            kw[key] = v if isinstance(v, VariableOption) else VariableOption.parse(str(v))
    conv: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "tilt_axis": ("tilt_axis_deg", float), "reference_view": ("reference_view", int),
        "robust_scale": ("robust_scale", float), "max_iterations": ("max_iterations", int),
        "robust": ("robust", _flag), "robust_tracks": ("robust_tracks", _flag)}
    for key, (name, f) in conv.items():
        if opts.get(key) not in (None, ""):
            kw[name] = f(opts[key])
    if kw.get("robust_tracks"):
        kw["robust"] = True
    if opts.get("no_axis_estimate") not in (None, ""):
        kw["estimate_tilt_axis"] = not _flag(opts["no_axis_estimate"])
    if opts.get("no_initial_stage") not in (None, ""):
        kw["initial_stage"] = not _flag(opts["no_initial_stage"])
    z = opts.get("axis_z_shift")
    return AlignmentOptions(**kw), float(z) if z not in (None, "") else 0.0


def _inputs(spec: SeriesSpec, pixel_size_nm: float | None):
    """Markers, tilt angles, image size and pixel size of a series."""
    from ..io.errors import FileFormatError
    from ..io.markers import read_markers
    from ..io.tilts import read_tilt_angles

    markers = read_markers(spec.markers)  # type: ignore[arg-type]
    tilts = read_tilt_angles(spec.tilt_angles) if spec.tilt_angles else None
    size, pix = markers.image_size or spec.image_size, spec.pixel_size_nm or pixel_size_nm
    if spec.stack is not None and (tilts is None or size is None or pix is None):
        from ..io.mrc import open_tilt_series

        series = open_tilt_series(spec.stack, strict_tilts=False)  # memory-mapped: only the header is read
        rows, cols = series.data.shape[1:]
        size = size or (int(cols), int(rows))
        tilts = tilts if tilts is not None else series.tilt_angles_deg
        if pix is None and series.pixel_size_angstrom:
            pix = series.pixel_size_angstrom / 10.0
    if tilts is None:
        raise FileFormatError(f"{spec.name}: no tilt angles (no .tlt/.rawtlt beside the markers, no stack to read them "
                              "from); add a tilt_angles column")
    if size is None:
        raise FileFormatError(f"{spec.name}: the image size is unknown (CSV markers, no stack); add image_width and "
                              "image_height columns")
    return markers, tilts, size, pix


def process_series(spec: SeriesSpec, out_root: str, defaults: dict[str, Any] | None = None,
                   tracker: Tracker | None = None, export: tuple[str, ...] = ()) -> dict[str, Any]:
    """Align one series into ``out_root/NAME/`` (outputs of ``tomoalign align``, overwritten), export it to the
    formats in ``export`` (``aretomo``, ``cdp``, ``relion``: `EXPORT_TARGETS`); return its row."""
    t0 = time.perf_counter()
    out = Path(out_root) / spec.name
    try:
        if spec.markers is None:
            if tracker is None:
                return make_row(spec.name, "no-markers", output=str(out), time_s=time.perf_counter() - t0,
                            error="no markers file (STEM.fid, STEM.csv); bead tracking ('run') is not available here")
            spec = SeriesSpec(**{**spec.__dict__, "markers": tracker(spec, out)})
        return _align(spec, out, defaults or {}, t0, export)
    except Exception as exc:  # noqa: BLE001 - every failure is reported in the summary, none stops the batch
        msg = " ".join(str(exc).split()) or type(exc).__name__
        return make_row(spec.name, "failed", output=str(out), time_s=time.perf_counter() - t0,
                    error=f"{type(exc).__name__}: {msg}"[:300])


@lru_cache(maxsize=1)
def _controller() -> Any:
    """One threadpoolctl controller per worker process (making one scans the loaded libraries: milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _export(al: Any, out: Path, name: str, export: tuple[str, ...], z_shift: float) -> str:
    """Write the alignment in the other formats; return the warnings (a format's lost magnification) as notes."""
    from ..io.convert import convert, saved_from_alignment
    from ..io.errors import FileFormatError

    notes = []
    saved = saved_from_alignment(al, z_shift)
    for fmt in export:
        if fmt not in EXPORT_TARGETS:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                convert(saved, fmt, out / EXPORT_TARGETS[fmt].format(name=name), name=name, overwrite=True,
                        nominal_tilt_angles_deg=al.nominal_tilt_angles_deg)
            except FileFormatError as exc:  # e.g. RELION without a pixel size: the alignment itself stands
                notes.append(f"{fmt} not written: {exc}")
        notes += [f"{fmt}: {w.message}" for w in caught]
    return "; ".join(notes)


def _align(spec: SeriesSpec, out: Path, defaults: dict[str, Any], t0: float, export: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    from ..alignment._threads import compiled_threads
    from ..alignment.errors import AlignmentWarning
    from ..alignment.solver import align_markers
    from ..io.alignment import write_alignment

    options, z_shift = build_options({**defaults, **spec.options})
    inputs = {k: str(v) for k, v in (("markers", spec.markers), ("tilt_angles", spec.tilt_angles),
                                      ("stack", spec.stack)) if v is not None}
    # One thread for everything compiled, the table formatting of the writes included: on 2 cores with 2 workers
    # (and other load) waking numba's thread pool per table cost 50 ms median, up to 1 s, against 7 ms on one.
    with compiled_threads(1), _controller().limit(limits=1), warnings.catch_warnings():
        markers, tilts, size, pix = _inputs(spec, defaults.get("pixel_size_nm"))
        warnings.simplefilter("ignore", AlignmentWarning)
        t1 = time.perf_counter()
        al = align_markers(markers.view, markers.marker, markers.xy, tilts, size, options, pixel_size_nm=pix,
                           warn=False)
        solve = time.perf_counter() - t1
        write_alignment(al, out, spec.name, overwrite=True, axis_z_shift_px=z_shift, extra=inputs)
        notes = _export(al, out, spec.name, export, z_shift) if export else ""
        written = time.perf_counter() - t1 - solve
    return make_row(spec.name, "done" if al.converged else "not-converged", rms_residual_px=al.rms_residual_px,
                mean_residual_px=al.mean_residual_px, n_markers=int(al.marker_included.sum()),
                n_views=int(al.view_determined.sum()), n_observations=int(al.obs_used.sum()),
                n_flagged=int(al.flagged.sum()), converged=bool(al.converged), time_s=time.perf_counter() - t0,
                solve_s=solve, write_s=written, notes=notes, output=str(out))
