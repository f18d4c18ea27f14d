"""One stamp per series run of a batch: ``OUTPUT/NAME/batch_run.json``, so that a folder never holds the files
of two runs and a resumed batch never keeps results of other inputs or options.

The rule (also in ``tomoalign batch --help``):

- Before a series is (re)done, its stamp is written with ``"state": "started"`` and the planned outputs. A
  previous *finished* run's files (and its stamp) are moved aside into ``NAME/.previous_run/``, an unfinished
  run's files are removed: the folder holds one run's files at any time.
- The files kept aside are deleted once the new run is stamped finished, and put back (the new run's files
  removed) when it fails, is stopped, or its worker is killed (then by the next batch): a re-run with
  ``--force`` that does not finish never costs the user a finished run.
- After the last output (and the exports), the stamp is rewritten, atomically and last, with
  ``"state": "finished"``, the identity of every input (resolved path, size, modification time in ns), the
  series' effective options (its table cells over the batch's) and the size and time of every output.
- A series is *finished* (skipped) only when its stamp says finished, its inputs and options are the same, the
  exports asked for were written, and every output it lists is still there, unchanged. Otherwise it is redone:
  changed inputs or options re-run it without ``--force`` (a batch is a resumable job, as ``make``), and the
  row's notes say why. A stamp that says started (a run interrupted or failed) is redone too.
- A folder with outputs of the series' names but no stamp holds files no batch wrote (another tool, an older
  version): that series is refused (failed, one line) unless ``--force``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..io.atomic import OverwriteError, atomic_open, clear_stale_temporaries_under
from .series import SeriesSpec

STAMP = "batch_run.json"
KEPT = ".previous_run"  # a finished run's files while a new run of the series is under way
_RUN_ONLY = {"bead_diameter_nm", "bead_diameter_px", "beads", "bin", "thickness", "shift", "erase_gold", "patches",
             "clumps", "polarity"}


def _identity(p: Path) -> dict[str, Any]:
    st = os.stat(p)
    return {"path": str(Path(p).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def input_files(spec: SeriesSpec, defaults: dict[str, Any]) -> dict[str, Path]:
    """The files a series' outputs depend on: its markers, tilt angles, stack, .prexg and align.com."""
    files = dict(markers=spec.markers, tilt_angles=spec.tilt_angles, stack=spec.stack, prexg=spec.prexg)
    com = spec.options.get("imod_com") or defaults.get("imod_com")
    files["imod_com"] = Path(com) if com not in (None, "") else None
    return {k: Path(v) for k, v in files.items() if v is not None}


def inputs_identity(spec: SeriesSpec, defaults: dict[str, Any]) -> dict[str, Any]:
    """``{role: {path, size, mtime_ns}}`` of the inputs (``None`` for one that cannot be read now)."""
    out: dict[str, Any] = {}
    for role, p in input_files(spec, defaults).items():
        try:
            out[role] = _identity(p)
        except OSError:
            out[role] = None
    return out


def effective_options(spec: SeriesSpec, defaults: dict[str, Any], path: str) -> dict[str, str]:
    """The options that decide a series' result, as text: its cells over the batch's (the run path's options only
    on the run path), and its own pixel size, image size and bead diameters."""
    opts = {**defaults, **spec.options}
    opts.pop("imod_com", None)  # an input file: its identity is checked
    if path != "run":
        opts = {k: v for k, v in opts.items() if k not in _RUN_ONLY}
    own = dict(pixel_size_nm=spec.pixel_size_nm, image_size=spec.image_size, bead_diameter_nm=spec.bead_diameter_nm,
               bead_diameter_px=spec.bead_diameter_px)
    opts.update({f"series_{k}": v for k, v in own.items() if v is not None})
    return {str(k): str(v) for k, v in sorted(opts.items()) if v is not None and str(v).strip() != ""}


def _files_exported(export: tuple[str, ...]) -> list[str]:
    """The formats asked for that write files of their own (IMOD's .xf/.tlt are always written)."""
    from .task import EXPORT_TARGETS

    return sorted(f for f in set(export) if f in EXPORT_TARGETS)


def read_stamp(folder: Path) -> dict[str, Any] | None:
    """The series folder's stamp, or None (none, or not ours: unreadable, not an object)."""
    try:
        info = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("state") in ("started", "finished") else None


def _write(folder: Path, info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / STAMP, overwrite=True) as f:
        json.dump(info, f, indent=1)


