"""The error and warning types of the alignment core."""


class AlignmentError(ValueError):
    """The input cannot be aligned; the message says what is wrong and how to fix it."""


class AlignmentWarning(UserWarning):
    """Part of the input was left out of the fit."""
