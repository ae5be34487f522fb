"""Search spaces: every suggestion is a valid Arch inside the budget, parameters mean what
they say, seeded runs repeat, impossible budgets and bad settings fail before any trial.

Costs are checked with ``budgetnet.conv_macs``; golden costs are hand arithmetic of Eqn. (1)
written out below, and golden models come from the paper's notation (search_spaces.paper).
"""

from __future__ import annotations

import json
import re

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.samplers import RandomSampler
from optuna.trial import FixedTrial

import budgetnet
from budgetnet import Budget, Conv, Pool, conv_macs
from budgetnet.cost.budgets import CostBudget
from budgetnet.errors import BudgetError, BudgetNetError, SearchError
from budgetnet.rewrites import RULES
from search_spaces import paper, replacement, small
from search_spaces.base import SPACES, SearchSpace, get_space
from search_spaces.replacement import LayerReplacementSpace, step_label
from search_spaces.residual import Residual224Space, ResidualSpace
from search_spaces.small import SmallStageSpace
from search_spaces.stage import StageChoice, StageSpace, StageSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

STAGE_PARAM = re.compile(r"(stage\d+_depth|stage\d+_kernel|delay_stage\d+|pool_after_stage\d+)")


def eqn1(arch) -> int:
    """Eqn. (1) by hand from the layer shapes: n_{l-1} * s^2 * n_l * m_l^2 over the convs."""
    return sum(
        info.in_shape[0] * info.layer.kernel_size**2 * info.out_shape[0] * info.out_shape[1] * info.out_shape[2]
        for info in arch.shapes
        if info.kind == "conv"
    )


