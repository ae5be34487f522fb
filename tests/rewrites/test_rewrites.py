"""Tests for budgetnet.rewrites: the paper's layer replacements reproduce Tables 1-2 from A,
the cost reports match hand arithmetic, and every bad site or input is refused by name."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet.graph.arch import Arch, Conv, Pool
from budgetnet.cost.complexity import conv_macs, layer_cost
from budgetnet.errors import BudgetError, BudgetNetError, RewriteError
from budgetnet.rewrites import (
    ADD_POOL,
    DELAY_POOL,
    DEPTH_FILTER,
    DEPTH_WIDTH,
    PLAIN_RULES,
    RULES,
    WIDTH_FILTER,
    Site,
    get_rule,
    resolve_rules,
    rewrite,
    span_notation,
)
from budgetnet.rewrites.paper_rules import AddPoolRule, DepthWidthRule, WidthFilterRule
from search_spaces.paper import MODELS

# (source, target, rule, site criteria): every replacement of Sec. 4, from A alone.
DERIVATIONS = [
    ("A", "B", DEPTH_FILTER, dict(stage=3, kernel_size=2)),  # Eqn. 3
    ("A", "C", DEPTH_FILTER, dict(stage=2, kernel_size=3)),  # Eqn. 4
    ("B", "D", DEPTH_FILTER, dict(stage=2, kernel_size=3)),  # Eqn. 4
    ("B", "E", DEPTH_FILTER, dict(stage=2, kernel_size=2)),  # Eqn. 5
    ("A", "F", DEPTH_WIDTH, dict(stage=3, depth=6)),  # Eqn. 6
    ("A", "G", DEPTH_WIDTH, dict(stage=3, depth=9)),  # Eqn. 7
    ("C", "H", DEPTH_WIDTH, dict(stage=2, depth=4)),  # Eqn. 8
    ("D", "I", DEPTH_WIDTH, dict(stage=2, depth=4)),  # Eqn. 8
    ("E", "J", ADD_POOL, dict(stage=3, pool_size=3, length=2)),  # Eqn. 11
    ("B", "B'", DELAY_POOL, dict(pools=(1, 3))),  # Sec. 4.6
    ("D", "D'", DELAY_POOL, dict(pools=(1, 4))),
    ("E", "E'", DELAY_POOL, dict(pools=(1, 6))),
    ("J", "J'", DELAY_POOL, dict(pools=(1, 6, 11))),
    ("B", "F", WIDTH_FILTER, dict(stage=3, kernel_size=3)),  # Eqn. 9
    ("F", "B", WIDTH_FILTER, dict(stage=3, kernel_size=2)),
    ("E", "I", WIDTH_FILTER, dict(stage=2, kernel_size=3)),  # Eqn. 10, as Table 1 has it
    ("I", "E", WIDTH_FILTER, dict(stage=2, kernel_size=2)),
]


@pytest.mark.parametrize("source, target, rule, criteria", DERIVATIONS, ids=[f"{s}->{t}" for s, t, *_ in DERIVATIONS])
def test_rules_derive_the_paper_models(source, target, rule, criteria):
    site = rule.find(MODELS[source], **criteria)
    result = rule.rewrite(MODELS[source], site)  # within the default tolerance
    assert result.after == MODELS[target]
    assert result.before is MODELS[source]
    assert result.before_macs == conv_macs(MODELS[source])
    assert result.after_macs == conv_macs(MODELS[target])
    assert result.change == pytest.approx(conv_macs(MODELS[target]) / conv_macs(MODELS[source]) - 1)
    assert rewrite(MODELS[source], site).after == MODELS[target]  # by the site's rule name
    assert rule.apply(MODELS[source], site) == MODELS[target]
    # the new layers are written with automatic padding
    assert all(getattr(layer, "padding", None) is None for layer in result.after.layers if isinstance(layer, Conv))


def test_zoo_models_are_reached_from_a_alone():
    """A -> B -> E -> J -> J' and the rest, chaining rewrites from A only."""
    derived = {"A": MODELS["A"]}
    for source, target, rule, criteria in DERIVATIONS:
        if target not in derived and source in derived:
            derived[target] = rule.apply(derived[source], rule.find(derived[source], **criteria))
    assert set(derived) == set(MODELS)
    assert all(derived[name] == MODELS[name] for name in MODELS)


