"""Today's CNNs through ``Arch.from_module``: one representative of each torchvision and timm
family, exact or refused by name.

Each accepted model is imported with the numeric check on (layer by layer, relative 1e-4), its
Eqn. (1) is compared with fvcore's conv count of the module, and the model built from the Arch
with the module's weights gives the module's logits, batch-norm statistics and biases
randomised so that no norm is the identity. 64 px inputs keep the sweep cheap; the full census
at 224 px is ``bench/import_zoo.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import budgetnet
from budgetnet.cost.complexity import EQN1_KINDS, eqn1_term
from budgetnet.errors import UnsupportedModuleError
from budgetnet.pytorch.fx_graph import import_module
from budgetnet.pytorch.importer import import_torchvision

SHAPE = (3, 64, 64)


def _randomised(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=generator) - 0.5)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=generator) - 0.5)
            elif "Norm" in type(m).__name__ or type(m).__name__ == "LearnableAffineBlock":
                # layer, group, response and RMS norms and HGNetV2's affine start as the identity
                # (ConvNeXt V2's response norm at zero): move them off it
                for parameter in m.parameters(recurse=False):
                    parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)
    return model.eval()


def _fvcore_by_module(model: nn.Module, x: torch.Tensor) -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return analysis.by_module(), analysis.by_operator()


def _check_exact(model: nn.Module, shape=SHAPE) -> budgetnet.Arch:
    model = _randomised(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a dropout before the classifier is left out
        imported = import_module(model, shape)
        arch = budgetnet.Arch.from_module(model, shape)  # with the numeric check
        built = budgetnet.build(arch, weights_from=model).eval()
    assert arch == imported.arch
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    by_module, by_operator = _fvcore_by_module(model, x[:1])
    # Eqn. (1), conv by conv, against fvcore's count of the module that each conv came from
    # (a pointwise Linear on a channels-last map is a 1x1 conv here, counted as fvcore does;
    # ECA's conv along the channels is its gate's Conv1d)
    convs = [record for record in imported.layers if record.layer.kind in EQN1_KINDS]
    for info, record in zip([info for info in arch.walk() if info.kind in EQN1_KINDS], convs):
        if record.path is not None:
            assert eqn1_term(info) == by_module[record.path], record.name
    pointwise = by_operator.get("linear", 0) - budgetnet.complexity(arch).fc_macs
    # (fvcore's trace drops a conv whose output nothing reads, as the importer does: timm's DLA)
    assert budgetnet.conv_macs(arch) == by_operator.get("conv", 0) + pointwise
    with torch.no_grad():
        reference, ours = model(x), built(x)
    assert ((ours - reference).abs().max() / reference.abs().max()).item() < 1e-4
    return arch


TORCHVISION = [
    "efficientnet_b0", "mobilenet_v3_small", "regnet_y_400mf", "convnext_tiny", "densenet121", "mnasnet0_5",
    "shufflenet_v2_x0_5", "googlenet", "efficientnet_v2_s", "inception_v3", "squeezenet1_0", "squeezenet1_1",
]  # fmt: skip


@pytest.fixture(scope="module")
def torchvision():
    return import_torchvision()


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_families_import_exactly(name, torchvision):
    # Inception-v3 needs 75 px at least (its stem and reductions shrink the map by 27 and more)
    _check_exact(torchvision.models.get_model(name), (3, 96, 96) if name == "inception_v3" else SHAPE)


def test_squeezenet_imports_without_a_classifier(torchvision):
    # SqueezeNet's logits are its last conv's 1000 channels, pooled: no Linear follows
    with pytest.warns(UserWarning, match=r"'classifier.0' \(Dropout\): a Dropout among the feature layers"):
        arch = budgetnet.Arch.from_module(torchvision.models.squeezenet1_1().eval(), (3, 224, 224))
    assert (arch.classifier, arch.num_classes) == (False, 1000)
    assert str(arch).endswith("(1,1000)p0 gap nofc")
    # torchvision's model card: 0.35 GFLOPS (multiply-adds) for SqueezeNet 1.1 at 224 px
    assert round(budgetnet.conv_macs(arch) / 1e9, 2) == 0.35
    assert budgetnet.complexity(arch).fc_macs == 0


TIMM = [
    "efficientnet_b0", "mobilenetv3_small_050", "mobilenetv4_conv_small", "regnety_002", "regnetz_005",
    "convnext_atto", "resnet18d", "seresnext26d_32x4d", "ghostnet_050", "lcnet_050", "mixnet_s", "repvgg_a0",
    "cspresnet50", "ese_vovnet19b_dw", "hgnet_tiny", "mobileone_s0", "xception41", "legacy_xception", "fbnetc_100",
    "mnasnet_100", "tinynet_e", "densenet121", "tf_efficientnet_b0", "rexnet_100", "dla46_c", "res2net50_26w_4s",
    "dpn68", "convnextv2_atto", "inception_v3", "hgnetv2_b0", "convnext_atto_rms", "convnext_zepto_rms",
    "eca_vovnet39b", "ecaresnet26t",
]  # fmt: skip


@pytest.fixture(scope="module")
def timm(torchvision):
    return pytest.importorskip("timm", reason="timm is a test dependency: ./install.sh --dev installs it")


@pytest.mark.parametrize("name", TIMM)
def test_timm_families_import_exactly(name, timm):
    _check_exact(timm.create_model(name), (3, 96, 96) if name.startswith("inception") else SHAPE)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("efficientnet_cc_b0_4e", "'blocks.4.0.conv_pw' (CondConv2d): CondConv (a conv whose weights are mixed per "
                                  "image from several experts) has no place in an Arch"),
        ("regnetz_b16_evos", "'stem.bn' (EvoNorm2dS0a): EvoNorm (a norm with a sigmoid gate and a per-group standard "
                             "deviation) has no place in an Arch"),
        ("efficientnet_blur_b0", "'blocks.1.0.aa' (BlurPool2d): a blur pool (a fixed low-pass filter after reflect "
                                 "padding) has no place in an Arch"),
    ],
)  # fmt: skip
def test_timm_models_out_of_reach_are_refused_by_name(name, message, timm):
    with pytest.raises(UnsupportedModuleError) as error:
        budgetnet.Arch.from_module(timm.create_model(name).eval(), SHAPE)
    assert str(error.value).startswith(message)


def test_legacy_xception_is_rebuilt_exactly_where_it_was_rebuilt_wrong(timm):
    # the model issue 18 found accepted and rebuilt wrong: its blocks start with a ReLU that the
    # shortcut must not see; now the ReLU stays in the body and the logits agree
    arch = _check_exact(timm.create_model("legacy_xception"))
    assert "res[relu " in str(arch)


# -- ECA (Wang et al. 2020): timm's EcaModule imports as gate[gpool chconv(k) sigmoid] -------------
def _eca_net(timm, **eca):
    from timm.layers.eca import EcaModule

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 32, 3, padding=1)
            self.bn = nn.BatchNorm2d(32)
            self.attn = EcaModule(**eca)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = self.attn(torch.relu(self.bn(self.conv(x))))
            return self.fc(x.mean((2, 3)))

    return Net().eval()


def test_a_hand_made_net_with_timms_eca_gate_imports_exactly(timm):
    model = _eca_net(timm, kernel_size=5)
    arch = _check_exact(model, (3, 12, 12))
    assert str(arch) == "(3,32)p1bn gate[gpool chconv(5) sigmoid] gap"
    # Eqn. (1) by hand: the 3x3 conv on 12x12, then ECA's 5 taps per channel on the pooled 1x1 map
    assert budgetnet.conv_macs(arch) == 3 * 9 * 32 * 12 * 12 + 5 * 32
    # its built model imports again as the same Arch (budgetnet's own conv along the channels)
    built = budgetnet.build(arch, weights_from=model).eval()
    assert budgetnet.Arch.from_module(built, (3, 12, 12)) == arch
    # the logits depend on ECA's taps: the equal logits above checked that they were copied
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = built(x)
        next(m for m in built.modules() if isinstance(m, nn.Conv1d)).weight.zero_()
        assert not torch.allclose(built(x), before, rtol=1e-3, atol=0)
    # timm's rule for the kernel from the channels: t = int((log2(32) + 1) / 2) = 3, odd, so 3
    assert "chconv(3)" in str(budgetnet.Arch.from_module(_eca_net(timm, channels=32), (3, 12, 12)))


def test_eca_variants_out_of_reach_are_refused_by_name(timm):
    from timm.layers.eca import CecaModule

    with pytest.raises(UnsupportedModuleError) as error:
        budgetnet.Arch.from_module(_eca_net(timm, channels=32, use_mlp=True), (3, 12, 12))
    assert str(error.value).startswith(
        "'attn' (EcaModule): ECA with use_mlp=True (timm's experiment: a Conv1d to 8 channels, an activation and a "
        "second Conv1d) has no place in an Arch; expected ECA's single conv along the channels (use_mlp=False)"
    )
    model = _eca_net(timm, kernel_size=3)
    model.attn = CecaModule(kernel_size=3)
    with pytest.raises(UnsupportedModuleError) as error:
        budgetnet.Arch.from_module(model, (3, 12, 12))
    assert str(error.value).startswith(
        "'attn' (CecaModule): circular ECA (a conv along the channels whose padding wraps around; ECA's zero padding "
        "is supported) has no place in an Arch"
    )
    # a Conv1d outside an ECA gate stays refused by name
    model = _eca_net(timm, kernel_size=3)
    model.attn = nn.Sequential(nn.Flatten(2), nn.Conv1d(32, 32, 3, padding=1), nn.Unflatten(2, (12, 12)))
    with pytest.raises(UnsupportedModuleError) as error:
        budgetnet.Arch.from_module(model, (3, 12, 12))
    assert str(error.value).startswith(
        "'attn.1' (Conv1d): a 1-D conv outside an ECA gate (timm's EcaModule imports whole) has no place in an Arch"
    )
