"""IMOD command files (``align.com``): the parameter entries of one program's section.

A ``.com`` file runs programs one after another; a line ``$tiltalign -StandardInput`` starts the
section of ``tiltalign``, whose lines are ``Key value`` pairs (PIP format: key, white space, value;
``#`` starts a comment) until the next line that starts with ``$``. A key may repeat (for example
``SeparateGroup``); every value is kept, in file order.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FileFormatError
from .tilts import read_text

MAX_COM_BYTES = 1024 * 1024


def read_com_section(path: str | os.PathLike[str], program: str = "tiltalign") -> dict[str, list[str]]:
    """``{key: [values in file order]}`` of ``program``'s section of an IMOD ``.com`` file."""
    p = Path(path)
    text = read_text(p, "IMOD command file")
    if len(text) > MAX_COM_BYTES:
        raise FileFormatError(f"{p}: {len(text)} characters is too large for an IMOD command file")
    entries: dict[str, list[str]] = {}
    inside = found = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("$"):
            words = s[1:].split()
            inside = bool(words) and os.path.basename(words[0]) == program
            found = found or inside
            continue
        if not inside or not s or s.startswith("#"):
            continue
        key, _, value = s.partition(" ") if "\t" not in s else s.partition("\t")
        entries.setdefault(key.strip(), []).append(value.split("#", 1)[0].strip())
    if not found:
        raise FileFormatError(f"{p}: no '${program}' section; give the command file that runs {program}"
                              " (for example align.com)")
    return entries