def sample(space: SearchSpace, n: int, seed: int = 0):
    """(params, arch) for ``n`` trials of a seeded random sampler."""
    study = optuna.create_study(sampler=RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        arch = space.suggest(trial)
        out.append((trial.params, arch))
    return out


# -- the paper's stage space -------------------------------------------------------------------
# Trial parameters for the models of Tables 1-2 that have one width per stage: stage 2, stage 3
# as (depth, kernel, delayed), and stage 4 when a pool follows stage 3.
PAPER_CHOICES = {
    "A": ((1, 5, False), (3, 3, False), None),
    "B": ((1, 5, False), (6, 2, False), None),
    "C": ((2, 3, False), (3, 3, False), None),
    "D": ((2, 3, False), (6, 2, False), None),
    "E": ((4, 2, False), (6, 2, False), None),
    "J": ((4, 2, False), (4, 2, False), (2, 2, False)),
    "B'": ((1, 5, True), (6, 2, True), None),
    "D'": ((2, 3, True), (6, 2, True), None),
    "E'": ((4, 2, True), (6, 2, True), None),
    "J'": ((4, 2, True), (4, 2, True), (2, 2, True)),
}


def stage_params(choices) -> dict:
    params = {}
    for number, choice in zip((2, 3, 4), choices):
        if number == 4:
            params["pool_after_stage3"] = choice is not None
        if choice is not None:
            depth, kernel, delay = choice
            params.update({f"stage{number}_depth": depth, f"stage{number}_kernel": kernel, f"delay_stage{number}": delay})
    return params


@pytest.mark.parametrize("name", sorted(PAPER_CHOICES))
def test_stage_space_solves_the_papers_widths(name):
    """With a zero-tolerance budget equal to a model's cost, the solved widths are the paper's."""
    model = paper.MODELS[name]
    space = StageSpace(Budget.relative(model, 1.0, tolerance=0.0))
    arch = space.suggest(FixedTrial(stage_params(PAPER_CHOICES[name])))
    assert arch == model, f"{arch} != {model}"


def test_stage_space_default_is_model_a_budget():
    space = StageSpace()
    assert space.baseline == paper.MODELS["A"]
    assert space.budget.target_macs == 854_954_688  # model A, as pinned by the core tests
    assert space.budget.tolerance == 0.05
    assert (space.input_shape, space.num_classes) == ((3, 224, 224), 1000)


def widen(arch, skip_first: int, step: int, max_width: int):
    """``arch`` with every solved width (all convs but the stem's and the last) one step wider."""
    convs = [i for i, layer in enumerate(arch.layers) if isinstance(layer, Conv)]
    solved = set(convs[skip_first:-1])
    layers = [
        Conv(layer.kernel_size, min(layer.out_channels + step, max_width), layer.stride, layer.padding)
        if i in solved
        else layer
        for i, layer in enumerate(arch.layers)
    ]
    return arch.with_layers(layers)


def check_suggestions(space: StageSpace, pairs, min_matched: float):
    """Every suggestion: right input, admitted, parameters mean what the Arch shows."""
    budget = space.budget
    matched = 0
    for params, arch in pairs:
        assert isinstance(arch, budgetnet.Arch)
        assert (arch.input_shape, arch.num_classes) == (space.input_shape, space.num_classes)
        cost = conv_macs(arch)
        assert cost <= budget.target_macs * (1 + budget.tolerance), (str(arch), params)
        if abs(cost - budget.target_macs) <= budget.tolerance * budget.target_macs:
            matched += 1
        else:
            # Under the tolerance window only when the width grid allows nothing closer:
            # one more width step everywhere passes the ceiling.
            wider = widen(arch, len(space.stem), space.width_multiple, space.max_width)
            assert wider == arch or conv_macs(wider) > budget.limit_macs, (str(arch), params)
        assert all(STAGE_PARAM.fullmatch(name) for name in params), params
        stages = arch.stages[1:]  # stage 1 is the stem
        assert len(stages) == len(space.stages) + bool(params.get("pool_after_stage3"))
        for number, convs in enumerate(stages, start=2):
            assert len(convs) == params[f"stage{number}_depth"]
            assert {info.layer.kernel_size for info in convs} == {params[f"stage{number}_kernel"]}
            delayed = params.get(f"delay_stage{number}", False)
            pool = arch.shapes[convs[0].index - 1].layer
            assert isinstance(pool, Pool)
            assert (pool.stride == 1) == delayed and (convs[0].layer.stride > 1) == delayed
        assert arch.layers[-1 - len(space.head)].out_channels == space.last_width
        side = min(arch.feature_shape[1:])  # the SPP keeps the levels its map holds
        assert arch.head[0].levels == tuple(level for level in space.head[0].levels if level <= side)
        assert arch.head[1:] == space.head[1:]
    assert matched >= min_matched * len(pairs), f"{matched}/{len(pairs)} within the tolerance"


def test_stage_space_random_trials_are_valid_and_within_budget():
    space = StageSpace()
    space.check()
    check_suggestions(space, sample(space, 30, seed=3), min_matched=0.9)


def test_stage_space_is_reproducible_with_a_seed():
    first = [arch.fingerprint() for _, arch in sample(StageSpace(), 12, seed=11)]
    again = [arch.fingerprint() for _, arch in sample(StageSpace(), 12, seed=11)]
    other = [arch.fingerprint() for _, arch in sample(StageSpace(), 12, seed=12)]
    assert first == again
    assert first != other


def test_stage_space_impossible_budget_fails_before_any_trial():
    # Cheapest candidate, by hand (Eqn. (1) with output sides): (7,64)/2 on 224 -> 109:
    # 3*49*64*109^2 = 111,776,448; 3/3 -> 36; (2,16) pad 0 -> 35: 64*4*16*35^2 = 5,017,600;
    # 2/2 -> 17; (2,16) pad 1 -> 18: 16*4*16*18^2 = 331,776; a 3/3 pool -> 6; (2,256) pad 0
    # -> 5: 16*4*256*5^2 = 409,600. Total 117,535,424.
    space = StageSpace(budget="100M")
    with pytest.raises(BudgetError, match=r"budget 100\.0M MACs .* below every candidate") as error:
        space.check()
    assert "117,535,424" in str(error.value)
    assert "(7,64)/2 3/3 (2,16) 2/2 (2,16) 3/3 (2,256)" in str(error.value)


def test_stage_space_budget_out_of_reach_fails_before_any_trial():
    space = SmallStageSpace(budget=10**12)
    with pytest.raises(BudgetError, match=r"out of reach of the small space.*max_width \(now 256\)"):
        space.check()


def test_stage_space_over_budget_combination_returns_the_narrowest():
    """A combination that cannot fit even at min_width comes back over budget (the study
    then records it as infeasible); it is the narrowest version of those choices."""
    budget = Budget(200_000_000, 0.0)  # above the cheapest (117.5M), below most deep stacks
    space = StageSpace(budget)
    space.check()
    params = stage_params(((4, 5, False), (8, 5, False), None))
    arch = space.suggest(FixedTrial(params))
    assert not budget.admits(arch)
    assert {info.layer.out_channels for info in arch.convs[1:-1]} == {space.min_width}


def test_stage_space_latency_like_budget_solves_by_admits():
    """A budget not in MACs (as a latency budget) is solved by bisection on ``admits``."""

    class Ceiling(CostBudget):  # a stand-in cost: millions of MACs, in its own unit
        tolerance, label, target, unit = 0.0, "", 600.0, "M-units"

        def cost(self, arch):
            return budgetnet.conv_macs(arch) / 1e6

        def with_tolerance(self, tolerance):
            return self

        def to_dict(self):
            return {"target": self.target}

        def describe_target(self):
            return "600 M-units"

    space = StageSpace(Ceiling())
    assert space.target_macs is None
    space.check()
    for _, arch in sample(space, 5, seed=1):
        assert conv_macs(arch) <= 600_000_000


# -- the small space ---------------------------------------------------------------------------
def test_small_baseline_cost_by_hand():
    arch = small.baseline()
    assert str(arch) == "(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)"
    # 16x16: 1*9*16*16^2 + 16*25*32*8^2 + 32*9*64*4^2 + 2 * 64*9*64*4^2
    assert conv_macs(arch) == 36_864 + 819_200 + 294_912 + 2 * 589_824 == 2_330_624
    # MNIST 28x28: 1*9*16*28^2 + 16*25*32*14^2 + 32*9*64*7^2 + 2 * 64*9*64*7^2
    assert conv_macs(small.baseline((1, 28, 28))) == 112_896 + 2_508_800 + 903_168 + 2 * 1_806_336


def test_small_baseline_builds_and_runs():
    torch = pytest.importorskip("torch")
    model = budgetnet.build(small.baseline((3, 32, 32), 10))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_small_space_trials_are_valid_and_within_budget(shape):
    space = SmallStageSpace(input_shape=shape)
    space.check()
    assert space.baseline == small.baseline(shape)
    check_suggestions(space, sample(space, 25, seed=5), min_matched=0.85)


def test_small_space_offers_stage4_only_when_it_fits():
    assert SmallStageSpace(input_shape=(1, 16, 16)).extra_stage is not None
    assert SmallStageSpace(input_shape=(1, 8, 8)).extra_stage is None
    names = {name for params, _ in sample(SmallStageSpace(input_shape=(1, 8, 8)), 20) for name in params}
    assert not any(name.startswith(("pool_after", "stage4")) for name in names)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channels=st.sampled_from([1, 3]),
    side=st.integers(8, 32),
    ratio=st.floats(0.5, 2.0),
    seed=st.integers(0, 2**16),
)
def test_small_space_any_input_and_budget(channels, side, ratio, seed):
    space = SmallStageSpace(f"{ratio}x", input_shape=(channels, side, side), num_classes=7)
    space.check()
    for _, arch in sample(space, 3, seed=seed):
        assert arch.num_classes == 7 and arch.input_shape == (channels, side, side)
        assert space.budget.admits(conv_macs(arch))


