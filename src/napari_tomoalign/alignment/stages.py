"""The solve as a plan of stages (data), and the runner that carries a plan out.

A *stage* is one or more Levenberg–Marquardt runs, each with its own free variables and tolerance:

1. ``initial``: tilts at nominal, magnifications 1. First the linear problem with every view's
   rotation at the tilt-axis angle (markers and shifts only, solved exactly by one undamped step),
   then one rotation shared by all views.
2. ``main``: rotation and magnification as the user asked, tilts still nominal.
3. ``tilt``: the tilt angles freed as the user asked, with everything else; the optimum of the model.
4. ``warm``: instead of 1-3 when a previous solution is given: one full stage from it.
5. ``robust``: iteratively reweighted refits with Tukey weights (see `robust`), then a tight refit.

Stages before the last only hand on a good start, so they stop at a loose tolerance; the last
least-squares stage is tight unless robust rounds follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from ._lm import Observations, levenberg_marquardt
from ._parameters import columns, shift_gauge
from .model import ROT, TILT, recentre
from .options import AlignmentOptions, VariableOption
from .result import StageReport
from .robust import robust_weights, tilt_groups

LOOSE, TIGHT, ROBUST_ROUND = 1e-4, 1e-12, 1e-10
MAX_ROBUST_ROUNDS = 15
ROBUST_WEIGHT_CHANGE = 0.01
FIXED, ONE = VariableOption("fixed"), VariableOption("one")

ProgressCallback = Callable[[str, int, float], None]


class Stage(str, Enum):
    """The stages of a solve; their values are the names in reports and progress callbacks."""

    INITIAL = "initial"
    MAIN = "main"
    TILT = "tilt"
    WARM = "warm"
    ROBUST = "robust"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Step:
    """One Levenberg–Marquardt run: which variables are free, and when to stop.

    ``exact`` marks a linear problem that one undamped step solves; ``max_iterations`` None means the
    options' limit.
    """

    rotation: VariableOption
    tilt: VariableOption
    magnification: VariableOption
    ftol: float = LOOSE
    max_iterations: int | None = None
    initial_damping: float = 1e-4
    exact: bool = False


LINEAR = Step(FIXED, FIXED, FIXED, ftol=0.0, max_iterations=1, initial_damping=1e-12, exact=True)


@dataclass(frozen=True)
class StagePlan:
    """A stage: its steps in order; ``reweight`` repeats them with robust weights until they settle."""

    stage: Stage
    steps: tuple[Step, ...]
    reweight: bool = False


def plan_stages(options: AlignmentOptions, *, warm: bool, tilt_stage: bool) -> list[StagePlan]:
    """The stages of one solve (module docstring). ``tilt_stage``: the tilts have free columns."""
    o = options
    plan: list[StagePlan] = []
    if warm:
        plan.append(StagePlan(Stage.WARM, (Step(o.rotation, o.tilt, o.magnification),)))
    else:
        if o.initial_stage:
            first = (LINEAR,) + ((Step(ONE, FIXED, FIXED),) if o.rotation.mode != "fixed" else ())
            plan.append(StagePlan(Stage.INITIAL, first))
        plan.append(StagePlan(Stage.MAIN, (Step(o.rotation, FIXED, o.magnification),)))
        if tilt_stage:
            plan.append(StagePlan(Stage.TILT, (Step(o.rotation, o.tilt, o.magnification),)))
    if o.robust:
        tilt = o.tilt if (tilt_stage or warm) else FIXED
        plan.append(StagePlan(Stage.ROBUST, (Step(o.rotation, tilt, o.magnification, ftol=ROBUST_ROUND),),
                              reweight=True))
    else:
        last = plan[-1]
        plan[-1] = replace(last, steps=last.steps[:-1] + (replace(last.steps[-1], ftol=TIGHT),))
    return plan


class StageRunner:
    """Carries out stage plans on one problem, keeping the current parameters and a report per stage.

    ``view_params`` ``(n_views, 5)`` and ``xyz`` ``(n_markers, 3)`` are the state; ``view_ok`` the
    views in the fit and ``reference`` the gauge view. ``user_weights`` are the caller's observation
    weights (default: ``obs.weights`` as given); robust weights multiply them.
    """

    def __init__(
        self,
        obs: Observations,
        view_params: NDArray[np.float64],
        xyz: NDArray[np.float64],
        view_ok: NDArray[np.bool_],
        reference: int,
        max_iterations: int,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        user_weights: NDArray[np.float64] | None = None,
    ) -> None:
        self.obs, self.view_params, self.xyz = obs, view_params, xyz
        self.user_weights = obs.weights.copy() if user_weights is None else user_weights
        self.view_ok, self.reference, self.max_iterations = view_ok, reference, max_iterations
        self.progress, self.should_stop = progress, should_stop
        self.reports: list[StageReport] = []

    def run(self, plan: StagePlan, options: AlignmentOptions | None = None,
            tilts_deg: NDArray[np.float64] | None = None) -> NDArray[np.float64] | None:
        """Run one stage; a reweighting stage needs the options and nominal tilts, and returns the weights."""
        if not plan.reweight:
            self._run_steps(plan.stage, plan.steps)
            return None
        assert options is not None and tilts_deg is not None
        return self._reweighted(plan, options, tilts_deg)

    def _run_steps(self, stage: Stage, steps: tuple[Step, ...], merge: bool = False) -> None:
        t0 = time.perf_counter()
        iters, n_q = 0, 0
        converged, message, cost = True, "", 0.0
        for step in steps:
            cols, n_q = columns(self.view_ok, self.reference, step.rotation, step.tilt, step.magnification,
                                shift_gauge(self.view_params[:, TILT], self.view_params[:, ROT], self.view_ok,
                                            self.reference))
            self.view_params, self.xyz, lm = levenberg_marquardt(
                self.obs, self.view_params, self.xyz, cols, n_q, progress=self._callback(stage, iters),
                should_stop=self.should_stop, max_iterations=step.max_iterations or self.max_iterations, ftol=step.ftol,
                initial_damping=step.initial_damping)
            iters += lm.iterations
            converged, message, cost = lm.converged, lm.message, lm.cost
            if step.exact and lm.iterations == 1:
                converged, message = True, "linear least squares solved exactly"
        recentre(self.view_params, self.xyz, self.xyz.mean(axis=0))
        rms = float(np.sqrt(2.0 * cost / max(float(np.sum(self.obs.weights)), 1e-300)))
        report = StageReport(stage.value, iters, time.perf_counter() - t0, cost, rms, converged, message,
                             n_q + 3 * len(self.xyz))
        if merge and self.reports and self.reports[-1].name == stage.value:
            prev = self.reports.pop()
            report = replace(report, iterations=prev.iterations + iters,
                             wall_time_s=prev.wall_time_s + report.wall_time_s)
        self.reports.append(report)

    def _callback(self, stage: Stage, done: int) -> Callable[[int, float], None] | None:
        """The LM progress callback of a step that starts after ``done`` iterations of its stage."""
        progress = self.progress
        if progress is None:
            return None

        def callback(iteration: int, cost: float) -> None:
            progress(stage.value, done + iteration, cost)

        return callback

    def _reweighted(self, plan: StagePlan, options: AlignmentOptions, tilts_deg: NDArray[np.float64]
                    ) -> NDArray[np.float64]:
        """Iteratively reweighted refits; the final robust weights in ``obs`` order.

        ``obs.weights`` holds the user's weights times any warm-start robust weights on entry.
        """
        obs = self.obs
        base = self.user_weights
        groups = tilt_groups(obs.view_index, tilts_deg, options.robust_group_views)
        weights = obs.weights / np.where(base > 0, base, 1.0)
        for _ in range(MAX_ROBUST_ROUNDS):
            r = obs.residuals(self.view_params, self.xyz)
            new = robust_weights(r, obs.view_index, obs.marker_index, groups, options.robust_scale,
                                 options.robust_tracks)
            change = float(np.max(np.abs(new - weights))) if len(new) else 0.0
            weights = new
            obs.weights = base * weights
            if change < ROBUST_WEIGHT_CHANGE:
                break
            self._run_steps(plan.stage, plan.steps, merge=True)
        final = tuple(replace(s, ftol=TIGHT) for s in plan.steps)
        self._run_steps(plan.stage, final, merge=True)
        return weights
