"""An import is never accepted and rebuilt wrong: a batch norm or activation fuses into the layer
before it only when nothing else reads that layer's raw output (else it is refused by name), and
``Arch.from_module`` checks numerically that the rebuilt model computes the module's outputs."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import budgetnet
from budgetnet import Arch
from budgetnet.errors import ArchError
from budgetnet.pytorch import verify
from budgetnet.pytorch.fx_graph import import_module
from budgetnet.pytorch.weights import load_weights


def randomised(net: nn.Module) -> nn.Module:
    """Batch-norm statistics away from the identity, so a norm in the wrong place shows."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net


class ReluFirstBody(nn.Module):
    """legacy_xception's shape: the body starts with a ReLU, the shortcut reads the raw input."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.rep = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        return self.head(self.rep(x) + x)


class PreActivation(nn.Module):
    """Pre-activation ResNet order: BN-ReLU-conv in the body, the shortcut reads the raw conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.conv1(F.relu(self.bn1(x))))


class CatOfRaw(nn.Module):
    """A concatenation reads a conv's raw output while a BN also reads it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))

    def forward(self, x):
        y = self.conv(x)
        return self.head(torch.cat([y, self.bn(y)], dim=1))


class NormAndConvRead(nn.Module):
    """A conv's raw output feeds a BN and another conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.other = nn.Conv2d(8, 8, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        y = self.conv(x)
        return self.head(self.bn(y) + self.other(y))


@pytest.mark.parametrize(
    "net, notation",
    [
        (ReluFirstBody(), "(3,8)p1bn@none res[relu (3,8)bn@none]@none gap"),
        (PreActivation(), "(3,8)p1@none res[bn relu (3,8)@none]@none gap"),
        (CatOfRaw(), "(3,8)p1@none cat[id | bn] gap"),
        (NormAndConvRead(), "(3,8)p1@none res[bn | (1,8)@none]@none gap"),
    ],
)  # fmt: skip
def test_a_norm_or_activation_whose_input_is_read_raw_elsewhere_stays_a_layer(net, notation):
    # each of the four shapes the old importer rebuilt wrong: the norm or activation is not
    # fused into the layer before it (another layer reads that one's raw output), it stays a
    # layer of its own, and the rebuilt model computes the module's logits
    net = randomised(net).eval()
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == notation
    built = budgetnet.build(arch, weights_from=net).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(built(x), net(x), atol=1e-5)


def test_the_reader_later_in_the_forward_counts_too():
    """The shortcut reads ``x`` after the body's ReLU in trace order: still a raw reader, so the
    ReLU stays in the body (fusing it into 'bn1' would feed the shortcut a rectified map)."""

    class Late(ReluFirstBody):
        def forward(self, x):
            x = self.bn1(self.conv1(x))
            body = self.rep(x)
            return self.head(body + x)

    net = randomised(Late()).eval()
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == "(3,8)p1bn@none res[relu (3,8)bn@none]@none gap"


def test_a_fusable_norm_and_activation_are_accepted_with_equal_logits():
    class PostActivation(ReluFirstBody):  # the ReLU after the shortcut's read: torchvision's order
        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            return self.head(F.relu(self.rep[2](self.rep[1](x)) + x))

    net = randomised(PostActivation()).eval()
    arch = Arch.from_module(net, (3, 8, 8))
    assert str(arch) == "(3,8)p1bn res[(3,8)bn@none] gap"
    built = budgetnet.build(arch, weights_from=net).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(built(x), net(x), atol=1e-6)


def _two_convs():
    return randomised(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    ))  # fmt: skip


def test_verification_names_the_first_layer_a_wrong_rebuild_gets_wrong(monkeypatch):
    def perturbed(imported, model, **options):
        load_weights(imported, model, **options)
        conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
        weight = conv.weight.detach().clone()
        weight[0, 0, 0, 0] += 0.5
        conv.weight = nn.Parameter(weight)  # a new tensor: the source module's stays as it was

    monkeypatch.setattr(verify, "load_weights", perturbed)
    with pytest.raises(ArchError) as error:
        Arch.from_module(_two_convs(), (3, 16, 16))
    message = str(error.value)
    assert message.startswith(
        "'3' (Conv2d) + '4' (BatchNorm2d) + relu: the model built from the imported Arch computes another "
        "output than the module here, the first such layer in forward order (relative error "
    ), message
    error_value = float(re.search(r"relative error (\S+) =", message)[1])
    assert 1e-3 < error_value < 1
    assert "above the tolerance 0.0001" in message
    # verify=False skips the check: the same wrong rebuild goes through.
    assert str(Arch.from_module(_two_convs(), (3, 16, 16), verify=False)) == "(3,8)p1bnx2 2/2 (3,8)p1 gap"


def test_a_wrong_logit_is_caught_too(monkeypatch):
    def perturbed(imported, model, **options):
        load_weights(imported, model, **options)
        model.classifier[-1].bias = nn.Parameter(model.classifier[-1].bias.detach() + 1.0)

    monkeypatch.setattr(verify, "load_weights", perturbed)
    with pytest.raises(ArchError, match=r"^'11' \(Linear\): the model built from the imported Arch computes"):
        Arch.from_module(_two_convs(), (3, 16, 16))


def test_verification_leaves_the_module_as_it_was():
    net = _two_convs().train()
    net[4].eval()
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    Arch.from_module(net, (3, 16, 16))
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in net.modules()] == flags
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_the_check_runs_at_a_smaller_input_only_when_it_checks_every_weight():
    net = _two_convs()
    assert verify.check_shape_for(import_module(net, (3, 64, 64))) == (3, 8, 8)
    assert verify.check_shape_for(import_module(net, (3, 16, 16))) == (3, 4, 4)
    # at 2x2 the last conv's map would be 1x1 after the pool: its outer taps would see only padding
    assert verify.check_shape_for(import_module(net, (3, 8, 8))) == (3, 4, 4)
    assert verify.check_shape_for(import_module(net, (3, 4, 4))) == (3, 4, 4)
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 62 * 62, 2))
    assert verify.check_shape_for(import_module(flat, (3, 64, 64))) == (3, 64, 64)



@pytest.mark.parametrize(
    "net, first",
    [
        (ReluFirstBody(), "the output of operator.add() in the forward of ReluFirstBody"),
        (PreActivation(), "the output of operator.add() in the forward of PreActivation"),
        (NormAndConvRead(), "'other' (Conv2d)"),
    ],
    ids=["relu-first body", "pre-activation", "norm and conv read"],
)
def test_the_numeric_check_alone_catches_a_wrong_fusion(net, first, monkeypatch):
    """With the fusion rule switched off (the bug as filed), the rebuilt model computes other
    values and the check names the first layer that differs (a block output included)."""
    from budgetnet.graph.layers import Act, Norm
    from budgetnet.pytorch import fx_graph

    def first_norm_or_activation(self, node):  # fuse whatever reads the layer, other readers or not
        readers = [n for n in self.graph.successors(node) if isinstance(self.graph.nodes[n]["layer"], (Norm, Act))]
        return readers[0] if readers else None

    monkeypatch.setattr(fx_graph._Importer, "_only_reader", first_norm_or_activation)
    pattern = f"^{re.escape(first)}: the model built from the imported Arch computes another output than the module"
    with pytest.raises(ArchError, match=pattern):
        Arch.from_module(randomised(net), (3, 8, 8))
    Arch.from_module(net, (3, 8, 8), verify=False)  # accepted (and wrong) without the check
