"""Tests for ``budgetnet.build``: modules, shapes, and fvcore's count against Eqn. (1).

fvcore's FlopCountAnalysis counts one multiply-add as one flop, like Eqn. (1), so its conv
count must equal ``budgetnet.cost.complexity``'s to the unit, layer by layer.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import budgetnet
from budgetnet import parse
from budgetnet.pytorch.builder import BudgetNet, SpatialPyramidPool, build
from budgetnet.errors import ArchError, LayerSpecError
from search_spaces.paper import MODELS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis

SMALL = (1, 8, 8)


def trace(arch: budgetnet.Arch) -> dict:
    """One fvcore trace of ``build(arch)`` at batch 1, in eval mode without gradients.

    Forward hooks record what the trace computes (they run while torch.jit traces), so the
    output shapes and the flop counts come from the same single pass. Only these small
    results are kept; the module (75M parameters for a zoo model) is dropped.
    """
    model = build(arch).eval()
    shapes: dict[str, tuple[int, ...]] = {}
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]

    def record(name):
        def hook(_module, _inputs, output):
            shapes.setdefault(name, tuple(output.shape))

        return hook

    for name, module in model.named_modules():
        if name in convs or name in ("", "features", "pool"):
            module.register_forward_hook(record(name))
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.zeros(1, *arch.input_shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module, by_operator = analysis.by_module(), analysis.by_operator()
    return {
        "shapes": shapes,
        "convs": convs,
        "conv_flops": [by_module[name] for name in convs],
        "by_operator": dict(by_operator),
    }


@pytest.fixture(scope="module")
def traced():
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = trace(MODELS[name])
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_model_output_shapes(traced, name):
    arch, result = MODELS[name], traced(name)
    shapes = result["shapes"]
    assert shapes[""] == (1, 1000)
    assert shapes["features"] == (1, *arch.feature_shape)
    assert shapes["pool"] == (1, 256 * 50)
    # PyTorch's own conv arithmetic agrees with arch.py's shape inference at every conv.
    assert [shapes[conv] for conv in result["convs"]] == [(1, *info.out_shape) for info in arch.convs]


@pytest.mark.parametrize("name", list(MODELS))
def test_fvcore_conv_count_equals_eqn_1_layer_by_layer(traced, name):
    report = budgetnet.complexity(MODELS[name])
    result = traced(name)
    assert result["conv_flops"] == [row.macs for row in report.rows if row.kind == "conv"]
    assert result["by_operator"]["conv"] == report.conv_macs
    assert result["by_operator"]["linear"] == report.fc_macs


# -- the module ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return parse("(3,8) 2/2 (2,16)x2 gap", input_shape=SMALL, num_classes=10)


def test_module_layout_follows_the_arch(small):
    model = build(small)
    assert isinstance(model, BudgetNet) and model.arch is small
    assert [type(m) for m in model.features] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.Conv2d,
                                                 nn.ReLU]  # fmt: skip
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 8, (3, 3), (1, 1), (1, 1)),
        (8, 16, (2, 2), (1, 1), (0, 0)),
        (16, 16, (2, 2), (1, 1), (1, 1)),
    ]
    assert all(c.bias is not None for c in convs)
    assert isinstance(model.pool, SpatialPyramidPool) and model.pool.levels == (1,) and model.pool.mode == "avg"
    assert [type(m) for m in model.classifier] == [nn.Linear]
    assert model.classifier[0].in_features == 16 and model.classifier[0].out_features == 10
    assert model(torch.zeros(2, *SMALL)).shape == (2, 10)


def test_batch_norm(small):
    model = build(small, norm="batch")
    kinds = [type(m) for m in model.features]
    assert kinds.count(nn.BatchNorm2d) == 3
    assert kinds[:3] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert all(m.bias is None for m in model.features if isinstance(m, nn.Conv2d))
    assert [m.num_features for m in model.features if isinstance(m, nn.BatchNorm2d)] == [8, 16, 16]
    assert model(torch.zeros(2, *SMALL)).shape == (2, 10)
    assert nn.BatchNorm2d not in [type(m) for m in build(small).modules()]


def test_num_classes_override(small):
    model = build(small, num_classes=3)
    assert model(torch.zeros(1, *SMALL)).shape == (1, 3)
    assert model.arch.num_classes == 3 and small.num_classes == 10
    assert budgetnet.build(small, num_classes=4).classifier[-1].out_features == 4


def test_spp_gives_channels_times_50_features():
    # 12 -> (3,8) 12 -> 2/2 6 -> (3,12) 6: the 6x6 level fits exactly.
    arch = parse("(3,8) 2/2 (3,12) spp fc4096 fc4096", input_shape=(1, 12, 12), num_classes=5)
    model = build(arch).eval()
    with torch.no_grad():
        pooled = model.pool(model.features(torch.zeros(2, 1, 12, 12)))
    assert pooled.shape == (2, 12 * 50)
    assert model.classifier[0].in_features == 12 * 50 == arch.shapes[-3].out_shape[0]
    assert [type(m) for m in model.classifier] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [4096, 4096, 5]
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]


@pytest.mark.parametrize("side", [18, 6])
def test_spp_equals_the_papers_sliding_windows(side):
    # Sec. 5 / SPPnet: level l is a max pool of window ceil(a / l) and stride floor(a / l).
    x = torch.randn(2, 3, side, side)
    expected = torch.cat(
        [nn.functional.max_pool2d(x, math.ceil(side / l), side // l).flatten(1) for l in (6, 3, 2, 1)], dim=1
    )
    assert torch.equal(SpatialPyramidPool((6, 3, 2, 1))(x), expected)
    assert expected.shape == (2, 3 * 50)


def test_flatten_hidden_fc_widths_and_dropout():
    # (3,4)p0 on 6x6 -> 4x4, flat -> 64 features.
    arch = parse("(3,4)p0 avg2/1p1 flat fc(32,0.2) fc(16,0)", input_shape=(1, 6, 6), num_classes=2)
    model = build(arch)
    assert isinstance(model.pool, nn.Flatten)
    assert isinstance(model.features[2], nn.AvgPool2d) and model.features[2].padding == 1
    assert [type(m) for m in model.classifier] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    # avg2/1p1 on 4: (4 + 2 - 2) // 1 + 1 = 5, so flat gives 4 * 5 * 5 = 100.
    assert [(m.in_features, m.out_features) for m in linears] == [(100, 32), (32, 16), (16, 2)]
    assert model.classifier[2].p == 0.2
    assert model(torch.zeros(3, 1, 6, 6)).shape == (3, 2)


def test_weights_are_zero_mean_gaussians_with_he_std():
    torch.manual_seed(0)
    model = build(parse("(3,64) (3,64) gap", input_shape=(1, 4, 4)))
    conv = model.features[2]  # 64 in, 3x3: fan_in 576, 36,864 weights
    std = math.sqrt(2 / (64 * 9))
    assert conv.weight.std().item() == pytest.approx(std, rel=0.03)
    assert abs(conv.weight.mean().item()) < 0.05 * std
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda a: build(a, norm="layer"), ArchError, "build: norm='layer' is invalid; expected one of (None, 'batch')"),
        (lambda a: budgetnet.build(a, norm="BN"), ArchError, "build: norm='BN' is invalid"),
        (lambda a: build("A"), ArchError, "build: arch='A' is not a budgetnet.Arch; expected budgetnet.parse(...)"),
        (lambda a: budgetnet.build(None), ArchError, "build: arch=None is not a budgetnet.Arch"),
        (lambda a: build(a, num_classes=0), LayerSpecError, "arch: num_classes=0 is invalid; expected an integer >= 1"),
        (lambda a: build(a, num_classes="10"), LayerSpecError, "arch: num_classes='10' is invalid"),
    ],
)
def test_bad_input(small, call, error, message):
    with pytest.raises(error) as raised:
        call(small)
    assert message in str(raised.value)
