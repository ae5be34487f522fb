"""The vocabulary of today's CNNs in the IR: norms, activations, scales, drops, channel
operations, global pooling inside the features and gates. Each through the notation (printed
and parsed back equal), JSON, shape inference, Eqn. (1), the torch table and the export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import budgetnet
from budgetnet.cost.memory import estimate_memory
from budgetnet.errors import LayerSpecError, NotationError, ShapeError
from budgetnet.graph.arch import Arch
from budgetnet.graph.layers import (
    Act,
    ChannelConv,
    Concat,
    Conv,
    DropPath,
    Gate,
    GlobalPool,
    Norm,
    Pool,
    Residual,
    Scale,
    Shuffle,
    Slice,
)
from budgetnet.studies.export import module_source

SHAPE = (8, 12, 12)


def parse(text, shape=SHAPE, classes=10):
    return budgetnet.parse(text, input_shape=shape, num_classes=classes)


# -- notation --------------------------------------------------------------------------------
ROUND_TRIPS = [
    "(3,16)bn(eps=0.001,momentum=0.01)@hardswish bn relu gap",
    "(3,16)p2d2 gn(4) ln(eps=1e-06) scale(1e-06) droppath(0.1) leaky_relu(0.2) gelu_tanh gap",
    "res[(1,32)bn@silu (3,32)dwbn@silu gate[gpool (1,4)@silu (1,32)@sigmoid] (1,8)bn@none droppath(0.05)]@none gap",
    "cat[id | slice(0,4) (3,4)] shuffle(2) 3/2p1(ceil) avg2/2(ceil,exclude_pad) gpool (1,32)@hardswish flat",
    "bn(affine=false) hardsigmoid maxgpool flat fc(64,0.2)@hardswish",
    "grn(eps=1e-06) grn(affine=false) grn gap",
    "scale(shift=true) scale(0.5,shift=true) scale(1e-06) gap",
    "rms rms(eps=1e-06,affine=false) simplenorm(eps=0.001) gap",
    "relux2 bnx2 (3,8)@mish (3,8)@tanh gap",
    "pad(0,1,0,1) (3,16)/2p0 gap",
    "(1x7,16)p(0,3)bn (7x1,16)bn@silu (1x3,8)/2 cat[(1x3,4) | (3x1,4)p(1,0)] gap",
    "(3,16) gate[gpool chconv(5) sigmoid] chconv(3,bias=true) res[(3,16)bn gate[gpool chconv(3) hardsigmoid]] gap",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_printed_notation_parses_back_equal(text):
    arch = parse(text)
    assert parse(str(arch)) == arch
    assert Arch.from_json(arch.to_json()) == arch


LEAVES = st.sampled_from(
    [
        Norm(),
        Norm("batch", 1e-3, 0.01),
        Norm("batch", affine=False),
        Norm("group", groups=4),
        Norm("layer", 1e-6),
        Norm("response", 1e-6),
        Norm("rms", 1e-6),
        Norm("simple", affine=False),
        Act("relu"),
        Act("silu"),
        Act("leaky_relu(0.2)"),
        Act("hardsigmoid"),
        Scale(1e-6),
        Scale(),
        Scale(0.5, shift=True),
        DropPath(0.1),
        Shuffle(2),
        Conv(3, 8, norm="batch", norm_eps=1e-3, activation="hardswish"),
        Conv(3, 8, dilation=2, activation="gelu"),
        Conv(1, 8, activation="none"),
        Conv((1, 7), 8, norm="batch"),
        Conv((5, 3), 8, padding=(4, 2), dilation=2),  # fields 9 and 5: the map kept
        Pool(3, 1, 1, ceil_mode=True),
        Pool(3, 1, 1, "avg", count_include_pad=False),
        ChannelConv(3),
        ChannelConv(5, bias=True),
    ]
)
BLOCKS = st.sampled_from(
    [
        Gate((GlobalPool(), Conv(1, 2, activation="silu"), Conv(1, 8, activation="sigmoid"))),
        Gate((GlobalPool(), ChannelConv(5), Act("sigmoid"))),
        Residual((Norm(), Act(), Conv(3, 8), DropPath(0.2)), activation="none"),
        Concat(((Slice(0, 4), Act()), (Slice(4, 8), Norm(), Conv(3, 4)))),
        Concat(((Slice(0, 4),), (Slice(4, 8), Conv(3, 4, norm="batch")))),
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(LEAVES, BLOCKS), min_size=1, max_size=6))
def test_random_nets_print_parse_and_json_round_trip(layers):
    arch = Arch(list(layers), SHAPE, 10)
    assert parse(str(arch)) == arch
    assert Arch.from_json(arch.to_json()) == arch
    assert budgetnet.build(arch)(torch.zeros(1, *SHAPE)).shape == (1, 10)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("(3,8) 2/2(ceil,round) gap", 11, "unknown pool flag 'round'; expected ceil, exclude_pad"),
        ("(3,8)@swish gap", 6, "unknown activation '@swish'"),
        ("bn(foo=1) gap", 1, "unknown argument 'foo'; expected one of eps, momentum, affine"),
        ("bn(affine=maybe) gap", 1, "affine='maybe'; expected affine=true or affine=false"),
        ("gn gap", 1, "gn groups=None; expected a whole number"),
        ("droppath gap", 1, "droppath needs its rate, e.g. droppath(0.1)"),
        ("slice(5) gap", 1, "slice stop=None; expected a whole number"),
        ("relu(2) gap", 1, "relu takes no arguments"),
        ("gate[(1,8) | (1,8)] gap", 1, "gate[BODY] takes one non-empty body"),
        ("scale(big) gap", 1, "scale init='big' is not a number"),
        ("grn(momentum=0.1) gap", 1, "unknown argument 'momentum'; expected one of eps, affine"),
        ("scale(shift=yes) gap", 1, "shift='yes'; expected shift=true or shift=false"),
        ("(1x,8) gap", 1, "malformed conv; expected (KERNEL,FILTERS) like (3,256)"),
        ("(1x7,8)p(0) gap", 8, "unexpected 'p' after a layer"),
        ("chconv gap", 1, "chconv kernel_size=None; expected a whole number"),
        ("(3,8) chconv(4) gap", 7, "chconv: kernel_size=4 is invalid; expected an odd integer >= 1"),
        ("chconv(3,bias=yes) gap", 1, "bias='yes'; expected bias=true or bias=false"),
        ("chconv(3,shift=true) gap", 1, "unknown argument 'shift'; expected one of bias"),
    ],
)
def test_malformed_leaves_name_the_column(text, column, message):
    with pytest.raises(NotationError) as error:
        parse(text)
    assert error.value.column == column
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Norm("instance"), "norm: norm='instance' is invalid; expected one of ('batch', 'group', 'layer', 'response', 'rms', 'simple')"),
        (lambda: Norm("group"), "norm: groups=None is invalid; expected an integer >= 1"),
        (lambda: Norm("batch", groups=2), "norm: groups=2 is invalid; expected None unless norm='group'"),
        (lambda: Norm(eps=0), "norm: eps=0 is invalid; expected a number > 0"),
        (lambda: Norm(momentum=2.0), "norm: momentum=2.0 is invalid; expected a number >= 0 and <= 1"),
        (lambda: Act("swish"), "act: activation='swish' is invalid; expected one of ACTIVATIONS"),
        (lambda: DropPath(1.0), "droppath: rate=1.0 is invalid; expected a number in [0, 1)"),
        (lambda: Slice(4, 4), "slice: stop=4 is invalid; expected an integer >= 5"),
        (lambda: Shuffle(1), "shuffle: groups=1 is invalid; expected an integer >= 2"),
        (lambda: GlobalPool("sum"), "gpool: mode='sum' is invalid; expected one of ('max', 'avg')"),
        (lambda: Conv(3, 8, dilation=0), "conv: dilation=0 is invalid; expected an integer >= 1"),
        (lambda: Conv((1, 7, 1), 8), "conv: kernel_size=(1, 7, 1) is invalid; expected an integer >= 1 or a pair (height, "
                                     "width) of them"),
        (lambda: Conv((0, 3), 8), "conv: kernel_size=(0, 3) is invalid; expected an integer >= 1 or a pair"),
        (lambda: Conv((1, 3), 8, padding=(0, -1)), "conv: padding=(0, -1) is invalid; expected an integer >= 0 or a pair"),
        (lambda: Conv(3, 8, norm_eps=1e-3), "conv: norm_eps=0.001 is invalid; expected the defaults without norm='batch'"),
        (lambda: Pool(2, ceil_mode="yes"), "pool: ceil_mode='yes' is invalid; expected one of (False, True)"),
        (lambda: Gate(()), "gate: body=() is invalid; expected at least one layer"),
        (lambda: ChannelConv(4), "chconv: kernel_size=4 is invalid; expected an odd integer >= 1"),
        (lambda: ChannelConv(0), "chconv: kernel_size=0 is invalid; expected an integer >= 1"),
        (lambda: ChannelConv(2.5), "chconv: kernel_size=2.5 is invalid; expected an integer >= 1"),
        (lambda: ChannelConv(3, bias=1), "chconv: bias=1 is invalid; expected True or False"),
    ],
)
def test_bad_specs_name_the_field_and_value(make, message):
    with pytest.raises(LayerSpecError) as error:
        make()
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gn(3) gap", "norm1 (gn(3)): groups=3 does not divide the 8 channels; expected a divisor of 8"),
        ("slice(4,12) gap", "slice1 (slice(4,12)): channels 4:12 of a map with 8; expected a slice inside 0:8"),
        ("shuffle(3) gap", "shuffle1 (shuffle(3)): groups=3 does not divide the 8 channels"),
        ("gate[gpool (1,4)] gap", "gate1 (gate[gpool (1,4)]): the gate's body gives (4, 1, 1) on an input of (8, 12, 12)"),
    ],
)
def test_shapes_that_do_not_fit_are_refused(text, message):
    with pytest.raises(ShapeError) as error:
        parse(text)
    assert message in str(error.value)


# -- shapes and costs ------------------------------------------------------------------------
def test_shapes_of_the_new_leaves():
    arch = parse("3/2p1(ceil) cat[slice(0,4) | slice(4,8) (3,4)] shuffle(2) gpool (1,16) flat")
    shapes = {info.name: info.out_shape for info in arch.walk()}
    assert shapes["pool1"] == (8, 7, 7)  # ceil((12 + 2 - 3) / 2) + 1 = 7; floor would give 6
    assert shapes["concat1.b1.slice1"] == (4, 7, 7) and shapes["concat1"] == (8, 7, 7)
    assert shapes["gpool1"] == (8, 1, 1) and shapes["conv1"] == (16, 1, 1)
    assert torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)(torch.zeros(1, 8, 12, 12)).shape[-1] == 7


def test_gate_costs_its_convs_on_a_one_pixel_map_and_reports_the_multiply():
    arch = parse("(3,32) gate[gpool (1,8)@silu (1,32)@sigmoid] gap")
    report = budgetnet.complexity(arch)
    # by hand: the 3x3 conv on 12x12, then the gate's two 1x1 convs on 1x1 (Eqn. (1), m = 1)
    assert report.conv_macs == 8 * 9 * 32 * 12 * 12 + 32 * 8 + 8 * 32
    assert report.mul_ops == 32 * 12 * 12  # one multiply per element of the gated map
    assert report.add_ops == 0


def test_a_conv_along_the_channels_counts_k_taps_per_output_as_fvcore_counts_conv1d():
    arch = parse("(3,32) gate[gpool chconv(5) sigmoid] chconv(3,bias=true) gap")
    report = budgetnet.complexity(arch)
    rows = {row.name: row for row in report.rows}
    # by hand: ECA's conv has one input and one output channel and k taps per output element:
    # k * C on the gate's 1x1 map, k * C * H * W on the 12x12 map; not C * C as a 1x1 conv would
    assert rows["gate1.chconv1"].macs == 5 * 32 and rows["chconv1"].macs == 3 * 32 * 12 * 12
    assert report.conv_macs == 8 * 9 * 32 * 12 * 12 + 5 * 32 + 3 * 32 * 12 * 12
    assert budgetnet.conv_macs(arch) == report.conv_macs and rows["gate1"].macs == 5 * 32
    assert (rows["gate1.chconv1"].params, rows["chconv1"].params) == (5, 3 + 1)  # the taps, and a bias
    assert [info.out_shape for info in arch.walk() if info.kind == "chconv"] == [(32, 1, 1), (32, 12, 12)]
    assert "5 along C" in report.table()
    model = budgetnet.build(arch)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert estimate_memory(arch, 1, "none").params == report.params
    # fvcore counts torch's Conv1d(1, 1, k) on a length-C signal as k * C multiply-adds
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(torch.nn.Conv1d(1, 1, 5, padding=2, bias=False), torch.zeros(1, 1, 32))
    assert analysis.unsupported_ops_warnings(False).total() == 5 * 32


def test_uneven_padding_is_a_layer_before_the_conv():
    # TensorFlow's "same" padding of a 3x3/2 conv on 12 px: 0 before, 1 after
    arch = parse("pad(0,1,0,1) (3,16)/2p0 gap")
    assert arch.shapes[0].out_shape == (8, 13, 13) and arch.feature_shape == (16, 6, 6)
    model = budgetnet.build(arch).eval()
    x = torch.randn(1, *SHAPE)
    conv = model.features[1]
    assert torch.equal(model.features(x), F.relu(conv(F.pad(x, (0, 1, 0, 1)))))


def test_a_non_square_filter_counts_height_times_width_and_keeps_the_map():
    arch = parse("(1x7,16)bn (7x1,16) (1x3,8)/2p(0,1) gap")
    assert [info.layer.padding for info in arch.convs] == [(0, 3), (3, 0), (0, 1)]  # automatic: each odd side kept
    assert [info.out_shape for info in arch.convs] == [(16, 12, 12), (16, 12, 12), (8, 6, 6)]
    # Eqn. (1) by hand: n_in * (kh * kw) * n_out * H * W
    assert budgetnet.conv_macs(arch) == 8 * 7 * 16 * 144 + 16 * 7 * 16 * 144 + 16 * 3 * 8 * 36
    x = torch.zeros(1, *SHAPE)
    for info, torch_conv in zip(arch.convs, [torch.nn.Conv2d(8, 16, (1, 7), padding=(0, 3)),
                                             torch.nn.Conv2d(16, 16, (7, 1), padding=(3, 0)),
                                             torch.nn.Conv2d(16, 8, (1, 3), 2, (0, 1))]):  # fmt: skip
        x = torch_conv(x)
        assert x.shape[1:] == info.out_shape
    assert "1x7" in budgetnet.complexity(arch).table() and "0x3" in budgetnet.complexity(arch).table()


def test_a_non_square_filter_with_an_even_side_needs_its_padding_written():
    with pytest.raises(ShapeError, match=r"conv1 \(\(1x2,8\)\): a 1x2 filter has an even side.*expected an explicit "
                                         r"padding p\(ROWS,COLUMNS\)"):
        parse("(1x2,8) gap")
    assert parse("(1x2,8)p(0,1) gap").feature_shape == (8, 12, 13)


def test_dilated_conv_counts_its_taps_and_widens_its_field():
    arch = parse("(3,16)p2d2 gap")
    assert arch.feature_shape == (16, 12, 12)  # field 5, pad 2 keeps 12
    assert budgetnet.conv_macs(arch) == 8 * 3 * 3 * 16 * 12 * 12
    conv = torch.nn.Conv2d(8, 16, 3, padding=2, dilation=2)
    assert conv(torch.zeros(1, *SHAPE)).shape[1:] == arch.feature_shape


def test_norm_and_scale_parameters_are_counted():
    report = budgetnet.complexity(parse("bn gn(4) ln bn(affine=false) scale grn rms simplenorm(affine=false) gap"))
    by_name = {row.name: row.params for row in report.rows}
    norms = [by_name[f"norm{i}"] for i in range(1, 8)]
    assert norms == [16, 16, 16, 0, 16, 8, 0]  # scale and shift per channel; the RMS norms a scale only
    assert by_name["scale1"] == 8


# -- torch ---------------------------------------------------------------------------------
def test_built_layers_compute_what_torch_computes():
    torch.manual_seed(0)
    arch = parse("bn(eps=0.001) ln(eps=1e-06) scale(0.5) cat[slice(0,4) | slice(4,8) relu] shuffle(2) "
                 "gate[gpool (1,2)@silu (1,8)@hardsigmoid] 3/2p1(ceil) avg2/1(exclude_pad) gap")  # fmt: skip
    model = budgetnet.build(arch).eval()
    x = torch.randn(2, *SHAPE)
    features = model.features
    with torch.no_grad():
        for module in features.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
        out = features(x)
        # the same by hand, in plain torch
        bn, ln = features[0], features[1]
        y = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-3)
        y = y * bn.weight[:, None, None] + bn.bias[:, None, None]
        y = F.layer_norm(y.permute(0, 2, 3, 1), (8,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
        y = y * 0.5
        y = torch.cat([y[:, :4], F.relu(y[:, 4:])], dim=1)
        y = y.view(2, 2, 4, 12, 12).transpose(1, 2).reshape(2, 8, 12, 12)
        gate = features[5].body
        s = F.silu(gate[1](y.mean((2, 3), keepdim=True)))
        y = y * F.hardsigmoid(gate[3](s))
        y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        y = F.avg_pool2d(y, 2, 1, count_include_pad=False)
    assert torch.allclose(out, y, atol=1e-5)


def test_the_eca_gate_and_a_conv_along_the_channels_compute_their_formulas():
    # Wang et al. 2020 (ECA-Net): y = x * sigmoid(conv1d_k(mean over the map of x)) with zero
    # padding (k - 1) / 2 along the channels; written here tap by tap, apart from budgetnet
    torch.manual_seed(0)
    model = budgetnet.build(parse("gate[gpool chconv(5) sigmoid] chconv(3,bias=true) gap")).eval()
    gate_conv, conv = model.features[0].body[1].conv, model.features[1].conv
    x = torch.randn(2, *SHAPE)

    def along_channels(v, weight, bias=0.0):  # v: (N, C, H, W), weight: k taps
        k, channels = len(weight), v.shape[1]
        padded = torch.cat([v.new_zeros(v.shape[0], k // 2, *v.shape[2:]), v,
                            v.new_zeros(v.shape[0], k // 2, *v.shape[2:])], dim=1)  # fmt: skip
        return sum(weight[j] * padded[:, j : j + channels] for j in range(k)) + bias

    with torch.no_grad():
        pooled = x.mean(dim=(2, 3), keepdim=True)
        y = x * torch.sigmoid(along_channels(pooled, gate_conv.weight.flatten()))
        y = along_channels(y, conv.weight.flatten(), conv.bias)
        assert torch.allclose(model.features(x), y, atol=1e-6)


def test_the_response_norm_computes_convnext_v2s_formula():
    # Woo et al. 2023, Eqns. (1)-(3): G = per-channel L2 norm over the map, N = G / mean_c(G),
    # out = gamma * (x * N) + beta + x; written here channel by channel, apart from budgetnet
    torch.manual_seed(0)
    model = budgetnet.build(parse("grn(eps=1e-06) gap")).eval()
    grn = model.features[0]
    with torch.no_grad():
        grn.weight.uniform_(-1, 1)
        grn.bias.uniform_(-1, 1)
    x = torch.randn(2, *SHAPE)
    norms = torch.stack([torch.sqrt((x[:, c] ** 2).sum(dim=(1, 2))) for c in range(SHAPE[0])], dim=1)  # (2, C)
    expected = torch.empty_like(x)
    for c in range(SHAPE[0]):
        n = norms[:, c] / (norms.mean(dim=1) + 1e-6)
        expected[:, c] = grn.weight[c] * x[:, c] * n.view(2, 1, 1) + grn.bias[c] + x[:, c]
    assert torch.allclose(grn(x), expected, atol=1e-6)


def test_the_rms_norms_compute_their_formulas():
    # RMS norm: x / sqrt(mean over the channels of x^2 + eps) * w; timm's SimpleNorm: the channels'
    # unbiased variance (n - 1) in place of the mean square. Written here pixel by pixel.
    torch.manual_seed(0)
    x = torch.randn(2, *SHAPE)
    channels = SHAPE[0]
    for text, spread in (("rms(eps=1e-06)", (x**2).sum(dim=1) / channels),
                         ("simplenorm(eps=1e-06)", ((x - x.mean(dim=1, keepdim=True)) ** 2).sum(dim=1) / (channels - 1))):  # fmt: skip
        norm = budgetnet.build(parse(f"{text} gap")).eval().features[0]
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
        expected = x / torch.sqrt(spread + 1e-6).unsqueeze(1) * norm.weight.view(1, -1, 1, 1)
        assert torch.allclose(norm(x), expected, atol=1e-5), text


def test_droppath_is_the_identity_in_eval_and_drops_samples_in_training():
    model = budgetnet.build(parse("res[(3,8) droppath(0.5)]@none gap"))
    x = torch.randn(64, *SHAPE)
    drop = model.features[0].body[-1]
    model.eval()
    assert torch.equal(drop(x), x)
    model.train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y.flatten(1).any(1)
    assert 0.25 < kept.float().mean().item() < 0.75  # about half of the 64 samples survive
    assert torch.allclose(y[kept], 2 * x[kept]) and not y[~kept].any()  # scaled by 1 / (1 - 0.5)


def test_an_activation_first_in_a_branch_does_not_change_the_shortcut():
    # legacy Xception's shape: the body starts with a ReLU while the shortcut reads the input
    model = budgetnet.build(parse("res[relu (3,8)@none | (1,8)@none]@none gap")).eval()
    x = torch.randn(1, *SHAPE)
    block = model.features[0]
    expected = block.body(x.clone()) + block.shortcut(x.clone())
    assert torch.allclose(block(x), expected)


def test_the_standalone_export_builds_every_new_layer():
    arch = parse("(3,16)bn(eps=0.001) res[(1,32)bn@silu (3,32)dwbn@silu gate[gpool (1,4)@silu (1,32)@sigmoid] "
                 "(1,16)bn@none droppath(0.1)]@none cat[id | slice(0,8) (3,8)d2] shuffle(2) ln scale(1e-06) gn(4) "
                 "leaky_relu(0.1) grn(eps=1e-06) rms simplenorm scale(0.5,shift=true) (1x3,32)p(0,1) 3/2p1(ceil) "
                 "gate[gpool chconv(3) sigmoid] chconv(5,bias=true) gpool (1,32)@hardswish flat "
                 "fc(64,0.2)@hardswish")  # fmt: skip
    model = budgetnet.build(arch).eval()
    namespace: dict = {}
    exec(module_source(arch), namespace)  # the file imports only torch
    standalone = namespace["Net"]()
    standalone.load_state_dict(model.state_dict())
    standalone.eval()
    x = torch.randn(2, *SHAPE)
    assert torch.equal(standalone(x), model(x))


# -- today's CNNs in the zoo: Eqn. (1) against fvcore and the published figures --------------
#: Published multiply-adds (Tan & Le 2019: 0.39 B; Howard et al. 2019: 219 M; Radosavovic et
#: al. 2020: 0.4 G; Liu et al. 2022: 4.5 G), with the rounding of the figure as printed.
PUBLISHED = {
    "efficientnet_b0": (0.39e9, 0.005e9),
    "mobilenet_v3_large": (219e6, 0.03 * 219e6),
    "regnet_y_400mf": (0.4e9, 0.05e9),
    "convnext_tiny": (4.5e9, 0.05e9),
}


@pytest.fixture(scope="module")
def torchvision():
    from budgetnet.pytorch.importer import import_torchvision

    return import_torchvision()


def _fvcore_counts(model, shape=(1, 3, 224, 224)) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(model.eval(), torch.zeros(shape))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return dict(analysis.by_operator())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_modern_zoo_costs_equal_fvcore_and_the_papers(name, torchvision):
    from budgetnet.graph import zoo

    arch = zoo.ZOO[name]
    model = getattr(torchvision.models, name)()
    counts = _fvcore_counts(model)
    if name == "convnext_tiny":
        # torchvision writes ConvNeXt's pointwise convs as Linear layers on channels-last maps:
        # in budgetnet they are 1x1 convs, so Eqn. (1) holds fvcore's conv and linear counts
        # less the classifier (768 x 1000)
        expected = counts["conv"] + counts["linear"] - 768 * 1000
    else:
        expected = counts["conv"]
    assert budgetnet.conv_macs(arch) == expected
    params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in budgetnet.build(arch).parameters()) == params
    published, rounding = PUBLISHED[name]
    total = budgetnet.complexity(arch).total_macs  # convs and fc layers, as the papers count
    assert math.isclose(total, published, abs_tol=rounding), (name, total)
