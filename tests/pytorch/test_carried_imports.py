"""Graphs that are not series-parallel, carried through concatenations (budgetnet/graph/carry.py).

Small torch modules written like timm's Res2Net and RexNet blocks import exactly (the numeric
check is on by default), with Eqn. (1) worked out by hand; the model exported as a standalone
file, run where budgetnet is not imported, gives the module's logits; a region whose maps
cannot share one concatenation is refused, saying why. The timm models themselves are in
tests/pytorch/test_modern_imports.py and the census (bench/import_zoo.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import budgetnet
from budgetnet.errors import UnsupportedModuleError
from budgetnet.studies.export import module_source


class Res2NetBlock(nn.Module):
    """timm's Bottle2neck (scale 4, width 8): ``y_i = K_i(y_{i-1} + x_i)`` while each ``y_i``
    also goes to the concatenation: a branch that reads into another branch."""

    def __init__(self, channels=32, width=8):
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(channels, 4 * width, 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(3))
        self.conv3 = nn.Conv2d(4 * width, channels, 1)

    def forward(self, x):
        parts = torch.split(torch.relu(self.conv1(x)), self.width, 1)
        outputs, current = [], None
        for i, conv in enumerate(self.convs):
            current = parts[i] if i == 0 else current + parts[i]
            current = torch.relu(conv(current))
            outputs.append(current)
        outputs.append(parts[-1])
        return torch.relu(self.conv3(torch.cat(outputs, 1)) + x)


class RexNetBlock(nn.Module):
    """timm's RexNet LinearBottleneck: the block widens 16 -> 24 channels and adds its input
    into the first 16 channels only."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(16, 96, 1)
        self.depthwise = nn.Conv2d(96, 96, 3, padding=1, groups=96)
        self.project = nn.Conv2d(96, 24, 1)

    def forward(self, x):
        out = self.project(F.relu6(self.depthwise(F.relu6(self.expand(x)))))
        return torch.cat([out[:, 0:16] + x, out[:, 16:]], dim=1)


def _net(block: nn.Module, width: int, out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), block, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(out, 10)).eval()  # fmt: skip


def test_a_res2net_block_is_carried_exactly():
    model = _net(Res2NetBlock(), 32, 32)
    arch = budgetnet.Arch.from_module(model, (3, 16, 16))  # the numeric check is on
    assert str(arch).count("cat[") == 4 and "slice(" in str(arch)
    # Eqn. (1) by hand on 16x16: stem 3->32 3x3, conv1 32->32 1x1, three 8->8 3x3, conv3 32->32 1x1
    assert budgetnet.conv_macs(arch) == (3 * 9 * 32 + 32 * 32 + 3 * 8 * 9 * 8 + 32 * 32) * 16 * 16
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(budgetnet.build(arch, weights_from=model).eval()(x), model(x), atol=1e-5)
    assert budgetnet.parse(str(arch), input_shape=(3, 16, 16), num_classes=10) == arch


def test_a_rexnet_add_into_a_slice_is_carried_exactly():
    model = _net(RexNetBlock(), 16, 24)
    arch = budgetnet.Arch.from_module(model, (3, 16, 16))
    assert budgetnet.conv_macs(arch) == (3 * 9 * 16 + 16 * 96 + 9 * 96 + 96 * 24) * 16 * 16
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(budgetnet.build(arch, weights_from=model).eval()(x), model(x), atol=1e-5)


def test_a_carried_model_exported_runs_without_budgetnet(tmp_path):
    model = _net(Res2NetBlock(), 32, 32)
    arch = budgetnet.Arch.from_module(model, (3, 16, 16))
    built = budgetnet.build(arch, weights_from=model).eval()
    (tmp_path / "net.py").write_text(module_source(arch))
    torch.save(built.state_dict(), tmp_path / "net.pt")
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.pt")
    torch.save(model(x), tmp_path / "expected.pt")
    script = (
        "import sys, torch; sys.modules['budgetnet'] = None\n"  # importing budgetnet fails here
        "from net import Net\n"
        "net = Net(); net.load_state_dict(torch.load('net.pt')); net.eval()\n"
        "with torch.no_grad(): ok = torch.allclose(net(torch.load('x.pt')), torch.load('expected.pt'), atol=1e-5)\n"
        "print('equal' if ok else 'different')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "equal", result.stderr


class MixedSizes(nn.Module):
    """A map of 16x16 still needed after a strided branch made an 8x8 one that is read twice:
    carrying would have to concatenate maps of two sizes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.up = nn.Conv2d(8, 8, 1, padding=4)  # 8x8 -> 16x16 by its padding
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        small = self.down(x)
        joined = self.pool(x + self.up(small))
        return self.fc(torch.flatten(torch.cat([joined, small], 1), 1))


def test_a_region_whose_maps_differ_in_size_is_refused_saying_why():
    with pytest.raises(UnsupportedModuleError) as error:
        budgetnet.Arch.from_module(MixedSizes().eval(), (3, 16, 16))
    message = str(error.value)
    assert message.startswith("the forward of MixedSizes is not a series-parallel graph of layers")
    assert "cannot be carried through concatenations either: it would carry maps of 16x16 and 8x8 pixels" in message
