"""Tests for budgetnet/pytorch/importer.py: torch module -> Arch through torch.fx."""

import dataclasses
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import budgetnet
from budgetnet import FC, SPP, Arch, Conv, Flatten, Pool
from budgetnet.errors import ArchError, UnsupportedModuleError
from search_spaces.paper import MODELS

VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    """torchvision's VGG-16 layout, written out: 13 3x3 convs (pad 1), 5 max pools 2/2,
    AdaptiveAvgPool2d(7) and three Linear layers with dropout."""

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, channels = [], 3
        for value in VGG16_CONFIG:
            if value == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, value, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = value
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@pytest.fixture(scope="module")
def vgg16():
    return VGG16()


@pytest.fixture(scope="module")
def vgg16_arch(vgg16):
    return Arch.from_module(vgg16, (3, 224, 224))


def test_vgg16_structure(vgg16_arch):
    assert vgg16_arch.depth == 13
    assert vgg16_arch.feature_shape == (512, 7, 7)
    assert vgg16_arch.head == (SPP((7,), "avg"), FC(4096, 0.5), FC(4096, 0.5))
    assert vgg16_arch.num_classes == 1000
    assert all(info.layer.padding == 1 and info.layer.kernel_size == 3 for info in vgg16_arch.convs)
    assert [len(stage) for stage in vgg16_arch.stages] == [2, 2, 3, 3, 3]


def test_vgg16_conv_macs_by_hand(vgg16_arch):
    # n_in * 3*3 * n_out * m^2 per conv, by stage (m = 224, 112, 56, 28, 14).
    by_hand = (
        (3 * 64 + 64 * 64) * 9 * 224**2
        + (64 * 128 + 128 * 128) * 9 * 112**2
        + (128 * 256 + 2 * 256 * 256) * 9 * 56**2
        + (256 * 512 + 2 * 512 * 512) * 9 * 28**2
        + (3 * 512 * 512) * 9 * 14**2
    )
    assert by_hand == 15_346_630_656
    assert budgetnet.conv_macs(vgg16_arch) == by_hand
    assert round(budgetnet.conv_macs(vgg16_arch) / 1e9, 2) == 15.35  # the well-known figure


