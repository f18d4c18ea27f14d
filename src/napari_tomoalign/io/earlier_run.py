"""Before a forced run into the folder of an earlier one: move the earlier run's outputs aside first, so that a
run stopped half-way (Ctrl-C, SIGTERM, a failure) never leaves a folder whose files come from two runs.

``tomoalign run --force`` writes its outputs one step at a time (markers, then ``alignment/``, then the aligned
stack and the tomogram); each file is atomic, the folder is not. So before the first step, every output this run
will write that exists already is renamed ``NAME~``, as IMOD's programs back up an output before writing it
(images too: a rename costs no space; the backup and the new file then both take theirs, as with IMOD). The
older backup it replaces is kept as ``NAME~~`` until the run has finished (`drop_older_backups`), and put back
if it stops. The alignment folder's files are those its ``alignment.json`` stamp lists, and the names
`io.alignment.output_names` gives.
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import check_writable

OLDER = "~~"  # the run before last's backup, while a forced run is under way


def retire_earlier_run(folder: str | os.PathLike[str], names: list[str], stem: str,
                       alignment_dir: str = "alignment") -> list[str]:
    """Move aside the outputs of an earlier run in ``folder`` (``names``, and the files of ``folder/alignment_dir``)
    before a forced run writes new ones (module docstring). Each must pass `check_writable` (a regular file, not
    one of the command's inputs), checked before the stamp is read; returns ``["NAME -> NAME~", ...]``."""
    from .alignment import output_names, run_stamp
    from .errors import FileFormatError

    out, al_dir = Path(folder), Path(folder) / alignment_dir
    targets = [out / n for n in names] + [al_dir / n for n in output_names(stem, full_model=True)]
    targets = [p for p in targets if p.is_file() and not p.is_symlink()]  # a symlink is replaced, never followed
    for p in targets:
        check_writable(p, True)
    if al_dir / "alignment.json" in targets:  # the stamp names the rest (a local file)
        try:
            extra = [al_dir / n for n in map(str, run_stamp(al_dir)["files"]) if n == Path(n).name]
        except (FileFormatError, OSError):
            extra = []
        for p in extra:
            if p not in targets and p.is_file() and not p.is_symlink():
                check_writable(p, True)
                targets.append(p)
    done = []
    for p in targets:
        backup = p.with_name(p.name + "~")
        if backup.is_file() and not backup.is_symlink():  # the run before last: kept until this one has finished
            os.replace(backup, p.with_name(p.name + OLDER))
        os.replace(p, backup)
        done.append(f"{p.name} -> {backup.name}")
    return done


RUN_SUFFIXES = (".fid", "_beads.csv", "_patches.csv", "_markers.csv", ".ali", "_erased.mrc")  # `run`'s files by stem


def other_series_names(folder: str | os.PathLike[str], stem: str, alignment_dir: str = "alignment") -> list[str]:
    """The files `tomoalign run` wrote in ``folder`` for another series than ``stem`` (the one its ``alignment/``
    stamp names): a forced run into that folder retires them too, or its ``.ali``, ``.fid`` and tomogram stayed
    beside the new run's under their own names (new user's finding, session 13). Empty when the folder holds this
    series' run, or none."""
    from .alignment import run_stamp
    from .atomic import not_inputs
    from .errors import FileFormatError

    try:
        with not_inputs():  # the stamp of the run this one replaces: read, and replaced
            old = str(run_stamp(Path(folder) / alignment_dir)["stem"])
    except (FileFormatError, OSError, KeyError, TypeError):
        return []
    if old == stem or not old or Path(old).name != old:
        return []
    out = Path(folder)
    names = [old + s for s in RUN_SUFFIXES] + [p.name for p in out.glob(f"{old}_bin*.rec")]
    return [n for n in names if (out / n).is_file()]


def drop_older_backups(folder: str | os.PathLike[str], names: list[str], alignment_dir: str = "alignment") -> None:
    """After a forced run has finished: remove the backups of the run before last that `retire_earlier_run`
    kept (``NAME~~``) in case this one stopped half-way (then they go back to ``NAME~``, `removed_on_failure`)."""
    out = Path(folder)
    for d in (out, out / alignment_dir):
        for p in d.glob(f"*{OLDER}") if d.is_dir() else ():
            if p.is_file() and not p.is_symlink() and (d != out or p.name[: -len(OLDER)] in names):
                p.unlink()


def earlier_run_files(folder: Path, paths: list[Path]) -> list[Path]:
    """The files the earlier run in ``folder`` wrote (its stamp lists them: a local file, a full model's ``.xtilt``,
    ``.tltxf`` and ``.zfac``) that a new write of ``paths`` does not replace: `io.alignment.write_alignment` moves
    them aside as ``NAME~`` once the new unit is in place, so an alignment never sits beside the local file or the
    Z factors of another solve (which ``reconstruct`` would apply)."""
    from .alignment import run_stamp
    from .atomic import not_inputs
    from .errors import FileFormatError

    try:
        with not_inputs():  # the unit being replaced is no input of this command
            stamp = run_stamp(folder)
    except (FileFormatError, OSError):
        return []
    names = [*stamp.get("files", {}), stamp.get("local_file")]
    found = [folder / n for n in names if isinstance(n, str) and n and Path(n).name == n]
    return [p for p in dict.fromkeys(found) if p not in paths and p.is_file() and not p.is_symlink()]
