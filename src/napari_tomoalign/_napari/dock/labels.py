"""Which marker ids to draw beside the rings: pure functions, no napari, magicgui or Qt.

With a hundred small beads in a view, an id beside every ring covers the neighbouring rings ("391011").
The default, ``"where they fit"``, labels a point only when its nearest neighbour in the same view is far
enough on screen for the label to sit between them at the current zoom; the selected points and the points
worth a check (tracking's mark, the robust fit's flag) are labelled anyway: those are the ones a user reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .logic import view_index

if TYPE_CHECKING:
    from ...reconstruction.aligned_views import AlignedViews

LABEL_MODES = ("where they fit", "all", "selected and to check", "none")
DIGIT_WIDTH = 0.8  # screen px per digit per unit of text size (a digit is about 0.6 em, an em 1.33 px/pt)


def nearest_neighbour(view: NDArray, yx: NDArray) -> NDArray[np.float64]:
    """``(n,)`` distance (data pixels) from each point to the nearest other point of its view (inf if alone)."""
    from scipy.spatial import cKDTree

    v = view_index(np.asarray(view))
    p = np.asarray(yx, dtype=float).reshape(-1, 2)
    out = np.full(len(v), np.inf)
    for w in np.unique(v):
        idx = np.flatnonzero(v == w)
        if len(idx) > 1:
            dist, _ = cKDTree(p[idx]).query(p[idx], k=2)
            out[idx] = dist[:, 1]
    return out


def label_mask(mode: str, marker: NDArray, spacing_screen_px: NDArray, ring_screen_px: float, text_size: float,
               keep: NDArray | None = None) -> NDArray[np.bool_]:
    """``(n,)`` True for the points whose id is drawn: all, none, ``keep`` (the selected and to-check points)
    only, or (``"where they fit"``) also those whose nearest neighbour on screen (``spacing_screen_px``) is
    further than the ring and the id's width."""
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown marker id mode {mode!r}; choose one of {', '.join(LABEL_MODES)}")
    m = np.asarray(marker, dtype=np.int64)
    kept = np.zeros(len(m), bool) if keep is None else np.asarray(keep, dtype=bool)
    if mode == "all":
        return np.ones(len(m), bool)
    if mode == "none":
        return np.zeros(len(m), bool)
    if mode == "selected and to check":
        return kept
    digits = np.char.str_len(m.astype(str)) if len(m) else np.zeros(0)
    need = float(ring_screen_px) + DIGIT_WIDTH * float(text_size) * np.maximum(digits, 2)
    return kept | (np.asarray(spacing_screen_px, dtype=float) >= need)


def label_strings(marker: NDArray, shown: NDArray) -> list[str]:
    """The text of each point: its marker id where ``shown``, nothing elsewhere."""
    return [str(int(m)) if s else "" for m, s in zip(np.asarray(marker), np.asarray(shown, dtype=bool))]


def indices_mask(n: int, indices: Iterable[int]) -> NDArray[np.bool_]:
    """``(n,)`` True at ``indices`` (a layer's selected points; out-of-range ones ignored)."""
    out = np.zeros(n, bool)
    idx = np.array([i for i in indices if 0 <= int(i) < n], dtype=np.intp)
    out[idx] = True
    return out


LIGHT_IDS, DARK_IDS = 0.85, 0.25  # luminance of the ids' colours over a dark or a light background
LIGHT_IMAGE = 0.6  # an id whose background is shown at least this light is drawn dark
LUMA = np.array([0.2126, 0.7152, 0.0722])


def under_labels(stack: NDArray, view: NDArray, yx: NDArray, ring: float) -> NDArray:
    """``(n, 16)`` pixels of ``stack`` (views, rows, columns) where each point's id is drawn: a 4 x 4 grid over
    the box beside its ring (up and to the right, as `layers.marker_text` places it), clipped to the image."""
    v, rows, cols = _label_boxes(stack.shape, view, yx, ring)
    return np.asarray(stack[v[:, None], rows, cols])