# -- get_space, description, bad settings ------------------------------------------------------
def test_get_space_names_and_defaults():
    # Each space module registers its class; importing search_spaces imports them all.
    assert SPACES == {"small": SmallStageSpace, "stage": StageSpace, "replacement": LayerReplacementSpace,
                      "residual": ResidualSpace, "residual224": Residual224Space}
    space = get_space("small", input_shape=(1, 28, 28), num_classes=10)
    assert isinstance(space, SmallStageSpace) and space.name == "small"
    assert space.input_shape == (1, 28, 28)
    assert space.budget.target_macs == conv_macs(small.baseline((1, 28, 28)))
    stage = get_space("stage", budget="0.9x", tolerance=0.02)
    assert isinstance(stage, StageSpace) and stage.budget.tolerance == 0.02
    assert stage.budget.target_macs == round(854_954_688 * 0.9)


def test_get_space_unknown_name_lists_the_names():
    with pytest.raises(SearchError, match=r"space='nas' is unknown; expected one of replacement, residual, residual224, small, stage"):
        get_space("nas")


def test_to_dict_is_json_and_tells_spaces_apart():
    a = get_space("small").to_dict()
    assert json.loads(json.dumps(a)) == a
    assert a == get_space("small").to_dict()
    assert a != get_space("small", budget="0.8x").to_dict()
    assert a != get_space("small", kernels=(3,)).to_dict()
    assert a["space"] == "small" and a["budget"]["target_macs"] == 2_330_624