def test_vgg16_matches_fvcore_layer_by_layer(vgg16, vgg16_arch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        flops = FlopCountAnalysis(vgg16, torch.zeros(1, 3, 224, 224))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = flops.by_module()
        total = flops.by_operator()["conv"]
    conv_names = [f"features.{i}" for i, m in enumerate(vgg16.features) if isinstance(m, nn.Conv2d)]
    report = budgetnet.complexity(vgg16_arch)
    assert [row.macs for row in report.rows if row.kind == "conv"] == [by_module[n] for n in conv_names]
    assert report.conv_macs == total


@pytest.mark.parametrize("name", ["A", "B'", "J'"])
def test_round_trip_of_zoo_models(name):
    arch = MODELS[name]
    assert Arch.from_module(budgetnet.build(arch), arch.input_shape) == arch


def test_round_trip_with_batch_norm_and_other_class_count():
    arch = budgetnet.parse(  # model C with a narrow head
        "(7,64)/2 3/3 (3,128)x2 2/2 (3,256)x3 spp fc64 fc64", input_shape=(3, 112, 112), num_classes=10
    )
    model = budgetnet.build(arch, norm="batch")
    imported = Arch.from_module(model, (3, 112, 112))
    assert imported == budgetnet.parse(  # the built batch norms are imported with their convs
        "(7,64)/2bn 3/3 (3,128)bnx2 2/2 (3,256)bnx3 spp fc64 fc64", input_shape=(3, 112, 112), num_classes=10
    )
    assert imported.num_classes == 10
    assert budgetnet.conv_macs(imported) == budgetnet.conv_macs(arch)


_FEATURES = st.one_of(
    st.builds(
        Conv,
        kernel_size=st.integers(1, 3),
        out_channels=st.integers(1, 6),
        stride=st.integers(1, 2),
        padding=st.one_of(st.none(), st.integers(0, 1)),
    ),
    st.builds(Pool, kernel_size=st.just(2), mode=st.sampled_from(["max", "avg"])),
)
_HEADS = st.sampled_from([(SPP((1,), "avg"),), (SPP((2, 1)),), (Flatten(),), (SPP((3,), "max"),)])
_FCS = st.lists(st.builds(FC, out_features=st.integers(1, 8), dropout=st.sampled_from([0.0, 0.5])), max_size=2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    features=st.lists(_FEATURES, min_size=1, max_size=5),
    head=_HEADS,
    fcs=_FCS,
    channels=st.integers(1, 3),
    num_classes=st.integers(1, 5),
    norm=st.sampled_from([None, "batch"]),
)
def test_round_trip_of_random_archs(features, head, fcs, channels, num_classes, norm):
    try:
        arch = Arch([*features, *head, *fcs], (channels, 12, 12), num_classes)
    except budgetnet.BudgetNetError:
        assume(False)
    expected = arch if norm is None else arch.with_layers(
        [dataclasses.replace(layer, norm="batch") if isinstance(layer, Conv) else layer for layer in arch.layers]
    )
    assert Arch.from_module(budgetnet.build(arch, norm=norm), arch.input_shape) == expected


class LeNet(nn.Module):
    """The PyTorch tutorial's LeNet: functional ReLU and pooling, view(-1, N)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = self.fc2(x).relu()
        return self.fc3(x)


def test_functional_lenet():
    arch = Arch.from_module(LeNet(), (1, 32, 32))
    assert arch == Arch(
        [Conv(5, 6, padding=0), Pool(2), Conv(5, 16, padding=0), Pool(2), Flatten(), FC(120, 0.0), FC(84, 0.0)],
        (1, 32, 32),
        10,
    )
    assert budgetnet.conv_macs(arch) == 1 * 25 * 6 * 28 * 28 + 6 * 25 * 16 * 10 * 10


class Flattening(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.conv(x)
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "reshape":
            x = x.reshape(x.shape[0], -1)
        elif self.how == "size-item":
            x = x.view((x.size()[0], -1))
        elif self.how == "method":
            x = x.flatten(1)
        else:
            x = torch.flatten(x, start_dim=1)
        return self.fc(x)


@pytest.mark.parametrize("how", ["view", "reshape", "size-item", "method", "function"])
def test_flatten_forms(how):
    arch = Arch.from_module(Flattening(how), (3, 8, 8))
    assert arch == Arch([Conv(3, 4, 2, 1, activation="none"), Flatten()], (3, 8, 8), 5)


@pytest.mark.parametrize(
    "pool, spp",
    [
        (nn.AdaptiveAvgPool2d(1), SPP((1,), "avg")),
        (nn.AdaptiveMaxPool2d((2, 2)), SPP((2,), "max")),
        (nn.AdaptiveAvgPool2d(3), SPP((3,), "avg")),
    ],
)
def test_adaptive_pools_become_spp(pool, spp):
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), pool, nn.Flatten(), nn.Linear(4 * spp.bins, 3))
    arch = Arch.from_module(net, (2, 9, 9))
    assert arch.head == (spp,)
    assert budgetnet.parse(str(arch), input_shape=(2, 9, 9), num_classes=3) == arch


@pytest.mark.parametrize(
    "pool, size",
    [
        (nn.AdaptiveAvgPool2d(7), 1),  # VGG's pool on a 32 px input: one pixel repeated 49 times
        (nn.AdaptiveAvgPool2d(3), 2),  # bins average one or two of the 2x2 pixels
        (nn.AdaptiveMaxPool2d(4), 2),  # each bin is one pixel: max = that pixel
    ],
)
def test_an_adaptive_pool_finer_than_its_map_imports_as_flat_with_equal_logits(pool, size):
    level = pool.output_size
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), pool, nn.Flatten(), nn.Linear(4 * level**2, 3)).eval()
    arch = Arch.from_module(net, (2, size, size))
    assert arch.head == (Flatten(),) and arch.shapes[-1].out_shape == (4 * size * size,)
    built = budgetnet.build(arch, weights_from=net).eval()
    image = torch.randn(5, 2, size, size)
    with torch.no_grad():
        torch.testing.assert_close(built(image), net(image), atol=1e-5, rtol=0)


def test_an_adaptive_max_pool_over_overlapping_pixels_is_refused():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.AdaptiveMaxPool2d(3), nn.Flatten(), nn.Linear(36, 3))
    with pytest.raises(UnsupportedModuleError, match=r"'1' \(AdaptiveMaxPool2d\): AdaptiveMaxPool2d\(3\) on a 2x2 map "
                                                     r"takes the maximum of overlapping pixel pairs.*expected an "
                                                     r"output_size of at most 2, a multiple of the map's side"):  # fmt: skip
        Arch.from_module(net, (2, 2, 2))


def test_pools_padding_strings_dropout_and_identity():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 5, padding="same"),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(8, 8, 2, padding="valid"),
        nn.Identity(),
        nn.AvgPool2d(2, stride=1),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 16),
        nn.Dropout(0.3),
        nn.ReLU(),
        nn.Linear(16, 12),
        nn.ReLU(),
        nn.Linear(12, 4),
    )
    arch = Arch.from_module(net, (3, 16, 16))
    assert arch.layers == (
        Conv(5, 8, 1, 2, norm="batch"),
        Pool(3, 2, 1, "max"),
        Conv(2, 8, 1, 0, activation="none"),
        Pool(2, 1, 0, "avg"),
        Flatten(),
        FC(16, 0.3),
        FC(12, 0.0),
    )
    assert arch.num_classes == 4


def test_import_keeps_the_training_mode_and_does_not_need_grad():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
    net.train()
    Arch.from_module(net, (1, 6, 6))
    assert all(m.training for m in net.modules())
    net.eval()
    Arch.from_module(net, (1, 6, 6))
    assert not any(m.training for m in net.modules())


def test_double_precision_module():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).double()
    assert Arch.from_module(net, (1, 6, 6)).depth == 1


# -- unsupported modules -------------------------------------------------------------------------
def _head(features):
    return [nn.Flatten(), nn.Linear(features, 3)]


class Swish(nn.Module):
    """A custom activation block that budgetnet does not know."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + x


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(3, 2, 1)
        self.right = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.left(x), self.right(x)], 1)


class DeadBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = nn.Conv2d(3, 2, 1)
        self.used = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        torch.sigmoid(self.unused(x))  # a function's result left unread: refused, not guessed at
        return self.fc(torch.flatten(self.used(x), 1))


def test_non_square_kernels_and_paddings_import_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, (3, 1)), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=(1, 0)), nn.ReLU(),
                          nn.Conv2d(4, 4, (1, 5), padding="same"), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()  # fmt: skip
    arch = budgetnet.Arch.from_module(model, (3, 8, 8))  # checked numerically by default
    assert str(arch) == "(3x1,4)p0 + (3,4)p(1,0) + (1x5,4)p(0,2)@none flat"
    # by hand: 3x1 on 8x8 -> 6x8; 3x3 padded (1, 0) -> 6x6; 1x5 'same' -> 6x6
    assert budgetnet.conv_macs(arch) == 3 * 3 * 4 * 6 * 8 + 4 * 9 * 4 * 6 * 6 + 4 * 5 * 4 * 6 * 6
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(budgetnet.build(arch, weights_from=model).eval()(x), model(x))


class LearnableAffineBlock(nn.Module):
    """HGNetV2's (timm): one scalar scale and one scalar shift for the whole map."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([-0.7]))
        self.bias = nn.Parameter(torch.tensor([0.3]))

    def forward(self, x):
        return self.scale * x + self.bias


def test_a_learnable_affine_is_a_scale_with_a_shift_on_every_channel():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), LearnableAffineBlock(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    arch = budgetnet.Arch.from_module(model.eval(), (3, 8, 8))  # checked numerically by default
    assert str(arch) == "(3,4)p0 + scale(shift=true) flat"  # a negative scale starts training at 1
    built = budgetnet.build(arch, weights_from=model).eval()
    (scale,) = [m for m in built.modules() if type(m).__name__ == "LayerScale"]
    assert scale.gamma.tolist() == pytest.approx([-0.7] * 4) and scale.beta.tolist() == pytest.approx([0.3] * 4)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(built(x), model(x), atol=1e-6)
    assert budgetnet.complexity(arch).rows[1].params == 2 * 4  # a scale and a shift per channel


class DeadConv(DeadBranch):
    def forward(self, x):
        self.unused(x)  # a conv computed and thrown away (timm's DLA): dropped, as it changes nothing
        return self.fc(torch.flatten(self.used(x), 1))


def test_a_conv_whose_output_nobody_reads_is_dropped():
    model = DeadConv().eval()
    arch = budgetnet.Arch.from_module(model, (3, 8, 8))  # checked numerically by default
    assert str(arch) == "(1,2)p0@none flat"
    assert budgetnet.conv_macs(arch) == 3 * 2 * 8 * 8  # the used 1x1 conv only: c_in * c_out * pixels


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 8)

    def forward(self, x):
        return self.rnn(x)[0]


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y):
        return self.fc(x)


class Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 2)

    def forward(self, x):
        out = self.fc(torch.flatten(self.conv(x), 1))
        return out, out


SUPPORTED = "supported: Conv2d"
UNSUPPORTED = [
    pytest.param(
        [nn.Conv2d(3, 4, 3, stride=(1, 2)), *_head(4 * 6 * 3)],
        "'0' (Conv2d): stride=(1, 2) (a non-square stride)",
        id="stride",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), *_head(256)],
        "'0' (Conv2d): padding_mode='reflect'; expected 'zeros'",
        id="padding mode",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 2, padding="same"), *_head(256)],
        "'0' (Conv2d): padding='same' with kernel_size=(2, 2) pads unevenly",
        id="same even",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 1), nn.MaxPool2d(2, dilation=2), *_head(36)],
        "'1' (MaxPool2d): a dilated max pool (dilation=2)",
        id="pool dilation",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 1), nn.MaxPool2d((2, 1)), *_head(128)],
        "'1' (MaxPool2d): kernel_size=(2, 1) (a non-square kernel)",
        id="pool non-square",
    ),
    pytest.param(
        [nn.AvgPool2d(2, divisor_override=3), *_head(48)],
        "'0' (AvgPool2d): divisor_override=3",
        id="divisor",
    ),
    pytest.param(
        [nn.MaxPool2d(2, padding=2), *_head(3)],
        "'0' (MaxPool2d) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: pad should be at most half",
        id="pool padding",
    ),
    pytest.param(
        [Recurrent()],
        "'0.rnn' (LSTM): a recurrent layer has no place in an Arch; ",
        id="lstm",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), Scale(), *_head(4 * 36)],
        "operator.mul() in '1' (Scale): a product with a parameter of shape (1,); expected a per-channel scale",
        id="parameter",
    ),
    pytest.param(
        [DataDependent(), *_head(3 * 64)],
        "'0' (DataDependent): torch.fx cannot trace it (TraceError",
        id="untraceable",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), nn.Conv2d(5, 4, 3), *_head(64)],
        "'1' (Conv2d) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: Given groups=1, weight of size [4, 5, 3, 3], expected input[1, 4, 6, 6] to have 5 channels",
        id="in_channels",
    ),
    pytest.param(
        [nn.Conv2d(1, 4, 3), *_head(4 * 36)],
        "'0' (Conv2d) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: Given groups=1, weight of size [4, 1, 3, 3], expected input[1, 3, 8, 8] to have 1 channels",
        id="first conv",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(8), *_head(4 * 36)],
        "'1' (BatchNorm2d) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: running_mean should contain 4 elements not 8)",
        id="batch norm",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), *_head(99)],
        "'2' (Linear) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x144 and 99x3))",
        id="in_features",
    ),
    pytest.param(
        [*_head(192)[:1], nn.Linear(192, 8), nn.Dropout(), nn.Dropout(), nn.Linear(8, 2)],
        "'3' (Dropout): a second Dropout after '1' (Linear) cannot be expressed",
        id="two dropouts",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), *_head(144), nn.ReLU()],
        "'3' (ReLU) follows the classifier '2' (Linear)",
        id="relu after classifier",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), *_head(144), nn.Softmax(1)],
        "'3' (Softmax): a Softmax module budgetnet does not know",
        id="softmax",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3)],
        "the forward of Sequential returns a feature map, not logits; expected the last map pooled or flattened",
        id="no head",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), nn.Linear(6, 2)],
        "'1' (Linear) reads a feature map with its channels first; expected a Linear on the channels of a channels-last map",
        id="no flatten",
    ),
    pytest.param(
        [nn.AdaptiveAvgPool2d((2, 3)), *_head(18)],
        "'0' (AdaptiveAvgPool2d): output_size=(2, 3) (a non-square output_size)",
        id="adaptive non-square",
    ),
    pytest.param(
        [nn.AdaptiveAvgPool2d((None, None)), *_head(192)],
        "'0' (AdaptiveAvgPool2d): output_size=None; expected an integer size",
        id="adaptive None",
    ),
    pytest.param(
        [nn.AdaptiveAvgPool2d(4), nn.Conv2d(3, 3, 1), *_head(48)],
        "'1' (Conv2d) in the head; expected Linear, activation and Dropout layers",
        id="conv after pooling",
    ),
    pytest.param(
        [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.AdaptiveAvgPool2d(1), nn.Linear(3, 2)],
        "'3' (Linear) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x1 and 3x2))",
        id="two reducers",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), Lambda(torch.flatten), nn.Linear(144, 2)],
        "torch.flatten() in '1' (Lambda): a reshape from (1, 4, 6, 6) to (144,); expected a flatten or a channel shuffle",
        id="flatten batch",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), nn.Flatten(0), nn.Linear(144, 2)],
        "'1' (Flatten): start_dim=0, end_dim=-1",
        id="flatten module",
    ),
    pytest.param(
        [nn.Conv2d(3, 4, 3), Lambda(lambda x: x.view(x.size(0), 4, -1)), nn.Linear(36, 2)],
        "Tensor.view() in '1' (Lambda): a reshape from (1, 4, 6, 6) to (1, 4, 36); expected a flatten or a channel shuffle",
        id="view",
    ),
    pytest.param(
        [Lambda(lambda x: F.avg_pool2d(x, x.size(2))), *_head(3)],
        "torch.nn.functional.avg_pool2d() in '0' (Lambda): pooling arguments that depend on the input",
        id="dynamic pool",
    ),
    pytest.param(
        [DeadBranch()],
        "torch.flatten() in '0' (DeadBranch) does not read the last feature map; expected the head to follow the features",
        id="dead branch",
    ),
]


@pytest.mark.parametrize("layers, message", UNSUPPORTED)
def test_unsupported_modules(layers, message):
    # refused by name (UnsupportedModuleError), or, where the module itself fails on the
    # input (wrong channels, a pad over half the window), reported with torch's own reason
    net = nn.Sequential(*layers)
    error = ArchError if " fails on a zero input of shape " in message else UnsupportedModuleError
    with pytest.raises(error, match=re.escape(message)):
        Arch.from_module(net, (3, 8, 8))


#: Modules the first importer refused that today's vocabulary expresses exactly.
NOW_EXPRESSED = [
    pytest.param([nn.Conv2d(3, 4, 3, dilation=2), *_head(4 * 4 * 4)], id="dilated"),
    pytest.param([nn.Conv2d(3, 4, 1), nn.MaxPool2d(3, ceil_mode=True), *_head(36)], id="ceil max"),
    pytest.param([nn.Conv2d(3, 4, 1), nn.AvgPool2d(3, ceil_mode=True), *_head(36)], id="ceil avg"),
    pytest.param([nn.AvgPool2d(3, padding=1, count_include_pad=False), *_head(3 * 9)], id="count_include_pad"),
    pytest.param([nn.Conv2d(3, 4, 3), Swish(), *_head(4 * 36)], id="custom block"),
    pytest.param([nn.Conv2d(3, 4, 3), Lambda(lambda x: F.max_pool2d(x, 2, ceil_mode=True)), *_head(36)], id="functional pool"),
]


@pytest.mark.parametrize("layers", NOW_EXPRESSED)
def test_modules_once_refused_import_with_equal_logits(layers):
    net = nn.Sequential(*layers).eval()
    arch = Arch.from_module(net, (3, 8, 8))  # the numeric check runs here too
    built = budgetnet.build(arch, weights_from=net).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(built(x), net(x), atol=1e-5)


def test_unsupported_roots():
    with pytest.raises(UnsupportedModuleError, match=r"module=str is not a torch.nn.Module"):
        Arch.from_module("vgg16", (3, 8, 8))
    with pytest.raises(UnsupportedModuleError, match=r"the forward of TwoInputs takes 2 inputs \['x', 'y'\]"):
        Arch.from_module(TwoInputs(), (3, 8, 8))
    with pytest.raises(UnsupportedModuleError, match=r"the forward of Pair returns \(fc, fc\); expected"):
        Arch.from_module(Pair(), (3, 8, 8))


def test_bad_input_shape_and_small_maps():
    net = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ArchError, match=r"input_shape=\(3, 8\) is invalid; expected \(channels, height, width\)"):
        Arch.from_module(net, (3, 8))
    # the module itself cannot run there: torch's reason, with the module's path
    with pytest.raises(ArchError, match=r"'0' \(Conv2d\) fails on a zero input of shape \(1, 3, 4, 4\) \(RuntimeError: "
                                        r"Calculated padded input size per channel: \(4 x 4\)"):
        Arch.from_module(net, (3, 4, 4))


def test_shape_check_against_a_forward_pass():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 2))
    handle = net[0].register_forward_hook(lambda module, args, output: output.reshape(1, 4, 3, 12))
    message = "'0' (Conv2d): torch gives an output of shape (1, 4, 3, 12) but the imported Arch infers (1, 4, 6, 6)"
    with pytest.raises(ArchError, match=re.escape(message)):
        Arch.from_module(net, (3, 8, 8))
    handle.remove()

    def fail(module, args, output):
        raise RuntimeError("boom")

    net[2].register_forward_hook(fail)
    message = "'2' (Linear) fails on a zero input of shape (1, 3, 8, 8) (RuntimeError: boom); expected a module"
    with pytest.raises(ArchError, match=re.escape(message)):
        Arch.from_module(net, (3, 8, 8))


# -- branching modules written by hand -----------------------------------------------------------
class FunctionalBlock(nn.Module):
    """A basic residual block in the functional style: F.relu, torch.add, then F.relu."""

    def __init__(self, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * stride, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels * stride)
        self.conv2 = nn.Conv2d(channels * stride, channels * stride, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels * stride)
        self.down = None
        if stride != 1:
            self.down = nn.Sequential(nn.Conv2d(channels, channels * stride, 1, stride, bias=False),
                                      nn.BatchNorm2d(channels * stride))  # fmt: skip

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.down is None else self.down(x)
        return F.relu(torch.add(out, identity))


class PlusAndCat(nn.Module):
    """``+`` with a Tensor.relu after it, then an Inception-style torch.cat with the input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Conv2d(8, 4, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = (self.conv(x) + x).relu()
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x)), x], dim=1)
        return self.fc(torch.flatten(x, 1))


