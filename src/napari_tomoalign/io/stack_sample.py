"""Which stack an alignment was solved on: a sample of its pixels, recorded by ``run`` in ``alignment.json``
(``inputs.stack_sample``) and compared when the alignment is applied to a stack.

Two series of one session share their size, view count and pixel size, so every check of the run stamp passes
when the alignment of one is applied to the other, and the tomogram is a blur. 64 pixels of the middle row of the
middle view tell them apart; they are compared as numbers (to 0.1 %), so the same images stored as another type
(float16, big-endian, a copy) are the same stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

N_SAMPLE = 64


def stack_sample(data: Any) -> list[float]:
    """``N_SAMPLE`` pixels, evenly spaced, of the middle row of the middle view of ``(views, rows, cols)``."""
    n, rows, cols = data.shape
    row = np.asarray(data[n // 2, rows // 2], dtype=np.float64).ravel()
    return [float(v) for v in row[np.linspace(0, cols - 1, min(N_SAMPLE, cols)).astype(int)]]


def other_stack_warning(alignment_dir: str | os.PathLike[str], data: Any, stack_path: str | os.PathLike[str]) -> str | None:
    """A warning when the folder's ``alignment.json`` records a sample of its stack's pixels that ``data`` does not
    match, naming both files; None when it matches or nothing is recorded."""
    from .errors import FileFormatError
    from .guarded import read_text_limited

    try:
        record = json.loads(read_text_limited(Path(alignment_dir) / "alignment.json", "alignment", 256 * 2**20))
        inputs = record.get("inputs") or {}
        recorded = np.asarray(inputs["stack_sample"], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, FileFormatError):
        return None
    now = np.asarray(stack_sample(data))
    scale = max(float(np.abs(recorded).max()) if recorded.size else 0.0, 1e-12)
    if recorded.shape == now.shape and np.all(np.abs(now - recorded) <= 1e-3 * scale):
        return None
    return (f"{Path(stack_path).name} holds other images than {inputs.get('stack', 'the stack')}, which this alignment"
            " was solved on (its middle view differs): a series of the same size from another run? Give the stack"
            " the alignment belongs to")