def test_describe_is_one_line():
    text = get_space("stage").describe()
    assert "\n" not in text
    assert text.startswith("stage space on 3x224x224 inputs, 1000 classes")
    assert "855.0M MACs" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kernels": []}, r"kernels=\[\] is invalid; expected a non-empty list of integers >= 1"),
        ({"kernels": [3, "5"]}, r"kernels=\[3, '5'\] is invalid"),
        ({"width_multiple": 0}, r"width_multiple=0 is invalid; expected an integer >= 1"),
        ({"max_width": 8, "min_width": 16}, r"max_width=8 is invalid; expected an integer >= 16"),
        ({"stages": []}, r"stages=\(\) is invalid; expected a non-empty list of StageSpec"),
        ({"delay": "yes"}, r"delay='yes' is invalid; expected True or False"),
        ({"head": [Conv(3, 8)]}, r"head=.* is invalid; expected a list of SPP, Flatten, FC layers"),
    ],
)
def test_bad_settings_name_the_field(options, message):
    with pytest.raises(SearchError, match=message):
        StageSpace(**options)


def test_bad_stage_spec():
    with pytest.raises(SearchError, match=r"StageSpec: max_depth=1 is invalid; expected an integer >= 2"):
        StageSpec(Pool(2), 64, 2, 1)
    with pytest.raises(SearchError, match=r"StageSpec: pool=3 is invalid; expected a budgetnet.Pool"):
        StageSpec(3, 64)


def test_paper_space_on_a_small_input_says_it_does_not_fit():
    with pytest.raises(SearchError, match=r"baseline .* does not fit input_shape=\(1, 16, 16\)"):
        StageSpace(input_shape=(1, 16, 16))


def test_kernel_that_does_not_fit_a_stage():
    with pytest.raises(SearchError, match=r"small space: stage2_kernel=7 \(depth 1\) does not fit the input \(1, 8, 8\)"):
        SmallStageSpace(input_shape=(1, 8, 8), kernels=(3, 7))


def test_bad_budget_and_baseline():
    with pytest.raises(BudgetError, match=r"budget=\[1\] is invalid; expected a budgetnet.Budget"):
        SmallStageSpace([1])
    with pytest.raises(BudgetError, match=r"budget='lots' is invalid"):
        SmallStageSpace("lots")
    with pytest.raises(SearchError, match=r"baseline='A' is not a budgetnet.Arch"):
        StageSpace(baseline="A")
    with pytest.raises(SearchError, match=r"input_shape=\(16, 16\) is invalid; expected \(channels, height, width\)"):
        get_space("small", input_shape=(16, 16))
    assert issubclass(SearchError, BudgetNetError)


# -- the layer-replacement space ---------------------------------------------------------------
class ScriptedTrial:
    """A stand-in for an Optuna trial that answers each categorical from a script of
    choice positions (0 past the script's end) and records what it was offered."""

    def __init__(self, script):
        self.script = list(script)
        self.offered = []
        self.params = {}

    def suggest_categorical(self, name, choices):
        choices = list(choices)
        position = len(self.offered)
        self.offered.append((name, choices))
        value = choices[self.script[position] if position < len(self.script) else 0]
        self.params[name] = value
        return value


def every_combination(space):
    """(params, arch, offered) for every combination of parameter values (a depth-first walk
    over what the space asks, independent of how it asks)."""
    results, pending = [], [[]]
    while pending:
        script = pending.pop()
        trial = ScriptedTrial(script)
        arch = space.suggest(trial)
        results.append((trial.params, arch, trial.offered))
        for position in range(len(script), len(trial.offered)):
            prefix = script + [0] * (position - len(script))
            pending += [prefix + [k] for k in range(1, len(trial.offered[position][1]))]
    return results


RULE_NAMES = ("depth_filter", "depth_width", "width_filter", "add_pool", "delay_pool")


def replay(space, params, asked):
    """Rebuild a trial's Arch from its parameters with the rules' public API alone: each
    choice names a rule and a site of the current Arch (independent of the lineage graph)."""
    arch = space.baseline
    for name, _ in asked:
        choice = params[name]
        if choice == "none":
            break
        (site,) = [site for rule in RULES for site in rule.sites(arch) if step_label(site) == choice]
        arch = budgetnet.rewrite(arch, site, tolerance=None).after
    return arch


