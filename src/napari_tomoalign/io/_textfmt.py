"""Fast fixed-format text tables: rows of numbers formatted by a compiled loop, written in blocks.

``predicted.csv`` holds every view x marker and ``residuals.csv`` / ``.resid`` every observation: at
a million observations Python's per-row formatting took longer than the solve. Each column has a
number of decimals (0 prints a whole number) and a width (0: no padding, as in CSV; else right-aligned
as in IMOD's fixed-width files). NaN prints as ``nan``, as Python's formatting does. Whole numbers are
exact up to 2**53; values too large for the fixed-point path fall back to Python's formatting.
"""

from __future__ import annotations

import math
from typing import IO

import numba
import numpy as np
from numpy.typing import NDArray

from ..alignment._threads import compiled_threads

_BLOCK_ROWS = 65536
_LIMIT = 9.0e15  # |value| * 10**decimals must stay below this for the integer path


@numba.njit(cache=True, nogil=True)
def _put_number(buf, pos, v, decimals, scale, width, tmp):  # pragma: no cover - compiled
    n = 0
    if v != v:
        tmp[0], tmp[1], tmp[2] = 110, 97, 110  # "nan" (written reversed below; palindrome)
        n = 3
    else:
        neg = math.copysign(1.0, v) < 0  # -0.0 prints as -0.00, as Python does
        a = -v if neg else v
        r = np.int64(np.rint(a * scale))
        for _ in range(decimals):
            tmp[n] = 48 + r % 10
            r //= 10
            n += 1
        if decimals > 0:
            tmp[n] = 46  # "."
            n += 1
        while True:
            tmp[n] = 48 + r % 10
            r //= 10
            n += 1
            if r == 0:
                break
        if neg:
            tmp[n] = 45  # "-"
            n += 1
    for _ in range(width - n):
        buf[pos] = 32
        pos += 1
    for k in range(n - 1, -1, -1):
        buf[pos] = tmp[k]
        pos += 1
    return pos


@numba.njit(cache=True, nogil=True, parallel=True)
def _format_block(values, decimals, widths, sep, buf, row_bytes, ends):  # pragma: no cover - compiled
    """Format ``values`` in ``len(ends)`` parts at once: part ``k`` fills ``buf`` from ``k * part rows *
    row_bytes`` and its end goes to ``ends[k]``."""
    n_rows, n_cols = values.shape
    n_parts = ends.shape[0]
    per = (n_rows + n_parts - 1) // n_parts
    scales = np.empty(n_cols)
    for c in range(n_cols):
        scales[c] = 10.0 ** decimals[c]
    for k in numba.prange(n_parts):
        tmp = np.empty(40, dtype=np.uint8)
        pos = k * per * row_bytes
        for i in range(k * per, min(n_rows, (k + 1) * per)):
            for c in range(n_cols):
                if c > 0 and sep >= 0:
                    buf[pos] = sep
                    pos += 1
                pos = _put_number(buf, pos, values[i, c], decimals[c], scales[c], widths[c], tmp)
            buf[pos] = 10
            pos += 1
        ends[k] = pos


def _python_rows(values: NDArray[np.float64], decimals, widths, sep: str) -> str:
    out = []
    for row in values:
        cells = [f"{v:{w}.{d}f}" if w else f"{v:.{d}f}" for v, d, w in zip(row, decimals, widths)]
        out.append(sep.join(cells) + "\n")
    return "".join(out)


def write_table(
    f: IO[str], columns: list[NDArray], decimals: list[int], widths: list[int] | None = None, sep: str = ","
) -> None:
    """Write rows made of ``columns`` (equal-length 1-D arrays) to the text file ``f``."""
    n = len(columns[0]) if columns else 0
    widths = widths or [0] * len(columns)
    dec = np.asarray(decimals, dtype=np.int64)
    wid = np.asarray(widths, dtype=np.int64)
    sep_code = ord(sep) if sep else -1
    row_bytes = int(np.sum(np.maximum(wid, 24))) + len(columns) + 1
    for start in range(0, n, _BLOCK_ROWS):
        block = np.column_stack([np.asarray(c[start : start + _BLOCK_ROWS], dtype=float) for c in columns])
        finite = np.isfinite(block)
        too_big = np.abs(np.where(finite, block, 0.0)) * 10.0 ** dec[None, :] >= _LIMIT
        if np.any(too_big) or np.any(np.isinf(block)):
            f.write(_python_rows(block, decimals, widths, sep))
            continue
        parts = 4 if len(block) >= 4096 else 1
        per = -(-len(block) // parts)
        buf = np.empty(row_bytes * per * parts, dtype=np.uint8)
        ends = np.zeros(parts, dtype=np.int64)
        if parts == 1:  # a small table: waking numba's thread pool would cost more than formatting it
            with compiled_threads(1):
                _format_block(block, dec, wid, sep_code, buf, row_bytes, ends)
        else:
            _format_block(block, dec, wid, sep_code, buf, row_bytes, ends)
        raw = getattr(f, "buffer", None)
        if raw is not None:
            f.flush()  # a text file: write the ASCII bytes beneath it, no decoding and encoding
        for k in range(parts):
            chunk = buf[k * per * row_bytes : ends[k]].data
            if raw is not None:
                raw.write(chunk)
            else:
                f.write(bytes(chunk).decode("ascii"))