# -- cost reports against hand arithmetic (Eqn. (1): n_in * s^2 * n_out * m_out^2) ----------
def test_eqn3_cost_is_eight_ninths_up_to_the_2x2_map_shrink():
    result = rewrite(MODELS["A"], DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2))
    assert result.replaced_macs == (128 * 9 * 256 + 2 * 256 * 9 * 256) * 18**2
    # conv3 128->256 and each 256->256 become (2,256)+(2,256): maps 17 then 18 (pads 0, 1)
    cascade = lambda n_in: n_in * 4 * 256 * 17**2 + 256 * 4 * 256 * 18**2  # noqa: E731
    assert result.replacement_macs == cascade(128) + 2 * cascade(256)
    # a 256->256 layer alone: (2^2 + 2^2) / 3^2 = 8/9 at equal maps
    assert cascade(256) / (256 * 9 * 256 * 18**2) == pytest.approx(8 / 9 * (17**2 + 18**2) / (2 * 18**2))
    assert result.after_macs - result.before_macs == result.replacement_macs - result.replaced_macs
    assert f"{result.change:+.1%}" == "-3.9%"


def test_eqn4_increases_the_layer_by_eight_percent():
    result = rewrite(MODELS["A"], DEPTH_FILTER.find(MODELS["A"], stage=2, kernel_size=3))
    assert result.replaced_macs == 64 * 25 * 128 * 36**2
    assert result.replacement_macs == (64 * 9 * 128 + 128 * 9 * 128) * 36**2
    assert result.local_change == pytest.approx(1728 / 1600 - 1)  # "increasing by ~8%"


def test_eqns6_and_7_preserve_the_cost_exactly():
    for depth, width in ((6, 160), (9, 128)):
        result = rewrite(MODELS["A"], DEPTH_WIDTH.find(MODELS["A"], stage=3, depth=depth))
        by_hand = (128 * 9 * width + (depth - 2) * width * 9 * width + width * 9 * 256) * 18**2
        assert result.replacement_macs == by_hand == result.replaced_macs
        assert result.change == 0
        assert result.detail == f"width solved {width}.0 -> {width} (multiple of 32)"


def test_eqn8_width_solves_to_72_8_and_rounds_to_64():
    result = rewrite(MODELS["C"], DEPTH_WIDTH.find(MODELS["C"], stage=2, depth=4))
    # 64 w + 2 w^2 + 128 w = 64*128 + 128*128  ->  w = (-96 + sqrt(96^2 + 4*12288)) / 2 = 72.8
    assert "width solved 72.8 -> 64" in result.detail
    assert result.replacement_macs == (3 * 64 * 9 * 64 + 64 * 9 * 128) * 36**2
    assert result.local_change == pytest.approx(184320 / 221184 - 1)


def test_eqn11_widens_the_first_moved_conv_by_p_squared():
    result = rewrite(MODELS["E"], ADD_POOL.find(MODELS["E"], stage=3, pool_size=3, length=2))
    assert result.new_layers == "3/3 (2,2304) (2,256)"
    assert result.replaced_macs == 256 * 4 * 256 * (17**2 + 18**2)
    # footnote 2: the new maps are 5x5 and 6x6, so the involved cost slightly drops
    assert result.replacement_macs == 256 * 4 * 2304 * 5**2 + 2304 * 4 * 256 * 6**2
    assert result.replacement_macs < result.replaced_macs


