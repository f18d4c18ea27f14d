"""Leave-out error: how well the model predicts each marker when that marker is left out of the fit.

For each marker, the fit is redone without it, warm-started from the full solution (a few Gauss-Newton
steps of the Schur-reduced solver, not a staged solve), the marker's 3-D position is then fitted to
its own observations with the views held, and the residuals of those observations are its leave-out
error. They are larger than the ordinary residuals because the views no longer bend towards the
marker; a marker whose leave-out error stands out is one the others disagree with.

The *robust* figures use the robust fit's final weights, both in the refits and in the statistics. The
refits map the variables as the alignment's settings do (`Alignment.settings`), so this works for IMOD's
settings as for the default model's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from ..compute import blas_threads_for
from ._lm import Observations, levenberg_marquardt
from .full_layout import build_layout, shift_gauge
from .model import ROT, TILT, with_identity_views
from .result import Alignment


@dataclass
class LeaveOutError:
    """Per-marker and overall leave-out errors in pixels (NaN for markers left out of the fit).

    ``*_robust`` are None unless the alignment was a robust fit.
    """

    marker_ids: NDArray[np.int64]
    per_marker_px: NDArray[np.float64]
    overall_px: float
    per_marker_robust_px: NDArray[np.float64] | None
    overall_robust_px: float | None
    residuals_px: NDArray[np.float64]
    wall_time_s: float


def leave_out_error(al: Alignment, max_iterations: int = 1) -> LeaveOutError:
    """Leave-out errors of every marker of a solved alignment (see the module docstring).

    One Gauss-Newton step from the full solution already agrees with a converged refit to about
    3e-5 px on the paper-scale problem (measured); ``max_iterations`` allows more.
    """
    import time

    t0 = time.perf_counter()
    view_ok = al.view_determined
    ref = al.reference_view
    params, _ = with_identity_views(al.full_params)  # views out of the fit: finite, not used
    kept = np.flatnonzero(al.marker_included)
    new_index = np.full(al.n_markers, -1, dtype=np.intp)
    new_index[kept] = np.arange(kept.size)
    use = al.obs_used
    v_all = al.obs_view[use]
    m_all = new_index[al.obs_marker[use]]
    xy_all = al.obs_xy_px[use] - al.image_centre
    base_w = np.ones(len(al.obs_view)) if al.weights is None else np.asarray(al.weights, float)
    weight_sets = {"plain": base_w[use]}
    if al.robust_weights is not None:
        weight_sets["robust"] = base_w[use] * al.robust_weights[use]
    xyz = al.xyz_px[kept]
    lay = build_layout(al.settings.mappings, params, 0.0, al.settings.beam_tilt_free, view_ok,
                       shift_gauge(params[:, TILT], params[:, ROT], view_ok, ref))
    held = build_layout({}, params, 0.0, False, np.zeros(al.n_views, dtype=bool))  # no view unknowns
    residuals = np.full((len(al.obs_view), 2), np.nan)
    results: dict[str, tuple[NDArray, float]] = {}
    positions = np.flatnonzero(use)
    with blas_threads_for(lay.n_q, kept.size, int(use.sum())):
        for label, w in weight_sets.items():
            per_marker = np.full(al.n_markers, np.nan)
            sq_sum, w_sum = 0.0, 0.0
            for k, m in enumerate(kept):
                mine = m_all == k
                others = ~mine
                renum = m_all[others] - (m_all[others] > k)
                rest = Observations(v_all[others], renum, xy_all[others], al.n_views, kept.size - 1, w[others])
                q, _, _ = levenberg_marquardt(rest, lay, np.zeros(lay.n_q), np.delete(xyz, k, axis=0),
                                              max_iterations=max_iterations, initial_damping=1e-9, ftol=1e-10,
                                              xtol=1e-10)
                p_k, beam_k = lay.params(q)
                own = Observations(v_all[mine], np.zeros(int(mine.sum()), np.intp), xy_all[mine], al.n_views, 1,
                                   np.ones(int(mine.sum())))
                _, xyz_k, _ = levenberg_marquardt(own, replace(held, base=p_k, base_beam=beam_k), np.zeros(0),
                                                  xyz[k : k + 1], max_iterations=20, initial_damping=1e-9,
                                                  ftol=1e-12, xtol=1e-10)
                r = own.residuals(p_k, xyz_k, beam_k)[np.argsort(own.order)]
                sq = np.einsum("ij,ij->i", r, r)
                wm = w[mine]
                per_marker[m] = float(np.sqrt(np.sum(wm * sq) / max(np.sum(wm), 1e-300)))
                sq_sum += float(np.sum(wm * sq))
                w_sum += float(np.sum(wm))
                if label == "plain":
                    residuals[positions[mine]] = r
            results[label] = (per_marker, float(np.sqrt(sq_sum / max(w_sum, 1e-300))))
    robust = results.get("robust")
    return LeaveOutError(
        al.marker_ids, results["plain"][0], results["plain"][1],
        None if robust is None else robust[0], None if robust is None else robust[1],
        residuals, time.perf_counter() - t0,
    )
