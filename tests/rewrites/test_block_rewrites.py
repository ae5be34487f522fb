"""Block-level rewrite rules (budgetnet/rewrites/block_rules.py) and span-local proposals."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet.rewrites.block_rules import (
    BLOCK_FILTER,
    BLOCK_RULES,
    BLOCK_STRIDE,
    BLOCKS_WIDTH,
    BOTTLENECK_BLOCKS,
    CARDINALITY_WIDTH,
    STAGE_POOL,
    BottleneckBlocksRule,
    block_runs,
)
from budgetnet.cost.complexity import conv_macs
from budgetnet.errors import RewriteError
from budgetnet.rewrites import DEPTH_FILTER, RULES, Site, rewrite
from budgetnet.graph.zoo import ZOO, small_residual_notation
from search_spaces.paper import MODELS

# ResNet-50's first-stage template: 256 channels in and out on 56x56 (Xie et al. 2017, Table 2).
TEMPLATE = budgetnet.parse("res[(1,64) (3,64) (1,256)@none]", input_shape=(256, 56, 56))
# Xie et al. 2017, Table 2: cardinality C -> width of a group d (bottleneck width C * d).
TABLE2 = {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}


def test_block_rules_are_registered():
    names = [rule.name for rule in RULES]
    assert names[:5] == ["depth_filter", "depth_width", "width_filter", "add_pool", "delay_pool"]
    assert all(rule.name in names for rule in BLOCK_RULES)


@pytest.mark.parametrize("groups", [2, 4, 8, 32])
def test_cardinality_width_reproduces_resnext_table_2(groups):
    result = CARDINALITY_WIDTH.rewrite(TEMPLATE, CARDINALITY_WIDTH.find(TEMPLATE, groups=groups))
    width = groups * TABLE2[groups]
    assert result.new_layers == f"res[(1,{width}) (3,{width})g{groups} (1,256)@none]"
    # Eqn. (1) by hand: 1x1 256->w, 3x3 w->w in C groups, 1x1 w->256, all at 56x56
    assert result.replacement_macs == (256 * width + 9 * width * width // groups + width * 256) * 56 * 56
    assert result.replaced_macs == (256 * 64 + 9 * 64 * 64 + 64 * 256) * 56 * 56


def test_cardinality_one_goes_back_to_the_resnet_block():
    resnext = CARDINALITY_WIDTH.apply(TEMPLATE, CARDINALITY_WIDTH.find(TEMPLATE, groups=32))
    back = CARDINALITY_WIDTH.apply(resnext, CARDINALITY_WIDTH.find(resnext, groups=1))
    assert back == TEMPLATE and TABLE2[1] == 64


def test_block_runs_of_resnet50_follow_he_table_1():
    runs = block_runs(ZOO["resnet50"])
    assert [stop - start for _, start, stop in runs] == [3, 4, 6, 3]


def test_stride_moves_from_v1_to_v1_5():
    arch = ZOO["resnet50"]
    for stage in (3, 4, 5):
        arch = BLOCK_STRIDE.apply(arch, BLOCK_STRIDE.find(arch, stage=stage, stride_on=2))
    assert arch == ZOO["resnet50_v1.5"]


def test_stride_move_cost_by_hand():
    result = BLOCK_STRIDE.rewrite(ZOO["resnet50"], BLOCK_STRIDE.find(ZOO["resnet50"], stage=3, stride_on=2))
    # the first 1x1 (256 -> 128) now runs at 56x56 instead of 28x28; the rest is unchanged
    assert result.after_macs - result.before_macs == 256 * 128 * (56 * 56 - 28 * 28)


def test_stage_pool_removal_gives_the_stride_to_the_block_at_equal_cost():
    result = STAGE_POOL.rewrite(ZOO["resnet50"], STAGE_POOL.find(ZOO["resnet50"], pools=(1,)))
    assert result.after.notation().startswith("(7,64)/2p3bn res[(1,64)/2bn (3,64)bn (1,256)bn@none] res[")
    assert result.after_macs == result.before_macs
    # the projection shortcut is re-derived with the stride: 1x1/2 from 112 to 56
    short = [info for info in result.after.convs if info.name == "res1.short.conv1"][0]
    assert short.layer.stride == 2 and short.in_shape == (64, 112, 112) and short.out_shape == (256, 56, 56)


def test_stage_pool_insertion_then_removal_round_trips():
    arch = ZOO["resnet50"]
    inserted = STAGE_POOL.apply(arch, STAGE_POOL.find(arch, stage=3, pool_size=2))
    assert "2/2 res[(1,128)bn (3,128)bn (1,512)bn@none]" in inserted.notation()
    assert conv_macs(inserted) == conv_macs(arch)
    removed = STAGE_POOL.apply(inserted, STAGE_POOL.find(inserted, pools=(5,)))
    assert removed == arch


def test_bottleneck_blocks_solves_the_width_by_hand():
    arch = ZOO["resnet50"]
    result = BOTTLENECK_BLOCKS.rewrite(arch, BOTTLENECK_BLOCKS.find(arch, stage=2, blocks=6))

    def stage(width, blocks):  # per 56x56 pixel: first block 64 in (+ projection), then 256 in
        first = 64 * width + 9 * width * width + width * 256 + 64 * 256
        return first + (blocks - 1) * (256 * width + 9 * width * width + width * 256)

    assert result.replaced_macs == stage(64, 3) * 56 * 56
    closest = min(range(4, 129, 4), key=lambda w: abs(stage(w, 6) - stage(64, 3)))
    assert closest == 40
    assert result.new_layers == "res[(1,40)bn (3,40)bn (1,256)bn@none]x6"
    assert result.replacement_macs == stage(40, 6) * 56 * 56


def test_blocks_width_changes_the_stage_width_and_rederives_shortcuts():
    arch = ZOO["small_residual"]  # (3,16)bn, stages of 2 basic blocks, widths 16, 32, 64
    result = BLOCKS_WIDTH.rewrite(arch, BLOCKS_WIDTH.find(arch, stage=1, blocks=1))
    after = result.after
    # one block of width 24 on a 16-wide input: a projection appears; the next block's grows
    first = after.shapes[1]
    assert [info.name for info in first.inner][-1] == "res1.short.conv1"
    assert first.out_shape == (24, 16, 16)
    assert after.shapes[2].in_shape == (24, 16, 16)
    assert conv_macs(after) == result.after_macs
    assert abs(result.change) < 0.05


def test_block_filter_to_two_2x2_keeps_the_map():
    result = BLOCK_FILTER.rewrite(TEMPLATE, BLOCK_FILTER.find(TEMPLATE, kernel_size=2))
    convs = result.after.convs
    assert [info.out_shape[1] for info in convs] == [56, 55, 56, 56]
    assert result.after_macs == conv_macs(result.after)
    assert abs(result.change) < 0.05


def test_plain_rules_work_on_the_plain_part_of_a_mixed_net():
    mixed = budgetnet.parse("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3 res[(3,256) (3,256)@none] gap")
    result = DEPTH_FILTER.rewrite(mixed, DEPTH_FILTER.find(mixed, stage=3))
    assert result.after.notation() == "(7,64)/2 3/3 (5,128) 2/2 (2,256)x6 res[(3,256) (3,256)@none] gap"
    assert result.after_macs == conv_macs(result.after)
    by_hand = 256 * 9 * 256 * 18 * 18 * 2
    assert conv_macs(result.after) - conv_macs(MODELS["B"]) == by_hand  # the block's two 3x3


# -- bad input ------------------------------------------------------------------------------------
def test_block_rewrite_on_a_plain_net_is_refused():
    site = Site("cardinality_width", 3, 4, 5, "(3,256)", groups=32)
    with pytest.raises(RewriteError, match=r"cardinality_width.*layer 4 is \(3,256\), not a residual block"):
        rewrite(MODELS["A"], site)
    assert CARDINALITY_WIDTH.sites(MODELS["A"]) == []


def test_groups_that_do_not_divide_the_solved_width():
    rule = BottleneckBlocksRule(width_multiple=4)
    arch = ZOO["resnext50_32x4d"]
    with pytest.raises(RewriteError, match=r"bottleneck_blocks.*groups=32 does not divide the solved widths.*width_multiple=4"):
        rule.rewrite(arch, rule.find(arch, stage=2, blocks=6))


def test_stride_move_where_no_conv_follows():
    arch = ZOO["resnet50"]
    site = Site("block_stride", 3, 5, 6, BLOCK_STRIDE.find(arch, stage=3, stride_on=2).layers, stride_on=4)
    with pytest.raises(RewriteError, match=r"block_stride.*stride_on=4: no conv follows at body position 4, the body has 3 convs"):
        rewrite(arch, site)


def test_width_that_solves_below_1():
    arch = budgetnet.parse("(3,8) res[(1,8) (3,8) (1,8)@none] gap", input_shape=(1, 8, 8))
    site = Site("bottleneck_blocks", 1, 1, 2, "res[(1,8) (3,8) (1,8)@none]", blocks=40)
    with pytest.raises(RewriteError, match=r"bottleneck_blocks.*the bottleneck width solves below 1"):
        rewrite(arch, site)


def test_block_rules_refuse_beyond_tolerance():
    arch = ZOO["resnet50"]
    with pytest.raises(RewriteError, match=r"block_stride.*moves Eqn. \(1\) by \+11.0%.*beyond the tolerance ±5.0%"):
        BLOCK_STRIDE.rewrite(arch, BLOCK_STRIDE.find(arch, stage=3, stride_on=3), tolerance=0.05)


# -- properties -----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.sampled_from([8, 12, 16, 24]), min_size=1, max_size=3),
    blocks=st.integers(1, 3),
    choice=st.integers(0, 10_000),
)
def test_every_accepted_block_rewrite_is_a_valid_graph_with_the_reported_cost(widths, blocks, choice):
    arch = budgetnet.parse(small_residual_notation(widths, blocks), input_shape=(1, 16, 16), num_classes=10)
    sites = [site for rule in BLOCK_RULES for site in rule.sites(arch)]
    if not sites:
        return
    site = sites[choice % len(sites)]
    try:
        result = rewrite(arch, site, tolerance=None)
    except RewriteError as error:
        assert site.rule in str(error)
        return
    after = budgetnet.Arch.from_json(result.after.to_json())
    assert after == result.after
    assert conv_macs(after) == result.after_macs
    assert result.after_macs - result.before_macs == result.replacement_macs - result.replaced_macs
    assert after.feature_shape == arch.feature_shape


def test_variants_from_resnet50_match_the_rules_one_by_one():
    graph = budgetnet.variants(ZOO["small_residual"], max_steps=1, tolerance=0.05)
    assert graph.number_of_nodes() > 5
    root = graph.graph["baseline"]
    for _, child, data in graph.out_edges(root, data=True):
        result = rewrite(ZOO["small_residual"], data["site"], tolerance=None)
        assert result.after.fingerprint() == child
        assert graph.nodes[child]["macs"] == conv_macs(result.after)


def _proposal_facts(proposal):
    return (proposal.plan, proposal.before_macs, proposal.after_macs, proposal.replaced_macs,
            proposal.replacement_macs, proposal.depth_change)  # fmt: skip


def test_remembered_span_proposals_equal_fresh_ones(monkeypatch):
    # A block rule's proposal on a span of blocks is remembered by (rule, site, layers, input
    # shape) and served to other Archs with that span: it must equal a fresh proposal there.
    from budgetnet.rewrites import framework as rewrites

    base = ZOO["resnet50"]
    parent = rewrite(base, CARDINALITY_WIDTH.find(base, stage=3, groups=32), tolerance=None).after
    archs = [base, parent, parent.with_input((3, 160, 160))]
    remembered = []
    for arch in archs:
        macs = conv_macs(arch)
        for rule in BLOCK_RULES:
            for site in rule.sites(arch):
                served = rule._span_key(arch, site) in rewrites._SPAN_PROPOSALS
                try:
                    remembered.append((served, arch, rule, site, _proposal_facts(rule.propose(arch, site, macs))))
                except RewriteError:
                    pass
    assert sum(served for served, *_ in remembered) > 20  # at least the untouched stages of the parent
    monkeypatch.setattr(rewrites, "_SPAN_PROPOSALS", {})
    for served, arch, rule, site, facts in remembered:
        fresh = rule.propose(arch, site, conv_macs(arch))
        assert _proposal_facts(fresh) == facts, (rule.name, site)
        if served:
            assert fresh.after_macs == conv_macs(fresh.build())


def test_a_remembered_span_is_not_served_to_another_input_or_rule():
    stage = "res[(1,64)bn (3,64)bn (1,256)bn@none]x3"
    small = budgetnet.parse(f"(3,256) {stage}", input_shape=(3, 28, 28))
    large = budgetnet.parse(f"(3,256) {stage}", input_shape=(3, 56, 56))
    site = BOTTLENECK_BLOCKS.find(small, blocks=6)
    first = BOTTLENECK_BLOCKS.propose(small, site)
    second = BOTTLENECK_BLOCKS.propose(large, site)
    assert second.replaced_macs == 4 * first.replaced_macs  # the same span on maps twice as wide
    assert (first.after_macs, second.after_macs) == (conv_macs(first.build()), conv_macs(second.build()))
    coarse = BottleneckBlocksRule(width_multiple=32).propose(small, site)
    assert coarse.plan.layers[0].body[0].out_channels % 32 == 0
    assert first.plan.layers[0].body[0].out_channels % 32 != 0  # 40 (multiple of 4), as solved by hand above


def test_bad_rule_settings():
    with pytest.raises(RewriteError, match=r"bottleneck_blocks.*block_factors=\[\] is invalid; expected a non-empty list of numbers > 0"):
        BottleneckBlocksRule(block_factors=[])
    with pytest.raises(RewriteError, match=r"bottleneck_blocks.*width_multiple=0 is invalid; expected an integer >= 1"):
        BottleneckBlocksRule(width_multiple=0)
