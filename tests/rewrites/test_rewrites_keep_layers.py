"""Rewrites keep what a layer is (issue 19, item 2): on random nets of batch-normalized or
plain convs with assorted activations, in plain runs, residual, bottleneck and inverted
residual blocks, every rewrite of every rule writes layers of exactly the kinds it replaced
(batch norm, its eps and momentum, activation, dilation, depthwise), the same standalone
norms and activations, and the same activations after residual adds: only sizes, counts,
groups and strides change. Checked on the span each rewrite replaces, so a BN conv replaced
by plain ones is caught even where the net has plain convs elsewhere."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet.errors import RewriteError
from budgetnet.graph.layers import Act, Conv, Norm, Residual
from budgetnet.rewrites import RULES
from budgetnet.rewrites.roles import KEPT_ATTRIBUTES

ACTIVATION = st.sampled_from(["relu", "relu6", "silu", "hardswish", "gelu", "leaky_relu(0.2)", "none"])
NORM = st.sampled_from(["", "bn", "bn(eps=0.001,momentum=0.01)"])


def conv(kernel: int, width: int, norm: str, activation: str, extra: str = "") -> str:
    return f"({kernel},{width}){extra}{norm}" + ("" if activation == "relu" else f"@{activation}")


@st.composite
def nets(draw):
    """A random net of 1-3 stages, each a plain run of convs (one or two kinds, a standalone
    activation or norm after some), residual basic or bottleneck blocks, or inverted
    residual blocks (1x1 expansion, 3x3 depthwise, linear 1x1)."""
    items, width = [conv(3, 8, draw(NORM), draw(ACTIVATION))], 8
    for stage in range(draw(st.integers(1, 3))):
        if stage:
            items.append("2/2")
        norm, activation = draw(NORM), draw(ACTIVATION)
        kind = draw(st.sampled_from(["plain", "basic", "bottleneck", "inverted"]))
        if kind == "plain":
            for _ in range(draw(st.integers(1, 3))):
                if draw(st.booleans()):
                    norm, activation = draw(NORM), draw(ACTIVATION)
                items.append(conv(draw(st.sampled_from([2, 3, 5])), width, norm, activation))
            if draw(st.booleans()):
                items.append(draw(st.sampled_from(["silu", "bn"])))
            continue
        if kind == "basic":
            body = [conv(3, width, norm, activation), conv(3, width, norm, "none")]
        elif kind == "bottleneck":
            body = [conv(1, width // 2, norm, activation), conv(3, width // 2, norm, activation), conv(1, width, norm, "none")]
        else:
            body = [conv(1, width * 4, norm, activation), conv(3, width * 4, norm, activation, "dw"), conv(1, width, norm, "none")]
        after = draw(st.sampled_from(["", "@none"]))
        items.append(f"res[{' '.join(body)}]{after}x{draw(st.integers(1, 3))}")
    return budgetnet.parse(" ".join(items) + " gap", input_shape=(3, 16, 16), num_classes=10)


def inside(layers):
    """Every layer in ``layers`` and, depth first, in their bodies and branches (a residual's
    shortcut excluded: it is derived from the shapes)."""
    for layer in layers:
        yield layer
        for field in fields(layer):
            if isinstance(layer, Residual) and field.name == "shortcut":
                continue
            value = getattr(layer, field.name)
            if isinstance(value, tuple) and value and all(isinstance(item, tuple) for item in value):
                for branch in value:
                    yield from inside(branch)
            elif isinstance(value, tuple) and value and not isinstance(value[0], (int, float, str)):
                yield from inside(value)


def what_it_is(layers) -> tuple:
    """The kinds of conv (:data:`KEPT_ATTRIBUTES`), the standalone norms and activations, and
    the activations after residual adds in a span of layers."""
    every = list(inside(layers))
    convs = {tuple(getattr(layer, name) for name in KEPT_ATTRIBUTES) for layer in every if isinstance(layer, Conv)}
    leaves = Counter(layer for layer in every if isinstance(layer, (Norm, Act)))
    adds = {layer.activation for layer in every if isinstance(layer, Residual)}
    return convs, leaves, adds


def test_the_walk_sees_inside_blocks():
    arch = budgetnet.parse("(3,8)bn res[(1,32)bn@relu6 (3,32)dwbn@relu6 (1,8)bn@none]@none silu gap", input_shape=(3, 8, 8))
    convs, leaves, adds = what_it_is(arch.layers)
    # (activation, depthwise) by hand: the stem and the expansion are ReLU / ReLU6 dense, one depthwise, one linear
    assert sorted((kind[3], kind[5]) for kind in convs) == [("none", False), ("relu", False), ("relu6", False), ("relu6", True)]
    assert all(kind[0] == "batch" for kind in convs)
    assert list(leaves.values()) == [1] and adds == {"none"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_every_rewrite_writes_the_kinds_of_layer_it_replaced(arch):
    for rule in RULES:
        for site in rule.sites(arch):
            try:
                plan = rule.propose(arch, site).plan
            except RewriteError:
                continue
            old, new = what_it_is(arch.layers[plan.start : plan.stop]), what_it_is(plan.layers)
            assert new == old, (rule.name, site.label(), str(arch), plan.layers)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_two_steps_of_variants_keep_the_kinds_of_the_whole_net(arch):
    graph = budgetnet.variants(arch, max_steps=2, tolerance=0.1, max_variants=200)
    before = what_it_is(arch.layers)
    for key in graph:
        after = what_it_is(graph.nodes[key]["arch"].layers)
        assert after == before, graph.nodes[key]["notation"]
