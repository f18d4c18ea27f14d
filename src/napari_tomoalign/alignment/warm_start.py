"""A solve warm-started from a previous solution (the dock's Align again, `run` from the tracker's last fit): its
parameters and marker positions, and its robust weights."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._lm import Observations, levenberg_marquardt
from .full_layout import build_layout
from .model import ROT
from .result import Alignment


def start_from(start: Alignment, obs: Observations, params: NDArray[np.float64], kept_ids: NDArray
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Starting ``(n_views, 9)`` parameters and marker positions from a previous solution; views and markers it
    lacks are filled in (views: the median rotation; markers: placed from their own observations)."""
    out = params.copy()
    prev = np.asarray(start.full_params, dtype=float)
    have = np.all(np.isfinite(prev), axis=1) & start.view_determined
    out[have] = prev[have]
    if have.any():
        out[~have, ROT] = np.median(prev[have, ROT])
    included = start.marker_included  # a property: computed once, not once per marker
    lookup = {int(m): k for k, m in enumerate(start.marker_ids) if included[k]}
    xyz = np.zeros((len(kept_ids), 3))
    missing = []
    for k, m in enumerate(kept_ids):
        j = lookup.get(int(m))
        if j is None:
            missing.append(k)
        else:
            xyz[k] = start.xyz_px[j]
    held = build_layout({}, out, 0.0, False, np.zeros(len(out), dtype=bool))  # no view unknowns
    for k in missing:  # new markers: each placed from its own observations with the views held
        sel = obs.marker_index == k
        own = Observations(obs.view_index[sel], np.zeros(int(sel.sum()), np.intp), obs.xy[sel], len(out), 1,
                           np.ones(int(sel.sum())))
        _, xyz_k, _ = levenberg_marquardt(own, held, np.zeros(0), np.zeros((1, 3)), max_iterations=50,
                                          initial_damping=1e-6, ftol=1e-12, xtol=1e-10)
        xyz[k] = xyz_k[0]
    return out, xyz


def previous_robust_weights(start: Alignment, view_index: NDArray, marker_ids: NDArray) -> NDArray[np.float64]:
    """The warm start's robust weights of the observations ``(view_index, marker_ids)`` that are still there (1 for
    new points)."""
    assert start.robust_weights is not None
    prev = {(int(a), int(start.marker_ids[b])): float(w)
            for a, b, w, u in zip(start.obs_view, start.obs_marker, start.robust_weights, start.obs_used) if u}
    return np.array([prev.get((int(a), int(b)), 1.0) for a, b in zip(view_index, marker_ids)])
