"""The solve as a plan of stages (data), and the runner that carries a plan out.

A *stage* is one or more Levenberg–Marquardt runs, each with its own free variables and tolerance:

1. ``initial``: tilts at nominal, magnifications 1. First the linear problem with every view's
   rotation at the tilt-axis angle (markers and shifts only, solved exactly by one undamped step),
   then one rotation shared by all views.
2. ``main``: rotation and magnification as the user asked, tilts still nominal.
3. ``tilt``: the tilt angles freed as the user asked, with everything else; the optimum of the model.
4. ``warm``: instead of 1-3 when a previous solution is given: one full stage from it.
5. ``robust``: iteratively reweighted refits with Tukey weights (`robust.next_weights`), the last one tight.

Stages before the last only hand on a good start, so they stop at a loose tolerance; the last
least-squares stage is tight unless robust rounds follow. That is the default model's plan
(`plan_stages`). An align.com's settings have tiltalign's (`settings_plan`): ``markers`` (geometry held,
when the markers have no start), ``full`` (every variable the settings map) and, with ``RobustFitting``,
``robust``. One `StageRunner` carries out both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from ._lm import Observations, levenberg_marquardt
from .full_layout import UnknownLayout, build_layout, shift_gauge
from .grouping import Mapping
from .model import DX, DY, ROT, TILT, view_matrices
from .options import AlignmentOptions, ModelSettings, VariableOption, option_mapping
from .result import StageReport
from .robust import SETTLED, next_weights, tilt_groups

LOOSE, TIGHT, ROBUST_ROUND = 1e-4, 1e-12, 1e-10
FIXED, ONE = VariableOption("fixed"), VariableOption("one")

ProgressCallback = Callable[[str, int, float], None]


class Stage(str, Enum):
    """The stages of a solve; their values are the names in reports and progress callbacks."""

    INITIAL = "initial"
    MAIN = "main"
    TILT = "tilt"
    WARM = "warm"
    ROBUST = "robust"
    MARKERS = "markers"
    FULL = "full"


@dataclass(frozen=True)
class Step:
    """One Levenberg–Marquardt run: which variables are free, and when to stop.

    ``rotation``, ``tilt`` and ``magnification`` map those variables as a `VariableOption` says, or as the
    settings map them (None); ``others`` frees the settings' other variables (X-stretch, skew, X-tilt,
    compression, beam tilt) too, else they are held. ``exact`` marks a linear problem that one undamped
    step solves; ``max_iterations`` None means the runner's limit.
    """

    rotation: VariableOption | None
    tilt: VariableOption | None
    magnification: VariableOption | None
    ftol: float = LOOSE
    max_iterations: int | None = None
    initial_damping: float = 1e-4
    exact: bool = False
    others: bool = False
    xtol: float = 1e-10


LINEAR = Step(FIXED, FIXED, FIXED, ftol=0.0, max_iterations=1, initial_damping=1e-12, exact=True)
# IMOD's settings: the markers placed with the geometry held (when they have no start), then everything.
PLACE_MARKERS = Step(FIXED, FIXED, FIXED, ftol=1e-14, xtol=1e-12)
EVERYTHING = Step(None, None, None, ftol=1e-14, xtol=1e-12, others=True)


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


def settings_plan(markers_known: bool, robust: bool = False) -> list[StagePlan]:
    """The stages of a solve with an align.com's settings: the markers placed (unless each has a start
    position), then every variable the settings map; with ``robust`` (``RobustFitting 1``), reweighted refits."""
    first = [] if markers_known else [StagePlan(Stage.MARKERS, (PLACE_MARKERS,))]
    last = [StagePlan(Stage.ROBUST, (EVERYTHING,), reweight=True)] if robust else []
    return first + [StagePlan(Stage.FULL, (EVERYTHING,))] + last


class StageRunner:
    """Carries out stage plans on one problem, keeping the current parameters and a report per stage.

    ``params`` ``(n_views, 9)`` (the full model's, `model.FULL_VIEW_PARAMS`), ``beam`` (radians) and
    ``xyz`` ``(n_markers, 3)`` are the state; ``view_ok`` the views in the fit and ``reference`` the gauge
    view. Each step maps the variables as it asks (`Step`) from ``settings``. With ``fix_xyz`` the marker
    positions are held (and every shift is free). ``user_weights`` are the caller's observation weights
    (``obs.weights`` as given); robust weights multiply them.
    """

    def __init__(
        self,
        obs: Observations,
        params: NDArray[np.float64],
        xyz: NDArray[np.float64],
        view_ok: NDArray[np.bool_],
        reference: int,
        max_iterations: int,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        settings: ModelSettings,
        beam: float = 0.0,
        fix_xyz: bool = False,
    ) -> None:
        self.obs, self.params, self.xyz, self.beam = obs, params, xyz, float(beam)
        self.user_weights = obs.weights.copy()
        self.view_ok, self.reference, self.max_iterations = view_ok, reference, max_iterations
        self.progress, self.should_stop = progress, should_stop
        self.settings, self.fix_xyz = settings, fix_xyz
        self.reports: list[StageReport] = []

    def run(self, plan: StagePlan, tilts_deg: NDArray[np.float64] | None = None) -> NDArray[np.float64] | None:
        """Run one stage; a reweighting stage needs the nominal tilts, and returns the robust weights."""
        if not plan.reweight:
            self._run_steps(plan.stage, plan.steps)
            return None
        assert tilts_deg is not None
        return self._reweighted(plan, tilts_deg)

    def layout(self, step: Step) -> UnknownLayout:
        """The unknowns of one step: its mappings over the views in the fit, and the shift gauge."""
        ok, ref, given = self.view_ok, self.reference, self.settings.mappings

        def pick(kind: str, option: VariableOption | None, gauge: int | None = None) -> Mapping:
            return given[kind] if option is None else option_mapping(option, ok, gauge)

        mappings = {"rotation": pick("rotation", step.rotation), "tilt": pick("tilt", step.tilt, ref),
                    "magnification": pick("magnification", step.magnification, ref)}
        if step.others:
            mappings.update({k: m for k, m in given.items() if k not in mappings})
        held = [] if self.fix_xyz else shift_gauge(self.params[:, TILT], self.params[:, ROT], ok, ref)
        return build_layout(mappings, self.params, self.beam, step.others and self.settings.beam_tilt_free, ok, held)

    def _run_steps(self, stage: Stage, steps: tuple[Step, ...], merge: bool = False) -> None:
        t0 = time.perf_counter()
        iters, n_q = 0, 0
        converged, message, cost = True, "", 0.0
        for step in steps:
            lay = self.layout(step)
            n_q = lay.n_q
            q, self.xyz, lm = levenberg_marquardt(
                self.obs, lay, np.zeros(n_q), self.xyz, fix_xyz=self.fix_xyz, progress=self._callback(stage, iters),
                should_stop=self.should_stop, max_iterations=step.max_iterations or self.max_iterations,
                ftol=step.ftol, xtol=step.xtol, initial_damping=step.initial_damping)
            self.params, self.beam = lay.params(q)
            iters += lm.iterations
            converged, message, cost = lm.converged, lm.message, lm.cost
            if step.exact and lm.iterations == 1:
                converged, message = True, "linear least squares solved exactly"
        if not self.fix_xyz:  # the marker centroid at the origin; the shifts absorb the move
            c = self.xyz.mean(axis=0)
            self.xyz = self.xyz - c
            self.params[:, [DX, DY]] += view_matrices(self.params, self.beam, derivatives=False)[0] @ c
        rms = float(np.sqrt(2.0 * cost / max(float(np.sum(self.obs.weights)), 1e-300)))
        report = StageReport(stage.value, iters, time.perf_counter() - t0, cost, rms, converged, message,
                             n_q + (0 if self.fix_xyz else 3 * len(self.xyz)))
        if merge and self.reports and self.reports[-1].name == stage.value:
            prev = self.reports.pop()
            report = replace(report, iterations=prev.iterations + iters,
                             wall_time_s=prev.wall_time_s + report.wall_time_s)
        self.reports.append(report)

    def _callback(self, stage: Stage, done: int) -> Callable[[int, float], None] | None:
        """The LM progress callback of a step that starts after ``done`` iterations of its stage."""
        progress = self.progress
        return None if progress is None else lambda iteration, cost: progress(stage.value, done + iteration, cost)

    def _reweighted(self, plan: StagePlan, tilts_deg: NDArray[np.float64]) -> NDArray[np.float64]:
        """Iteratively reweighted refits; the final robust weights in ``obs`` order.

        Each round weighs the current residuals (`robust.next_weights`) and refits, until no weight changes by
        more than `robust.SETTLED` or ``settings.robust_rounds`` refits were made; the last refit is tight.
        ``obs.weights`` holds the user's weights times any warm-start robust weights on entry.
        """
        obs, base, s = self.obs, self.user_weights, self.settings
        final = tuple(replace(st, ftol=min(st.ftol, TIGHT)) for st in plan.steps)
        groups = tilt_groups(obs.view_index, tilts_deg, s.robust_group_views, s.robust_min_group_points)
        w = obs.weights / np.where(base > 0, base, 1.0)
        rounds = max(1, int(s.robust_rounds))
        for k in range(1, rounds + 1):
            new = next_weights(obs.residuals(self.params, self.xyz), obs.view_index, obs.marker_index, groups, s)
            last = float(np.max(np.abs(new - w), initial=0.0)) <= SETTLED or k == rounds
            w = new
            obs.weights = base * w
            self._run_steps(plan.stage, final if last else plan.steps, merge=True)
            if last:
                break
        return w
