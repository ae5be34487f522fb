"""Residual, concat, grouped and depthwise layers: specs, shapes, Eqn. (1), the DAG, notation,
JSON, build and export (budgetnet/graph/layers.py, shapes.py, dag.py and their use in arch.py).

Expected numbers are worked out by hand in each test from PyTorch's floor rule and
``(in / groups) * k^2 * out * H * W``; torch itself checks shapes and the standalone export.
"""

import ast
import importlib.util

import networkx as nx
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet import Arch, Concat, Conv, Pool, Residual, parse
from budgetnet.cost.complexity import complexity, conv_macs
from budgetnet.errors import ArchError, BudgetNetError, LayerSpecError, NotationError, ShapeError
from budgetnet.studies.export import module_source
from budgetnet.graph.layers import SPP, Add, Cat

SMALL = (3, 8, 8)


# -- specs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv(3, 8, groups=0), "conv: groups=0 is invalid; expected an integer >= 1"),
        (lambda: Conv(3, 12, groups=8), "conv: groups=8 is invalid; expected a divisor of out_channels=12"),
        (lambda: Conv(3, 8, activation="swish"), "conv: activation='swish' is invalid; expected one of ACTIVATIONS (relu,"),
        (lambda: Conv(3, 8, norm="layer"), "conv: norm='layer' is invalid; expected one of (None, 'batch')"),
        (lambda: Conv(3, 8, depthwise=1), "conv: depthwise=1 is invalid; expected True or False"),
        (lambda: Residual(()), "res: body=() is invalid; expected at least one layer (a block with no layers"),
        (lambda: Residual((SPP(),)), "res: body=SPP(levels=(6, 3, 2, 1), mode='max') is invalid; expected feature layer specs only (conv,"),
        (lambda: Residual((Conv(3, 8),), activation="swish"), "res: activation='swish' is invalid"),
        (lambda: Residual("(3,8)"), "res: body='(3,8)' is invalid; expected a list of feature layer specs (conv, pool, norm, act, ..., blocks)"),
        (lambda: Concat(((Conv(3, 8),),)), "concat: branches=1 is invalid; expected at least 2 branches"),
        (lambda: Concat(5), "concat: branches=5 is invalid; expected a list of at least 2 branches"),
        (lambda: Concat(((), (), (Conv(1, 4),))), "concat: branches=((), (), (Conv("),
        (lambda: Add("swish"), "add: activation='swish' is invalid"),
    ],
)
def test_bad_specs(make, message):
    with pytest.raises(LayerSpecError) as error:
        make()
    assert str(error.value).startswith(message)


# -- shapes and Eqn. (1) ---------------------------------------------------------------------
def test_bottleneck_by_hand():
    # 64x56x56 in; bottleneck 1x1,64 / 3x3,64 stride 2 / 1x1,256; projection 1x1,256 stride 2.
    arch = parse("(1,64) res[(1,64)bn (3,64)/2bn (1,256)bn@none] gap", input_shape=(64, 56, 56))
    block = arch.shapes[1]
    assert block.out_shape == (256, 28, 28) and block.stage == 2  # a block that shrinks opens a stage
    assert [info.name for info in block.inner] == ["res1.conv1", "res1.conv2", "res1.conv3", "res1.short.conv1"]
    shortcut = block.inner[-1].layer
    assert (shortcut.kernel_size, shortcut.stride, shortcut.padding, shortcut.norm, shortcut.activation) == (
        1, 2, 0, "batch", "none",
    )  # fmt: skip
    expected = [
        64 * 1 * 64 * 56 * 56,  # stem 1x1
        64 * 1 * 64 * 56 * 56,
        64 * 9 * 64 * 28 * 28,
        64 * 1 * 256 * 28 * 28,
        64 * 1 * 256 * 28 * 28,  # the projection counts
    ]
    assert conv_macs(arch) == sum(expected)
    report = complexity(arch)
    assert report.add_ops == 256 * 28 * 28
    row = next(row for row in report.rows if row.name == "res1")
    assert row.kind == "res" and row.macs == sum(expected[1:]) and row.params == 0
    # params: weights, then 2 per channel for BN (no conv bias), a bias for the plain stem conv
    assert row.add_ops == 256 * 28 * 28
    conv2 = next(row for row in report.rows if row.name == "res1.conv2")
    assert conv2.params == 64 * 9 * 64 + 2 * 64 and conv2.padding == 1
    assert arch.depth == 4 and len(arch.convs) == 5