def _listed(folder: Path, info: dict[str, Any] | None) -> list[Path]:
    """The files a stamp names (planned or written), kept inside the series folder."""
    names = [*(info or {}).get("outputs", {}), *(info or {}).get("planned", [])]
    root = folder.resolve()
    out = []
    for n in names:
        p = (folder / str(n))
        if str(n) and not Path(str(n)).is_absolute() and ".." not in Path(str(n)).parts and \
                p.resolve().is_relative_to(root):
            out.append(p)
    return out


def _run_files(folder: Path, info: dict[str, Any] | None) -> list[Path]:
    """The files of the run a stamp describes: those it lists, and for a started run whatever was written since."""
    files = _listed(folder, info)
    if info is not None and info["state"] == "started":
        try:
            files += _written_since(folder, os.stat(folder / STAMP).st_mtime_ns)
        except OSError:
            pass
    return files


def _remove(files: list[Path], folder: Path) -> None:
    for p in files:
        try:
            if p.is_file() or p.is_symlink():
                p.unlink()
        except OSError:
            pass
    for d in sorted({p.parent for p in files}, key=lambda q: len(q.parts), reverse=True):
        if d != folder:
            try:
                d.rmdir()  # only an empty sub-folder (alignment/, relion/)
            except OSError:
                pass


def _move_tree(files: list[Path], src: Path, dst: Path) -> None:
    """Move regular files from under ``src`` to the same relative paths under ``dst``."""
    for p in files:
        if p.is_file() and not p.is_symlink():
            to = dst / p.relative_to(src)
            to.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, to)


def _keep_aside(folder: Path, old: dict[str, Any]) -> None:
    """Move a finished run's listed files and its stamp into ``folder/KEPT`` (stamp last)."""
    keep = folder / KEPT
    _move_tree([p for p in _listed(folder, old) if KEPT not in p.relative_to(folder).parts], folder, keep)
    _move_tree([folder / STAMP], folder, keep)


def restore_kept(folder: Path) -> bool:
    """Settle a series folder that holds a finished run kept aside: drop it when the run after it finished, else
    remove that run's files and put the kept run back. Returns whether a kept run was put back."""
    keep = folder / KEPT
    if not keep.is_dir() or keep.is_symlink():
        return False
    info = read_stamp(folder)
    if info is not None and info["state"] == "finished":
        shutil.rmtree(keep, ignore_errors=True)
        return False
    clear_stale_temporaries_under(folder)
    _remove([p for p in _run_files(folder, info) if p.name != STAMP], folder)
    _move_tree([p for p in keep.rglob("*") if p != keep / STAMP], keep, folder)
    if (keep / STAMP).is_file():
        os.replace(keep / STAMP, folder / STAMP)
    shutil.rmtree(keep, ignore_errors=True)
    return True


