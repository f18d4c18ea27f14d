"""Apply per-view 2-D transforms to a tilt series: the aligned stack, as IMOD's ``newstack -xform``.

A transform ``[A | D]`` maps a raw image point ``X`` to ``X' = A (X - c) + D + c`` about the image
centre ``c`` (IMOD's ``.xf`` convention, with pixel centres at integer coordinates here). Each output
pixel is pulled from the raw image at ``A^-1 (X' - c - D) + c``, so there are no holes.

Binning by ``b`` happens before the warp, as in ``newstack``: the raw view is averaged over
``b x b`` blocks (which also anti-aliases), and the transform is rescaled to the binned grid
(``A`` unchanged, ``D / b``, about the unbinned centre: `conventions.binned_centre`, so that a size the binning
does not divide gives an output centred on the unbinned one). The full-size aligned view is never made.

The kernels are compiled with numba and run over rows in parallel. The work is done view by view,
so a memory-mapped stack is read one view at a time and never copied whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from ..errors import Cancelled
from .input_checks import check_finite_views

INTERPOLATIONS = ("linear", "cubic")


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _warp_linear(img, m, out, fill):  # pragma: no cover - compiled
    """``out[y, x] = img(m @ [x, y, 1])`` with bilinear interpolation; ``fill`` outside."""
    ny, nx = img.shape
    oy, ox = out.shape
    for y in numba.prange(oy):
        sx0 = m[0, 1] * y + m[0, 2]
        sy0 = m[1, 1] * y + m[1, 2]
        for x in range(ox):
            sx = sx0 + m[0, 0] * x
            sy = sy0 + m[1, 0] * x
            if sx < 0.0 or sy < 0.0 or sx > nx - 1 or sy > ny - 1:
                out[y, x] = fill
                continue
            ix = min(int(sx), nx - 2)
            iy = min(int(sy), ny - 2)
            fx = sx - ix
            fy = sy - iy
            top = img[iy, ix] + fx * (img[iy, ix + 1] - img[iy, ix])
            bot = img[iy + 1, ix] + fx * (img[iy + 1, ix + 1] - img[iy + 1, ix])
            out[y, x] = top + fy * (bot - top)


@numba.njit(inline="always", fastmath=True)
def _keys(t):  # pragma: no cover - compiled
    """Keys' cubic convolution weights (a = -0.5) for the four taps around fraction ``t``."""
    t2 = t * t
    t3 = t2 * t
    w0 = -0.5 * t3 + t2 - 0.5 * t
    w1 = 1.5 * t3 - 2.5 * t2 + 1.0
    w2 = -1.5 * t3 + 2.0 * t2 + 0.5 * t
    w3 = 0.5 * t3 - 0.5 * t2
    return w0, w1, w2, w3


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _warp_cubic(img, m, out, fill):  # pragma: no cover - compiled
    """As `_warp_linear` with Keys' cubic convolution; edge pixels are repeated for the outer taps."""
    ny, nx = img.shape
    oy, ox = out.shape
    for y in numba.prange(oy):
        for x in range(ox):
            sx = m[0, 0] * x + m[0, 1] * y + m[0, 2]
            sy = m[1, 0] * x + m[1, 1] * y + m[1, 2]
            if sx < 0.0 or sy < 0.0 or sx > nx - 1 or sy > ny - 1:
                out[y, x] = fill
                continue
            ix = min(int(sx), nx - 2)
            iy = min(int(sy), ny - 2)
            wx = _keys(sx - ix)
            wy = _keys(sy - iy)
            acc = 0.0
            for j in range(4):
                r = min(max(iy - 1 + j, 0), ny - 1)
                row = 0.0
                for i in range(4):
                    c = min(max(ix - 1 + i, 0), nx - 1)
                    row += wx[i] * img[r, c]
                acc += wy[j] * row
            out[y, x] = acc


