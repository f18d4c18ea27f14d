"""Whether an MRC file's mode-0 bytes are signed or unsigned, by IMOD's rule, and a word when a signed read looks wrapped.

IMOD's rule (its ``b3dutil`` library, ``readBytesSigned``; mrc_format.txt: mode 0 is "unsigned or signed bytes
depending on flag in imodStamp"): with IMOD's stamp (header byte 152), bit 0 of ``imodFlags`` (byte 156) says signed;
without it, the header's minimum and maximum decide: signed when the minimum is negative and the maximum below 128,
unsigned when the minimum is 0 or more and the maximum 128 or more, and when both are out of the other's range
(minimum negative, maximum 128 or more) the side that overflows more; a header that fits both (0 to 127) is unsigned.
IMOD's environment variable ``READ_MODE0_SIGNED`` overrides: with the stamp only a value below -1 (unsigned) or above 1
(signed), without it any negative (unsigned) or positive (signed) value. The MRC-2014 version number plays no part.

Unsigned bytes read as signed (a file whose header says signed, or was written by a program that takes every mode 0
as signed) come out wrapped: the bright half of the values lands at -128..-1, joined to 0..127 across the ends of the
range instead of at 0. `wrapped_warning` says so in one line, with the fix.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

IMOD_STAMP = 1146047817  # IMOD's ``imodStamp`` (header byte 152): ``imodFlags`` (byte 156) is then meaningful
IMOD_SIGNED_BYTES = 1  # bit 0 of ``imodFlags``: mode 0's bytes are signed (clear: unsigned, as IMOD writes them)
READ_SIGNED_VARIABLE = "READ_MODE0_SIGNED"  # IMOD's override, honoured here too


def imod_stamp(header: Any) -> tuple[int, int]:
    """IMOD's stamp and flags of an mrcfile header, in the header's byte order."""
    order = "<ii" if header.mode.dtype.byteorder in "<=|" else ">ii"
    stamp, flags = struct.unpack(order, bytes(header.extra2)[40:48])
    return int(stamp), int(flags)


def _override() -> int:
    try:
        return int(os.environ.get(READ_SIGNED_VARIABLE, "0").strip() or 0)
    except ValueError:
        return 0


def signed_bytes(header: Any) -> bool:
    """Whether the file's data are signed bytes, by IMOD's rule (module docstring); False for any other mode."""
    if int(header.mode) != 0:
        return False
    stamp, flags = imod_stamp(header)
    env = _override()
    if stamp == IMOD_STAMP:
        return env > 1 or (env >= -1 and bool(flags & IMOD_SIGNED_BYTES))
    if env:
        return env > 0
    dmin, dmax = float(header.dmin), float(header.dmax)
    if not (np.isfinite(dmin) and np.isfinite(dmax)):
        return False
    if dmin < 0 and dmax < 128:
        return True
    if dmin < 0 <= dmax - 128:
        return -dmin > dmax - 128
    return False


def unsigned_bytes(header: Any) -> bool:
    """Whether mode-0 data are unsigned bytes, as IMOD reads them (`signed_bytes`); False for any other mode."""
    return int(header.mode) == 0 and not signed_bytes(header)


SEAM = 4  # values each side of a seam (0 | -1, and 127 | -128) whose counts are compared


def looks_wrapped(values: np.ndarray) -> bool:
    """Whether signed bytes look like unsigned ones read wrapped: many values at both ends of the range, joined
    there (the counts next to 127 | -128 at least 4 times those next to -1 | 0, and 1% of all values), with at least
    5% of the values negative. Signed data about 0 are joined at 0 instead; data that fill the range evenly at neither."""
    v = np.asarray(values).ravel()
    if v.size == 0:
        return False
    counts = np.bincount(v.astype(np.int8).view(np.uint8), minlength=256)  # index: value mod 256
    ends = counts[128 - SEAM:128 + SEAM].sum()  # 124..127 and -128..-125
    zero = counts[:SEAM].sum() + counts[256 - SEAM:].sum()  # 0..3 and -4..-1
    negative = counts[128:].sum()
    return bool(ends >= 4 * zero and ends >= 0.01 * v.size and negative >= 0.05 * v.size)


def wrapped_warning(path: Any, header: Any, data: Any) -> str | None:
    """One line when the signed bytes ``data`` (views, rows, cols) of the file at ``path`` look wrapped (`looks_wrapped`,
    on up to 3 views' rows, every 4th), saying why they were read signed and how to have them read unsigned; else None."""
    n = int(data.shape[0])
    sample = np.concatenate([np.asarray(data[k, ::4, ::4]).ravel() for k in sorted({n // 4, n // 2, (3 * n) // 4})])
    if not looks_wrapped(sample):
        return None
    stamp, flags = imod_stamp(header)
    why = ("IMOD's stamp says signed" if stamp == IMOD_STAMP else
           f"{READ_SIGNED_VARIABLE} says signed" if _override() > 0 else
           f"no IMOD stamp, and the header's min {float(header.dmin):g} and max {float(header.dmax):g} say signed")
    share = float(np.mean(sample < 0))
    return (f"{path}: its bytes (MRC mode 0) are read as signed ({why}), but they look like unsigned bytes read wrapped"
            f" ({share:.0%} of them at -128..-1, joined to 127 rather than to 0); if they are unsigned (0 to 255), run"
            f" with {READ_SIGNED_VARIABLE}=-2 set (IMOD's variable, which this reader honours too: bytes read unsigned)")