def check_replacement_space(space):
    """Every combination of choices: a chain of real rewrites (replayed), inside the budget
    (Eqn. (1) by hand), with parameter names and choices that never change meaning."""
    combos = every_combination(space)
    offered = {}
    for params, arch, asked in combos:
        assert replay(space, params, asked) == arch
        assert len([name for name, _ in asked]) <= space.max_steps
        assert space.budget.matches(eqn1(arch)) and space.budget.admits(eqn1(arch))
        for name, choices in asked:
            assert re.fullmatch(r"step1|step[2-9] from \S.*", name), name
            assert offered.setdefault(name, choices) == choices, f"{name} changed its choices"
            assert all(choice == "none" or choice.split(" ")[0] in RULE_NAMES for choice in choices)
    # What suggest reaches is what the space says it offers.
    assert {arch.fingerprint() for _, arch, _ in combos} == {arch.fingerprint() for arch in space.candidates()}
    return combos


def test_replacement_space_reaches_exactly_the_variants_of_the_small_baseline():
    base = small.baseline()
    space = get_space("replacement", max_steps=2)
    assert space.baseline == base
    space.check()
    combos = check_replacement_space(space)
    reached = {arch.fingerprint() for _, arch, _ in combos}
    assert len(reached) > 10 and base.fingerprint() in reached
    # Every rewrite of the baseline that stays inside the budget is a first step (Eqn. (1) by hand).
    one_step = set()
    for rule in RULES:
        for site in rule.sites(base):
            try:
                after = budgetnet.rewrite(base, site, tolerance=None).after
            except BudgetNetError:
                continue
            if space.budget.matches(eqn1(after)):
                one_step.add(after.fingerprint())
    assert one_step <= reached


def test_replacement_space_from_model_a_reaches_the_papers_models():
    space = get_space("replacement", baseline=paper.MODELS["A"], max_steps=1)
    space.check()
    combos = check_replacement_space(space)
    reached = {arch for _, arch, _ in combos}
    # Sec. 4: one replacement turns A into B (Eqn. 3), C (Eqn. 4), F (Eqn. 6) and G (Eqn. 7).
    assert {paper.MODELS[name] for name in "ABCFG"} <= reached
    step = {params.get("step1"): arch for params, arch, _ in combos}
    assert step["none"] == paper.MODELS["A"]


def test_replacement_space_random_trials_are_reproducible():
    space = get_space("replacement")
    first = [(params, arch.fingerprint()) for params, arch in sample(space, 15, seed=4)]
    again = [(params, arch.fingerprint()) for params, arch in sample(get_space("replacement"), 15, seed=4)]
    assert first == again
    assert len({key for _, key in first}) > 3
    assert all(space.budget.matches(arch) for _, arch in sample(space, 15, seed=4))


def test_replacement_space_with_a_budget_away_from_the_baseline():
    """A budget the baseline misses: no 'none' at step 1, every candidate still matches."""
    base = small.baseline()
    budget = Budget(round(conv_macs(base) * 1.028), 0.02)  # [1.007, 1.049] x baseline
    space = get_space("replacement", budget=budget)
    assert not budget.matches(base)
    space.check()
    assert "none" not in space.choices(base)
    combos = check_replacement_space(space)
    assert base not in {arch for _, arch, _ in combos}


def test_replacement_space_impossible_budget_fails_before_any_trial():
    space = get_space("replacement", budget="0.5x")
    with pytest.raises(BudgetError, match=r"budget 1\.2M MACs \(0\.5x baseline\) ±5\.0% is out of reach") as error:
        space.check()
    message = str(error.value)
    cost = int(re.search(r"costs \S+ MACs \(([\d,]+),", message).group(1).replace(",", ""))
    assert cost > 2_330_624 * 0.5 * 1.05  # the cheapest rewrite, named, does not fit


@pytest.mark.parametrize("text", ["(1,8) gap", "(3,8) flat fc16"])
def test_replacement_space_baseline_it_cannot_rewrite(text):
    base = budgetnet.parse(text, input_shape=(1, 8, 8), num_classes=10)
    space = get_space("replacement", baseline=base)
    with pytest.raises(SearchError, match=r"no layer-replacement rule rewrites the baseline .* into a variant"):
        space.check()


def test_replacement_space_bad_settings():
    with pytest.raises(SearchError, match=r"rules=\['magic'\] is invalid: .*expected one of depth_filter"):
        get_space("replacement", rules=["magic"])
    with pytest.raises(SearchError, match=r"replacement space: max_steps=0 is invalid; expected an integer >= 1"):
        get_space("replacement", max_steps=0)
    with pytest.raises(SearchError, match=r"baseline=None is not a budgetnet.Arch"):
        LayerReplacementSpace(None)


