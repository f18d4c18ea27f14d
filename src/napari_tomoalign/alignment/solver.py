"""The staged fiducial alignment: validation, gauge, stages and the result.

Stages (see the alignment model):

1. ``initial``: tilts at nominal, magnifications 1. First the linear problem with every view's
   rotation at the tilt-axis angle (markers and shifts only, solved exactly), then one rotation
   shared by all views.
2. ``main``: rotation and magnification as the user asked, tilts still nominal.
3. ``tilt``: the tilt angles freed as the user asked, with everything else; this is the final
   optimum of the full model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._lm import Observations, levenberg_marquardt
from ._parameters import columns, free_per_view, shift_gauge
from ._threads import blas_threads_for
from .axis import estimate_tilt_axis, nearest_branch, wrap_degrees
from .errors import AlignmentError, AlignmentWarning
from .model import DX, DY, MAG, ROT, TILT, predict_all, recentre
from .options import AlignmentOptions, VariableOption
from .result import Alignment, StageReport
from .robust import robust_weights, tilt_groups
from .validation import determinable, validate_observations

ProgressCallback = Callable[[str, int, float], None]

def align_markers(
    views: ArrayLike,
    markers: ArrayLike,
    xy: ArrayLike,
    tilt_angles_deg: ArrayLike,
    image_size: ArrayLike,
    options: AlignmentOptions | None = None,
    *,
    pixel_size_nm: float | None = None,
    weights: ArrayLike | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    start: Alignment | None = None,
    warn: bool = True,
) -> Alignment:
    """Align a tilt series from fiducial marker observations.

    Parameters
    ----------
    views
        ``(n_obs,)`` 0-based view (stack) index of each observation.
    markers
        ``(n_obs,)`` marker id of each observation (any integers).
    xy
        ``(n_obs, 2)`` observed (x, y) = (column, row) positions in pixels, the centre of the
        first pixel at (0, 0).
    tilt_angles_deg
        ``(n_views,)`` nominal tilt angle of every view of the stack, in degrees.
    image_size
        ``(width, height)`` of the images in pixels.
    options
        What to solve for; the defaults are the paper's model with the tilt axis estimated.
    pixel_size_nm
        Pixel size, used only to report residuals in nm.
    weights
        ``(n_obs,)`` optional least-squares weight of each observation (default 1).
    progress
        Called as ``progress(stage_name, iteration, cost)`` after every accepted step.
    should_stop
        Polled every iteration; returning True raises `Cancelled`.
    start
        A previous solution of the same series (for example before some markers were edited). The
        solve then warm-starts from it: no axis estimate and no initial stage, markers new since
        are placed from their observations, and one full stage runs to the new optimum.
    warn
        Also issue each note of ``Alignment.warnings`` as an `AlignmentWarning` (a GUI that shows
        ``Alignment.warnings`` itself passes False).

    Returns
    -------
    Alignment
        The solution with its residuals, statistics and per-stage report.

    Raises
    ------
    AlignmentError
        For input that cannot be aligned, with a message that names the problem.
    """
    options = options or AlignmentOptions()
    v, marker_ids_obs, xy_a, tilts_deg, size, w = validate_observations(
        views, markers, xy, tilt_angles_deg, image_size, weights)
    n_views = len(tilts_deg)
    marker_ids, mi = np.unique(marker_ids_obs, return_inverse=True)
    mi = mi.astype(np.intp)
    n_markers = len(marker_ids)
    notes: list[str] = []

    tilt_free = options.tilt.mode != "fixed"
    view_ok, marker_ok = determinable(
        v, mi, n_views, n_markers, (free_per_view(options, tilt_free) + 1) // 2
    )
    if (~marker_ok).any():
        ids = marker_ids[~marker_ok]
        notes.append(
            f"{len(ids)} marker(s) seen in fewer than 2 usable views were left out: "
            + ", ".join(str(int(i)) for i in ids[:20])
            + (" ..." if len(ids) > 20 else "")
        )
    seen = np.zeros(n_views, dtype=bool)
    seen[v] = True
    lost = ~view_ok & seen
    if lost.any():
        notes.append(
            f"{int(lost.sum())} view(s) have too few markers to determine their parameters and were"
            f" left out (transform undetermined): {', '.join(str(int(i)) for i in np.flatnonzero(lost)[:20])}"
        )
    empty = ~seen
    if empty.any():
        notes.append(
            f"{int(empty.sum())} view(s) have no markers at all (transform undetermined): "
            + ", ".join(str(int(i)) for i in np.flatnonzero(empty)[:20])
        )
    for msg in notes if warn else ():
        warnings.warn(msg, AlignmentWarning, stacklevel=2)
    if not view_ok.any() or view_ok.sum() < 2:
        raise AlignmentError(
            "fewer than 2 views have enough markers to align; every view needs markers seen in other views too"
        )

    # Solver-internal numbering: kept views keep their index, kept markers are renumbered.
    use = view_ok[v] & marker_ok[mi]
    kept_markers = np.flatnonzero(marker_ok)
    new_index = np.full(n_markers, -1, dtype=np.intp)
    new_index[kept_markers] = np.arange(len(kept_markers))
    centre = (np.asarray(size, dtype=float) - 1.0) / 2.0
    obs = Observations(v[use], new_index[mi[use]], xy_a[use] - centre, n_views, len(kept_markers), w[use])

    ref = options.reference_view
    if ref is None:
        ref = int(np.argmin(np.where(view_ok, np.abs(tilts_deg), np.inf)))
    elif not 0 <= ref < n_views:
        raise AlignmentError(f"reference view {ref} is not a view of this {n_views}-view series")
    elif not view_ok[ref]:
        raise AlignmentError(f"reference view {ref} has too few markers to be in the fit; choose another view")

    # Unknown count against observations, for the fullest stage.
    probe_cols, n_q = columns(
        view_ok, ref, options.rotation, options.tilt, options.magnification,
        shift_gauge(np.radians(tilts_deg), np.zeros(n_views), view_ok, ref),
    )
    n_unknowns = n_q + 3 * len(kept_markers)
    if 2 * len(obs) < n_unknowns:
        raise AlignmentError(
            f"{len(obs)} observations give {2 * len(obs)} equations for {n_unknowns} unknowns;"
            " add markers, or fix or group the rotation, tilt and magnification"
        )

    if start is not None and start.n_views != n_views:
        raise AlignmentError(f"the previous solution has {start.n_views} views, not {n_views}; solve from scratch")
    # Tilt axis: estimated in closed form, or given.
    if start is not None:
        axis0, source = start.tilt_axis_deg, f"warm start ({start.tilt_axis_source})"
    elif options.estimate_tilt_axis:
        est, ambiguity = estimate_tilt_axis(obs.view_index, obs.marker_index, obs.xy, n_views, len(kept_markers))
        if ambiguity > 0.5:
            raise AlignmentError(
                "the tilt axis cannot be estimated: the markers do not move across it (tilt range too"
                " small or a single tilt); give the tilt-axis angle"
            )
        if options.tilt_axis_deg is not None:
            axis0 = nearest_branch(est, options.tilt_axis_deg)
            if abs(wrap_degrees(axis0 - options.tilt_axis_deg)) > 5.0:
                notes.append(
                    f"the estimated tilt axis {axis0:.2f} deg differs from the given {options.tilt_axis_deg:.2f} deg"
                    " by more than 5 deg; the estimate was used"
                )
            source = "estimated (branch from the given angle)"
        else:
            axis0, source = est, "estimated"
    else:
        axis0, source = wrap_degrees(float(options.tilt_axis_deg)), "given"  # type: ignore[arg-type]

    vp = np.zeros((n_views, 5))
    vp[:, TILT] = np.radians(tilts_deg)
    vp[:, ROT] = np.radians(axis0)
    vp[:, MAG] = 1.0
    xyz = np.zeros((len(kept_markers), 3))
    fixed, one = VariableOption("fixed"), VariableOption("one")
    stages: list[StageReport] = []

    def run(name: str, plan: list[tuple[VariableOption, VariableOption, VariableOption, dict]],
            merge: bool = False) -> None:
        nonlocal vp, xyz
        t0 = time.perf_counter()
        iters, conv, msg, cost, nq = 0, True, "", 0.0, 0
        for rotation, tilt, magnification, lm_args in plan:
            cols, nq = columns(view_ok, ref, rotation, tilt, magnification,
                                shift_gauge(vp[:, TILT], vp[:, ROT], view_ok, ref))
            cb = None if progress is None else (lambda it, c, _n=name, _i=iters: progress(_n, _i + it, c))
            kw = {"max_iterations": options.max_iterations, **lm_args}
            exact = kw.pop("exact", False)
            vp, xyz, rep = levenberg_marquardt(obs, vp, xyz, cols, nq, progress=cb, should_stop=should_stop, **kw)
            iters += rep.iterations
            conv, msg, cost = rep.converged, rep.message, rep.cost
            if exact and rep.iterations == 1:
                conv, msg = True, "linear least squares solved exactly"
        recentre(vp, xyz, xyz.mean(axis=0))
        rms = float(np.sqrt(2.0 * cost / max(float(np.sum(obs.weights)), 1e-300)))
        rep = StageReport(name, iters, time.perf_counter() - t0, cost, rms, conv, msg, nq + 3 * len(xyz))
        if merge and stages and stages[-1].name == name:
            prev = stages.pop()
            rep = StageReport(name, prev.iterations + iters, prev.wall_time_s + rep.wall_time_s, cost, rms, conv, msg,
                              rep.n_unknowns)
        stages.append(rep)

    run.state = lambda: (vp, xyz)  # type: ignore[attr-defined]

    # The stages before the last only need to hand on a good start: a loose tolerance there,
    # the tight one at the end. The first step is linear in markers and shifts: one undamped
    # Gauss-Newton step solves it exactly.
    linear = {"max_iterations": 1, "initial_damping": 1e-12, "ftol": 0.0, "exact": True}
    loose = {"ftol": 1e-4}
    tight = {"ftol": 1e-12}
    has_tilt_stage = tilt_free and probe_cols[:, TILT].max() >= 0
    user_weights = obs.weights.copy()
    if start is not None:
        vp, xyz = _warm_start(start, obs, vp, marker_ids[kept_markers], view_ok)
        if options.robust and start.robust_weights is not None:
            # Keep the previous robust weights of the points that are still there.
            prev = {(int(a), int(start.marker_ids[b])): float(w)
                    for a, b, w, u in zip(start.obs_view, start.obs_marker, start.robust_weights, start.obs_used) if u}
            ids = marker_ids[kept_markers][obs.marker_index]
            obs.weights = user_weights * np.array([prev.get((int(a), int(b)), 1.0) for a, b in zip(obs.view_index, ids)])
    with blas_threads_for(n_q, len(kept_markers), len(obs)):
        if start is not None:
            run("warm", [(options.rotation, options.tilt if tilt_free else fixed, options.magnification,
                          loose if options.robust else tight)])
            has_tilt_stage = False
        elif options.initial_stage:
            plan = [(fixed, fixed, fixed, linear)]
            if options.rotation.mode != "fixed":
                plan.append((one, fixed, fixed, loose))
            run("initial", plan)
        if start is None:
            run("main", [(options.rotation, fixed, options.magnification,
                          loose if has_tilt_stage or options.robust else tight)])
        if has_tilt_stage:
            run("tilt", [(options.rotation, options.tilt, options.magnification, loose if options.robust else tight)])
        robust_w = None
        if options.robust:
            robust_w = _robust_stage(obs, user_weights, options, tilts_deg, run,
                                     tilt_free and (has_tilt_stage or start is not None), fixed)

    # Undetermined views: no parameters, not invented.
    vp[~view_ok] = np.nan
    xyz_all = np.full((n_markers, 3), np.nan)
    xyz_all[kept_markers] = xyz
    pred = predict_all(vp, xyz_all) + centre
    residuals = np.full_like(xy_a, np.nan)
    residuals[use] = pred[v[use], mi[use]] - xy_a[use]
    robust_weights = None
    if robust_w is not None:
        robust_weights = np.full(len(v), np.nan)
        robust_weights[np.flatnonzero(use)[obs.order]] = robust_w
    rot_ref = float(np.degrees(vp[ref, ROT]))
    axis_final = wrap_degrees(rot_ref)
    branch = "axis in (-90, 90]" if -90.0 < axis_final <= 90.0 else "axis + 180 (markers half-turned)"
    return Alignment(
        tilt_angles_deg=np.degrees(vp[:, TILT]),
        nominal_tilt_angles_deg=tilts_deg.copy(),
        rotation_deg=np.degrees(vp[:, ROT]),
        magnification=vp[:, MAG].copy(),
        shifts_px=vp[:, [DX, DY]].copy(),
        view_determined=view_ok,
        marker_ids=marker_ids,
        xyz_px=xyz_all,
        obs_view=v,
        obs_marker=mi,
        obs_xy_px=xy_a,
        residuals_px=residuals,
        obs_used=use,
        predicted_xy_px=pred,
        image_size=size,
        reference_view=ref,
        tilt_axis_deg=axis_final,
        tilt_axis_source=source,
        branch=f"{branch}; nominal tilt signs kept",
        stages=stages,
        converged=all(s.converged for s in stages),
        options=options,
        warnings=notes,
        pixel_size_nm=pixel_size_nm,
        weights=w,
        robust_weights=robust_weights,
    )


MAX_ROBUST_ROUNDS = 15


def _warm_start(start: Alignment, obs, vp_default, kept_ids, view_ok):
    """Starting parameters from a previous solution; views and markers it lacks are filled in."""
    vp = vp_default.copy()
    prev = np.zeros_like(vp)
    prev[:, TILT] = np.radians(start.tilt_angles_deg)
    prev[:, ROT] = np.radians(start.rotation_deg)
    prev[:, MAG] = start.magnification
    prev[:, [DX, DY]] = start.shifts_px
    have = np.all(np.isfinite(prev), axis=1)
    vp[have] = prev[have]
    if have.any():
        vp[~have, ROT] = np.median(prev[have, ROT])
    lookup = {int(m): k for k, m in enumerate(start.marker_ids) if start.marker_included[k]}
    xyz = np.zeros((len(kept_ids), 3))
    missing = []
    for k, m in enumerate(kept_ids):
        j = lookup.get(int(m))
        if j is None:
            missing.append(k)
        else:
            xyz[k] = start.xyz_px[j]
    if missing:
        # New markers: place each from its own observations with the views held.
        no_views = np.full(vp.shape, -1, dtype=np.intp)
        for k in missing:
            sel = obs.marker_index == k
            own = Observations(obs.view_index[sel], np.zeros(int(sel.sum()), np.intp), obs.xy[sel], len(vp), 1,
                               np.ones(int(sel.sum())))
            _, xyz_k, _ = levenberg_marquardt(own, vp, np.zeros((1, 3)), no_views, 0, max_iterations=50,
                                              initial_damping=1e-6)
            xyz[k] = xyz_k[0]
    return vp, xyz


def _robust_stage(obs, base, options: AlignmentOptions, tilts_deg, run, tilt_free: bool, fixed) -> NDArray[np.float64]:
    """Iteratively reweighted refits with Tukey weights; return the final weights in ``obs`` order.

    ``base`` are the user's weights; ``obs.weights`` may hold a warm start's robust weights on entry.
    """
    groups = tilt_groups(obs.view_index, tilts_deg, options.robust_group_views)
    plan = [(options.rotation, options.tilt if tilt_free else fixed, options.magnification, {"ftol": 1e-10})]
    weights = obs.weights / np.where(base > 0, base, 1.0)
    for _ in range(MAX_ROBUST_ROUNDS):
        r = obs.residuals(*run.state())
        new = robust_weights(r, obs.view_index, obs.marker_index, groups, options.robust_scale, options.robust_tracks)
        change = float(np.max(np.abs(new - weights))) if len(new) else 0.0
        weights = new
        obs.weights = base * weights
        if change < 0.01:
            break
        run("robust", plan, merge=True)
    run("robust", [(*plan[0][:3], {"ftol": 1e-12})], merge=True)
    return weights
