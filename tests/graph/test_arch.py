"""Tests for ``budgetnet.graph.arch``: layer specs, shape inference, identity, edits, JSON.

Expected sizes are hand arithmetic with the floor rule ``out = (m + 2p - k) // stride + 1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import networkx as nx
import pytest

from budgetnet import FC, SPP, Arch, Conv, Flatten, Pool, parse
from budgetnet.graph.arch import conv_output_size, default_padding, layer_to_dict, paper_head
from budgetnet.errors import ArchError, BudgetNetError, LayerSpecError, ShapeError
from search_spaces.paper import MODELS


def sides(arch: Arch) -> list[tuple[int, int]]:
    return [info.out_shape[1:] for info in arch.features]


def pads(arch: Arch) -> list[int]:
    return [info.layer.padding for info in arch.convs]


# -- shape inference -------------------------------------------------------------------------


def test_floor_rule():
    assert conv_output_size(224, 7, 2, 0) == (224 - 7) // 2 + 1 == 109
    assert conv_output_size(10, 3, 2, 0) == 4  # 7 // 2 + 1
    # (3,4)/2p0 on 10: (10 - 3) // 2 + 1 = 4; pool 3/2 on 4: (4 - 3) // 2 + 1 = 1.
    arch = Arch([Conv(3, 4, stride=2, padding=0), Pool(3, 2)], input_shape=(1, 10, 10))
    assert sides(arch) == [(4, 4), (1, 1)]


def test_non_square_input():
    # (3,4)/2p0 on 10x7: (10 - 3) // 2 + 1 = 4 and (7 - 3) // 2 + 1 = 3.
    arch = Arch([Conv(3, 4, stride=2, padding=0)], input_shape=(2, 10, 7))
    assert arch.shapes[0].out_shape == (4, 4, 3)
    # Model A at 224x160: width 160 -> (160 - 7) // 2 + 1 = 77 -> (77 - 3) // 3 + 1 = 25
    # -> (5,128) keeps 25 -> (25 - 2) // 2 + 1 = 12, so the SPP sees 18x12.
    assert MODELS["A"].with_input((3, 224, 160)).feature_shape == (256, 18, 12)
    # Two 2x2 convs on 8x6: pad 0 -> 7x5, pad 1 -> 8x6.
    assert sides(Arch([Conv(2, 4), Conv(2, 4)], input_shape=(1, 8, 6))) == [(7, 5), (8, 6)]


def test_paper_paddings_for_odd_kernels():
    assert [default_padding(k) for k in (1, 3, 5, 7, 9)] == [0, 1, 2, 0, 4]
    arch = Arch([Conv(1, 4), Conv(3, 4), Conv(5, 4), Conv(7, 4)], input_shape=(1, 16, 16))
    # 1, 3, 5 keep 16; 7x7 with pad 0: 16 - 7 + 1 = 10.
    assert pads(arch) == [0, 1, 2, 0]
    assert sides(arch) == [(16, 16), (16, 16), (16, 16), (10, 10)]


def test_explicit_padding_wins():
    # (3,4)p0 on 8: 8 - 3 + 1 = 6; (2,4)p1 on 6: 6 + 2 - 2 + 1 = 7 (the rules would pick 0).
    arch = Arch([Conv(3, 4, padding=0), Conv(2, 4, padding=1)], input_shape=(1, 8, 8))
    assert pads(arch) == [0, 1]
    assert sides(arch) == [(6, 6), (7, 7)]
    assert arch.layers[0].padding == 0 and arch.resolved_layers[0].padding == 0


def test_consecutive_2x2_convs_alternate_pad_0_1():
    arch = Arch([Conv(2, 4)] * 5, input_shape=(1, 8, 8))
    assert pads(arch) == [0, 1, 0, 1, 0]
    assert [side for side, _ in sides(arch)] == [7, 8, 7, 8, 7]
    # Even kernels in general: 4x4 shrinks with pad 1 (8 + 2 - 4 + 1 = 7), restores with pad 2.
    arch = Arch([Conv(4, 4)] * 2, input_shape=(1, 8, 8))
    assert (pads(arch), sides(arch)) == ([1, 2], [(7, 7), (8, 8)])
    # The layers as written keep padding=None; only the resolved ones carry the choice.
    assert [layer.padding for layer in arch.layers if isinstance(layer, Conv)] == [None, None]


def test_2x2_after_a_pool_starts_at_the_stage_target():
    # (3,8) keeps 8; 2/2 -> 4; the 2x2 pair gives 3, 4 (stage 2's target is 4).
    arch = parse("(3,8) 2/2 (2,16)x2", input_shape=(1, 8, 8))
    assert sides(arch) == [(8, 8), (4, 4), (3, 3), (4, 4)]


def test_strided_conv_reaches_the_stage_target():
    # (3,8)/2 on 16: pad 1 gives (16 + 2 - 3) // 2 + 1 = 8, the natural target.
    arch = parse("(3,8)/2 (3,8)", input_shape=(1, 16, 16))
    assert (pads(arch), sides(arch)) == ([1, 1], [(8, 8), (8, 8)])
    # (5,8)/3 on 16: target with pad 2 is (16 + 4 - 5) // 3 + 1 = 6; pad 2 reaches it.
    arch = parse("(5,8)/3", input_shape=(1, 16, 16))
    assert (pads(arch), sides(arch)) == ([2], [(6, 6)])
    # A strided 2x2 followed by one 2x2 aims one below the target (8 - 1 = 7) so that the
    # pair ends on it, but pad 0 already gives the smallest side, (16 - 2) // 2 + 1 = 8, so
    # it takes pad 0 and the 2x2 after it shrinks to 7.
    arch = parse("(2,8)/2 + (2,8)", input_shape=(1, 16, 16))
    assert (pads(arch), sides(arch)) == ([0, 0], [(8, 8), (7, 7)])


def test_delayed_subsampling_keeps_the_stage_sizes():
    # Plain:   (3,8) 16 -> 2/2 -> 8 -> (2,16) pad 0 -> 7 -> (2,16) pad 1 -> 8.
    plain = parse("(3,8) 2/2 (2,16)x2", input_shape=(1, 16, 16))
    # Delayed: 2/1 -> 15; the target is what 2/2 would give (8); one 2x2 follows, so the
    # strided conv aims at 7: (15 - 2) // 2 + 1 = 7 with pad 0; then pad 1 restores 8.
    delayed = parse("(3,8) 2/1 (2,16)/2 + (2,16)", input_shape=(1, 16, 16))
    assert sides(plain) == [(16, 16), (8, 8), (7, 7), (8, 8)]
    assert sides(delayed) == [(16, 16), (15, 15), (7, 7), (8, 8)]
    assert pads(delayed) == [1, 0, 1]
    assert [info.out_shape for info in plain.convs] == [info.out_shape for info in delayed.convs]


def test_stages_depth_and_views():
    arch = MODELS["A"]
    assert [len(stage) for stage in arch.stages] == [1, 1, 3]
    assert [info.stage for info in arch.shapes] == [1, 1, 2, 2, 3, 3, 3, None, None, None]
    assert [info.name for info in arch.shapes] == ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5",
                                                  "spp1", "fc1", "fc2"]  # fmt: skip
    assert arch.depth == 5 and len(arch.convs) == 5
    assert [info.kind for info in arch.features] == ["conv", "pool", "conv", "pool", "conv", "conv", "conv"]
    assert arch.head == paper_head()
    assert arch.feature_shape == (256, 18, 18)
    assert arch.shapes[0].in_shape == (3, 224, 224)
    assert arch.shapes[-1].out_shape == (4096,)
    assert len(arch.nodes) == len(arch.layers) == arch.graph.number_of_nodes() == 10
    assert list(nx.topological_sort(arch.graph)) == list(arch.nodes)
    assert MODELS["J"].stages[3][0].layer.out_channels == 2304


def test_a_head_is_added_only_as_a_flatten():
    arch = Arch([Conv(3, 4), FC(8)], input_shape=(1, 4, 4), num_classes=2)
    assert arch.layers == (Conv(3, 4), Flatten(), FC(8))
    assert [info.out_shape for info in arch.shapes] == [(4, 4, 4), (64,), (8,)]
    assert Arch([Conv(3, 4)], input_shape=(1, 4, 4)).head == (Flatten(),)
    assert Arch([], input_shape=(2, 3, 3)).feature_shape == (2, 3, 3)


def test_spp_and_gap_sizes():
    arch = Arch([Conv(3, 5), SPP((4, 2, 1))], input_shape=(1, 8, 8))
    assert arch.shapes[1].out_shape == (5 * (16 + 4 + 1),)
    assert SPP().bins == 36 + 9 + 4 + 1 == 50
    assert Arch([Conv(3, 5), SPP((1,), "avg")], input_shape=(1, 8, 8)).shapes[1].out_shape == (5,)


# -- identity ------------------------------------------------------------------------------


def test_same_net_built_three_ways_is_equal():
    written = parse("(3,16) 2/2 (3,32)", input_shape=(1, 64, 64))  # 64 px: the paper's head is the default
    replaced = written.replace(2, 3, [Conv(2, 32), Conv(2, 32)])
    parsed = parse("(3,16) 2/2 (2,32)x2", input_shape=(1, 64, 64))
    listed = Arch([Conv(3, 16), Pool(2), Conv(2, 32), Conv(2, 32), *paper_head()], input_shape=(1, 64, 64))
    assert replaced.nodes != parsed.nodes  # different node ids...
    assert replaced == parsed == listed  # ...same net
    assert hash(replaced) == hash(parsed) == hash(listed)
    assert replaced.fingerprint() == parsed.fingerprint() == listed.fingerprint()
    assert len({replaced, parsed, listed}) == 1


def test_equality_compares_resolved_paddings():
    auto = Arch([Conv(3, 8), Conv(2, 8), Conv(2, 8)], input_shape=(1, 8, 8))
    explicit = Arch([Conv(3, 8, padding=1), Conv(2, 8, padding=0), Conv(2, 8, padding=1)], input_shape=(1, 8, 8))
    other = Arch([Conv(3, 8), Conv(2, 8, padding=1), Conv(2, 8, padding=0)], input_shape=(1, 8, 8))
    assert auto == explicit and auto.fingerprint() == explicit.fingerprint()
    assert auto != other and auto.fingerprint() != other.fingerprint()


def test_input_shape_and_classes_are_part_of_identity():
    arch = parse("(3,8)", input_shape=(1, 8, 8))
    assert arch != arch.with_input((1, 9, 9))
    assert arch != arch.with_input(num_classes=10)
    assert arch.fingerprint() != arch.with_input(num_classes=10).fingerprint()
    assert arch != "(3,8)"


def test_fingerprint_is_stable_across_processes():
    arch = MODELS["J'"]
    code = "from search_spaces.paper import MODELS; print(MODELS[\"J'\"].fingerprint())"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == arch.fingerprint()
    assert len(arch.fingerprint()) == 16 and int(arch.fingerprint(), 16) >= 0


# Fingerprints written by budgetnet before fingerprints were cached per Arch and built from
# per-layer JSON (commit 792273b); stored studies and latency tables are keyed by them.
GOLDEN_FINGERPRINTS = {
    "A": "bd64f57433a3d4ba",
    "J'": "bb0e170e923f0a2c",
    "resnet50": "56c65d11be90acd2",
    "mobilenet_v2": "92dd6072c2139f0c",
    "resnext50_32x4d": "08630f41078cbd18",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_FINGERPRINTS))
def test_fingerprints_did_not_change(name):
    from budgetnet.graph.zoo import ZOO

    arch = MODELS[name] if name in MODELS else ZOO[name]
    assert arch.fingerprint() == GOLDEN_FINGERPRINTS[name]


def test_fingerprint_is_the_digest_of_the_canonical_json():
    import hashlib

    arch = parse("(3,8) cat[(1,8) | (3,8) | id] 2/2 fc(32,0.1)", input_shape=(1, 16, 16), num_classes=7)
    canonical = {
        "input_shape": [1, 16, 16],
        "num_classes": 7,
        "layers": [layer_to_dict(layer) for layer in arch.resolved_layers],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert arch.fingerprint() == hashlib.sha256(text.encode()).hexdigest()[:16] == "258e220ea22f696f"


def test_cached_views_never_serve_another_arch():
    # Fingerprints, shapes and layer JSON are kept per Arch and per layer spec; an edit must
    # give a new Arch whose every view is its own.
    from budgetnet import Residual

    block = Residual((Conv(3, 16), Conv(3, 16)))
    arch = Arch([Conv(3, 16), block, block, Pool(2)], input_shape=(1, 16, 16))
    first = (arch.fingerprint(), arch.shapes, arch.convs, arch.depth)
    wider = arch.replace(2, 3, [Residual((Conv(3, 32), Conv(3, 32)))])
    assert wider.fingerprint() != arch.fingerprint()
    assert [info.out_shape for info in wider.features] == [(16, 16, 16), (16, 16, 16), (32, 16, 16), (32, 8, 8)]
    assert [info.name for info in wider.convs][-1] == "res2.short.conv1"  # a projection appears
    assert (arch.fingerprint(), arch.shapes, arch.convs, arch.depth) == first  # the original is untouched
    assert [info.out_shape for info in arch.features][-1] == (16, 8, 8)
    # The same blocks on another input or at another place get their own shapes and names.
    moved = arch.with_input((1, 32, 32))
    assert moved.fingerprint() != arch.fingerprint() and moved.features[1].out_shape == (16, 32, 32)
    shifted = arch.replace(0, 0, [Conv(3, 16)])
    assert [info.name for info in shifted.features] == ["conv1", "conv2", "res1", "res2", "pool1"]
    assert shifted.features[2].index == 2 and shifted.features[2].inner[0].name == "res1.conv1"
    # Different Arches never share a fingerprint; equal ones always do.
    archs = [arch, wider, moved, shifted, arch.with_input(num_classes=10), Arch(list(arch.layers), (1, 16, 16))]
    assert len({a.fingerprint() for a in archs}) == 5 and archs[-1].fingerprint() == arch.fingerprint()


def test_a_failed_block_inference_fails_again():
    # Block shapes are cached, errors are not: the same bad Arch raises the same error twice.
    from budgetnet import Residual

    layers = [Conv(3, 8), Residual((Conv(5, 8, padding=0), Conv(5, 8, padding=0)))]
    messages = []
    for _ in range(2):
        with pytest.raises(ShapeError) as error:
            Arch(layers, input_shape=(1, 6, 6))
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "res1.conv2" in messages[0]
    assert Arch(layers, input_shape=(1, 12, 12)).feature_shape == (8, 4, 4)


def test_graph_of_a_list_arch_is_built_when_read():
    arch = Arch([Conv(3, 8), Pool(2), FC(10)], input_shape=(1, 8, 8))
    assert arch.nodes == (0, 1, 3, 2)  # the appended Flatten takes the next id
    assert list(arch.graph.edges) == [(0, 1), (1, 3), (3, 2)]
    assert [arch.graph.nodes[node]["layer"] for node in arch.nodes] == list(arch.layers)
    assert arch.graph is arch.graph and nx.is_frozen(arch.graph)
    assert Arch(arch.graph, input_shape=(1, 8, 8)) == arch


# -- immutability and edits ----------------------------------------------------------------


def test_replace_returns_a_new_arch_and_keeps_the_original():
    original = MODELS["A"]
    before = (str(original), original.nodes, original.fingerprint())
    # Replace the three (3,256) with six (2,256): model B.
    edited = original.replace(4, 7, [Conv(2, 256)] * 6)
    assert edited == MODELS["B"]
    assert (str(original), original.nodes, original.fingerprint()) == before
    # Neighbours keep their node ids; new layers get fresh ones.
    assert edited.nodes[:4] == original.nodes[:4]
    assert edited.nodes[-3:] == original.nodes[-3:]
    assert set(edited.nodes[4:10]).isdisjoint(original.nodes)


def test_replace_at_the_ends_and_with_nothing():
    arch = parse("(3,8) 2/2 (3,16)", input_shape=(1, 64, 64))  # the paper's head, left out in print
    assert str(arch.replace(0, 1, [Conv(5, 8)])) == "(5,8) 2/2 (3,16)"
    assert str(arch.replace(1, 2, [])) == "(3,8) + (3,16)"
    assert arch.replace(3, 6, [Flatten()]).head == (Flatten(),)
    assert arch.replace(6, 6, [FC(10)]).head == paper_head() + (FC(10),)


def test_with_layers_and_with_input():
    arch = parse("(3,8) 2/2", input_shape=(1, 8, 8), num_classes=5)
    other = arch.with_layers([Conv(3, 4)])
    assert (other.input_shape, other.num_classes, other.head) == ((1, 8, 8), 5, (Flatten(),))
    moved = arch.with_input((3, 28, 28), 10)
    assert (moved.input_shape, moved.num_classes, moved.feature_shape) == ((3, 28, 28), 10, (8, 14, 14))
    assert arch.input_shape == (1, 8, 8)


def test_graph_and_layers_are_frozen():
    arch = MODELS["A"]
    with pytest.raises(nx.NetworkXError, match="Frozen graph"):
        arch.graph.add_node(99, layer=Conv(3, 8))
    with pytest.raises(nx.NetworkXError, match="Frozen graph"):
        arch.graph.remove_edge(*list(arch.graph.edges)[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.layers[0].kernel_size = 5
    assert isinstance(arch.layers, tuple)
    with pytest.raises(AttributeError):
        arch.input_shape = (1, 2, 3)


def test_arch_copies_the_graph_it_is_given():
    graph = nx.DiGraph()
    graph.add_node("a", layer=Conv(3, 8))
    graph.add_node("b", layer=Pool(2))
    graph.add_edge("a", "b")
    arch = Arch(graph, input_shape=(1, 8, 8))
    graph.add_node("c", layer=Conv(3, 16))
    graph.add_edge("b", "c")
    assert arch.depth == 1
    assert arch == Arch([Conv(3, 8), Pool(2)], input_shape=(1, 8, 8))
    # Node ids need not be integers: the added Flatten and replaced layers get fresh ints.
    assert arch.nodes == ("a", "b", 0)
    assert arch.replace(1, 2, [Pool(2), Conv(3, 4)]).nodes == ("a", 1, 2, 0)


# -- JSON ------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    arch = parse("(3,8) 2/1 (2,16)/2 + (2,16)p1 avg3/1p1 spp(2,1) fc(32,0.1)", input_shape=(2, 16, 12),
                 num_classes=7)  # fmt: skip
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_dict(arch.to_dict()) == arch
    path = arch.save(tmp_path / "arch.json")
    assert path == tmp_path / "arch.json"
    assert Arch.load(path) == arch
    assert Arch.load(str(path)).layers == arch.layers


def test_json_keeps_automatic_paddings_automatic():
    data = json.loads(MODELS["A"].to_json())
    assert (data["format"], data["version"]) == ("budgetnet.arch", 1)
    assert data["notation"] == str(MODELS["A"])
    assert data["input_shape"] == [3, 224, 224] and data["num_classes"] == 1000
    assert data["layers"][0] == {"type": "conv", "kernel_size": 7, "out_channels": 64, "stride": 2, "padding": None}
    assert data["layers"][1] == {"type": "pool", "kernel_size": 3, "stride": 3, "padding": 0, "mode": "max"}
    assert data["layers"][-3] == {"type": "spp", "levels": [6, 3, 2, 1], "mode": "max"}
    assert data["layers"][-1] == {"type": "fc", "out_features": 4096, "dropout": 0.5}
    assert json.loads(MODELS["A"].to_json(indent=None)) == data
    assert layer_to_dict(Flatten()) == {"type": "flatten"}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_paper_model_round_trips_through_json(name):
    assert Arch.from_json(MODELS[name].to_json()) == MODELS[name]


# -- bad input -------------------------------------------------------------------------------


def test_kernel_larger_than_the_padded_map():
    with pytest.raises(ShapeError) as error:
        Arch([Conv(3, 4), Conv(5, 4, padding=0)], input_shape=(1, 3, 3))
    message = str(error.value)
    assert message.startswith("conv2 ((5,4)p0): kernel_size=5 is larger than the padded map (3 + 2*0 = 3)")
    assert "expected a kernel of at most 3" in message
    with pytest.raises(ShapeError, match=r"pool1 \(4/4\): kernel_size=4 is larger than the padded map \(2 \+ 2\*0"):
        Arch([Pool(4)], input_shape=(1, 2, 9))  # the height (2) is too small, the width is not


def test_map_shrinking_below_one_pixel_names_the_layer_and_size():
    # 8 -> 4 -> 2 -> 1, and a fourth 2/2 pool would leave (1 - 2) // 2 + 1 = 0 pixels.
    with pytest.raises(ShapeError) as error:
        parse("(3,4) 2/2 2/2 2/2 2/2", input_shape=(1, 8, 8))
    message = str(error.value)
    assert message.startswith("pool4 (2/2): kernel_size=2 is larger than the padded map (1 + 2*0 = 1)")
    assert "shrink below 1 pixel" in message
    # The paper's stem on a tiny image: (7,64)/2 on 6x6 with pad 0.
    with pytest.raises(ShapeError, match=r"conv1 \(\(7,64\)/2\): kernel_size=7 .*\(6 \+ 2\*0 = 6\).*below 1 pixel"):
        MODELS["A"].with_input((3, 6, 6))
    # J at 56x56: 56 -> 25 -> 8 -> 7, 8, 7, 8 -> 4 -> 3, 4, 3, 4 -> 3/3: (4 - 3) // 3 + 1 = 1,
    # so stage 4's first 2x2 (pad 0) would leave 1 - 2 + 1 = 0 pixels.
    with pytest.raises(ShapeError, match=r"conv10 \(\(2,2304\)\): kernel_size=2 .*\(1 \+ 2\*0 = 1\)"):
        MODELS["J"].with_input((3, 56, 56))


@pytest.mark.parametrize(
    "make, field, value",
    [
        (lambda: Conv(0, 8), "kernel_size", 0),
        (lambda: Conv(-3, 8), "kernel_size", -3),
        (lambda: Conv(3, 0), "out_channels", 0),
        (lambda: Conv(3, -8), "out_channels", -8),
        (lambda: Conv(3, 8, stride=0), "stride", 0),
        (lambda: Conv(3, 8, stride=-2), "stride", -2),
        (lambda: Conv(3, 8, padding=-1), "padding", -1),
        (lambda: Conv(3.0, 8), "kernel_size", 3.0),
        (lambda: Conv(True, 8), "kernel_size", True),
        (lambda: Conv("3", 8), "kernel_size", "3"),
        (lambda: Pool(0), "kernel_size", 0),
        (lambda: Pool(2, 0), "stride", 0),
        (lambda: Pool(2, -1), "stride", -1),
        (lambda: Pool(2, padding=-1), "padding", -1),
        (lambda: Pool(3, padding=2), "padding", 2),
        (lambda: Pool(2, mode="min"), "mode", "min"),
        (lambda: SPP(()), "levels", ()),
        (lambda: SPP((6, 0)), "levels", 0),
        (lambda: SPP(3), "levels", 3),
        (lambda: SPP((2,), mode="sum"), "mode", "sum"),
        (lambda: FC(0), "out_features", 0),
        (lambda: FC(-1), "out_features", -1),
        (lambda: FC(10, dropout=1.0), "dropout", 1.0),
        (lambda: FC(10, dropout=-0.1), "dropout", -0.1),
        (lambda: FC(10, dropout="half"), "dropout", "half"),
    ],
)
def test_bad_layer_values(make, field, value):
    with pytest.raises(LayerSpecError) as error:
        make()
    assert (error.value.field, error.value.value) == (field, value)
    assert f"{field}={value!r} is invalid; expected" in str(error.value)


def test_bad_layer_value_messages_say_what_is_accepted():
    with pytest.raises(LayerSpecError, match=r"^conv: stride=0 is invalid; expected an integer >= 1$"):
        Conv(3, 8, stride=0)
    with pytest.raises(LayerSpecError, match=r"^pool: padding=2 is invalid; expected at most half the kernel size$"):
        Pool(3, padding=2)
    with pytest.raises(LayerSpecError, match=r"^fc: dropout=1.0 is invalid; expected a number in \[0, 1\)$"):
        FC(10, dropout=1.0)


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], "arch JSON: top level is list; expected an object"),
        ("A", "arch JSON: top level is str; expected an object"),
        ({"layers": []}, "arch JSON: field 'input_shape' is missing"),
        ({"input_shape": [3, 8, 8]}, "arch JSON: field 'layers' is missing"),
        ({"format": "onnx", "input_shape": [3, 8, 8], "layers": []}, "arch JSON: format='onnx'; expected 'budgetnet.arch'"),
        ({"input_shape": [3, 8, 8], "layers": "conv"}, "arch JSON: layers='conv'; expected a list of layer objects"),
        ({"input_shape": [3, 8, 8], "layers": [{"type": "lstm"}]}, "arch JSON: layers[0]={'type': 'lstm'}; expected an"
                                                                    " object with type one of ['act', 'chconv', 'concat', 'conv',"),
        ({"input_shape": [3, 8, 8], "layers": [{"type": ["conv"]}]}, "layers[0]={'type': ['conv']}"),
        ({"input_shape": [3, 8, 8], "layers": [5]}, "layers[0]=5; expected an object"),
        ({"input_shape": [3, 8, 8], "layers": [{"type": "conv", "kernel_size": 3, "out_channels": 8, "dilation_rate": 2}]},
         "arch JSON: layers[0] has unknown fields ['dilation_rate']; expected ['activation', 'depthwise', 'dilation', 'groups',"),
        ({"input_shape": [3, 8, 8], "layers": [{"type": "conv", "kernel_size": 3}]},
         "arch JSON: layers[0]: Conv.__init__() missing 1 required positional argument: 'out_channels'"),
        ({"input_shape": [3, 8], "layers": []}, "input_shape=[3, 8] is invalid; expected (channels, height, width)"),
        ({"input_shape": None, "layers": []}, "input_shape=None is invalid"),
    ],
)  # fmt: skip
def test_json_that_is_not_an_arch(data, message):
    with pytest.raises(ArchError) as error:
        Arch.from_json(json.dumps(data))
    assert message in str(error.value)


def test_json_layer_values_are_checked():
    data = {"input_shape": [3, 8, 8], "layers": [{"type": "conv", "kernel_size": 0, "out_channels": 8}]}
    with pytest.raises(LayerSpecError, match=r"conv: kernel_size=0 is invalid"):
        Arch.from_dict(data)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "arch JSON: not valid JSON (Expecting property name"),
        ("", "arch JSON: not valid JSON (Expecting value"),
        (5, "arch JSON: not valid JSON (the JSON object must be str"),
    ],
)
def test_invalid_json_text(text, message):
    with pytest.raises(ArchError) as error:
        Arch.from_json(text)
    assert message in str(error.value)


def test_unreadable_or_invalid_files(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(ArchError, match=r"arch file '.*missing\.json' cannot be read: .*No such file"):
        Arch.load(missing)
    with pytest.raises(ArchError, match=r"arch file '.*' cannot be read"):
        Arch.load(tmp_path)  # a directory
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ArchError, match=r"arch file '.*binary\.json' cannot be read"):
        Arch.load(binary)
    broken = tmp_path / "broken.json"
    broken.write_text('{"layers": [')
    with pytest.raises(ArchError) as error:
        Arch.load(broken)
    assert str(error.value).startswith(f"{broken}: arch JSON: not valid JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"study": "x"}')
    with pytest.raises(ArchError, match=r"wrong\.json: arch JSON: field 'input_shape' is missing"):
        Arch.load(wrong)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([Conv(3, 8), FC(10), SPP()], "layer 2 (fc) comes before spp/gap/flat"),
        ([Conv(3, 8), SPP((1,), "avg"), Conv(3, 8)], "layer 3 (conv) comes after the map was pooled or flattened"),
        ([Conv(3, 8), Flatten(), FC(10), Pool(2)], "layer 4 (pool) comes after the map was pooled or flattened"),
        ([Conv(3, 8), SPP(), Flatten()], "layer 3 (flatten): only one spp/gap/flat is allowed"),
        ([Conv(3, 8), "pool"], "arch layer 'pool' is not a budgetnet layer spec"),
        ([Conv(3, 8), {"type": "conv"}], "arch layer {'type': 'conv'} is not a budgetnet layer spec"),
    ],
)
def test_wrong_layer_order_or_kind(layers, message):
    with pytest.raises(ArchError) as error:
        Arch(layers, input_shape=(1, 8, 8))
    assert message in str(error.value)


def test_graphs_that_are_not_a_single_chain():
    branching = nx.DiGraph()
    branching.add_nodes_from([(0, {"layer": Conv(3, 8)}), (1, {"layer": Conv(3, 8)}), (2, {"layer": Conv(3, 8)})])
    branching.add_edges_from([(0, 1), (0, 2)])
    with pytest.raises(ArchError, match=r"arch graph: 2 output nodes \[1, 2\]; expected exactly one output"):
        Arch(branching)
    unlabeled = nx.DiGraph()
    unlabeled.add_node(0)
    with pytest.raises(ArchError, match="every node needs a 'layer' attribute"):
        Arch(unlabeled)
    cycle = nx.DiGraph([(0, 1), (1, 0)])
    nx.set_node_attributes(cycle, Conv(3, 8), "layer")
    with pytest.raises(ArchError, match=r"start nodes \[\]"):
        Arch(cycle)
    with pytest.raises(ArchError, match=r"arch layers=5 is invalid; expected a list of layer specs or a graph"):
        Arch(5)


@pytest.mark.parametrize(
    "shape", [(3, 224), (3, 224, 224, 1), (0, 8, 8), (3, -1, 8), (3, 8.0, 8), (True, 8, 8), "abc", None, 224]
)
def test_bad_input_shape(shape):
    with pytest.raises(ArchError) as error:
        Arch([Conv(3, 8)], input_shape=shape)
    assert str(error.value) == (
        f"input_shape={shape!r} is invalid; expected (channels, height, width), three integers >= 1"
    )


@pytest.mark.parametrize("classes", [0, -1, 2.5, True])
def test_bad_num_classes(classes):
    with pytest.raises(LayerSpecError, match=rf"arch: num_classes={classes!r} is invalid; expected an integer >= 1"):
        Arch([Conv(3, 8)], input_shape=(1, 8, 8), num_classes=classes)


@pytest.mark.parametrize("start, stop", [(3, 1), (-1, 2), (0, 99), ("0", 1)])
def test_bad_replace_range(start, stop):
    arch = parse("(3,8) 2/2", input_shape=(1, 8, 8))
    with pytest.raises(ArchError, match=rf"replace: start={start!r}, stop={stop!r} is invalid; expected 0 <= start"):
        arch.replace(start, stop, [])


def test_every_error_is_a_budgetnet_error():
    for error in (ShapeError, LayerSpecError, ArchError):
        assert issubclass(error, BudgetNetError) and issubclass(error, ValueError)