def test_functional_residual_blocks():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        FunctionalBlock(8), FunctionalBlock(8, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == "(3,8)p1bn res[(3,8)bn (3,8)bn@none] res[(3,16)/2bn (3,16)bn@none] gap"
    # by hand: stem 3*9*8*64; block 1: 2 * 8*9*8*64; block 2: 8*9*16*16 + 16*9*16*16 + projection 8*1*16*16
    assert budgetnet.conv_macs(arch) == 3 * 9 * 8 * 64 + 2 * 8 * 9 * 8 * 64 + (8 * 9 + 16 * 9 + 8) * 16 * 16
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(budgetnet.build(arch, weights_from=net).eval()(x), net(x), atol=1e-6)


def test_plus_and_cat():
    net = PlusAndCat()
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == "(3,8)p1 res[(3,8)@none] cat[(1,4) | (3,4) | id] flat"
    assert arch.feature_shape == (16, 8, 8)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(budgetnet.build(arch, weights_from=net)(x), net(x), atol=1e-6)


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        return x * torch.sigmoid(self.gate(F.adaptive_avg_pool2d(x, 1)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8)

    def forward(self, x):
        return self.lstm(x)[0]


@pytest.mark.parametrize(
    "layers, message",
    [
        ([Recurrent(), *_head(8)], "'0.lstm' (LSTM): a recurrent layer has no place in an Arch"),
        ([nn.MultiheadAttention(8, 2)], "'0' (MultiheadAttention): self-attention has no place in an Arch"),
    ],
)  # fmt: skip
def test_unsupported_branching_modules(layers, message):
    with pytest.raises(UnsupportedModuleError, match=re.escape(message)):
        Arch.from_module(nn.Sequential(*layers), (3, 8, 8))


@pytest.mark.parametrize(
    "layers, notation",
    [
        ([SqueezeExcite(), *_head(8 * 64)], "(3,8)p1@none gate[gpool (1,8)@sigmoid] flat"),
        ([nn.Conv2d(3, 4, 3, dilation=2), *_head(64)], "(3,4)p0d2@none flat"),
        ([nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=1e-3), *_head(144)], "(3,4)p0bn(eps=0.001)@none flat"),
        ([nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), *_head(144)], "bn + (3,4)p0@none flat"),
        ([nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ReLU(), *_head(144)], "(3,4)p0 + relu flat"),
    ],
)  # fmt: skip
def test_gates_dilation_norms_and_activations_anywhere_import(layers, notation):
    net = nn.Sequential(*layers).eval()
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == notation
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(budgetnet.build(arch, weights_from=net).eval()(x), net(x), atol=1e-5)


class ShapeBoundSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x[:, : x.shape[1] // 2].mean((2, 3)))  # the bound worked out from the shape


def test_a_channel_slice_bounded_by_the_shape_imports():
    # found by the random graphs of test_carried_imports: the bound was an fx node, and a TypeError
    arch = budgetnet.Arch.from_module(ShapeBoundSlice().eval(), (3, 8, 8))
    assert "slice(0,4)" in str(arch)
