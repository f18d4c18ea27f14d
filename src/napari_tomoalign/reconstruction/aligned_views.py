"""An aligned stack made view by view when a view is looked at: the dock's *aligned stack* layer of a big series.

The dock's Align made the whole aligned stack in memory, at full resolution, only to show it in a hidden layer:
4096² x 41 float32 is 2.75 GB, and the dock process reached 7.5 GB for one unbinned series (new user's finding,
session 13). `AlignedViews` holds the raw stack (a memory map, as napari's reader opens it) and the transforms;
napari asks it for the view on screen (``data[k]``, or ``data[k, rows, cols]``), which is warped then
(`warp.warp_view`, as `warp.aligned_stack` makes each view) and kept among the last few shown. Asked for the
whole array (``np.asarray``), it makes every view, as `warp.aligned_stack` would.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .warp import aligned_stack, warp_view

LAZY_BYTES = 1 << 30  # an aligned stack larger than this (float32) is made view by view when shown
KEPT_VIEWS = 4  # warped views kept for a slider going back and forth


class AlignedViews:
    """``(n_views, rows, cols)`` float32 aligned views of ``stack`` by ``transforms`` (IMOD ``.xf``, unbinned) in a
    frame of ``shape`` ``(rows, cols)``, warped when indexed (module docstring)."""

    def __init__(self, stack: Any, transforms: NDArray[np.float64], shape: tuple[int, int]):
        self.stack, self.transforms = stack, np.asarray(transforms, dtype=float)
        self.shape = (int(stack.shape[0]), int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 3
        self._kept: OrderedDict[int, NDArray[np.float32]] = OrderedDict()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return 4 * self.size

    def __len__(self) -> int:
        return self.shape[0]

    def view(self, k: int) -> NDArray[np.float32]:
        """Aligned view ``k`` (a negative ``k`` counts from the end), warped now or kept from before."""
        n = self.shape[0]
        if not -n <= k < n:
            raise IndexError(f"view {k} of {n}")
        k %= n
        if k not in self._kept:
            self._kept[k] = warp_view(np.asarray(self.stack[k]), self.transforms[k], out_shape=self.shape[1:])
            while len(self._kept) > KEPT_VIEWS:
                self._kept.popitem(last=False)
        self._kept.move_to_end(k)
        return self._kept[k]

    def __getitem__(self, key: Any) -> NDArray[np.float32]:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
        if isinstance(first, (int, np.integer)):
            return self.view(int(first))[rest] if rest else self.view(int(first))
        views = np.arange(self.shape[0])[first]  # a slice or a list of views: each one made
        return np.stack([self.view(int(k)) for k in np.atleast_1d(views)])[(slice(None),) + tuple(rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray:
        whole = aligned_stack(self.stack, self.transforms, out_shape=self.shape[1:])
        return whole if dtype is None else whole.astype(dtype)