def test_delayed_subsampling_keeps_the_cost():
    result = rewrite(MODELS["B"], DELAY_POOL.find(MODELS["B"], pools=(1, 3)))
    assert result.change == 0
    assert result.new_layers == "3/1 (5,128)/3 2/1 (2,256)/2"


def test_report_to_dict_is_json_and_str_is_readable():
    result = rewrite(MODELS["A"], DEPTH_WIDTH.find(MODELS["A"], stage=3, depth=6))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["after"] == "(7,64)/2 3/3 (5,128) 2/2 (3,160)x5 + (3,256)"
    assert data["site"] == {
        "rule": "depth_width", "stage": 3, "start": 4, "stop": 7, "layers": "(3,256)x3",
        "kernel_size": None, "count": None, "depth": 6, "pool_size": None, "pools": None,
        "groups": None, "blocks": None, "stride_on": None,
    }  # fmt: skip
    assert data["change"] == 0.0
    assert str(result) == (
        "depth_width: '(3,256)x3' -> '(3,160)x5 (3,256)' at stage 3; Eqn. (1) 855.0M -> 855.0M MACs "
        "(+0.0%; replaced layers +0.0%); width solved 160.0 -> 160 (multiple of 32)"
    )


# -- sites ---------------------------------------------------------------------------------
def test_sites_of_a():
    assert [rule for rule in RULES if rule not in PLAIN_RULES and rule.sites(MODELS["A"])] == []  # no blocks
    wheres = {rule.name: [site.where() for site in rule.sites(MODELS["A"])] for rule in PLAIN_RULES}
    assert wheres == {
        "depth_filter": [
            "stage 2 layers 2:3 '(5,128)' (kernel_size=2, count=4)",
            "stage 2 layers 2:3 '(5,128)' (kernel_size=3, count=2)",
            "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2)",
        ],
        "depth_width": [
            "stage 2 layers 2:3 '(5,128)' (depth=2)",
            "stage 2 layers 2:3 '(5,128)' (depth=3)",
            "stage 3 layers 4:7 '(3,256)x3' (depth=6)",
            "stage 3 layers 4:7 '(3,256)x3' (depth=9)",
        ],
        "width_filter": [
            "stage 3 layers 4:7 '(3,256)x3' (kernel_size=2)",
        ],
        "add_pool": [
            "stage 3 layers 5:7 '(3,256)x2' (pool_size=2)",
            "stage 3 layers 5:7 '(3,256)x2' (pool_size=3)",
        ],
        "delay_pool": [
            "stage 1 layers 1:3 '3/3 (5,128)' (pools=(1,))",
            "stage 2 layers 3:5 '2/2 (3,256)' (pools=(3,))",
            "stage 1 layers 1:5 '3/3 (5,128) 2/2 (3,256)' (pools=(1, 3))",
        ],
    }


def test_depth_filter_sites_keep_the_receptive_field():
    arch = budgetnet.parse("(7,32) 2/2 (3,32)", input_shape=(3, 32, 32))
    sites = [(s.kernel_size, s.count) for s in DEPTH_FILTER.sites(arch) if s.stage == 1]
    assert sites == [(2, 6), (3, 3), (4, 2)]  # count * (t - 1) + 1 == 7


def test_sites_skip_strided_convs_and_runs_split_at_pools():
    assert [s.where() for s in DEPTH_FILTER.sites(MODELS["B'"])] == []
    assert [s.where() for s in DEPTH_WIDTH.sites(MODELS["B'"])] == [
        "stage 3 layers 5:10 '(2,256)x5' (depth=10)",
        "stage 3 layers 5:10 '(2,256)x5' (depth=15)",
    ]
    assert DELAY_POOL.sites(MODELS["B'"]) == []


def test_site_json_round_trip_and_params():
    site = DELAY_POOL.find(MODELS["J"], pools=[1, 6, 11])
    assert Site.from_dict(json.loads(json.dumps(site.to_dict()))) == site
    assert site.params() == {"pools": (1, 6, 11)}
    assert site.length == 12


