"""Graphs that are not series-parallel, carried through concatenations (budgetnet/graph/carry.py).

Random DAGs of convs, adds, concatenations and slices (hypothesis) and small torch modules
written like timm's Res2Net and RexNet blocks import exactly (the numeric check is on by
default), with Eqn. (1) worked out from their convs; the model exported as a standalone file,
run where budgetnet is not imported, gives the module's logits; a region whose maps cannot
share one concatenation is refused, saying why. The timm models themselves are in
tests/pytorch/test_modern_imports.py and the census (bench/import_zoo.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
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


class RandomGraph(nn.Module):
    """A random DAG of 3x3 convs, adds, concatenations and channel slices on one map size: each
    step reads earlier maps (any of them, so branches cross), and the output concatenates every
    map nothing else read. ``steps``: (op, inputs, parameter) as drawn."""

    def __init__(self, steps):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.steps = steps
        self.convs = nn.ModuleDict()
        widths = [8]
        for index, (op, inputs, parameter) in enumerate(steps):
            if op == "conv":
                self.convs[str(index)] = nn.Conv2d(widths[inputs[0]], parameter, 3, padding=1)
                widths.append(parameter)
            elif op == "add":
                widths.append(widths[inputs[0]])
            elif op == "cat":
                widths.append(widths[inputs[0]] + widths[inputs[1]])
            else:  # slice: the first half or the second half of the channels
                half = widths[inputs[0]] // 2
                widths.append(half if parameter == 0 else widths[inputs[0]] - half)
        read = {i for _, inputs, _ in steps for i in inputs}
        self.ends = [i for i in range(len(widths)) if i not in read]
        self.fc = nn.Linear(sum(widths[i] for i in self.ends), 3)

    def forward(self, x):
        maps = [torch.relu(self.stem(x))]
        for index, (op, inputs, parameter) in enumerate(self.steps):
            first = maps[inputs[0]]
            if op == "conv":
                maps.append(torch.relu(self.convs[str(index)](first)))
            elif op == "add":
                maps.append(first + maps[inputs[1]])
            elif op == "cat":
                maps.append(torch.cat([first, maps[inputs[1]]], 1))
            else:
                half = first.shape[1] // 2
                maps.append(first[:, :half] if parameter == 0 else first[:, half:])
        out = maps[self.ends[0]] if len(self.ends) == 1 else torch.cat([maps[i] for i in self.ends], 1)
        return self.fc(out.mean((2, 3)))


@st.composite
def random_steps(draw):
    steps, widths = [], [8]
    for _ in range(draw(st.integers(2, 10))):
        op = draw(st.sampled_from(["conv", "conv", "add", "cat", "slice"]))
        first = draw(st.integers(0, len(widths) - 1))
        if op == "add":
            partners = [i for i, width in enumerate(widths) if width == widths[first] and i != first]
            if not partners:
                op = "conv"
            else:
                steps.append(("add", (first, draw(st.sampled_from(partners))), None))
                widths.append(widths[first])
                continue
        if op == "cat":
            second = draw(st.integers(0, len(widths) - 1).filter(lambda i: i != first)) if len(widths) > 1 else None
            if second is None:
                op = "conv"
            else:
                steps.append(("cat", (first, second), None))
                widths.append(widths[first] + widths[second])
                continue
        if op == "slice" and widths[first] >= 2:
            part = draw(st.integers(0, 1))
            steps.append(("slice", (first,), part))
            widths.append(widths[first] // 2 if part == 0 else widths[first] - widths[first] // 2)
            continue
        width = draw(st.sampled_from([4, 8]))
        steps.append(("conv", (first,), width))
        widths.append(width)
    return steps


@settings(max_examples=40, deadline=None)
@given(random_steps())
# a residual block on a slice (map 9 = map 4 + conv(map 4), map 4 a slice) inside a carried
# region: the slice opens the block and must stay a layer (carrying looped forever on it)
@example([("conv", (0,), 8), ("conv", (0,), 8), ("slice", (0,), 1), ("slice", (1,), 1), ("conv", (1,), 4),
          ("conv", (0,), 4), ("conv", (4,), 4), ("add", (1, 0), None), ("add", (4, 7), None)])
def test_random_graphs_import_exactly_whether_series_parallel_or_not(steps):
    """Any DAG of convs, adds, concatenations and slices on one map size imports: the numeric
    check (on by default) compares the rebuilt model with the module, layer by layer, and the
    carried regions add nothing to Eqn. (1), worked out here from the convs as drawn."""
    torch.manual_seed(0)
    model = RandomGraph(steps).eval()
    arch = budgetnet.Arch.from_module(model, (3, 8, 8))
    convs = [model.stem, *model.convs.values()]
    assert budgetnet.conv_macs(arch) == sum(m.in_channels * 9 * m.out_channels * 64 for m in convs)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(budgetnet.build(arch, weights_from=model).eval()(x), model(x), atol=1e-5)
