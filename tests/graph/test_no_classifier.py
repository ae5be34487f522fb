"""An Arch without a final classifier (SqueezeNet: the logits are the last conv's channels,
pooled): ``Arch(..., classifier=False)``, notation ``... gap nofc``, through costs, build,
export and rewrites (training: tests/training/test_train.py). Expected values are worked out by hand in each test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import budgetnet
from budgetnet import Arch, Conv, SPP
from budgetnet.errors import ArchError, NotationError
from budgetnet.studies.export import module_source

TEXT = "(3,8) (1,10)@relu gap nofc"
SHAPE = (1, 8, 8)


@pytest.fixture
def arch():
    return budgetnet.parse(TEXT, input_shape=SHAPE)


def test_the_head_gives_the_logits(arch):
    assert (arch.classifier, arch.num_classes) == (False, 10)  # the last conv's 10 filters, pooled
    assert arch == Arch([Conv(3, 8), Conv(1, 10), SPP((1,), "avg")], SHAPE, classifier=False)
    assert arch == Arch([Conv(3, 8), Conv(1, 10), SPP((1,), "avg")], SHAPE, 10, classifier=False)
    with_one = Arch(arch.layers, SHAPE, 10)
    assert with_one.classifier and arch != with_one and arch.fingerprint() != with_one.fingerprint()
    assert repr(arch) == f"Arch('(3,8) + (1,10) gap nofc', input_shape={SHAPE}, num_classes=10, classifier=False)"


def test_notation_and_json_round_trip(arch):
    assert str(arch) == "(3,8) + (1,10) gap nofc"
    assert budgetnet.parse(str(arch), input_shape=SHAPE) == arch
    data = json.loads(arch.to_json())
    assert data["classifier"] is False and data["num_classes"] == 10
    assert Arch.from_json(arch.to_json()) == arch
    assert "classifier" not in json.loads(budgetnet.parse("(3,8) gap", input_shape=SHAPE).to_json())
    # a flatten without pooling: the logits are every value of the map, 10 x 8 x 8
    assert budgetnet.parse("(3,8) (1,10) flat nofc", input_shape=SHAPE).num_classes == 640


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("(3,8) nofc gap", 7, "nofc (no final classifier) ends the notation; expected it last, after the head"),
        ("nofc", 1, "nofc alone; expected layers and a head before it, as (1,10) gap nofc"),
        ("  + nofc ", 1, "nofc alone; expected layers and a head before it"),
    ],
)
def test_misplaced_nofc(text, column, message):
    with pytest.raises(NotationError) as error:
        budgetnet.parse(text, input_shape=SHAPE)
    assert error.value.column == column and message in str(error.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: budgetnet.parse(TEXT, input_shape=SHAPE, num_classes=7),
         "arch num_classes=7 does not match an Arch without a classifier, whose logits are the 10 values of its "
         "last layer spp1; expected num_classes=10"),
        (lambda: Arch([Conv(3, 8)], SHAPE, classifier="no"), "arch classifier='no' is invalid; expected True or False"),
        (lambda: Arch.from_dict({"input_shape": [1, 8, 8], "layers": [{"type": "conv", "kernel_size": 3,
                                 "out_channels": 8}], "classifier": 0}),
         "arch classifier=0 is invalid; expected True or False"),
        # only a last conv whose pooled channels are the logits can be resized to another count
        (lambda: budgetnet.parse("(3,8) (1,10) spp(2,1) nofc", input_shape=SHAPE).with_input(num_classes=3),
         "arch num_classes=3 does not match an Arch without a classifier, whose logits are the 50 values"),
        (lambda: budgetnet.build(budgetnet.parse("(3,8) (1,10) fc(4) nofc", input_shape=SHAPE), num_classes=3),
         "arch num_classes=3 does not match an Arch without a classifier, whose logits are the 4 values of its "
         "last layer fc1"),
    ],
)  # fmt: skip
def test_bad_class_counts_and_flags(make, message):
    with pytest.raises(ArchError) as error:
        make()
    assert message in str(error.value)


def test_another_class_count_resizes_the_last_conv(arch):
    assert str(arch.with_input(num_classes=3)) == "(3,8) + (1,3) gap nofc"
    # norms, activations and pools after that conv keep working on its new width
    deeper = budgetnet.parse("(3,8) (1,10)bn@relu 2/2 gap nofc", input_shape=SHAPE).with_input((1, 16, 16), 4)
    assert str(deeper) == "(3,8) + (1,4)bn 2/2 gap nofc" and deeper.num_classes == 4
    assert budgetnet.build(arch, num_classes=3)(torch.zeros(2, *SHAPE)).shape == (2, 3)


def test_costs_have_no_classifier_row(arch):
    report = budgetnet.complexity(arch)
    assert "classifier" not in {row.kind for row in report.rows}
    assert report.conv_macs == 8 * 8 * (3 * 3 * 1 * 8 + 1 * 1 * 8 * 10)  # Eqn. (1): 64 pixels
    assert report.fc_macs == 0
    assert report.params == (9 * 8 + 8) + (8 * 10 + 10)  # weights and biases of the two convs
    assert report.activations == 8 * 8 * 8 + 8 * 8 * 10 + 10  # two maps, then the 10 pooled logits
    with_one = budgetnet.complexity(Arch(arch.layers, SHAPE, 10))
    assert with_one.params - report.params == 10 * 10 + 10 and with_one.fc_macs == 100


def test_the_built_model_pools_its_last_conv(arch):
    model = budgetnet.build(arch).eval()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    first, second = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(3, *SHAPE)
    expected = F.relu(second(F.relu(first(x)))).mean((2, 3))
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_an_exported_model_runs_in_a_fresh_process(arch, tmp_path):
    model = budgetnet.build(arch).eval()
    (tmp_path / "net.py").write_text(module_source(arch))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import importlib.util, sys, torch\n"
        "spec = importlib.util.spec_from_file_location('net', sys.argv[1] + '/net.py')\n"
        "net = importlib.util.module_from_spec(spec); spec.loader.exec_module(net)\n"
        "model = net.Net().eval(); model.load_state_dict(torch.load(sys.argv[1] + '/w.pt', weights_only=True))\n"
        "assert 'budgetnet' not in sys.modules\n"
        "torch.save(model(torch.load(sys.argv[1] + '/x.pt')).detach(), sys.argv[1] + '/y.pt')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=tmp_path)
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "y.pt"), model(x), atol=1e-6)


def test_rewrites_keep_the_logits():
    arch = budgetnet.parse("(3,8) 2/2 (3,16) (1,10)@none gap nofc", input_shape=SHAPE)
    graph = budgetnet.variants(arch, max_steps=2)
    assert graph.number_of_nodes() > 3
    for _, node in graph.nodes(data=True):
        assert (node["arch"].classifier, node["arch"].num_classes) == (False, 10), node["notation"]
