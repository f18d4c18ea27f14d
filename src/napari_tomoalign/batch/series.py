"""Which tilt series a batch holds: from a glob, a folder or a CSV table.

A series is found from its *stack* or its *markers*; the other files are looked for beside it, by
the same stem: markers ``STEM.fid``, ``STEM.mod``, ``STEM.csv`` or ``STEM_markers.csv``; tilt angles
``STEM.rawtlt`` or ``STEM.tlt``, in IMOD's order as everywhere (`io.tilt_sources.sibling_tilt_file`: the nominal
``.rawtlt`` first, a ``.tlt`` beside a raw stack holds an earlier run's solved angles; for a stack without
either, the workers use its ``.mdoc`` or extended header, as ``open_tilt_series`` does); stack ``STEM.mrc``,
``.st`` or ``.mrcs``. etomo's ``.prexg`` is taken from a table's ``prexg`` column only, as ``align`` takes it from
``--prexg`` only (one answer); one found beside an IMOD model without it is named in the series' notes.

The CSV table has a header. Columns (paths relative to the table's folder):

- ``stack``, ``tilt_angles``, ``markers`` (at least one of stack and markers), ``name`` (default: the
  stem), ``image_width`` and ``image_height`` (needed for CSV markers without a stack), ``pixel_size_nm``,
  ``prexg`` (etomo's, for markers placed on the ``.preali``: the ``.xf`` is then the raw stack's);
- for a stack without markers, which is tracked (the ``run`` path): ``bead_diameter_nm`` or
  ``bead_diameter_px``, and the options of ``tomoalign run``: ``beads`` (how many to track), ``bin``,
  ``thickness`` and ``shift`` (of the tomogram; IMOD's SHIFT ``X Z``, as ``run --shift``), ``erase_gold``
  (yes/no), ``clumps`` (skip/track, as ``run --clumps``),
  ``polarity`` (dark/bright, as ``run --polarity``: bright for HAADF STEM);
  ``patches`` (yes/no): no gold, the stack is aligned by patch tracking (`tracking.patches`) and needs no
  bead diameter;
- any per-series solver option: ``tilt_axis``, ``rotation``, ``tilt``, ``magnification`` (fixed, one,
  view, group:N), ``reference_view``, ``robust``, ``robust_scale``, ``robust_tracks``, ``max_iterations``,
  ``no_axis_estimate``, ``no_initial_stage``, ``axis_z_shift``; or ``imod_com``, an align.com whose
  tiltalign options (IMOD's full model, and local alignments with ``LocalAlignments 1``) replace them.

Empty cells take the batch's defaults.
"""

from __future__ import annotations

import csv
import glob as globmod
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..io.atomic import safe_name
from ..io.errors import FileFormatError
from ..io.guarded import read_bytes_limited, read_text_limited
from ..io.limits import pixel_size_nm as checked_pixel_size
from ..io.tilt_sources import sibling_tilt_file
from ..jobs.solver_options import OPTION_NAMES

STACK_EXT = (".mrc", ".st", ".mrcs")
MARKER_EXT = (".fid", ".mod", ".csv")
# the solver's options (`jobs.solver_options`, declared once for the command line, batch and the dock), and
# an align.com for IMOD's full model (and local alignments), a path relative to the table
OPTION_COLUMNS = (*OPTION_NAMES, "imod_com")
# options of the run path (tracked series)
RUN_COLUMNS = ("beads", "bin", "thickness", "shift", "erase_gold", "patches", "clumps", "polarity")
_KNOWN = {"name", "stack", "tilt_angles", "markers", "prexg", "bead_diameter_nm", "bead_diameter_px", "image_width",
          "image_height", "pixel_size_nm", *OPTION_COLUMNS, *RUN_COLUMNS}


@dataclass(frozen=True)
class SeriesSpec:
    """One tilt series of a batch: its files and per-series options (strings, parsed by the worker)."""

    name: str
    markers: Path | None = None
    tilt_angles: Path | None = None
    stack: Path | None = None
    image_size: tuple[int, int] | None = None
    pixel_size_nm: float | None = None
    bead_diameter_nm: float | None = None
    bead_diameter_px: float | None = None
    options: dict[str, str] = field(default_factory=dict)
    prexg: Path | None = None  # etomo's .prexg: the markers were placed on the .preali

    @property
    def inputs(self) -> list[Path]:
        """The files the outputs depend on (for the 'newer than the inputs' check)."""
        return [p for p in (self.markers, self.tilt_angles, self.stack, self.prexg) if p is not None]


def _stem(p: Path) -> str:
    s = p.stem
    return s[: -len("_markers")] if s.endswith("_markers") else s


def _first(folder: Path, stem: str, names: tuple[str, ...]) -> Path | None:
    for n in names:
        q = folder / f"{stem}{n}"
        if q.is_file():
            return q
    return None


def spec_from_file(path: Path) -> SeriesSpec:
    """A series from its stack or its markers file, with its siblings."""
    folder, ext = path.parent, path.suffix.lower()
    stem = _stem(path)
    stack: Path | None
    markers: Path | None
    if ext in STACK_EXT:
        stack = path
        markers = _first(folder, stem, (".fid", ".mod", ".csv", "_markers.csv"))
    else:
        markers = path
        stack = _first(folder, stem, STACK_EXT)
    tilts = sibling_tilt_file(folder / f"{stem}{ext}")  # IMOD's order, the one rule (module docstring)
    return SeriesSpec(name=stem, markers=markers, tilt_angles=tilts, stack=stack)


