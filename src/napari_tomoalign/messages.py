"""Messages of the command line that say what is wrong with which path and how to fix it (kept out of `cli`,
which only parses and prints)."""

from __future__ import annotations

import errno


def os_error_message(exc: OSError) -> str:
    """An operating-system error as what is wrong with which path and how to fix it."""
    what, name = exc.strerror or str(exc), exc.filename
    if name is None:
        return f"error: {what}"
    if isinstance(exc, FileExistsError):
        return f"error: {name} exists and is not a folder; give the output a folder's name (new or existing)"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return f"error: {name}: {what}; check the path (an output's folder is made only where it can be)"
    if exc.errno == errno.ENOSPC:
        return f"error: {name}: {what}; free some space or write the output elsewhere"
    if isinstance(exc, PermissionError):
        return f"error: {name}: permission denied; give an input you can read and an output folder you can write"
    return f"error: {name}: {what}"
