"""Fast fixed-format text tables: rows of numbers formatted by vectorised numpy, written in blocks.

``predicted.csv`` holds every view x marker and ``residuals.csv`` / ``.resid`` every observation: at
a million observations Python's per-row formatting took longer than the solve. Each column has a
number of decimals (0 prints a whole number) and a width (0: no padding, as in CSV; else right-aligned
as in IMOD's fixed-width files). NaN prints as ``nan``, as Python's formatting does. Whole numbers are
exact up to 2**53; values too large for the fixed-point path fall back to Python's formatting.
"""

from __future__ import annotations

from typing import IO

import numpy as np
from numpy.typing import NDArray

_BLOCK_ROWS = 65536
_LIMIT = 9.0e15  # |value| * 10**decimals must stay below this for the integer path


_SPACES = np.uint64(0x2020202020202020)  # eight ASCII spaces
_ONES = np.uint64(0x0101010101010101)  # eight True bytes


def _digit_deltas(r: NDArray, decimals: int, n_chars: int, body: NDArray[np.int64], neg: NDArray[np.bool_]):
    """For each character position from the right, the amount to add to a space (32) to get the character
    of every row: the digits of ``r`` with the point ``decimals`` from the right, then the sign; 0 beyond."""
    q = r
    shortest, longest = (int(body.min()), int(body.max())) if len(body) else (0, 0)
    for k in range(n_chars):
        if decimals > 0 and k == decimals:
            yield np.uint64(46 - 32)  # "."
            continue
        if k < longest:
            nxt = q // 10
            delta = (q - nxt * 10).astype(np.uint64) + np.uint64(48 - 32)
            q = nxt
            if k >= shortest:  # not every row has a digit here
                delta *= k < body
        else:
            delta = np.zeros(len(r), dtype=np.uint64)
        if k >= shortest:
            delta += (neg & (k == body)).astype(np.uint64) * np.uint64(45 - 32)  # "-"
        yield delta


def _field(v: NDArray[np.float64], decimals: int, width: int, suffix: int) -> tuple[list, list]:
    """One column as 8-byte words of text (``(n_rows,)`` little-endian uint64 each) and of used-byte flags.

    Each value is right-aligned in a slot of whole words, followed by the character ``suffix`` (the
    separator, or the newline; -1 for none); the flags mark its field (padded to ``width``) and suffix.
    """
    nan = np.isnan(v)
    neg = np.signbit(v) & ~nan  # -0.0 prints as -0.00, as Python does
    r = np.rint(np.where(nan, 0.0, np.abs(v)) * 10.0**decimals).astype(np.int64)
    top = int(r.max(initial=0))
    if top < 2**32:  # integer division by a constant is several times faster on 32 bits
        r = r.astype(np.uint32)
    digits = np.full(len(v), decimals + 1, dtype=np.int64)  # how many digits r has (at least decimals + 1)
    for k in range(decimals + 1, len(str(top))):
        digits += r >= 10**k
    body = digits + (decimals > 0)  # digits and the point
    length = np.maximum(np.where(nan, 3, body + neg), width)
    n_chars = int(length.max(initial=width))
    tail = int(suffix >= 0)
    n_words = (n_chars + tail + 7) // 8
    words = [np.full(len(v), _SPACES, dtype="<u8") for _ in range(n_words)]

    def put(k: int, delta) -> None:  # add delta at the k-th byte from the slot's right end
        p = 8 * n_words - 1 - k
        words[p // 8] += delta << np.uint64(8 * (p % 8))

    if tail:  # a fixed byte: replace the space (a newline is below a space, so it is not added)
        shift = np.uint64(8 * 7)
        words[-1] &= ~(np.uint64(0xFF) << shift)
        words[-1] |= np.uint64(suffix) << shift
    any_nan = bool(nan.any())
    for k, delta in enumerate(_digit_deltas(r, decimals, n_chars, body, neg)):
        put(k + tail, delta * ~nan if any_nan else delta)
    if any_nan:  # NaN prints as "nan", as Python does
        for k, ch in enumerate(b"nan"[::-1]):
            put(k + tail, nan.astype(np.uint64) * np.uint64(ch - 32))
    first = 8 * n_words - tail - length  # the first used byte of each row's slot
    used = []
    for w in range(n_words):
        shift = np.clip(first - 8 * w, 0, 8).astype(np.uint64)
        used.append(np.where(shift == 8, np.uint64(0), _ONES << (np.uint64(8) * np.minimum(shift, 7))))
    return words, used


def _format_rows(block: NDArray[np.float64], decimals: list[int], widths: list[int], sep: str) -> bytes:
    """The ASCII text of ``block``'s rows: each column's field, separated by ``sep``, and a newline."""
    n_rows, n_cols = block.shape
    words: list = []
    used: list = []
    for c in range(n_cols):
        suffix = 10 if c == n_cols - 1 else (ord(sep) if sep else -1)
        w, u = _field(block[:, c], decimals[c], widths[c], suffix)
        words += w
        used += u
    text = np.empty((n_rows, len(words)), dtype="<u8")
    flags = np.empty((n_rows, len(words)), dtype="<u8")
    for j, (w, u) in enumerate(zip(words, used)):
        text[:, j] = w
        flags[:, j] = u
    return text.view(np.uint8)[flags.view(np.bool_)].tobytes()


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
    raw = getattr(f, "buffer", None)
    for start in range(0, n, _BLOCK_ROWS):
        block = np.column_stack([np.asarray(c[start : start + _BLOCK_ROWS], dtype=float) for c in columns])
        finite = np.isfinite(block)
        too_big = np.abs(np.where(finite, block, 0.0)) * 10.0 ** dec[None, :] >= _LIMIT
        if np.any(too_big) or np.any(np.isinf(block)):
            f.write(_python_rows(block, decimals, widths, sep))
            continue
        text = _format_rows(block, list(decimals), list(widths), sep)
        if raw is not None:
            f.flush()  # a text file: write the ASCII bytes beneath it, no decoding and encoding
            raw.write(text)
        else:
            f.write(text.decode("ascii"))
