"""Which stack an alignment was solved on: a sample of its pixels, recorded by ``run`` in ``alignment.json``
(``inputs.stack_sample``) and compared when the alignment is applied to a stack.

Two series of one session share their size, view count and pixel size, so every check of the run stamp passes
when the alignment of one is applied to the other, and the tomogram is a blur. 64 pixels of the middle row of the
middle view tell them apart; they are compared as numbers (to 0.1 %, or correlating at 0.98: the same images
stored as another type, rescaled or offset, float16, big-endian, a copy, are the same stack). Other images are
refused when that is certain (the stack the alignment records is still there, another file, with its pixels), and
warned of otherwise; a filtered copy is given the alignment through its ``.xf``, which records no stack.
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


SAME_IMAGES_R = 0.98  # samples correlating this well are the same images (another type, scale or offset)


def other_stack_warning(alignment_dir: str | os.PathLike[str], data: Any, stack_path: str | os.PathLike[str]) -> str | None:
    """Whether ``data`` (the stack at ``stack_path``) holds the images the folder's ``alignment.json`` was solved on,
    by the sample it records (`stack_sample`). None when it matches, or matches up to a linear change (another
    mode, a rescale: correlation `SAME_IMAGES_R`), or nothing is recorded. Certain evidence is refused
    (`FileFormatError`): the recorded stack is still there, another file, and still holds the recorded pixels,
    while these do not correlate with them. Otherwise (the recorded stack gone or changed) a warning, returned."""
    from .errors import FileFormatError
    from .guarded import read_text_limited

    try:
        record = json.loads(read_text_limited(Path(alignment_dir) / "alignment.json", "alignment", 256 * 2**20))
        inputs = record.get("inputs") or {}
        recorded = np.asarray(inputs["stack_sample"], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, FileFormatError):
        return None
    now = np.asarray(stack_sample(data))
    if _same(now, recorded):
        return None
    r = _correlation(now, recorded)
    if r is not None and r >= SAME_IMAGES_R:
        return None
    name = str(inputs.get("stack", "the stack"))
    there = _recorded_stack(name, alignment_dir, stack_path, recorded)
    said = "" if r is None else f", r = {r:.2f}"
    if there is not None:
        xf = next(iter(sorted(Path(alignment_dir).glob("*.xf"))), None)
        anyway = f"--alignment {xf}" if xf is not None else "its .xf as --alignment"
        give = Path(there).name if Path(there).name != Path(stack_path).name else str(there)  # same names: in full
        raise FileFormatError(f"{Path(stack_path).name} holds other images than {there}, which this alignment was"
                              f" solved on (the middle view's pixels do not match{said}); give {give},"
                              f" or, to apply it to {Path(stack_path).name} anyway (a filtered copy), {anyway}")
    return (f"{Path(stack_path).name} holds other images than {name}, which this alignment was solved on (its middle"
            f" view differs{said}): a series of the same size from another run? Give the stack the alignment belongs to")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-12)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-3 * scale))


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape != b.shape or a.size < 8 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _recorded_stack(name: str, alignment_dir: Any, stack_path: Any, recorded: np.ndarray) -> Path | None:
    """The stack ``alignment.json`` names (as given: absolute, or relative to where the command ran or to the
    folder's parent), when it is another file than ``stack_path`` and still holds the recorded pixels."""
    from .mrc import open_tilt_series

    p = Path(name)
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, Path(alignment_dir).parent / p,
                                              Path(alignment_dir).parent.parent / p]):
        try:
            if not cand.is_file() or os.path.samefile(cand, stack_path):
                continue
            if _same(np.asarray(stack_sample(open_tilt_series(cand, find_tilts=False).data)), recorded):
                return cand
        except (OSError, ValueError):
            continue
    return None
