"""``--size WIDTH,HEIGHT``: the aligned frame a user gives (`frame.frame_size`), as ``newstack -size``, for
``aligned-stack``, ``reconstruct`` and ``run``. The standard library only, so that building the command line
stays fast.
"""

from __future__ import annotations

import argparse

SIZE_HELP = ("the aligned frame's size in unbinned pixels, as newstack -size (default: the raw frame, transposed when"
             " the alignment turns the views nearer 90 degrees than 0 and the frame is not square, as etomo does; give"
             " the raw WIDTH,HEIGHT to keep it). The tomogram's width and length follow it")


def add_size_option(p: argparse.ArgumentParser) -> None:
    """``--size WIDTH,HEIGHT``, the aligned frame (`frame.frame_size`), for ``aligned-stack``, ``reconstruct``,
    and ``run``."""

    def size(text: str) -> tuple[int, int]:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    p.add_argument("--size", type=size, metavar="WIDTH,HEIGHT", help=SIZE_HELP)


def parse_size(text: str) -> tuple[int, int]:
    """``"4092,5760"`` (or ``4092x5760``) as ``(4092, 5760)``, for ``--size``; a `ValueError` naming the form."""
    parts = [p for p in str(text).replace("x", ",").replace("X", ",").split(",") if p.strip()]
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--size {text!r}: give WIDTH,HEIGHT in unbinned pixels, such as 4092,5760") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size {text!r}: the width and height must be at least 1 pixel")
    return w, h


__all__ = ["SIZE_HELP", "add_size_option", "parse_size"]