def test_rule_lookup_and_equality():
    assert get_rule("depth_width") is DEPTH_WIDTH
    assert get_rule(DEPTH_WIDTH) is DEPTH_WIDTH
    assert [rule.name for rule in resolve_rules(None)] == [
        "depth_filter", "depth_width", "width_filter", "add_pool", "delay_pool",
        "blocks_width", "bottleneck_blocks", "cardinality_width", "block_filter", "block_stride", "stage_pool",
        "mbconv_filter", "mbconv_blocks",
    ]  # fmt: skip
    assert resolve_rules("add_pool") == (ADD_POOL,)
    assert DepthWidthRule() == DEPTH_WIDTH and DepthWidthRule(depth_factors=(2,)) != DEPTH_WIDTH
    assert repr(DepthWidthRule()) == "DepthWidthRule(depth_factors=(2, 3), width_multiple=None)"
    assert all(rule.__doc__ and rule.equation for rule in RULES)
    assert budgetnet.RULES is RULES and budgetnet.rewrite is rewrite


def test_generalised_rules_on_another_stage_and_sizes():
    arch = budgetnet.parse("(3,16) 2/2 (5,32)x2 2/2 (3,64)x2 gap", input_shape=(3, 32, 32), num_classes=10)
    # 5x5 -> 2x2 cascade on stage 2, any run length
    site = DEPTH_FILTER.find(arch, stage=2, kernel_size=2)
    assert str(DEPTH_FILTER.apply(arch, site, tolerance=None)) == "(3,16) 2/2 (2,32)x8 2/2 (3,64)x2 gap"
    # depth vs width with a hand-made depth and an explicit width multiple
    hand = Site("depth_width", 3, 5, 7, "(3,64)x2", depth=3)
    result = DepthWidthRule(width_multiple=8).rewrite(arch, hand, tolerance=None)
    # 32 w + w^2 + 64 w = 32*64 + 64*64  ->  w = 43.9; 40 costs 5440 (-704), 48 costs 6912 (+768)
    assert result.new_layers == "(3,40)x2 (3,64)" and result.after.depth == 6
    assert result.detail == "width solved 43.9 -> 40 (multiple of 8)"
    # a pool inside stage 2 moving four convs: the 1st and 3rd widen by p^2
    arch4 = budgetnet.parse("(3,16) 2/2 (3,32)x5 gap", input_shape=(3, 32, 32), num_classes=10)
    site = ADD_POOL.find(arch4, stage=2, pool_size=2, length=4)
    assert str(ADD_POOL.apply(arch4, site)) == "(3,16) 2/2 (3,32) 2/2 (3,128) + (3,32) + (3,128) + (3,32) gap"


# -- bad input -----------------------------------------------------------------------------
def refused(rule, arch, site, tolerance=None) -> str:
    with pytest.raises(RewriteError) as info:
        rule.rewrite(arch, site, tolerance=tolerance)
    assert isinstance(info.value, BudgetNetError)
    assert info.value.rule == rule.name
    return str(info.value)


def test_site_from_another_arch_does_not_exist():
    site = DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2)
    message = refused(DEPTH_FILTER, MODELS["B"], site)
    assert message == (
        "rewrite depth_filter at stage 3 layers 4:7 '(3,256)x3' (kernel_size=2, count=2): the site "
        "does not exist in this Arch: layers 4:7 are '(2,256)x3', the site expects '(3,256)x3'"
    )


def test_site_out_of_range_does_not_exist():
    site = Site("depth_filter", 3, 20, 22, "(3,256)x2", kernel_size=2, count=2)
    assert "layers 20:22 are out of range; expected 0 <= start < stop <= 10" in refused(DEPTH_FILTER, MODELS["A"], site)


def test_site_in_another_stage_does_not_exist():
    site = Site("depth_filter", 2, 4, 7, "(3,256)x3", kernel_size=2, count=2)
    assert "the site does not exist in this Arch: layer 4 is in stage 3" in refused(DEPTH_FILTER, MODELS["A"], site)


