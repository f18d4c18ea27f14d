"""The compiled loop of `_profile.fit_profile`: Levenberg-Marquardt of ``background + amplitude * T(r)`` per
bead (a prange over the beads), and the moments that give a bead's elongation.

The plane background of the tracker's fits (``nl = 4``, additive) has its own accumulation of the normal
equations (`_accumulate_plane`), its 21 sums held in locals rather than in the matrix: the same sums in
the same order as the general loop (`_accumulate`), so the same numbers, about twice as fast; and every
accumulation visits only the rows and columns around the fit's circle.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _solve(a, b, n):  # pragma: no cover - compiled
    """Solve the n x n symmetric positive system in place (Gaussian elimination); False if singular."""
    for i in range(n):
        if a[i, i] <= 0.0:
            return False
        for r in range(i + 1, n):
            f = a[r, i] / a[i, i]
            for c in range(i, n):
                a[r, c] -= f * a[i, c]
            b[r] -= f * b[i]
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for c in range(i + 1, n):
            acc -= a[i, c] * b[c]
        b[i] = acc / a[i, i]
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _basis(x, y, half, nl, out, o):  # pragma: no cover - compiled
    """The background's basis at pixel (x, y) into ``out[o:]``: 1, x, y (and x^2, xy, y^2, scaled)."""
    gx, gy = x - half, y - half
    out[o], out[o + 1], out[o + 2] = 1.0, gx, gy
    if nl == 7:
        sx, sy = gx / max(half, 1), gy / max(half, 1)
        out[o + 3], out[o + 4], out[o + 5] = sx * sx, sx * sy, sy * sy


@numba.njit(cache=True, nogil=True, inline="always")
def _profile_at(table, step, r):  # pragma: no cover - compiled
    """The profile ``T(r)`` and its slope from the table sampled every ``step`` px (0 beyond its end)."""
    nt = table.size
    u = r / step
    i0 = min(int(u), nt - 2)
    if u < nt - 1:
        return table[i0] + (u - i0) * (table[i0 + 1] - table[i0]), (table[i0 + 1] - table[i0]) / step
    return 0.0, 0.0


@numba.njit(cache=True, nogil=True)
def _accumulate(img, x0, y0, mx, my, radius, th, table, step, nl, mult, full, a, b):  # pragma: no cover - compiled
    """Normal equations of the fit (the ``nl`` background and amplitude parameters, and the centre when
    ``full``); returns the sum of squared residuals at ``th`` and (x0, y0), and the number of pixels.
    ``mult`` > 0: the model is ``background + th[0] T (th[1] + mult (background - th[1]))`` (``th[0]``
    relative) rather than ``background + th[0] T``."""
    size = img.shape[0]
    half = size // 2
    n = nl + 2 if full else nl
    o = 2 if full else 0
    jac = np.empty(9)
    for i in range(n):
        b[i] = 0.0
        for c in range(n):
            a[i, c] = 0.0
    ssr, r2max, count = 0.0, radius * radius, 0
    y_lo, y_hi = _rows(size, my, radius)
    x_lo, x_hi = _rows(size, mx, radius)
    for y in range(y_lo, y_hi):
        for x in range(x_lo, x_hi):
            if (x - mx) ** 2 + (y - my) ** 2 > r2max or img[y, x] != img[y, x]:
                continue
            dx, dy = x - x0, y - y0
            r = np.sqrt(dx * dx + dy * dy)
            t, dt = _profile_at(table, step, r)
            _basis(x, y, half, nl, jac, o + 1)
            bg = 0.0
            for i in range(1, nl):
                bg += th[i] * jac[o + i]
            if mult > 0.0:  # the bead's depth follows the level th[1] plus `mult` of the rest of the surface
                under = th[1] + mult * (bg - th[1])
                model = bg + th[0] * t * under
                jac[o] = under * t
                jac[o + 1] = 1.0 + th[0] * t
                for i in range(2, nl):
                    jac[o + i] *= 1.0 + mult * th[0] * t
                slope = under * th[0] * dt
            else:
                model = bg + th[0] * t
                jac[o] = t
                slope = th[0] * dt
            res = img[y, x] - model
            ssr += res * res
            count += 1
            if full:
                rs = r if r > 1e-9 else 1.0
                jac[0], jac[1] = -slope * dx / rs, -slope * dy / rs
            for i in range(n):
                b[i] += jac[i] * res
                for c in range(i, n):
                    a[i, c] += jac[i] * jac[c]
    for i in range(n):
        for c in range(i):
            a[i, c] = a[c, i]
    return ssr, count


