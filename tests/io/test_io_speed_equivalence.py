"""The vectorised text writers write exactly the bytes the compiled formatter wrote before them.

The reference below is the compiled (numba) formatter that wrote ``predicted.csv``, ``residuals.csv``,
``.tlt`` and ``.resid`` until the writers became plain numpy (kept here only as the reference, run on
one thread). Values cover the cases where fixed-point formatting goes wrong: ties, -0.0, negatives that
round to zero, NaN, carries (9.9999), whole numbers up to 2**53 and every width.
"""

import io
import math

import numba
import numpy as np
import pytest

from napari_tomoalign.io import _textfmt


@numba.njit(nogil=True)
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


@numba.njit(nogil=True)
def _format_block(values, decimals, widths, sep, buf, row_bytes, ends):  # pragma: no cover - compiled
    """Format ``values`` in ``len(ends)`` parts at once: part ``k`` fills ``buf`` from ``k * part rows *
    row_bytes`` and its end goes to ``ends[k]``."""
    n_rows, n_cols = values.shape
    n_parts = ends.shape[0]
    per = (n_rows + n_parts - 1) // n_parts
    scales = np.empty(n_cols)
    for c in range(n_cols):
        scales[c] = 10.0 ** decimals[c]
    for k in range(n_parts):
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



def _reference(values, decimals, widths, sep):
    values = np.ascontiguousarray(values, dtype=float)
    dec = np.asarray(decimals, dtype=np.int64)
    wid = np.asarray(widths, dtype=np.int64)
    row_bytes = int(np.sum(np.maximum(wid, 24))) + len(decimals) + 1
    buf = np.empty(row_bytes * max(1, len(values)), dtype=np.uint8)
    ends = np.zeros(1, dtype=np.int64)
    _format_block(values, dec, wid, ord(sep) if sep else -1, buf, row_bytes, ends)
    return bytes(buf[: ends[0]])


def _new(columns, decimals, widths, sep):
    f = io.StringIO()
    _textfmt.write_table(f, columns, decimals, widths, sep)
    return f.getvalue().encode("ascii")


def _awkward_values(rng, n):
    ties = np.array([0.125, 0.375, 2.675, 1.005, 0.5, 1.5, 2.5, -0.5, -2.5, 0.045, 1e-5, -1e-5, 9.9999, 99.995,
                     -9.9999, 0.0, -0.0, np.nan, 1.0, 10.0, 100.0, 4095.5, -4095.5, 2.0**40, -(2.0**40)])
    mixed = np.concatenate([rng.normal(0, 1, n), rng.normal(0, 1000, n), rng.uniform(-1, 1, n) * 10.0**rng.integers(
        -6, 9, n), np.round(rng.normal(0, 100, n), 3), np.round(rng.normal(0, 100, n), 2) + 0.005])
    return np.concatenate([ties, mixed])


@pytest.mark.parametrize("decimals", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("width", [0, 5, 9, 12])
def test_one_column_matches_the_compiled_formatter(decimals, width):
    rng = np.random.default_rng(decimals * 100 + width)
    v = _awkward_values(rng, 2000)
    if decimals == 0 and width == 0:  # whole numbers as the writers give them (views, marker ids)
        v = np.concatenate([v, np.arange(-5, 70000, dtype=float), [2.0**53 - 1]])
    assert _new([v], [decimals], [width], ",") == _reference(v[:, None], [decimals], [width], ",")


@pytest.mark.parametrize("sep", [",", " ", ""])
def test_tables_as_the_writers_make_them(sep):
    rng = np.random.default_rng(1)
    n = 70000  # more than one block
    cols = [rng.integers(0, 133, n).astype(float), rng.integers(1, 12001, n).astype(float),
            rng.uniform(0, 8192, n), rng.uniform(0, 8192, n), rng.normal(0, 0.6, n), rng.normal(0, 0.6, n)]
    cols[2][::97] = np.nan
    decimals, widths = [0, 0, 4, 4, 4, 4], [0, 0, 0, 0, 0, 0] if sep == "," else [4, 6, 10, 10, 8, 8]
    assert _new(cols, decimals, widths, sep) == _reference(np.column_stack(cols), decimals, widths, sep)


def test_an_empty_table_writes_nothing():
    assert _new([np.empty(0), np.empty(0)], [0, 2], [0, 0], ",") == b""


def test_values_beyond_the_fixed_point_range_are_formatted_by_python():
    v = np.array([1e300, -np.inf, 3.25])
    assert _new([v], [2], [0], ",").decode() == f"{1e300:.2f}\n-inf\n3.25\n"