def test_spaces_importable_from_paper_and_small():
    assert paper.StageSpace is StageSpace
    assert paper.LayerReplacementSpace is LayerReplacementSpace
    space = replacement.SmallReplacementSpace(input_shape=(3, 32, 32))
    assert space.baseline == small.baseline((3, 32, 32))
    assert get_space("replacement", input_shape=(3, 224, 224), num_classes=1000).baseline == paper.MODELS["A"]


def test_a_stage_candidate_ending_on_a_1x1_map_keeps_the_spp_level_that_fits():
    """16 px -> 2/2 8 -> 2/2 4 -> 2/2 2 -> one (2,64) conv 1: spp(2,1)'s 2x2 level has no
    map to pool; the candidate keeps spp(1), and one conv more (2x2 again) keeps both."""
    space = SmallStageSpace()
    one = space.solve((StageChoice(1, 2), StageChoice(1, 2), StageChoice(1, 2)))
    assert one.feature_shape == (64, 1, 1) and str(one).endswith("(2,64) spp(1)")
    two = space.solve((StageChoice(1, 2), StageChoice(1, 2), StageChoice(2, 2)))
    assert two.feature_shape[1:] == (2, 2) and str(two).endswith(" spp(2,1)")
    assert budgetnet.build(one)(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


# -- a time budget no candidate meets (issue 20): measured times injected, nothing is timed --------------
def steady_times(monkeypatch, ms_of=lambda arch: 5.0) -> list:
    """Make `measure` give every network three equal runs of ``ms_of(arch)`` ms; returns the timed archs."""
    from budgetnet.cost import latency

    timed = []

    def fake_measure(arch, *args, **kwargs):
        timed.append(arch)
        ms = ms_of(arch)
        return latency.Measurement(ms, ms, 1, "cpu", "forward", 3, (ms, ms, ms), arch.input_shape, "float32")

    monkeypatch.setattr(latency, "measure", fake_measure)
    return timed


def test_stage_space_time_budget_below_every_candidate_says_the_times_in_ms(monkeypatch):
    from budgetnet.cost.budgets import LatencyBudget

    timed = steady_times(monkeypatch)
    space = SmallStageSpace(budget=LatencyBudget(0.5, "cpu"))
    cheapest = space.extremes()[0]
    with pytest.raises(BudgetError) as error:
        space.check()
    runs = "5 ms/image, median of 3 runs (middle half 5-5 ms, all 5-5 ms)"
    ratio = f"{eqn1(cheapest) / 2_330_624:.3g}"  # the small baseline's cost: test_small_baseline_cost_by_hand
    assert str(error.value) == (
        f"budget 0.5 ms/image on cpu (forward, batch 1) is below every candidate of the small space: the cheapest by "
        f"Eqn. (1), {cheapest}, measured {runs}, and {runs} when timed again, and the baseline, {space.baseline}, "
        f"{runs}; expected a time budget of at least 5 ms/image (its faster median), or a MACs budget of at least "
        f"{ratio}x (its Eqn. (1) cost, which does not depend on the machine)"
    )
    assert timed == [cheapest, cheapest, space.baseline]  # the cheapest timed twice, the baseline once


def test_replacement_space_time_budget_names_the_fastest_candidate(monkeypatch):
    from budgetnet.cost.budgets import LatencyBudget
    from budgetnet.cost.noise import format_ms

    timed = steady_times(monkeypatch, lambda arch: eqn1(arch) / 1e6)  # 1 ms per million MACs
    space = LayerReplacementSpace(small.baseline(), LatencyBudget(0.5, "cpu"))
    with pytest.raises(BudgetError) as error:
        space.check()
    fastest = min(space.candidates(), key=eqn1)
    message = str(error.value)
    assert message.startswith(
        f"budget 0.5 ms/image on cpu (forward, batch 1) is below every candidate of the replacement space: the "
        f"fastest, {fastest}, measured {format_ms(eqn1(fastest) / 1e6)} ms/image, median of 3 runs"
    )
    assert f"and the baseline, {space.baseline}, 2.33 ms/image" in message  # 2,330,624 MACs
    assert space.baseline in space.candidates()  # timed once as a candidate
    assert len(timed) == len(space.candidates()) + 1  # each candidate once, the fastest again
