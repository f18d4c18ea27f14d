"""The stage plan is data: which stages run, with which free variables and tolerances."""

from napari_tomoalign import AlignmentOptions, align_markers, simulate_markers
from napari_tomoalign.alignment.stages import LINEAR, LOOSE, ROBUST_ROUND, TIGHT, Stage, plan_stages


def _names(plan):
    return [p.stage for p in plan]


def test_default_plan_initial_main_tilt_with_the_last_stage_tight():
    plan = plan_stages(AlignmentOptions(), warm=False, tilt_stage=True)
    assert _names(plan) == [Stage.INITIAL, Stage.MAIN, Stage.TILT]
    assert plan[0].steps[0] == LINEAR and plan[0].steps[1].rotation.mode == "one"
    assert plan[1].steps[0].tilt.mode == "fixed" and plan[1].steps[0].ftol == LOOSE
    assert plan[2].steps[0].tilt.mode == "view" and plan[2].steps[0].ftol == TIGHT


def test_robust_rounds_follow_and_keep_the_least_squares_stages_loose():
    plan = plan_stages(AlignmentOptions(robust=True), warm=False, tilt_stage=True)
    assert _names(plan) == [Stage.INITIAL, Stage.MAIN, Stage.TILT, Stage.ROBUST]
    assert all(s.ftol == LOOSE for p in plan[1:3] for s in p.steps)
    assert plan[3].reweight and plan[3].steps[0].ftol == ROBUST_ROUND


def test_warm_start_replaces_the_first_stages_and_fixed_tilt_skips_the_tilt_stage():
    assert _names(plan_stages(AlignmentOptions(), warm=True, tilt_stage=False)) == [Stage.WARM]
    plan = plan_stages(AlignmentOptions(tilt="fixed", rotation="fixed", initial_stage=True), warm=False,
                       tilt_stage=False)
    assert _names(plan) == [Stage.INITIAL, Stage.MAIN]
    assert plan[0].steps == (LINEAR,) and plan[1].steps[0].ftol == TIGHT


def test_reported_stages_and_progress_use_the_stage_names():
    sim = simulate_markers(n_views=21, n_markers=12, seed=3)
    seen = set()
    al = align_markers(sim.view, sim.marker, sim.xy, sim.nominal_tilt_angles_deg, sim.image_size,
                       AlignmentOptions(robust=True), progress=lambda stage, it, cost: seen.add(stage))
    assert [s.name for s in al.stages] == ["initial", "main", "tilt", "robust"]
    assert seen <= {s.value for s in Stage} and {"main", "tilt"} <= seen
    assert al.converged