@numba.njit(cache=True, nogil=True, inline="always")
def _rows(size, m, radius):  # pragma: no cover - compiled
    """The range of rows (or columns) of a patch of ``size`` that can lie within ``radius`` of ``m`` (all
    when ``m`` is not finite); a margin of a pixel keeps every pixel the full scan would take."""
    if not (m == m and abs(m) < 1e9):
        return 0, size
    lo = int(np.floor(m - radius)) - 1
    hi = int(np.ceil(m + radius)) + 2
    return max(lo, 0), min(max(hi, 0), size)


@numba.njit(cache=True, nogil=True)
def _accumulate_plane(img, x0, y0, mx, my, radius, th, table, step, full, a, b):  # pragma: no cover - compiled
    """`_accumulate` for the additive model on a plane (``nl = 4``, ``mult = 0``): the same sums, in the same
    order, held in locals. Unknowns: (centre x, y when ``full``), amplitude, level, x slope, y slope."""
    size = img.shape[0]
    half = size // 2
    r2max = radius * radius
    ssr, count = 0.0, 0
    bx = by = bt = b1 = bgx = bgy = 0.0
    axx = axy = axt = ax1 = axgx = axgy = 0.0
    ayy = ayt = ay1 = aygx = aygy = 0.0
    att = at1 = atgx = atgy = 0.0
    a11 = a1gx = a1gy = agxgx = agxgy = agygy = 0.0
    y_lo, y_hi = _rows(size, my, radius)
    x_lo, x_hi = _rows(size, mx, radius)
    for y in range(y_lo, y_hi):
        for x in range(x_lo, x_hi):
            if (x - mx) ** 2 + (y - my) ** 2 > r2max or img[y, x] != img[y, x]:
                continue
            dx, dy = x - x0, y - y0
            r = np.sqrt(dx * dx + dy * dy)
            t, dt = _profile_at(table, step, r)
            gx, gy = float(x - half), float(y - half)
            bg = 0.0 + th[1] * 1.0
            bg += th[2] * gx
            bg += th[3] * gy
            model = bg + th[0] * t
            slope = th[0] * dt
            res = img[y, x] - model
            ssr += res * res
            count += 1
            rs = r if r > 1e-9 else 1.0
            jx, jy = -slope * dx / rs, -slope * dy / rs
            bx += jx * res
            by += jy * res
            bt += t * res
            b1 += 1.0 * res
            bgx += gx * res
            bgy += gy * res
            axx += jx * jx
            axy += jx * jy
            axt += jx * t
            ax1 += jx * 1.0
            axgx += jx * gx
            axgy += jx * gy
            ayy += jy * jy
            ayt += jy * t
            ay1 += jy * 1.0
            aygx += jy * gx
            aygy += jy * gy
            att += t * t
            at1 += t * 1.0
            atgx += t * gx
            atgy += t * gy
            a11 += 1.0 * 1.0
            a1gx += 1.0 * gx
            a1gy += 1.0 * gy
            agxgx += gx * gx
            agxgy += gx * gy
            agygy += gy * gy
    o = 2 if full else 0
    if full:
        b[0], b[1] = bx, by
        a[0, 0], a[0, 1], a[0, 2], a[0, 3], a[0, 4], a[0, 5] = axx, axy, axt, ax1, axgx, axgy
        a[1, 1], a[1, 2], a[1, 3], a[1, 4], a[1, 5] = ayy, ayt, ay1, aygx, aygy
    b[o], b[o + 1], b[o + 2], b[o + 3] = bt, b1, bgx, bgy
    a[o, o], a[o, o + 1], a[o, o + 2], a[o, o + 3] = att, at1, atgx, atgy
    a[o + 1, o + 1], a[o + 1, o + 2], a[o + 1, o + 3] = a11, a1gx, a1gy
    a[o + 2, o + 2], a[o + 2, o + 3], a[o + 3, o + 3] = agxgx, agxgy, agygy
    n = o + 4
    for i in range(n):
        for c in range(i):
            a[i, c] = a[c, i]
    return ssr, count


@numba.njit(cache=True, nogil=True)
def _normal_equations(img, x0, y0, mx, my, radius, th, table, step, nl, mult, full, a, b):  # pragma: no cover
    """`_accumulate_plane` where it applies, else `_accumulate`."""
    if nl == 4 and mult == 0.0:
        return _accumulate_plane(img, x0, y0, mx, my, radius, th, table, step, full, a, b)
    return _accumulate(img, x0, y0, mx, my, radius, th, table, step, nl, mult, full, a, b)


