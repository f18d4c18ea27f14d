"""The ``tomoalign`` console script: a Ctrl-C before the command line is loaded gives its one line too.

Loading `cli` imports numpy and the readers (a tenth of a second or more); Python's own handler would print a
traceback for an interrupt in that time. This module imports nothing heavy before it installs its own.
"""

from __future__ import annotations

import os
import signal
import sys


def _stopped_while_loading(signum: int, _frame: object) -> None:
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    os.write(2, f"tomoalign: {word}; nothing was done\n".encode())
    os._exit(128 + signum)


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped_while_loading)
    from .cli import main as run

    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on the command's own handling (cli)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return run(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