def test_grouped_and_depthwise_costs():
    arch = parse("(1,32) (3,64)g4 (3,64)dw (3,128)dw gap", input_shape=(3, 10, 10))
    convs = arch.convs
    assert [info.layer.groups for info in convs] == [1, 4, 64, 64]
    assert conv_macs(arch) == (3 * 1 * 32 + (32 // 4) * 9 * 64 + 1 * 9 * 64 + 1 * 9 * 128) * 100
    assert str(arch) == "(1,32) + (3,64)g4 + (3,64)dw + (3,128)dw gap"


def test_block_paddings_keep_the_map():
    arch = parse("(3,8) res[(2,8)x2] res[(7,8)] res[(5,8) (1,8)] gap", input_shape=(3, 9, 9))
    pads = [info.layer.padding for info in arch.convs]
    assert pads == [1, 0, 1, 3, 2, 0]  # 2x2 pairs shrink then restore; odd kernels "same", 7x7 too
    assert [info.out_shape[1] for info in arch.convs] == [9, 8, 9, 9, 9, 9]
    assert all(info.out_shape[1:] == (9, 9) for info in arch.shapes[1:4])


def test_identity_and_explicit_shortcuts():
    auto = parse("(3,8) res[(3,8) (3,8)@none] gap", input_shape=SMALL)
    forced = parse("(3,8) res[(3,8) (3,8)@none | id] gap", input_shape=SMALL)
    assert auto == forced  # the automatic shortcut of a shape-keeping body is the identity
    assert str(auto) != str(forced)
    projected = parse("(3,8) res[(3,16)] gap", input_shape=SMALL)
    explicit = parse("(3,8) res[(3,16) | (1,16)p0@none] gap", input_shape=SMALL)
    assert projected == explicit  # equality compares the resolved shortcut


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("(3,8) res[(3,16) | id]", ShapeError,
         "res1 (res[(3,16) | id]): the body gives (16, 8, 8) but the shortcut gives (8, 8, 8); expected equal "
         "shapes at the add"),
        ("(3,8) cat[(3,8)/2 | (3,8)]", ShapeError,
         "concat1 (cat[(3,8)/2 | (3,8)]): branch 1 gives (8, 4, 4), branch 2 gives (8, 8, 8); expected the same "
         "height and width"),
        ("(3,12) (3,12)g8", NotationError, "conv: groups=8 is invalid; expected a divisor of out_channels=12"),
        ("(3,12) (3,16)g8", ShapeError,
         "conv2 ((3,16)g8): groups=8 does not divide the 12 input channels"),
        ("(3,8) (3,12)dw", ShapeError,
         "conv2 ((3,12)dw): depthwise conv with out_channels=12 on 8 input channels; expected out_channels a "
         "multiple of 8"),
    ],
)  # fmt: skip
def test_bad_graphs_in_notation(text, error, message):
    with pytest.raises(error) as raised:
        parse(text, input_shape=SMALL)
    assert message in str(raised.value)


def test_a_shortcut_that_cannot_match():
    # 8 -> 3x3/3 (pad 1) gives 3; the automatic 1x1 projection of stride ceil(8/3) = 3 gives 3 too
    assert parse("(3,8) res[(3,16)/3]", input_shape=SMALL).shapes[1].out_shape == (16, 3, 3)
    # 10 -> 5x5 pad 0 gives 6; the projection's stride ceil(10/6) = 2 gives 5: no 1x1 conv fits
    with pytest.raises(ShapeError, match=r"res1 \(res\[\(5,16\)p0\]\): the body gives \(16, 6, 6\) but the shortcut "
                                         r"gives \(16, 5, 5\)"):  # fmt: skip
        parse("(3,8) res[(5,16)p0]", input_shape=(3, 10, 10))