@numba.njit(parallel=True, cache=True, nogil=True)
def _bin(img, b, out):  # pragma: no cover - compiled
    oy, ox = out.shape
    scale = np.float32(1.0 / (b * b))
    for y in numba.prange(oy):
        row = np.zeros(ox, dtype=np.float32)
        for j in range(b):
            src = img[y * b + j]
            for x in range(ox):
                acc = np.float32(0.0)
                for i in range(b):
                    acc += np.float32(src[x * b + i])
                row[x] += acc
        for x in range(ox):
            out[y, x] = row[x] * scale


def bin_image(img: NDArray, binning: int) -> NDArray[np.float32]:
    """Average ``binning x binning`` blocks (trailing rows and columns that do not fill a block drop)."""
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"a view must be 2-D, not {img.ndim}-D")
    if binning == 1:
        return np.ascontiguousarray(img, dtype=np.float32)
    ny, nx = img.shape[0] // binning, img.shape[1] // binning
    if ny == 0 or nx == 0:
        raise ValueError(f"binning {binning} is larger than the image ({img.shape[1]} x {img.shape[0]})")
    out = np.empty((ny, nx), dtype=np.float32)
    if img.dtype.kind not in "iuf" or img.dtype.itemsize > 8:
        img = img.astype(np.float32)
    _bin(img, binning, out)
    return out


def pull_matrix(
    xf: NDArray[np.float64], in_shape: tuple[int, int], out_shape: tuple[int, int], binning: int = 1,
    raw_shape: tuple[int, ...] | None = None,
) -> NDArray[np.float64]:
    """The ``(2, 3)`` map from output pixel ``(x, y)`` to the input pixel to sample, on binned grids.

    ``in_shape`` and ``out_shape`` are the binned ``(rows, cols)``; ``xf`` is in unbinned pixels. ``raw_shape``: the
    unbinned ``(rows, cols)`` the input was binned from (`bin_image`, whole blocks from pixel 0); the pull starts at
    the unbinned centre in those blocks (`conventions.binned_centre`), so that the binned output is centred on the
    unbinned one (the one rule, alike in X and Y, for a size the binning does not divide). None: ``in_shape`` times
    ``binning``.
    """
    from ..conventions import binned_centre, image_centre

    a = xf[:, :2]
    d = xf[:, 2] / binning
    ainv = np.linalg.inv(a)
    raw = (in_shape[0] * binning, in_shape[1] * binning) if raw_shape is None else raw_shape[-2:]
    c_in = binned_centre((raw[1], raw[0]), binning)
    c_out = image_centre((out_shape[1], out_shape[0]))
    m = np.empty((2, 3))
    m[:, :2] = ainv
    m[:, 2] = c_in - ainv @ (c_out + d)
    return m


