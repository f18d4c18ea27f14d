"""The one error type that every reader raises for a file it cannot use."""


class FileFormatError(ValueError):
    """A file is missing, unreadable or malformed; the message names the file and the problem."""