def test_site_of_another_rule_is_refused():
    site = DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2)
    assert "the site belongs to rule 'depth_filter', not 'depth_width'" in refused(DEPTH_WIDTH, MODELS["A"], site)
    with pytest.raises(RewriteError, match="expected a Site"):
        rewrite(MODELS["A"], {"rule": "depth_filter"})


def test_delayed_subsampling_without_a_conv_after_the_pool():
    arch = budgetnet.parse("(3,8) 2/2 gap", input_shape=(1, 8, 8), num_classes=2)
    assert DELAY_POOL.sites(arch) == []
    site = Site("delay_pool", 1, 1, 3, "2/2 gap", pools=(1,))
    message = refused(DELAY_POOL, arch, site)
    assert message == (
        "rewrite delay_pool at stage 1 layers 1:3 '2/2 gap' (pools=(1,)): the layer after the pool at "
        "layer 1 is gap, not a conv; expected a conv to take the pool's stride"
    )
    two_pools = budgetnet.parse("(3,8) 2/2 2/2 (3,8)", input_shape=(1, 16, 16), num_classes=2)
    message = refused(DELAY_POOL, two_pools, Site("delay_pool", 1, 1, 3, "2/2x2", pools=(1,)))
    assert "is 2/2, not a conv" in message


def test_delayed_subsampling_on_a_pool_with_stride_one_or_a_strided_conv():
    message = refused(DELAY_POOL, MODELS["B'"], Site("delay_pool", 1, 1, 3, "3/1 (5,128)/3", pools=(1,)))
    assert "the pool at layer 1 already has stride 1; nothing to delay" in message
    arch = budgetnet.parse("(3,8) 2/2 (3,8)/2 gap", input_shape=(1, 16, 16), num_classes=2)
    message = refused(DELAY_POOL, arch, Site("delay_pool", 1, 1, 3, "2/2 (3,8)/2", pools=(1,)))
    assert "already has stride 2; expected a stride-1 conv" in message


def test_depth_filter_needs_a_smaller_filter_and_stride_one():
    site = Site("depth_filter", 3, 4, 7, "(3,256)x3", kernel_size=3, count=2)
    assert "layer 4 (3,256) is not larger than 3x3" in refused(DEPTH_FILTER, MODELS["A"], site)
    stem = Site("depth_filter", 1, 0, 1, "(7,64)/2", kernel_size=3, count=3)
    assert "has stride 2; the rule replaces stride-1 convs only" in refused(DEPTH_FILTER, MODELS["A"], stem)
    pool = Site("depth_filter", 1, 1, 2, "3/3", kernel_size=2, count=2)
    assert "layer 1 is 3/3, not a conv" in refused(DEPTH_FILTER, MODELS["A"], pool)
    bad = Site("depth_filter", 3, 4, 7, "(3,256)x3", kernel_size=2, count=1)
    assert "count=1 is invalid; expected an integer >= 2" in refused(DEPTH_FILTER, MODELS["A"], bad)


def test_odd_2x2_cascade_breaks_the_stage_map():
    site = Site("depth_filter", 3, 4, 7, "(3,256)x3", kernel_size=2, count=3)
    message = refused(DEPTH_FILTER, MODELS["A"], site)
    assert "breaks a shape: the map entering spp1 (layer 13) is 256x17x17, was 256x18x18" in message


def test_rewrite_that_collapses_a_map():
    site = WidthFilterRule(kernel_sizes=(7,)).find(MODELS["A"], stage=3)
    message = refused(WIDTH_FILTER, MODELS["A"], site)
    assert message.startswith("rewrite width_filter at stage 3 layers 4:7 '(3,256)x3' (kernel_size=7): collapses a map:")
    assert "would shrink below 1 pixel" in message