def warp_with_matrix(src: NDArray[np.float32], m: NDArray[np.float64], out: NDArray[np.float32], fill: float,
                     interpolation: str = "linear") -> NDArray[np.float32]:
    """``out[y, x] = src(m @ [x, y, 1])`` (`pull_matrix`, or one shifted to a band of rows); ``fill`` outside."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    kernel = _warp_linear if interpolation == "linear" else _warp_cubic
    kernel(np.ascontiguousarray(src, dtype=np.float32), np.asarray(m, dtype=float), out, np.float32(fill))
    return out


def warp_view(
    img: NDArray,
    xf: NDArray[np.float64],
    *,
    binning: int = 1,
    interpolation: str = "linear",
    out_shape: tuple[int, int] | None = None,
    fill: float | None = None,
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Warp one raw view by one transform (see the module docstring). ``fill`` defaults to the view's mean."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    src = bin_image(img, binning)
    shape = out_shape if out_shape is not None else src.shape
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    value = float(src.mean()) if fill is None else float(fill)
    if not np.all(np.isfinite(xf)):
        out[...] = value
        return out
    m = pull_matrix(np.asarray(xf, dtype=float), src.shape, shape, binning, np.shape(img))
    kernel = _warp_linear if interpolation == "linear" else _warp_cubic
    kernel(src, m, out, np.float32(value))
    return out


def bin_centred(views: NDArray, binning: int) -> NDArray[np.float32]:
    """Views ``(n, rows, cols)`` binned by ``binning`` centred on the unbinned ones (`conventions.binned_centre`):
    whole blocks starting half the remainder in, a half-pixel start the mean of the blocks either side (linear
    interpolation); `bin_image` where the binning divides the size. For an aligned stack made unbinned and binned
    after (the dock's preview tomogram), so that it maps onto the unbinned one by ``binning`` about the centre."""
    n, rows, cols = np.shape(views)
    b = int(binning)
    ny, nx = rows // b, cols // b
    starts = [(oy, ox) for oy in sorted({(rows % b) // 2, (rows % b + 1) // 2})
              for ox in sorted({(cols % b) // 2, (cols % b + 1) // 2})]
    out = np.empty((n, ny, nx), dtype=np.float32)
    for j in range(n):
        view = np.asarray(views[j])
        out[j] = bin_image(view[starts[0][0] : starts[0][0] + ny * b, starts[0][1] : starts[0][1] + nx * b], b)
        for oy, ox in starts[1:]:
            out[j] += bin_image(view[oy : oy + ny * b, ox : ox + nx * b], b)
        if len(starts) > 1:
            out[j] /= np.float32(len(starts))
    return out


def aligned_stack(
    stack: NDArray,
    transforms: NDArray[np.float64],
    *,
    binning: int = 1,
    interpolation: str = "linear",
    out_shape: tuple[int, int] | None = None,
    fill: float | None = None,
    out: NDArray[np.float32] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> NDArray[np.float32]:
    """Warp every view of ``stack`` ``(n_views, rows, cols)`` by its ``(2, 3)`` transform.

    Parameters
    ----------
    stack
        The raw tilt series; a memory map is read one view at a time.
    transforms
        ``(n_views, 2, 3)`` IMOD-style transforms in unbinned pixels. A view whose transform has NaN
        (undetermined by the fit) is filled with its mean.
    binning
        Integer binning, applied to the raw view before warping.
    interpolation
        ``"linear"`` or ``"cubic"`` (Keys' cubic convolution).
    out_shape
        Binned ``(rows, cols)`` of the output; defaults to the binned input size.
    fill
        Value outside the raw image; defaults to each view's mean, as IMOD does.
    out
        Optional ``(n_views, *out_shape)`` float32 array to write into (for example a memory map).
    progress, should_stop
        ``progress(done, total)`` after each view; `Cancelled` is raised when ``should_stop()`` is true.
    """
    if stack.ndim != 3:
        raise ValueError(f"the stack must be 3-D (views, rows, cols), not {stack.ndim}-D")
    transforms = np.asarray(transforms, dtype=float)
    if transforms.shape != (stack.shape[0], 2, 3):
        raise ValueError(f"{len(transforms)} transforms for a stack of {stack.shape[0]} views; they must match")
    if int(binning) != binning or binning < 1:
        raise ValueError(f"binning must be a positive integer, not {binning}")
    binning = int(binning)
    shape = out_shape if out_shape is not None else (stack.shape[1] // binning, stack.shape[2] // binning)
    if out is None:
        out = np.empty((stack.shape[0], *shape), dtype=np.float32)
    for j in range(stack.shape[0]):
        if should_stop is not None and should_stop():
            raise Cancelled("aligned stack cancelled")
        check_finite_views(stack, [j], what="stack")  # as it is read (a memory map is read once); even a
        # view undetermined by the fit is used: it is filled with its mean
        warp_view(stack[j], transforms[j], binning=binning, interpolation=interpolation, out_shape=shape,
                  fill=fill, out=out[j])
        if progress is not None:
            progress(j + 1, stack.shape[0])
    return out