# -- the DAG ---------------------------------------------------------------------------------
def residual_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_node("x", layer=None)
    graph.add_node("stem", layer=Conv(3, 8))
    graph.add_node("a", layer=Conv(3, 8))
    graph.add_node("b", layer=Conv(3, 8, activation="none"))
    graph.add_node("add", layer=Add())
    graph.add_node("left", layer=Conv(1, 4))
    graph.add_node("right", layer=Conv(3, 4))
    graph.add_node("cat", layer=Cat())
    graph.add_node("gap", layer=SPP((1,), "avg"))
    graph.add_edges_from([("x", "stem"), ("stem", "a"), ("a", "b"), ("b", "add"), ("stem", "add")])
    graph.add_edges_from([("add", "left"), ("add", "right"), ("left", "cat"), ("right", "cat"), ("cat", "gap")])
    return graph


def test_hand_made_dag():
    arch = Arch(residual_graph(), input_shape=SMALL)
    assert str(arch) == "(3,8) res[(3,8) (3,8)@none | id] cat[(1,4) | (3,4)] gap"
    assert arch.feature_shape == (8, 8, 8)
    assert Arch(arch.dag(), input_shape=SMALL) == arch
    kinds = sorted(data["layer"].kind for _, data in arch.dag().nodes(data=True) if data["layer"] is not None)
    assert kinds == ["add", "cat", "conv", "conv", "conv", "conv", "conv", "spp"]


def test_bad_hand_made_graphs():
    cycle = residual_graph()
    cycle.add_edge("b", "a")
    with pytest.raises(ArchError, match=r"arch graph: a cycle through nodes \['a', 'b'\]; expected a directed"):
        Arch(cycle, input_shape=SMALL)
    second = residual_graph()
    second.add_node("y", layer=Conv(3, 8))
    second.add_edge("y", "a")
    with pytest.raises(ArchError, match=r"arch graph: 2 input nodes \['x', 'y'\]; expected exactly one input"):
        Arch(second, input_shape=SMALL)
    no_join = residual_graph()
    no_join.remove_node("cat")
    no_join.add_node("merge", layer=Conv(1, 8))
    no_join.add_edges_from([("left", "merge"), ("right", "merge"), ("merge", "gap")])
    with pytest.raises(ArchError, match=r"the branches from node 'add' meet at 'merge' \(conv\); expected them to "
                                        r"close at one Add, Cat or Mul node"):  # fmt: skip
        Arch(no_join, input_shape=SMALL)
    lonely = nx.DiGraph([("x", "j"), ("j", "c")])
    nx.set_node_attributes(lonely, {"x": Conv(3, 8), "j": Add(), "c": SPP((1,), "avg")}, "layer")
    with pytest.raises(ArchError, match=r"arch graph: node 'j' \(add\) has 1 input; expected a join of at least two"):
        Arch(lonely, input_shape=SMALL)
    crossing = residual_graph()
    crossing.add_edge("a", "right")  # a branch reads into the next block: not series-parallel
    with pytest.raises(ArchError, match=r"arch graph"):
        Arch(crossing, input_shape=SMALL)
    middle = residual_graph()
    middle.nodes["a"]["layer"] = None
    with pytest.raises(ArchError, match=r"arch graph: node 'a' has layer=None; only the input node may"):
        Arch(middle, input_shape=SMALL)


# -- notation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, column, problem",
    [
        ("(3,8) res[(3,8)", 7, "res[ is never closed; expected a matching ]"),
        ("(3,8) cat[(3,8)]", 7, "cat[...] needs at least 2 branches separated by |"),
        ("(3,8) res[]", 7, "res[...] has an empty body; expected at least one layer"),
        ("(3,8) res[(3,8) | (1,8) | id]", 7, "res[BODY | SHORTCUT] takes at most one shortcut"),
        ("(3,8) ]", 7, "unknown layer ']'"),
        ("(3,8) res[(3,8) +]", 17, "a trailing '+' joins nothing; expected a layer after it"),
        ("(3,8)@swish", 6, "unknown activation '@swish'; expected @ and one of relu"),
        ("(3,8)g", 6, "unexpected 'g' after a layer"),
    ],
)
def test_block_notation_errors(text, column, problem):
    with pytest.raises(NotationError) as error:
        parse(text, input_shape=SMALL)
    assert error.value.column == column
    assert problem in str(error.value)