def test_width_that_solves_to_zero():
    arch = budgetnet.parse("(3,8)x2 gap", input_shape=(1, 8, 8), num_classes=2)
    site = DEPTH_WIDTH.find(arch, stage=1, depth=4)
    # 1*w + 2*w^2 + w*8 = 1*8 + 8*8  ->  w = 4.2, below half the multiple 32
    message = refused(DepthWidthRule(width_multiple=32), arch, site)
    assert message == (
        "rewrite depth_width at stage 1 layers 0:2 '(3,8)x2' (depth=4): the new width solves to 4.2, "
        "which rounds to 0 at a width multiple of 32; expected a width of at least 16 (use a smaller "
        "width_multiple or fewer new layers)"
    )
    assert DEPTH_WIDTH.rewrite(arch, site, tolerance=None).detail == "width solved 4.2 -> 8 (multiple of 8)"


def test_rounding_beyond_the_tolerance_is_refused():
    site = DEPTH_WIDTH.find(MODELS["C"], stage=2, depth=4)
    message = refused(DEPTH_WIDTH, MODELS["C"], site, tolerance=0.05)
    assert message == (
        "rewrite depth_width at stage 2 layers 2:4 '(3,128)x2' (depth=4): moves Eqn. (1) by -5.5% "
        "(876.2M -> 828.4M MACs) (width solved 72.8 -> 64 (multiple of 32)), beyond the tolerance ±5.0%"
    )
    assert DEPTH_WIDTH.apply(MODELS["C"], site, tolerance=0.06) == MODELS["H"]


def test_depth_width_and_width_filter_site_conditions():
    site = Site("depth_width", 3, 4, 7, "(3,256)x3", depth=3)
    assert "depth=3 is invalid; expected an integer >= 4" in refused(DEPTH_WIDTH, MODELS["A"], site)
    mixed = Site("depth_width", 2, 2, 6, "(2,128)x4", depth=8)
    assert mixed.layers == span_notation(MODELS["E"].layers[2:6])
    arch = budgetnet.parse("(3,16) (5,16) gap", input_shape=(1, 8, 8), num_classes=2)
    message = refused(DEPTH_WIDTH, arch, Site("depth_width", 1, 0, 2, "(3,16) (5,16)", depth=4))
    assert "different filter sizes; expected one filter size" in message
    one = Site("width_filter", 2, 2, 3, "(5,128)", kernel_size=3)
    assert "needs at least 2 convs" in refused(WIDTH_FILTER, MODELS["A"], one)
    same = Site("width_filter", 3, 4, 7, "(3,256)x3", kernel_size=3)
    assert "kernel_size=3 is the current filter size; expected another" in refused(WIDTH_FILTER, MODELS["A"], same)


def test_add_pool_conditions():
    everything = Site("add_pool", 3, 4, 7, "(3,256)x3", pool_size=3)
    assert "at least one conv must stay in the stage" in refused(ADD_POOL, MODELS["A"], everything)
    middle = Site("add_pool", 3, 5, 6, "(3,256)", pool_size=3)
    assert "layer 6 is a conv of the same stage; expected the site to end its stage" in refused(ADD_POOL, MODELS["A"], middle)
    flat = budgetnet.parse("(3,8)x3 flat", input_shape=(1, 8, 8), num_classes=2)
    message = refused(ADD_POOL, flat, ADD_POOL.find(flat, stage=1, pool_size=2))
    assert message.endswith("breaks a shape: the head gets 128 features instead of 512 (map 8x4x4, was 8x8x8)")


def test_tolerance_below_zero_is_a_budget_error():
    site = DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2)
    with pytest.raises(BudgetError, match=r"tolerance=-0.1 is invalid; expected a number >= 0 or None"):
        DEPTH_FILTER.rewrite(MODELS["A"], site, tolerance=-0.1)