def begin(spec: SeriesSpec, folder: Path, planned: list[Path], defaults: dict[str, Any], export: tuple[str, ...],
          path: str, force: bool) -> str:
    """Make ``folder`` ready for a new run of the series: keep a finished run aside (`restore_kept` puts it back
    if the new run does not finish), remove an unfinished run's files, stamp the folder started (naming
    ``planned``). Returns a note: why an earlier run is redone ("" for a first run). Raises `OverwriteError` for
    a folder whose outputs no batch stamped, unless ``force``."""
    torn = restore_kept(folder)
    old = read_stamp(folder)
    foreign = [p for p in planned if p.exists()] if old is None else []
    if foreign and not force:
        shown = ", ".join(p.relative_to(folder).as_posix() for p in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise OverwriteError(f"{folder} holds files no batch run stamped ({shown}); pass --force to replace them, "
                             "or give another --output")
    why = "the previous run did not finish" if torn else (
        why_not_finished(spec, folder, defaults, export, path) if old is not None else None)
    clear_stale_temporaries_under(folder)
    if old is not None and old["state"] == "finished":
        _keep_aside(folder, old)
    else:
        _remove(_run_files(folder, old), folder)
    rel = sorted({p.relative_to(folder).as_posix() for p in planned})
    _write(folder, {"state": "started", "series": spec.name, "planned": rel})
    if old is None and not foreign:
        return ""
    return "redone: --force" if force and why is None or foreign else f"redone: {why}"


def _written_since(folder: Path, since_ns: int) -> list[Path]:
    """Every regular file under ``folder`` modified at or after ``since_ns`` (this run's), but the stamp and
    temporaries."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d != KEPT]
        for n in files:
            p = Path(root) / n
            if n == STAMP and Path(root) == folder or n.endswith(".tmp"):
                continue
            try:
                if p.is_file() and not p.is_symlink() and os.stat(p).st_mtime_ns >= since_ns:
                    found.append(p)
            except OSError:
                pass
    return found


def finish(spec: SeriesSpec, folder: Path, defaults: dict[str, Any], export: tuple[str, ...], path: str,
           status: str, notes: str = "") -> None:
    """Stamp the series finished, last: inputs, options, exports, its status and notes (a later run that skips
    it shows them again) and every file this run wrote (those modified since its started stamp: size and time)."""
    try:
        since = os.stat(folder / STAMP).st_mtime_ns
    except OSError:
        return  # the started stamp was removed meanwhile: not vouched for, redone next time
    outputs = {}
    for p in sorted(_written_since(folder, since)):
        st = os.stat(p)
        outputs[p.relative_to(folder).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    from .. import __version__

    _write(folder, {"state": "finished", "series": spec.name, "status": status, "notes": notes, "path": path,
                    "inputs": inputs_identity(spec, defaults), "options": effective_options(spec, defaults, path),
                    "export": _files_exported(export), "outputs": outputs, "package_version": __version__})
    shutil.rmtree(folder / KEPT, ignore_errors=True)


def why_not_finished(spec: SeriesSpec, folder: Path, defaults: dict[str, Any], export: tuple[str, ...],
                     path: str) -> str | None:
    """None when the series' stamp vouches for its outputs with today's inputs and options; else the reason."""
    info = read_stamp(folder)
    if info is None:
        return "no finished run"
    if info["state"] != "finished":
        return "the previous run did not finish"
    if info.get("path") != path:
        return "the series now takes the other path (markers given or removed)"
    was, now = info.get("inputs") or {}, inputs_identity(spec, defaults)
    changed = [role for role in sorted(set(was) | set(now)) if was.get(role) != now.get(role) or now.get(role) is None]
    if changed:
        return "inputs changed since the last run (" + ", ".join(changed) + ")"
    if info.get("options") != effective_options(spec, defaults, path):
        return "options changed since the last run"
    if not set(_files_exported(export)) <= set(info.get("export") or ()):
        return "new export formats asked for"
    for name, meta in (info.get("outputs") or {}).items():
        try:
            st = os.stat(folder / name)
        except OSError:
            return f"{name} is missing"
        if not isinstance(meta, dict) or (st.st_size, st.st_mtime_ns) != (meta.get("size"), meta.get("mtime_ns")):
            return f"{name} changed since the run that wrote it"
    return None


def discard_unfinished(folder: Path) -> bool:
    """After a failed run, or a stopped batch (SIGTERM, Ctrl-C) whose workers are gone: remove what a started run
    of this series wrote, and its temporaries, so that no partial output is left, and put back the finished run it
    replaced (returns whether there was one)."""
    info = read_stamp(folder)
    if info is None or info["state"] != "started":
        return False
    if restore_kept(folder):
        return True
    clear_stale_temporaries_under(folder)
    _remove(_run_files(folder, info), folder)
    try:
        (folder / STAMP).unlink()
        folder.rmdir()  # only if nothing else is left
    except OSError:
        pass
    return False


def _own_folders(out_root: Path, specs: list[SeriesSpec]) -> list[Path]:
    """The series folders of a batch that are inside its output (a folder linked outside is not ours to clean)."""
    from ..io.atomic import OverwriteError, check_inside

    folders = []
    for s in specs:
        try:
            check_inside(out_root, Path(out_root) / s.name)
        except OverwriteError:
            continue
        folders.append(Path(out_root) / s.name)
    return folders


def discard_unfinished_series(out_root: Path, specs: list[SeriesSpec]) -> None:
    """`discard_unfinished` for the series of a stopped batch that did not land (call it once the workers are
    gone: a local cluster closed; a remote cluster's workers may still finish and stamp theirs)."""
    for folder in _own_folders(out_root, specs):
        discard_unfinished(folder)


def restore_kept_runs(out_root: Path, specs: list[SeriesSpec]) -> None:
    """`restore_kept` for every series of a batch about to start: a run killed with its worker left the finished
    run before it aside; put back, it is skipped if still current."""
    for folder in _own_folders(out_root, specs):
        restore_kept(folder)
