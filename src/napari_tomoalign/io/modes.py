"""The default MRC mode of an output made from a tilt series, as IMOD chooses it.

``newstack`` keeps the input's mode for the aligned stack (`jobs.images.output_mode`). IMOD's ``tilt`` writes
the tomogram in the input file's storage mode unless ``MODE`` is given: bytes (mode 0) give bytes, 16-bit
integers give 16 bits, floats give floats. A 16-bit input gives int16 here (mode 1, as etomo's ``tilt.com``
asks: a WBP is signed density about its mean, which unsigned 16 bits would fold at zero); a byte input keeps
its bytes (unsigned or signed, as it was read), with IMOD's ``SCALE`` chosen for 256 levels
(`reconstruction.output_scale`); ``--mode int16`` keeps more levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tomogram_mode(input_dtype: Any, asked: str | None = None) -> str:
    """The tomogram's mode: ``asked``, else the input's byte type for bytes, int16 for other integers, else
    float32 (module docstring)."""
    if asked is not None:
        return asked
    d = np.dtype(input_dtype)
    if d.kind in "iu":
        return np.dtype(d.name).name if d.itemsize == 1 else "int16"
    return "float32"
