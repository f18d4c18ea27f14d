"""Before a forced run into the folder of an earlier one: move the earlier run's outputs aside first, so that a
run stopped half-way (Ctrl-C, SIGTERM, a failure) never leaves a folder whose files come from two runs.

``tomoalign run --force`` writes its outputs one step at a time (markers, then ``alignment/``, then the aligned
stack and the tomogram); each file is atomic, the folder is not. So before the first step, every output this run
will write that exists already is renamed ``NAME~`` (an older backup replaced), as IMOD's programs back up an
output before writing it (images too: a rename costs no space; the backup and the new file then both take
theirs, as with IMOD). The alignment folder's files are those its ``alignment.json`` stamp lists, and the names
`io.alignment.output_names` gives.
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import check_writable


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
        os.replace(p, backup)
        done.append(f"{p.name} -> {backup.name}")
    return done
