"""IMOD command files (``align.com``): the parameter entries of one program's section.

A ``.com`` file runs programs one after another; a line ``$tiltalign -StandardInput`` starts the
section of ``tiltalign``, whose lines are ``Key value`` pairs (PIP format: key, white space, value;
``#`` starts a comment) until the next line that starts with ``$``. A key may repeat (for example
``SeparateGroup``); every value is kept, in file order.

Every number in a value is checked as the section is read (`check_numbers`): ``nan``, ``inf`` or a number
beyond ±1e9 (no IMOD option takes one: view numbers, group sizes, angles, counts) is refused with the
file, line and key, so no option parser downstream meets a number it cannot use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import FileFormatError
from .tilts import read_text

MAX_COM_BYTES = 1024 * 1024
MAX_COM_NUMBER = 1e9


def check_numbers(value: str, where: str, key: str) -> str:
    """``value`` if every number in it (tokens split at white space and commas) is finite and within
    ±`MAX_COM_NUMBER`; a `FileFormatError` naming ``where`` and ``key`` otherwise."""
    for token in value.replace(",", " ").split():
        try:
            x = float(token)
        except ValueError:
            continue  # a word or a file name
        if not math.isfinite(x) or abs(x) > MAX_COM_NUMBER:
            raise FileFormatError(f"{where}: {key} {value!r}: {token!r} is not a usable number (it must be finite"
                                  f" and within ±{MAX_COM_NUMBER:g}); fix the command file")
    return value


def read_com_section(path: str | os.PathLike[str], program: str = "tiltalign") -> dict[str, list[str]]:
    """``{key: [values in file order]}`` of ``program``'s section of an IMOD ``.com`` file."""
    p = Path(path)
    text = read_text(p, "IMOD command")
    if len(text) > MAX_COM_BYTES:
        raise FileFormatError(f"{p}: {len(text)} characters is too large for an IMOD command file")
    entries: dict[str, list[str]] = {}
    inside = found = False
    for number, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("$"):
            words = s[1:].split()
            inside = bool(words) and os.path.basename(words[0]) == program
            found = found or inside
            continue
        if not inside or not s or s.startswith("#"):
            continue
        key, _, value = s.partition(" ") if "\t" not in s else s.partition("\t")
        value = check_numbers(value.split("#", 1)[0].strip(), f"{p}, line {number}", key.strip())
        entries.setdefault(key.strip(), []).append(value)
    if not found:
        raise FileFormatError(f"{p}: no '${program}' section; give the command file that runs {program}"
                              " (for example align.com)")
    return entries


AXIS_BRANCH_TOLERANCE_DEG = 30.0  # beyond this (modulo a half turn), the start lies on the other axis branch


def check_rotation_angle(path: str | os.PathLike[str], found_axis_deg: float, found_by: str = "the tracker") -> None:
    """Refuse an align.com whose ``RotationAngle`` is far (modulo 180 degrees) from the tilt axis the markers show:
    started from it, the fit lands on the other axis branch (an image turned a quarter, RMS tens of pixels), as
    with a ``.com`` reused from another microscope. A `FileFormatError` in one line that says what to set."""
    values = read_com_section(path).get("RotationAngle")
    if not values:
        return
    try:
        given = float(values[-1].split()[0])
    except (ValueError, IndexError):
        return  # a malformed value is the full model's reader's to report
    off = (given - found_axis_deg + 90.0) % 180.0 - 90.0
    if abs(off) > AXIS_BRANCH_TOLERANCE_DEG:
        raise FileFormatError(f"{path}: RotationAngle {given:g} deg is {abs(off):.0f} deg from the tilt axis {found_by}"
                              f" found ({found_axis_deg:.1f} deg), so the fit would land on the other axis branch; "
                              f"set RotationAngle {found_axis_deg:.1f} in the align.com (or check the stack)")

