"""torchvision's classification models through ``Arch.from_module`` and ``build(weights_from=...)``.

For every model: the conv MACs of Eqn. (1) equal fvcore's conv count exactly, conv by conv
(fvcore counts one multiply-add as one flop and divides by the groups, an independent
implementation traced from the torch module itself); the model built from the imported Arch
with the original's weights gives the same logits in eval mode. Batch-norm statistics are
randomised first so that a norm copied wrong, or a conv bias folded wrong, cannot hide.
Inputs are 32-64 px to keep the suite fast: per-layer equality holds at any size (the
published totals at 224 px are checked in tests/test_zoo.py).
"""

import warnings

import pytest
import torch
from torch import nn

import budgetnet
from budgetnet.cost.complexity import eqn1_term
from budgetnet.errors import ArchError
from budgetnet.pytorch.importer import import_module, import_torchvision

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis

models = import_torchvision().models

# model, input side
MODELS = [
    ("resnet18", 32),
    ("resnet34", 32),
    ("resnet50", 64),
    ("resnet101", 32),
    ("resnet152", 32),
    ("resnext50_32x4d", 32),
    ("wide_resnet50_2", 32),
    ("mobilenet_v2", 32),
    ("vgg11", 32),
    ("vgg11_bn", 32),
    ("vgg16", 32),
    ("alexnet", 64),
]


def randomised(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(models, name)().eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("name, side", MODELS)
def test_import_counts_like_fvcore_and_copies_weights(name, side):
    model = randomised(name)
    shape = (3, side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dropout before the first Linear (alexnet, mobilenet)
        imported = import_module(model, shape)
    arch = imported.arch
    # Eqn. (1), conv by conv, against fvcore's trace of the original module.
    x = torch.randn(2, *shape)
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, x[:1])
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = analysis.by_module()
    ours = [eqn1_term(info) for info in arch.convs]
    theirs = [by_module[layer.path] for layer in imported.layers if isinstance(layer.layer, budgetnet.Conv)]
    assert len(ours) == len([m for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert ours == theirs
    assert budgetnet.conv_macs(arch) == sum(theirs)
    # The same logits from the built Arch with the original's weights.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        built = budgetnet.build(arch, weights_from=model).eval()
    with torch.no_grad():
        expected, actual = model(x), built(x)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5), (actual - expected).abs().max()
    # Printing and parsing the import gives the same Arch.
    assert budgetnet.parse(str(arch), input_shape=shape, num_classes=1000) == arch


def test_resnet50_imports_as_its_notation():
    arch = import_module(randomised("resnet50"), (3, 224, 224)).arch
    stage = "res[(1,{w})bn (3,{w}){s}bn (1,{o})bn@none]"
    text = "(7,64)/2p3bn 3/2p1 " + " ".join(
        f"{stage.format(w=width, s=first, o=4 * width)} {stage.format(w=width, s='', o=4 * width)}x{count - 1}"
        for width, first, count in ((64, "", 3), (128, "/2", 4), (256, "/2", 6), (512, "/2", 3))
    )
    # torchvision's v1.5: the stride on the 3x3; shortcuts are the automatic 1x1 projections
    assert str(arch) == text.replace("res[(1,64)bn (3,64)bn (1,256)bn@none] res[(1,64)bn (3,64)bn (1,256)bn@none]x2",
                                     "res[(1,64)bn (3,64)bn (1,256)bn@none]x3") + " gap"  # fmt: skip
    assert arch.depth == 49 and len(arch.convs) == 53  # 49 + 4 projection shortcuts


def test_mobilenet_v2_is_about_300m_macs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        arch = budgetnet.Arch.from_module(models.mobilenet_v2(), (3, 224, 224))
    # Sandler et al. 2018, Table 4: 300M multiply-adds (conv only here; the fc adds 1.28M)
    assert round(budgetnet.conv_macs(arch) / 1e6) in range(297, 303)
    assert sum(1 for info in arch.convs if info.layer.depthwise) == 17


def test_weights_from_another_module_is_refused():
    from budgetnet.pytorch.importer import copy_weights

    arch = budgetnet.Arch.from_module(models.resnet18(), (3, 64, 64))
    with pytest.raises(ArchError, match=r"build: weights_from=ResNet imports as '\(7,64\)/2p3bn 3/2p1 res\[\(1,64\)"):
        budgetnet.build(arch, weights_from=models.resnet50())
    model = budgetnet.build(arch)
    model.features[1] = nn.Identity()  # drop the stem's BatchNorm2d by hand
    with pytest.raises(ArchError, match=r"build: weights_from: 'conv1' \(Conv2d\) \+ 'bn1' \(BatchNorm2d\) \+ relu has a batch norm but the built conv has the"):
        copy_weights(models.resnet18(), model)
