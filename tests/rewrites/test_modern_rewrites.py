"""Rewrites on today's CNNs: the MBConv rules, every rule on the modern zoo, and rewrites that
keep what a layer is (norm, BN settings, activation, dilation) on random BN/activation nets."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet.errors import RewriteError
from budgetnet.graph.layers import Act, ChannelConv, Conv, Gate, GlobalPool, Norm, Residual
from budgetnet.graph.zoo import ZOO
from budgetnet.rewrites import (
    BLOCK_FILTER,
    CARDINALITY_WIDTH,
    DEPTH_FILTER,
    DEPTH_WIDTH,
    MBCONV_BLOCKS,
    MBCONV_FILTER,
    RULES,
    Site,
)
from budgetnet.rewrites.inverted_rules import MBConvBlocksRule, MBConvFilterRule, make_divisible, mbconv_stages
from budgetnet.rewrites.roles import KEPT_ATTRIBUTES, derive
from budgetnet.rewrites.explore import records

MODERN = ("efficientnet_b0", "mobilenet_v3_large", "regnet_y_400mf", "convnext_tiny", "mobilenet_v2")


def refused(rule, arch, site, **kwargs) -> str:
    with pytest.raises(RewriteError) as info:
        rule.rewrite(arch, site, **kwargs)
    return str(info.value)


def kinds(arch):
    """The kept attributes of every conv off the shortcuts, and the standalone norms/activations."""
    convs = {tuple(getattr(info.layer, name) for name in KEPT_ATTRIBUTES) for info in arch.convs if not info.shortcut}
    leaves = [layer for info in arch.walk() for layer in [info.layer] if isinstance(layer, (Norm, Act))]
    adds = {info.layer.activation for info in arch.walk() if isinstance(info.layer, Residual)}
    return convs, leaves, adds


# -- every rule on every modern net ---------------------------------------------------------------
@pytest.mark.parametrize("name", MODERN)
def test_every_rule_on_modern_nets_gives_valid_archs_or_names_why(name):
    arch = ZOO[name]
    before = kinds(arch)
    for rule in RULES:
        for site in rule.sites(arch):
            try:
                result = rule.rewrite(arch, site, tolerance=None)
            except RewriteError as error:
                assert str(error).startswith(f"rewrite {rule.name} at ") and error.reason
                continue
            assert result.after.shapes[-1].out_shape == arch.shapes[-1].out_shape
            assert kinds(result.after)[0] <= before[0] and kinds(result.after)[1:] == before[1:]
            assert abs(result.change) < 0.05, (rule.name, site.label(), result.change)


def test_which_rules_apply_to_which_net():
    applied = {name: sorted({rule.name for rule in RULES if rule.sites(ZOO[name])}) for name in MODERN}
    assert applied == {
        "efficientnet_b0": ["mbconv_blocks", "mbconv_filter"],
        "mobilenet_v3_large": ["mbconv_blocks", "mbconv_filter"],
        "mobilenet_v2": ["mbconv_blocks", "mbconv_filter"],
        "regnet_y_400mf": [],
        "convnext_tiny": [],
    }
    # a residual net keeps its block rules, and a plain net with BN and SiLU its paper rules
    assert "cardinality_width" in {rule.name for rule in RULES if rule.sites(ZOO["resnet50"])}


# -- MBConv: depthwise 3x3 <-> 5x5 at equal cost ---------------------------------------------------
def mbconv_macs(in_channels, hidden, out_channels, kernel, squeeze, size_in, size_out, expand=True):
    """Eqn. (1) of one MBConv unit, by hand: 1x1 expansion on the input map, depthwise kxk
    (one input channel per group) on the output map, the gate's two 1x1 convs on 1x1, the 1x1
    projection on the output map."""
    total = in_channels * hidden * size_in**2 if expand else 0
    total += kernel**2 * hidden * size_out**2
    total += hidden * squeeze + squeeze * hidden
    return total + hidden * out_channels * size_out**2


def test_mbconv_filter_efficientnet_stage_of_40_trades_5x5_for_3x3_at_equal_cost():
    arch = ZOO["efficientnet_b0"]
    site = MBCONV_FILTER.find(arch, start=9, kernel_size=3)
    assert site.layers.startswith("(1,144)bn@silu (5,144)/2p2dwbn@silu gate[gpool (1,6)@silu (1,144)@sigmoid]")
    result = MBCONV_FILTER.rewrite(arch, site)
    assert result.new_layers == (
        "(1,168)bn@silu (3,168)/2p1dwbn@silu gate[gpool (1,6)@silu (1,168)@sigmoid] (1,40)bn@none "
        "res[(1,280)bn@silu (3,280)dwbn@silu gate[gpool (1,10)@silu (1,280)@sigmoid] (1,40)bn@none droppath(0.05)]@none"
    )
    # the squeeze widths (6 = 24/4, 10 = 40/4: a quarter of each block's input) are untouched
    old = budgetnet.complexity(arch).conv_macs
    new = budgetnet.complexity(result.after).conv_macs
    by_hand_old = mbconv_macs(24, 144, 40, 5, 6, 56, 28) + mbconv_macs(40, 240, 40, 5, 10, 28, 28)
    by_hand_new = mbconv_macs(24, 168, 40, 3, 6, 56, 28) + mbconv_macs(40, 280, 40, 3, 10, 28, 28)
    assert new - old == by_hand_new - by_hand_old == result.after_macs - result.before_macs
    assert abs(by_hand_new / by_hand_old - 1) < 0.02 and abs(result.change) < 0.005
    # and back: 3x3 -> 5x5 returns to widths near the original
    back = MBCONV_FILTER.rewrite(result.after, MBCONV_FILTER.find(result.after, start=9, kernel_size=5))
    assert back.detail == "hidden widths 168, 280 -> 144, 240 (scale 0.86, multiples of 8)"
    assert back.after == arch


def test_mbconv_filter_keeps_the_gate_rule_of_mobilenet_v3():
    arch = ZOO["mobilenet_v3_large"]
    result = MBCONV_FILTER.rewrite(arch, MBCONV_FILTER.find(arch, start=12, kernel_size=5))
    for stage in mbconv_stages(result.after):
        for unit in stage.units:
            if unit.gate is not None:
                squeeze = [c for c in unit.gate.body if isinstance(c, Conv)]
                assert squeeze[0].out_channels == make_divisible(unit.hidden / 4)
                assert squeeze[1].out_channels == unit.hidden
    assert abs(result.change) < 0.01
    # the stage of 40 at 3x3, against Eqn. (1) by hand (squeezes: make_divisible(72/4) = 24 and
    # make_divisible(120/4) = 32 before, make_divisible(80/4) = 24 and make_divisible(136/4) = 32 after)
    trade = MBCONV_FILTER.rewrite(arch, MBCONV_FILTER.find(arch, start=6, kernel_size=3))
    assert trade.detail == "hidden widths 72, 120, 120 -> 80, 136, 136 (scale 1.13, multiples of 8)"
    by_hand_old = mbconv_macs(24, 72, 40, 5, 24, 56, 28) + 2 * mbconv_macs(40, 120, 40, 5, 32, 28, 28)
    by_hand_new = mbconv_macs(24, 80, 40, 3, 24, 56, 28) + 2 * mbconv_macs(40, 136, 40, 3, 32, 28, 28)
    old, new = budgetnet.complexity(arch).conv_macs, budgetnet.complexity(trade.after).conv_macs
    # the stage moves by -2.7%: a step of 8 in the hidden widths moves it by about 5%
    assert new - old == by_hand_new - by_hand_old and abs(by_hand_new / by_hand_old - 1) < 0.03
    # every BN keeps eps=0.001, momentum=0.01, every activation stays
    assert kinds(result.after)[0] <= kinds(arch)[0]
    assert all(c.norm_eps == 1e-3 for c in (i.layer for i in result.after.convs) if c.norm)


# -- ECA gates (no width of their own) -------------------------------------------------------------
ECA = "gate[gpool chconv(3) sigmoid]"
ECA_GATE = Gate((GlobalPool(), ChannelConv(3), Act("sigmoid")))


def eca_mbconv_macs(in_channels, hidden, out_channels, kernel, size_in, size_out):
    """Eqn. (1) of one MBConv unit with an ECA gate, by hand: as :func:`mbconv_macs`, the gate's
    conv along the channels counting its 3 taps per channel on 1x1 (3 * hidden), not a squeeze."""
    return mbconv_macs(in_channels, hidden, out_channels, kernel, 0, size_in, size_out) + 3 * hidden


def test_mbconv_rules_leave_an_eca_gate_as_it_is_and_count_its_conv():
    arch = budgetnet.parse(
        f"(3,16)/2bn@silu (1,48)bn@silu (5,48)/2p2dwbn@silu {ECA} (1,40)bn@none "
        f"res[(1,160)bn@silu (5,160)dwbn@silu {ECA} (1,40)bn@none]x2 gap", input_shape=(3, 32, 32), num_classes=10
    )  # fmt: skip
    result = MBCONV_FILTER.rewrite(arch, MBCONV_FILTER.find(arch, start=1, kernel_size=3))
    gates = [info.layer for info in result.after.walk() if isinstance(info.layer, Gate)]
    assert gates == [ECA_GATE] * 3  # nothing in it to rescale: it gates the new hidden widths
    units = mbconv_stages(result.after)[0].units
    first, rest = units[0].hidden, units[1].hidden
    assert [u.kernel_size for u in units] == [3] * 3 and [u.hidden for u in units] == [first, rest, rest]
    assert first > 48 and rest > 160  # a 3x3 instead of a 5x5: wider, at the same cost
    # maps: 16 after the stem, 8 after the strided depthwise conv
    by_hand_old = eca_mbconv_macs(16, 48, 40, 5, 16, 8) + 2 * eca_mbconv_macs(40, 160, 40, 5, 8, 8)
    by_hand_new = eca_mbconv_macs(16, first, 40, 3, 16, 8) + 2 * eca_mbconv_macs(40, rest, 40, 3, 8, 8)
    stem = 3 * 9 * 16 * 16 * 16
    assert budgetnet.complexity(arch).conv_macs == stem + by_hand_old
    assert budgetnet.complexity(result.after).conv_macs == stem + by_hand_new
    assert result.after_macs - result.before_macs == by_hand_new - by_hand_old
    assert abs(by_hand_new / by_hand_old - 1) < 0.05
    blocks = MBCONV_BLOCKS.rewrite(arch, MBCONV_BLOCKS.find(arch, start=1, blocks=2))
    assert [info.layer for info in blocks.after.walk() if isinstance(info.layer, Gate)] == [ECA_GATE] * 2


def test_variants_of_nets_with_eca_gates_in_residual_and_inverted_residual_blocks():
    residual = budgetnet.parse(f"(3,32)bn res[(1,16)bn (3,16)bn (1,32)bn@none {ECA}]x2 2/2 "
                               f"res[(1,32)bn (3,32)bn (1,64)bn@none {ECA}]x2 gap", input_shape=(3, 32, 32))  # fmt: skip
    inverted = budgetnet.parse(
        f"(3,16)/2bn@silu (1,64)bn@silu (3,64)/2p1dwbn@silu {ECA} (1,24)bn@none "
        f"res[(1,96)bn@silu (3,96)dwbn@silu {ECA} (1,24)bn@none]x2 (1,48)bn@silu (5,48)/2p2dwbn@silu {ECA} "
        f"(1,40)bn@none res[(1,160)bn@silu (5,160)dwbn@silu {ECA} (1,40)bn@none]x2 gap", input_shape=(3, 32, 32)
    )  # fmt: skip
    rows = records(budgetnet.variants(inverted, max_steps=2))
    assert len(rows) > 10 and {"mbconv_filter", "mbconv_blocks"} <= {step for row in rows for step in row["path"]}
    for row in rows:
        after = budgetnet.parse(row["notation"], input_shape=(3, 32, 32))
        assert {info.layer for info in after.walk() if isinstance(info.layer, Gate)} == {ECA_GATE}
        assert 0.95 <= row["ratio"] <= 1.05
    # the block rules take no gated block (as with squeeze-excitation) and each says why
    index = 1
    for rule in (BLOCK_FILTER, CARDINALITY_WIDTH):
        site = Site(rule.name, 1, index, index + 1, budgetnet.rewrites.span_notation([residual.layers[index]]),
                    kernel_size=5, groups=2)  # fmt: skip
        assert "a body that is not all convs (a gate" in refused(rule, residual, site)
    # every rule finds the sites it finds with squeeze-excitation gates in their place
    se = budgetnet.parse(str(residual).replace(ECA + "]x2 2/2", "gate[gpool (1,8) (1,32)@sigmoid]]x2 2/2")
                         .replace(ECA + "]x2 gap", "gate[gpool (1,16) (1,64)@sigmoid]]x2 gap"), input_shape=(3, 32, 32))
    assert [info.layer.body[1].kind for info in se.walk() if info.kind == "gate"] == ["conv"] * 4
    assert [info.layer for info in residual.walk() if info.kind == "gate"] == [ECA_GATE] * 4
    for rule in RULES:
        assert [site.label() for site in rule.sites(residual)] == [site.label() for site in rule.sites(se)], rule.name
    for row in records(budgetnet.variants(residual, max_steps=2)):
        after = budgetnet.parse(row["notation"], input_shape=(3, 32, 32))
        assert [info.layer for info in after.walk() if info.kind == "gate"] == [ECA_GATE] * 4


# -- MBConv: expansion ratio vs blocks per stage ---------------------------------------------------
def test_mbconv_blocks_efficientnet_more_blocks_smaller_expansion():
    arch = ZOO["efficientnet_b0"]
    result = MBCONV_BLOCKS.rewrite(arch, MBCONV_BLOCKS.find(arch, start=26, blocks=8))
    assert result.detail.endswith("(scale 0.50, multiples of 8)")
    new = result.after.layers[26 : 26 + 4 + 7]
    blocks = [layer for layer in new if isinstance(layer, Residual)]
    assert len(blocks) == 7
    rates = [block.body[-1].rate for block in blocks]
    assert rates[:3] == [0.15000000000000002, 0.1625, 0.17500000000000002] and set(rates[3:]) == {rates[2]}
    gates = [layer for block in blocks for layer in block.body if isinstance(layer, Gate)]
    assert {gate.body[1].out_channels for gate in gates} == {48}  # 192 / 4: the block's input
    assert {gate.body[2].out_channels for gate in gates} == {576}
    assert abs(result.change) < 0.01


def test_mbconv_blocks_fewer_blocks_larger_expansion_ends_on_the_main_chain():
    arch = ZOO["efficientnet_b0"]
    result = MBCONV_BLOCKS.rewrite(arch, MBCONV_BLOCKS.find(arch, start=9, blocks=1))
    assert result.new_layers == "(1,304)bn@silu (5,304)/2p2dwbn@silu gate[gpool (1,6)@silu (1,304)@sigmoid] (1,40)bn@none"
    assert abs(result.change) < 0.01 and result.after.depth == arch.depth - 5  # 3 convs and the gate's 2


# -- refusals ----------------------------------------------------------------------------------------
def test_mbconv_rules_refuse_bad_sites_and_parameters():
    eff = ZOO["efficientnet_b0"]
    site = MBCONV_FILTER.find(eff, start=9, kernel_size=3)
    assert refused(MBCONV_FILTER, eff, Site("mbconv_filter", 1, 9, 14, site.layers, kernel_size=5)).endswith(
        "kernel_size=5 is the stage's depthwise size already; expected another"
    )
    assert "kernel_size=4 is even" in refused(MBCONV_FILTER, eff, Site("mbconv_filter", 1, 9, 14, site.layers, kernel_size=4))
    assert "kernel_size=None is invalid" in refused(MBCONV_FILTER, eff, Site("mbconv_filter", 1, 9, 14, site.layers))
    blocks = Site("mbconv_blocks", 1, 9, 14, site.layers, blocks=2)
    assert "blocks=2 is the stage's count already" in refused(MBCONV_BLOCKS, eff, blocks)
    resnet = ZOO["resnet50"]
    first = BLOCK_FILTER.sites(resnet)[0]
    message = refused(MBCONV_FILTER, resnet, Site("mbconv_filter", first.stage, first.start, first.stop, first.layers, kernel_size=5))
    assert message.startswith("rewrite mbconv_filter at ") and "are not one inverted-residual stage" in message
    with pytest.raises(RewriteError, match=r"kernel_sizes=\(\) is invalid"):
        MBConvFilterRule(kernel_sizes=())
    with pytest.raises(RewriteError, match=r"block_factors=\[0\] is invalid; expected a non-empty list of numbers > 0"):
        MBConvBlocksRule(block_factors=[0])
    with pytest.raises(RewriteError, match=r"width_multiple=0 is invalid; expected an integer >= 1"):
        MBConvFilterRule(width_multiple=0)


def test_mbconv_filter_refuses_a_padding_it_cannot_rewrite():
    arch = budgetnet.parse(
        "(3,16)/2 (1,64) (3,64)/2p0dw (1,24)@none res[(1,96) (3,96)dw (1,24)@none]@none gap",
        input_shape=(3, 32, 32), num_classes=10,
    )  # fmt: skip
    (site,) = MBCONV_FILTER.sites(arch)
    assert refused(MBCONV_FILTER, arch, site).endswith(
        "the depthwise conv (3,64)/2p0dw has a written padding=0, not the 'same' padding 1 of its 3x3 kernel; "
        "expected a 'same' or automatic padding to rewrite for the new size"
    )
    (fewer, more) = MBCONV_BLOCKS.sites(arch)
    # the blocks rule keeps the kernel, so that padding stays as written
    assert str(MBCONV_BLOCKS.apply(arch, more)) == "(3,16)/2 + (1,32) + (3,32)/2p0dw + (1,24)@none res[(1,48) (3,48)dw (1,24)@none]@nonex3 gap"
    assert str(MBCONV_BLOCKS.apply(arch, fewer)) == "(3,16)/2 + (1,112) + (3,112)/2p0dw + (1,24)@none gap"


@pytest.mark.parametrize("name", MODERN + ("resnet50",))
def test_hand_made_sites_anywhere_apply_soundly_or_are_refused_by_name(name):
    """Every rule at spans of 1-3 layers all along the net, with sound and with bad parameters
    (this found block_stride and stage_pool unpacking a span of several blocks, and
    blocks_width indexing an empty run)."""
    arch = ZOO[name]
    for rule in RULES:
        for start in range(0, len(arch.layers) - 1, 2):
            for stop in range(start + 1, min(start + 4, len(arch.layers))):
                layers = budgetnet.rewrites.span_notation(arch.layers[start:stop])
                for params in (
                    dict(kernel_size=3, count=2, depth=2 * (stop - start), pool_size=2, pools=(start,), groups=2, blocks=2, stride_on=1),
                    dict(kernel_size=4, count=0, depth=1, pool_size=1, pools=(), groups=0, blocks=0, stride_on=9),
                ):  # fmt: skip
                    site = Site(rule.name, arch.shapes[start].stage, start, stop, layers, **params)
                    try:
                        result = rule.rewrite(arch, site, tolerance=None)
                    except RewriteError as error:
                        assert str(error).startswith(f"rewrite {rule.name} at stage ") and error.reason
                        continue
                    assert result.after.feature_shape[0] == arch.feature_shape[0]
                    assert kinds(result.after)[0] <= kinds(arch)[0]


def test_block_and_plain_rules_refuse_todays_blocks_naming_why():
    eff = ZOO["efficientnet_b0"]
    end = len(eff.layers) - 1  # the head's gap
    head = Site("depth_width", 1, end - 2, end, "(1,320)bn@none (1,1280)bn@silu", depth=4)
    assert "is not a plain conv" in refused(DEPTH_WIDTH, eff, head)
    index = next(i for i, layer in enumerate(eff.layers) if isinstance(layer, Residual))
    site = Site("block_filter", 1, index, index + 1, budgetnet.rewrites.span_notation([eff.layers[index]]), kernel_size=5)
    assert "written shortcut or a body that is not all convs (a gate" in refused(BLOCK_FILTER, eff, site)
    v2 = ZOO["mobilenet_v2"]
    index = next(i for i, layer in enumerate(v2.layers) if isinstance(layer, Residual))
    site = Site("block_filter", 1, index, index + 1, budgetnet.rewrites.span_notation([v2.layers[index]]), kernel_size=5)
    assert "is an inverted residual (a depthwise conv in its body)" in refused(BLOCK_FILTER, v2, site)
    regnet = ZOO["regnet_y_400mf"]
    site = Site("cardinality_width", regnet.shapes[1].stage, 1, 2, budgetnet.rewrites.span_notation([regnet.layers[1]]), groups=2)
    assert "not all convs (a gate, norm, scale or droppath)" in refused(CARDINALITY_WIDTH, regnet, site)
    mixed = budgetnet.parse("(3,8)bn (3,8)bn@silu gap", input_shape=(3, 16, 16), num_classes=10)
    site = Site("depth_width", 1, 0, 2, "(3,8)bn (3,8)bn@silu", depth=4)
    assert "differ in norm, BN eps/momentum, activation or dilation" in refused(DEPTH_WIDTH, mixed, site)
    assert DEPTH_WIDTH.sites(mixed) and all(s.stop - s.start == 1 for s in DEPTH_WIDTH.sites(mixed))


# -- the paper's rules keep what a layer is --------------------------------------------------------
def test_paper_rules_keep_bn_activation_eps_and_dilation():
    arch = budgetnet.parse("(7,64)/2bn 3/3 (5,128)bn(eps=0.001,momentum=0.01)@silu 2/2 (3,256)bn@hardswishx3")
    result = DEPTH_FILTER.rewrite(arch, DEPTH_FILTER.find(arch, stage=3, kernel_size=2))
    assert result.new_layers == "(2,256)bn@hardswishx6"
    result = DEPTH_FILTER.rewrite(arch, DEPTH_FILTER.find(arch, stage=2, kernel_size=3))
    assert result.new_layers == "(3,128)bn(eps=0.001,momentum=0.01)@silux2"
    dilated = Conv(3, 64, dilation=2, norm="batch", activation="gelu")
    assert derive(dilated, out_channels=32, stride=2) == Conv(3, 32, 2, None, dilation=2, norm="batch", activation="gelu")


ACTIVATION = st.sampled_from(["relu", "relu6", "silu", "hardswish", "gelu", "leaky_relu(0.2)", "none"])
NORM = st.sampled_from([None, (1e-5, 0.1), (1e-3, 0.01)])


def conv_text(kernel, width, norm, activation, stride=1):
    text = f"({kernel},{width})" + (f"/{stride}" if stride > 1 else "")
    if norm is not None:
        text += "bn" if norm == (1e-5, 0.1) else f"bn(eps={norm[0]},momentum={norm[1]})"
    return text + ("" if activation == "relu" else f"@{activation}")


@st.composite
def bn_nets(draw):
    """A random net of plain stages (runs of convs of one or two kinds, a standalone
    activation or norm between some) and residual stages (basic or bottleneck blocks)."""
    items, width = [], draw(st.sampled_from([8, 16]))
    for stage in range(draw(st.integers(1, 3))):
        if stage:
            items.append("2/2")
        if draw(st.booleans()):
            norm, activation = draw(NORM), draw(ACTIVATION)
            for _ in range(draw(st.integers(1, 3))):
                kernel = draw(st.sampled_from([2, 3, 5]))
                if draw(st.booleans()):
                    norm, activation = draw(NORM), draw(ACTIVATION)
                items.append(conv_text(kernel, width, norm, activation))
            if draw(st.booleans()):
                items.append(draw(st.sampled_from(["silu", "bn"])))
        else:
            norm, activation = draw(NORM), draw(ACTIVATION)
            inner = [conv_text(1, width, norm, activation), conv_text(3, width, norm, activation)] if draw(st.booleans()) else [conv_text(3, width, norm, activation)]
            body = " ".join(inner + [conv_text(1 if len(inner) == 2 else 3, width * 2, norm, "none")])
            items.append(f"res[{body}]x{draw(st.integers(1, 3))}")
            width *= 2
    return budgetnet.parse(" ".join(items) + " gap", input_shape=(3, 32, 32), num_classes=10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bn_nets())
def test_no_rewrite_adds_or_drops_a_bn_or_changes_an_activation(arch):
    before = kinds(arch)
    for rule in RULES:
        for site in rule.sites(arch):
            try:
                after = rule.rewrite(arch, site, tolerance=None).after
            except RewriteError:
                continue
            convs, leaves, adds = kinds(after)
            assert convs <= before[0], (rule.name, site.label(), str(arch), str(after))
            assert leaves == before[1] and adds <= before[2]


# -- variants from EfficientNet-B0 -------------------------------------------------------------------
def test_variants_of_efficientnet_b0_in_two_steps():
    graph = budgetnet.variants(ZOO["efficientnet_b0"], max_steps=2)
    rows = records(graph)
    assert len(rows) > 100 and graph.graph["refused"] == 0
    paths = {tuple(row["path"]) for row in rows}
    assert ("mbconv_filter",) in paths and ("mbconv_blocks", "mbconv_filter") in paths
    notations = [row["notation"] for row in rows]
    assert any("(3,280)dwbn@silu" in text for text in notations)  # the 3x3 stage of 40, widened
    assert all(0.95 <= row["ratio"] <= 1.05 for row in rows)
    labels = {step["site"] for row in rows for step in row["rewrites"]}
    assert "mbconv_filter(stage 1 layers 9:14, kernel_size=3)" in labels


def test_the_examples_of_docs_rewrites_md_run():
    import doctest
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "rewrites.md"
    failed, attempted = doctest.testfile(str(path), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert attempted >= 8 and failed == 0


# -- non-square filters and carried regions: no rule touches them, and says why ---------------------
INCEPTION_LIKE = "(3,32)bn (1x7,32)bn (7x1,32)bn (3,32)bn (3,32)bn 2/2 (3,64)bn gap"
#: A Res2Net block as the importer carries it (graph/carry.py): the hierarchical split as a chain
#: of concatenations that keep the maps still needed.
RES2NET_LIKE = (
    "(3,32)p1 res[(1,32) cat[id | slice(0,8) (3,8)] cat[id | res[slice(32,40) | slice(8,16)]@none (3,8)] "
    "cat[id | res[slice(40,48) | slice(16,24)]@none (3,8)] cat[slice(32,56) | slice(24,32)] (1,32)@none | id] gap"
)


def test_non_square_filters_are_left_alone_and_a_site_on_them_is_refused_naming_why():
    arch = budgetnet.parse(INCEPTION_LIKE, input_shape=(3, 32, 32), num_classes=10)
    non_square = [info.index for info in arch.convs if not info.layer.square]
    assert non_square == [1, 2]
    for rule in RULES:
        for site in rule.sites(arch):
            assert not set(range(site.start, site.stop)) & set(non_square), (rule.name, site.label())
            try:
                after = rule.rewrite(arch, site, tolerance=None).after
            except RewriteError:
                continue
            assert [str(layer) for layer in after.layers if isinstance(layer, Conv) and not layer.square] == [
                str(arch.layers[1]), str(arch.layers[2])
            ]
    site = Site("depth_filter", 1, 1, 3, "(1x7,32)bn (7x1,32)bn", kernel_size=2, count=2)
    assert "is not a plain conv: a non-square filter" in refused(DEPTH_FILTER, arch, site)


def test_a_carried_region_gets_no_site_and_a_hand_made_one_is_refused_naming_why():
    arch = budgetnet.parse(RES2NET_LIKE, input_shape=(3, 16, 16), num_classes=10)
    assert [site.label() for rule in RULES for site in rule.sites(arch) if site.stop > 1] == []  # the stem's only
    site = Site("block_filter", 1, 1, 2, budgetnet.rewrites.span_notation([arch.layers[1]]), kernel_size=5)
    assert "a body that is not all convs" in refused(BLOCK_FILTER, arch, site)
    site = Site("cardinality_width", 1, 1, 2, budgetnet.rewrites.span_notation([arch.layers[1]]), groups=2)
    assert "a body that is not all convs" in refused(CARDINALITY_WIDTH, arch, site)
