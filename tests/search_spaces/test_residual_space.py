"""Residual stage spaces (search_spaces/residual.py) and residual baselines for the replacement space."""

import optuna
import pytest
from optuna.samplers import RandomSampler
from optuna.trial import FixedTrial

from budgetnet.cost.complexity import conv_macs
from budgetnet.errors import BudgetError, SearchError
from budgetnet.graph.zoo import get
from search_spaces.base import get_space
from search_spaces.residual import BlockChoice, Residual224Space, ResidualSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space, n, seed=0):
    study = optuna.create_study(sampler=RandomSampler(seed=seed))
    return [space.suggest(study.ask()) for _ in range(n)]


def test_residual_space_defaults_to_the_small_residual_budget():
    space = get_space("residual")
    assert isinstance(space, ResidualSpace) and space.name == "residual"
    assert space.input_shape == (1, 16, 16) and space.num_classes == 10
    assert space.budget.target_macs == conv_macs(get("small_residual"))
    space.check()


def test_residual_trials_are_valid_and_within_budget():
    space = get_space("residual")
    archs = sample(space, 12)
    for arch in archs:
        assert space.budget.admits(arch)
        assert arch.feature_shape == (64, 4, 4)
    blocks = {info.layer.body[-1].activation for arch in archs for info in arch.shapes if info.kind == "res"}
    assert blocks == {"none"}


def test_fixed_choices_give_the_widest_admitted_width():
    space = ResidualSpace()
    params = {
        "stage1_block": "bottleneck", "stage1_blocks": 2, "stage1_kernel": 3, "stage1_groups": 2,
        "stage2_block": "inverted", "stage2_blocks": 1, "stage2_kernel": 5, "stage2_stride_on": "spatial",
        "stage3_block": "basic", "stage3_blocks": 3, "stage3_kernel": 3, "stage3_groups": 1,
    }  # fmt: skip
    arch = space.suggest(FixedTrial(params))
    inverted = arch.layers[3]  # stem, 2 bottlenecks, then stage 2's one inverted block
    expand, depthwise, project = inverted.body
    assert (expand.stride, depthwise.stride, depthwise.depthwise, depthwise.kernel_size) == (1, 2, True, 5)
    assert expand.out_channels == depthwise.out_channels and project.out_channels == 32
    assert inverted.activation == "none" and arch.layers[1].body[1].groups == 2
    assert space.budget.admits(arch)
    choices = (
        BlockChoice("bottleneck", 2, 3, 2, "first"),
        BlockChoice("inverted", 1, 5, 1, "spatial"),
        BlockChoice("basic", 3, 3, 1, "first"),
    )
    k = next(k for k in range(1, 200) if space.build(choices, k) == arch)
    assert not space.budget.admits(space.build(choices, k + 1))


def test_block_notation_by_hand():
    space = ResidualSpace()
    arch = space.build([BlockChoice("bottleneck", 1, 3, 2, "spatial")] * 3, 4)
    # inner widths k * unit * 2^(N-1) = 8, 16, 32; the stride on the 3x3 of stages 2 and 3
    assert str(arch) == (
        "(3,16)bn res[(1,8)bn (3,8)g2bn (1,16)bn@none] res[(1,16)bn (3,16)/2g2bn (1,32)bn@none] "
        "res[(1,32)bn (3,32)/2g2bn (1,64)bn@none] gap"
    )


def test_residual224_smoke_suggest():
    space = get_space("residual224")
    assert isinstance(space, Residual224Space) and space.input_shape == (3, 224, 224)
    assert space.budget.target_macs == conv_macs(get("resnet50_v1.5"))
    for arch in sample(space, 3):
        assert space.budget.admits(arch) and arch.feature_shape == (2048, 7, 7)


def test_budget_below_the_cheapest_candidate():
    with pytest.raises(BudgetError, match=r"residual space: budget .* is below the cheapest candidate"):
        ResidualSpace(budget="10K").check()


def test_groups_must_divide_the_stage_widths():
    with pytest.raises(SearchError, match=r"residual space: groups=3 does not divide the stage widths \[16, 32, 64\]"):
        ResidualSpace(groups=(1, 3))


def test_replacement_space_takes_a_residual_baseline():
    space = get_space("replacement", baseline=get("small_residual"))
    space.check()
    rules = {space.graph.edges[edge]["rule"] for edge in space.graph.edges}
    assert {"bottleneck_blocks", "stage_pool"} <= rules
    for arch in sample(space, 4):
        assert space.budget.admits(arch)


def test_a_time_budget_below_the_cheapest_candidate_says_the_times_in_ms(monkeypatch):
    """Issue 20: a time budget is checked too, in measured ms (injected here: nothing is timed)."""
    from budgetnet.cost import latency
    from budgetnet.cost.budgets import LatencyBudget

    def fake_measure(arch, *args, **kwargs):
        return latency.Measurement(4.0, 4.0, 1, "cpu", "forward", 3, (4.0, 4.0, 4.0), arch.input_shape, "float32")

    monkeypatch.setattr(latency, "measure", fake_measure)
    space = ResidualSpace(budget=LatencyBudget(1.0, "cpu"))
    cheapest = space.build(space.smallest(), 1)
    with pytest.raises(BudgetError) as error:
        space.check()
    assert str(error.value).startswith(
        f"budget 1 ms/image on cpu (forward, batch 1) ±5.0% is below every candidate of the residual space: the "
        f"cheapest by Eqn. (1), {cheapest}, measured 4 ms/image, median of 3 runs (middle half 4-4 ms, all 4-4 ms), "
        f"and 4 ms/image, median of 3 runs (middle half 4-4 ms, all 4-4 ms) when timed again, and the baseline"
    )
    assert "expected a time budget of at least 4 ms/image (its faster median)" in str(error.value)