_CONVS = st.builds(
    Conv,
    kernel_size=st.sampled_from([1, 2, 3]),
    out_channels=st.sampled_from([4, 8]),
    groups=st.sampled_from([1, 2, 4]),
    activation=st.sampled_from(["relu", "relu6", "none"]),
    norm=st.sampled_from([None, "batch"]),
)
_LEAVES = st.one_of(_CONVS, st.builds(Conv, kernel_size=st.just(3), out_channels=st.just(8), depthwise=st.just(True)))
_FEATURES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds(
            Residual,
            body=st.lists(inner, min_size=1, max_size=3).map(tuple),
            shortcut=st.sampled_from([None, ()]),
            activation=st.sampled_from(["relu", "none"]),
        ),
        st.builds(
            Concat,
            branches=st.lists(st.lists(inner, max_size=2).map(tuple), min_size=2, max_size=3)
            .filter(lambda branches: sum(not branch for branch in branches) <= 1)
            .map(tuple),
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(layers=st.lists(_FEATURES, min_size=1, max_size=4), pool=st.booleans())
def test_random_graphs_round_trip(layers, pool):
    layers = [Conv(3, 8), *([Pool(2)] if pool else []), *layers, SPP((1,), "avg")]
    try:
        arch = Arch(layers, input_shape=(3, 9, 9), num_classes=3)
    except BudgetNetError:
        assume(False)
    assert parse(str(arch), input_shape=(3, 9, 9), num_classes=3) == arch
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch(arch.dag(), input_shape=(3, 9, 9), num_classes=3) == arch
    assert Arch(arch.dag(), input_shape=(3, 9, 9), num_classes=3).fingerprint() == arch.fingerprint()
    # torch agrees with the shape inference
    model = budgetnet.build(arch).eval()
    with torch.no_grad():
        assert tuple(model.features(torch.zeros(1, 3, 9, 9)).shape[1:]) == arch.feature_shape


# -- build and export ------------------------------------------------------------------------
def test_export_writes_residual_nets(tmp_path):
    arch = parse(
        "(3,16)bn res[(1,16)bn (3,16)g4bn (1,32)bn@none]x2 cat[id | (3,32)dwbn@relu6] res[(3,64)/2bn@silu] gap",
        input_shape=(3, 12, 12),
        num_classes=5,
    )
    path = tmp_path / "net.py"
    path.write_text(module_source(arch))
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    assert "budgetnet" not in imported  # standalone: torch only
    spec = importlib.util.spec_from_file_location("net", path)
    standalone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone)
    built = budgetnet.build(arch).eval()
    written = standalone.Net().eval()
    written.load_state_dict(built.state_dict())
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(built(x), written(x))
    assert sum(p.numel() for p in built.parameters()) == complexity(arch).params


# -- caches: a block's hash, its shapes --------------------------------------------------------
def test_a_block_hash_is_kept_but_never_copied():
    import copy
    import pickle

    from budgetnet.graph.shapes import _resolved

    block = Residual((Conv(1, 8), Conv(3, 8)))
    same = Residual([Conv(1, 8), Conv(3, 8)])
    assert hash(block) == hash(same) == hash((block.body, None, "relu")) and {block: 1}[same] == 1
    # shape inference copies a spec and sets fields on the copy: the copy hashes as what it is
    wider = _resolved(block, body=(Conv(1, 16), Conv(3, 16)))
    assert hash(wider) == hash(Residual((Conv(1, 16), Conv(3, 16)))) != hash(block)
    assert "_hash" not in copy.copy(block).__dict__ and "_hash" not in pickle.loads(pickle.dumps(block)).__dict__
    cat = Concat(((Conv(1, 4),), ()))
    assert hash(cat) == hash(Concat([[Conv(1, 4)], []])) and pickle.loads(pickle.dumps(cat)) == cat


def test_a_span_inferred_alone_continues_the_whole_net():
    from budgetnet.graph.shapes import infer_shapes
    from budgetnet.graph.zoo import ZOO

    arch = ZOO["resnet50"]
    start, stop = 1, 6  # the stem pool, stage 2's three blocks and stage 3's first block
    counts = {"conv": 1}
    span = infer_shapes(arch.layers[start:stop], arch.shapes[start].in_shape, start=start, stage=1, counts=counts)
    assert span == arch.shapes[start:stop]
    assert [(info.name, info.index, info.stage) for info in span] == [
        ("pool1", 1, 1), ("res1", 2, 2), ("res2", 3, 2), ("res3", 4, 2), ("res4", 5, 3)]  # fmt: skip