def _dedupe(specs: list[SeriesSpec]) -> list[SeriesSpec]:
    """One spec per name; a name seen twice with different files is an error (outputs would collide)."""
    out: dict[str, SeriesSpec] = {}
    for s in specs:
        old = out.get(s.name)
        if old is not None and old != s:
            raise FileFormatError(f"two series are both named {s.name!r} ({old.markers or old.stack} and "
                                  f"{s.markers or s.stack}); give them different stems or use a CSV table with names")
        out[s.name] = s
    return sorted(out.values(), key=lambda s: s.name)


def from_paths(paths: list[Path]) -> list[SeriesSpec]:
    """Series from stack and marker files (markers files that belong to a listed stack are merged)."""
    stacks = {(p.parent, _stem(p)) for p in paths if p.suffix.lower() in STACK_EXT}
    specs = []
    for p in paths:
        ext = p.suffix.lower()
        if ext in STACK_EXT:
            specs.append(spec_from_file(p))
        elif ext in MARKER_EXT and (p.parent, _stem(p)) not in stacks and (ext != ".csv" or _is_markers_csv(p)):
            specs.append(spec_from_file(p))
    return _dedupe(specs)


def from_folder(folder: Path) -> list[SeriesSpec]:
    """Every series in a folder (not recursive): each stack, and each markers file without a stack."""
    files = sorted(q for q in folder.iterdir() if q.is_file())
    return from_paths([q for q in files if q.suffix.lower() in STACK_EXT + MARKER_EXT])


def _opt_float(row: dict, key: str, where: str) -> float | None:
    v = (row.get(key) or "").strip()
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise FileFormatError(f"{where}: {key} {v!r} is not a number") from None


def _row_spec(row: dict[str, str], base: Path, where: str) -> SeriesSpec:
    def path(key: str) -> Path | None:
        v = (row.get(key) or "").strip()
        return None if not v else (Path(v) if os.path.isabs(v) else base / v)

    stack, markers = path("stack"), path("markers")
    if stack is None and markers is None:
        raise FileFormatError(f"{where}: give a stack or a markers file")
    found = spec_from_file(markers or stack)  # type: ignore[arg-type]
    w, h = _opt_float(row, "image_width", where), _opt_float(row, "image_height", where)
    if (w is None) != (h is None):
        raise FileFormatError(f"{where}: give both image_width and image_height, or neither")
    opts = {k: row[k].strip() for k in (*OPTION_COLUMNS, *RUN_COLUMNS) if (row.get(k) or "").strip()}
    if "shift" in opts:  # its form said as bad input, before any series runs (s15 new user: it failed at run time)
        from ..errors import UsageError
        from .run_series import shift_cell

        try:
            shift_cell(opts["shift"])
        except UsageError as exc:
            raise FileFormatError(f"{where}: {exc}") from None
    if "imod_com" in opts:
        opts["imod_com"] = str(path("imod_com"))
    # a row that gives a stack and how to track it (a bead diameter, or a run column) is tracked: markers that lie
    # beside its stack from an earlier run are not taken (new user s14: such a row was aligned, its thickness unused)
    tracked = stack is not None and markers is None and any(
        (row.get(k) or "").strip() for k in ("bead_diameter_nm", "bead_diameter_px", *RUN_COLUMNS))
    return SeriesSpec(
        name=safe_name((row.get("name") or "").strip() or found.name, f"{where}: name"),
        markers=markers or (None if tracked else found.markers),
        tilt_angles=path("tilt_angles") or found.tilt_angles, stack=stack or found.stack,
        prexg=path("prexg"),
        image_size=None if w is None else (int(w), int(h)),  # type: ignore[arg-type]
        pixel_size_nm=checked_pixel_size(_opt_float(row, "pixel_size_nm", where), f"{where}: pixel_size_nm"),
        bead_diameter_nm=_opt_float(row, "bead_diameter_nm", where),
        bead_diameter_px=_opt_float(row, "bead_diameter_px", where), options=opts)


def from_table(path: Path) -> list[SeriesSpec]:
    """Series from a CSV table (see the module docstring)."""
    text = read_text_limited(path, "series table")  # a FIFO, a device or a huge sparse file: one line, at once
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not {"stack", "markers"} & set(header):
        raise FileFormatError(f"{path}: the table needs a header with a 'stack' or 'markers' column")
    unknown = sorted(set(header) - _KNOWN)
    if unknown:
        raise FileFormatError(f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}")
    reader.fieldnames = header
    specs = [_row_spec(row, path.parent, f"{path}, line {n}") for n, row in enumerate(reader, 2)]
    return _dedupe(specs)


def _is_markers_csv(p: Path) -> bool:
    first = read_bytes_limited(p, "CSV", 64 * 1024, head=True).split(b"\n", 1)[0]  # never a whole huge line
    header = {h.strip().lower() for h in first.decode("utf-8", errors="replace").split(",")}
    return {"view", "marker", "x", "y"} <= header


def discover(source: str | os.PathLike[str] | list) -> list[SeriesSpec]:
    """Series from a folder, a ``.csv`` table, a glob pattern, or a list of files or `SeriesSpec`."""
    if isinstance(source, list):
        if all(isinstance(s, SeriesSpec) for s in source):
            return _dedupe(list(source))
        return from_paths([Path(s) for s in source])
    p = Path(source)
    if p.is_dir():
        specs = from_folder(p)
    elif p.is_file() and p.suffix.lower() == ".csv" and not _is_markers_csv(p):
        specs = from_table(p)
    elif p.is_file():
        specs = from_paths([p])
    else:
        specs = from_paths(sorted(Path(q) for q in globmod.glob(str(source), recursive=True)))
    if not specs:
        raise FileFormatError(f"{source}: no tilt series found (stacks {', '.join(STACK_EXT)} or markers "
                              f"{', '.join(MARKER_EXT)})")
    return specs
