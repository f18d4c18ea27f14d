"""The errors every front end shares: one place to import them from.

`AlignmentError` means the input cannot be aligned; `UsageError` means a job's input is out of range or
inconsistent (the command line prints it and exits 2); `Cancelled` means the caller's ``should_stop``
asked a long job to stop. Each message names what is wrong and how to fix it.
"""


class AlignmentError(ValueError):
    """The input cannot be aligned; the message says what is wrong and how to fix it."""


class AlignmentWarning(UserWarning):
    """Part of the input was left out of the fit."""


class UsageError(ValueError):
    """A job's input out of range or inconsistent; the message names it (the command line prints it)."""


class Cancelled(Exception):
    """Raised inside a long job when the caller's ``should_stop`` returned True."""


__all__ = ["AlignmentError", "AlignmentWarning", "Cancelled", "UsageError"]
