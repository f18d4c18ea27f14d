"""The IMOD model chunk walk as one compiled pass (numba), for models too large for `imod_model`'s Python walk.

See `imod_model` for the format and the meaning of the problem codes.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _int32(buf, pos):  # pragma: no cover - compiled
    v = (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | (np.int64(buf[pos + 2]) << 8) | np.int64(
        buf[pos + 3])
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True, nogil=True)
def _walk(buf, fill, xyz, point_contour):  # pragma: no cover - compiled
    """Walk the chunks; return ``(problem, byte, n_contours, n_points)`` (problem 0: fine).

    With ``fill``, decode every contour's points into ``xyz`` and their contour number into
    ``point_contour`` (arrays sized by a first pass without ``fill``).
    """
    n = buf.shape[0]
    pos = 240
    n_cont = 0
    n_pts = 0
    objects = 0
    bits = np.empty(1, dtype=np.uint32)
    as_float = bits.view(np.float32)
    while True:
        if pos + 4 > n:
            return 1, pos, n_cont, n_pts
        t0, t1, t2, t3 = buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]
        start = pos
        pos += 4
        if t0 == 73 and t1 == 69 and t2 == 79 and t3 == 70:  # IEOF
            return 0, pos, n_cont, n_pts
        for t in (t0, t1, t2, t3):
            if t < 48 or t > 90:
                return 2, start, n_cont, n_pts
        is_objt = t0 == 79 and t1 == 66 and t2 == 74 and t3 == 84
        is_cont = t0 == 67 and t1 == 79 and t2 == 78 and t3 == 84
        is_mesh = t0 == 77 and t1 == 69 and t2 == 83 and t3 == 72
        if is_objt:
            pos += 176
            objects += 1
        elif is_cont or is_mesh:
            if pos + 16 > n:
                return 3, start, n_cont, n_pts
            a = _int32(buf, pos)
            b = _int32(buf, pos + 4)
            if a < 0 or (is_mesh and b < 0) or objects == 0:
                return 4, start, n_cont, n_pts
            pos += 16
            size = 12 * a if is_cont else 12 * a + 4 * b
            if pos + size > n:
                return 6, start, n_cont, n_pts
            if is_cont:
                if fill:
                    for k in range(a):
                        for c in range(3):
                            q = pos + 12 * k + 4 * c
                            bits[0] = np.uint32(_int32(buf, q) & 0xFFFFFFFF)
                            xyz[n_pts + k, c] = as_float[0]
                        point_contour[n_pts + k] = n_cont
                n_cont += 1
                n_pts += a
            pos += size
        else:
            if pos + 4 > n:
                return 5, start, n_cont, n_pts
            size = _int32(buf, pos) & 0xFFFFFFFF
            pos += 4 + size
        if pos > n:
            return 6, start, n_cont, n_pts


def walk_model(buf: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Walk the chunks of ``buf`` (the file's bytes as uint8); return ``(problem, byte, xyz, contour)``.

    ``xyz`` is ``(n_points, 3)`` float64 and ``contour`` ``(n_points,)`` the 0-based contour of each
    point, both empty when ``problem`` is not 0.
    """
    empty_f, empty_i = np.empty((0, 3)), np.empty(0, dtype=np.int64)
    problem, at, _, n_pts = _walk(buf, False, empty_f, empty_i)
    if problem or n_pts == 0:
        return int(problem), int(at), empty_f, empty_i
    xyz = np.empty((n_pts, 3))
    contour = np.empty(n_pts, dtype=np.int64)
    _walk(buf, True, xyz, contour)
    return 0, int(at), xyz, contour