@numba.njit(cache=True, nogil=True, parallel=True)
def fit_kernel(p, xy, table, step, radius, iterations, r_elong, nl, mult, theta, rms, moved, elong):  # pragma: no cover
    """Levenberg-Marquardt per bead: a linear start (amplitude and background at the given centre, of the
    additive model; for ``mult`` the amplitude is then made relative), then steps that are kept only when
    they lower the sum of squares. ``moved`` is the size of the last step kept in the final round (0 when
    none could lower it further: a minimum)."""
    for q in numba.prange(p.shape[0]):
        a, b = np.empty((9, 9)), np.empty(9)
        a2, b2 = np.empty((9, 9)), np.empty(9)
        trial = np.empty(7)
        img = p[q]
        th = theta[q]
        mx, my = xy[q, 0], xy[q, 1]
        _normal_equations(img, mx, my, mx, my, radius, th, table, step, nl, 0.0, False, a, b)
        for i in range(nl):
            a[i, i] = a[i, i] * (1.0 + 1e-9) + 1e-9
        if _solve(a, b, nl):
            for i in range(nl):
                th[i] = b[i]
        if mult > 0.0:
            th[0] = th[0] / th[1] if th[1] > 0.0 else 0.0
        move = 0.0
        n = nl + 2
        for rnd in range(2):
            if rnd == 1:
                mx, my = xy[q, 0], xy[q, 1]
            lam, move = 1e-3, 0.0
            ssr, _ = _normal_equations(img, xy[q, 0], xy[q, 1], mx, my, radius, th, table, step, nl, mult, True, a, b)
            for _ in range(iterations if rnd == 0 else 6):
                for i in range(n):
                    b2[i] = b[i]
                    for c in range(n):
                        a2[i, c] = a[i, c]
                    a2[i, i] = a[i, i] * (1.0 + lam) + 1e-9
                if not _solve(a2, b2, n):
                    break
                ddx, ddy = min(max(b2[0], -1.0), 1.0), min(max(b2[1], -1.0), 1.0)
                for i in range(nl):
                    trial[i] = th[i] + b2[2 + i]
                new, _ = _normal_equations(img, xy[q, 0] + ddx, xy[q, 1] + ddy, mx, my, radius, trial, table, step, nl,
                                     mult, True, a2, b2)
                if new <= ssr:
                    xy[q, 0] += ddx
                    xy[q, 1] += ddy
                    for i in range(nl):
                        th[i] = trial[i]
                    for i in range(n):
                        b[i] = b2[i]
                        for c in range(n):
                            a[i, c] = a2[i, c]
                    ssr, lam = new, max(lam / 3.0, 1e-7)
                    move = np.sqrt(ddx * ddx + ddy * ddy)
                    if move < 1e-3:
                        break
                else:
                    lam *= 10.0
                    if lam > 1e4:
                        break
        moved[q] = move
        ssr, count = _normal_equations(img, xy[q, 0], xy[q, 1], mx, my, radius, th, table, step, nl, mult, False, a, b)
        rms[q] = np.sqrt(ssr / max(count, 1))
        elong[q] = _moments(img, xy[q, 0], xy[q, 1], th, nl, r_elong)


@numba.njit(cache=True, nogil=True)
def _moments(img, x0, y0, th, nl, radius):  # pragma: no cover - compiled
    """sqrt of the ratio of the principal second moments of the bead's mass within ``radius``."""
    size = img.shape[0]
    half = size // 2
    sgn = 1.0 if th[0] >= 0 else -1.0
    basis = np.empty(7)
    w0 = sx = sy = sxx = syy = sxy = 0.0
    y_lo, y_hi = _rows(size, y0, radius)
    x_lo, x_hi = _rows(size, x0, radius)
    for y in range(y_lo, y_hi):
        for x in range(x_lo, x_hi):
            dx, dy = x - x0, y - y0
            if dx * dx + dy * dy > radius * radius:
                continue
            _basis(x, y, half, nl, basis, 1)
            bg = 0.0
            for i in range(1, nl):
                bg += th[i] * basis[i]
            m = sgn * (img[y, x] - bg)
            if not m > 0.0:
                continue
            w0 += m
            sx += m * dx
            sy += m * dy
            sxx += m * dx * dx
            syy += m * dy * dy
            sxy += m * dx * dy
    if w0 <= 0.0:
        return 99.0
    mx, my = sx / w0, sy / w0
    cxx, cyy, cxy = sxx / w0 - mx * mx, syy / w0 - my * my, sxy / w0 - mx * my
    tr, det = cxx + cyy, cxx * cyy - cxy * cxy
    disc = np.sqrt(max(tr * tr / 4 - det, 0.0))
    lo = max(tr / 2 - disc, 1e-12)
    return np.sqrt((tr / 2 + disc) / lo)