def test_unknown_rules_and_bad_parameters():
    with pytest.raises(RewriteError, match="rewrite rule 'shrink': unknown rule; expected one of depth_filter, "):
        get_rule("shrink")
    with pytest.raises(RewriteError, match="no rules given"):
        resolve_rules([])
    with pytest.raises(RewriteError, match=r"depth_factors=\(1,\) is invalid; expected a non-empty list of integers >= 2"):
        DepthWidthRule(depth_factors=(1,))
    with pytest.raises(RewriteError, match="width_multiple=0 is invalid; expected an integer >= 1"):
        WidthFilterRule(width_multiple=0)
    with pytest.raises(RewriteError, match=r"pool_sizes=\(\) is invalid"):
        AddPoolRule(pool_sizes=())
    with pytest.raises(RewriteError, match="no site with stage=5 in"):
        DEPTH_FILTER.find(MODELS["A"], stage=5)
    with pytest.raises(RewriteError, match="2 sites with stage=3 in"):
        ADD_POOL.find(MODELS["A"], stage=3)
    with pytest.raises(RewriteError, match=r"rewrite rule 'add_pool': site has unknown fields \['size'\]"):
        Site.from_dict({"rule": "add_pool", "stage": 3, "start": 5, "stop": 7, "layers": "", "size": 2})
    with pytest.raises(RewriteError, match=r"site=\[\] is invalid; expected an object with fields \['rule', 'stage'"):
        Site.from_dict([])
    with pytest.raises(RewriteError, match="is not an Arch"):
        DEPTH_FILTER.rewrite("(3,256)", DEPTH_FILTER.find(MODELS["A"], stage=3, kernel_size=2))
    with pytest.raises(RewriteError, match="rewrite rule 'add_pool': arch='A' is not an Arch"):
        ADD_POOL.find("A", stage=3)


# -- property: every accepted rewrite is a valid Arch whose cost is what the report says -----
@st.composite
def small_archs(draw):
    layers = []
    stages = draw(st.integers(2, 3))
    for stage in range(stages):
        for _ in range(draw(st.integers(1, 3))):
            kernel = draw(st.sampled_from([3, 3, 5, 2]))
            width = draw(st.sampled_from([8, 16, 24]))
            layers += [Conv(kernel, width)] * (2 if kernel == 2 else 1)
        if stage < stages - 1:
            layers.append(Pool(2))
    head = draw(st.sampled_from(["spp", "gap"]))
    return budgetnet.parse(
        " ".join(budgetnet.graph.printing.format_layer(layer) for layer in layers) + f" {head}",
        input_shape=(3, 32, 32),
        num_classes=10,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=small_archs())
def test_every_accepted_rewrite_is_valid_and_reported_exactly(arch):
    for rule in RULES:
        for site in rule.sites(arch):
            try:
                result = rule.rewrite(arch, site, tolerance=None)
            except RewriteError as error:
                assert str(error).startswith(f"rewrite {rule.name} at {site.where()}: ")
                continue
            after = result.after
            assert isinstance(after, Arch) and after == Arch.from_dict(after.to_dict())
            assert result.before_macs == conv_macs(arch) and result.after_macs == conv_macs(after)
            assert result.change == result.after_macs / result.before_macs - 1
            new_stop = site.start + len(after.layers) - len(arch.layers) + site.length
            assert after.layers[: site.start] == arch.layers[: site.start]
            assert after.layers[new_stop:] == arch.layers[site.stop :]
            assert result.replaced_macs == sum(layer_cost(i).macs for i in arch.convs if site.start <= i.index < site.stop)
            assert result.replacement_macs == sum(
                layer_cost(i).macs for i in after.convs if site.start <= i.index < new_stop
            )
            assert after.shapes[-1].out_shape == arch.shapes[-1].out_shape
            # accepted at its own change, refused just below it
            assert rule.apply(arch, site, tolerance=abs(result.change)) == after
            if abs(result.change) > 1e-9:
                with pytest.raises(RewriteError, match="beyond the tolerance"):
                    rule.rewrite(arch, site, tolerance=abs(result.change) * 0.999)