def _label_boxes(shape: tuple[int, ...], view: NDArray, yx: NDArray, ring: float
                 ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Each point's view, and the rows and columns ``(n, 16)`` of the box where its id is drawn (`under_labels`)."""
    v = np.clip(view_index(np.asarray(view)), 0, shape[0] - 1)
    p = np.asarray(yx, dtype=float).reshape(-1, 2)
    r = float(ring)
    dy, dx = np.meshgrid(np.linspace(-1.3 * r, -0.4 * r, 4), np.linspace(0.6 * r, 2.0 * r, 4), indexing="ij")
    rows = np.clip(np.round(p[:, :1] + dy.ravel()), 0, shape[1] - 1).astype(np.intp)
    cols = np.clip(np.round(p[:, 1:] + dx.ravel()), 0, shape[2] - 1).astype(np.intp)
    return v, rows, cols


def under_aligned_labels(views: AlignedViews, view: NDArray, yx: NDArray, ring: float) -> NDArray:
    """As `under_labels` over an aligned stack warped only when shown (`AlignedViews`): each box pixel read from the
    raw view where the warp takes it from (`warp.pull_matrix`, nearest pixel), so no view is warped; a view the
    alignment left undetermined reads its mean, as it is shown."""
    from ...reconstruction.warp import pull_matrix

    v, rows, cols = _label_boxes(views.shape, view, yx, ring)
    out = np.empty(rows.shape, dtype=float)
    for k in np.unique(v):
        at, raw = v == k, views.stack[int(k)]
        xf = views.transforms[int(k)]
        if not np.all(np.isfinite(xf)):
            out[at] = float(np.mean(raw))
            continue
        m = pull_matrix(xf, raw.shape[-2:], views.shape[1:])
        out[at] = _bilinear(raw, m[0, 0] * cols[at] + m[0, 1] * rows[at] + m[0, 2],
                            m[1, 0] * cols[at] + m[1, 1] * rows[at] + m[1, 2])
    return out


def _bilinear(img: NDArray, x: NDArray, y: NDArray) -> NDArray[np.float64]:
    """``img`` at ``(x, y)`` as the linear warp reads it; the image's mean outside, as the warp fills."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    ny, nx = img.shape[-2:]
    xi = np.clip(x0, 0, nx - 2).astype(np.intp)
    yi = np.clip(y0, 0, ny - 2).astype(np.intp)
    def at(r: NDArray, c: NDArray) -> NDArray[np.float64]:
        return np.asarray(img[r, c], dtype=float)  # the pixels read only: a view is never copied whole

    top = at(yi, xi) * (1 - fx) + at(yi, xi + 1) * fx
    values = top * (1 - fy) + (at(yi + 1, xi) * (1 - fx) + at(yi + 1, xi + 1) * fx) * fy
    inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    return values if inside.all() else np.where(inside, values, float(np.mean(img, dtype=np.float64)))


def label_colors(rgba: NDArray, background: float | NDArray = 0.0) -> NDArray[np.float64]:
    """``(n, 4)`` colours of the ids: each marker's hue (``rgba``), made light (a tint) over a dark or mid-grey
    background and dark (a shade) over a light one (``background``: the luminance under each id as shown, or one
    for all), so every id contrasts with what is under it while its hue still ties it to its ring."""
    c = np.array(rgba, dtype=float).reshape(-1, 4)
    target = np.where(np.broadcast_to(np.asarray(background, dtype=float), (len(c),)) >= LIGHT_IMAGE,
                      DARK_IDS, LIGHT_IDS)
    y = c[:, :3] @ LUMA
    a = np.clip((target - y) / np.maximum(1.0 - y, 1e-9), 0.0, 1.0)[:, None]  # towards white
    shade = np.clip(target / np.maximum(y, 1e-9), 0.0, 1.0)[:, None]  # towards black
    c[:, :3] = np.where((y < target)[:, None], c[:, :3] + a * (1.0 - c[:, :3]), c[:, :3] * shade)
    return c
