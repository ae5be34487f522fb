"""budgetnet.studies.export: the standalone .py equals the builder's module, JSON and weights of a
trial, and trials that cannot be exported."""

from __future__ import annotations

import ast
import importlib.util

import optuna
import pytest
import torch
from optuna.trial import TrialState

import budgetnet
from budgetnet.errors import ExportError
from budgetnet.studies.export import export_trial, get_trial, module_source

ARCHS = [
    ("(3,8) 2/2 (2,16)x2 gap", (1, 8, 8), 10, None),
    ("(3,8) avg2/2 (5,12)/2 + (2,12) spp(2,1) fc(20,0.3)", (3, 16, 16), 7, None),
    ("(3,8) 2/1 (2,16)/2 + (2,16) 2/2 (3,16)x2 flat fc32", (1, 16, 16), 10, "batch"),
    ("(7,16)/2 3/3 (5,24) 2/2 (3,32)x3 spp", (3, 112, 112), 5, None),
]


def load_module(path):
    spec = importlib.util.spec_from_file_location("exported", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("notation, input_shape, classes, norm", ARCHS)
def test_standalone_module_matches_the_builder(tmp_path, notation, input_shape, classes, norm):
    arch = budgetnet.parse(notation, input_shape=input_shape, num_classes=classes)
    path = tmp_path / "net.py"
    path.write_text(module_source(arch, norm=norm))
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert imports == {"math", "torch"}  # no budgetnet
    built = budgetnet.build(arch, norm=norm).eval()
    exported = load_module(path).Net().eval()
    exported.load_state_dict(built.state_dict())  # same parameter names and shapes
    x = torch.randn(3, *input_shape)
    with torch.no_grad():
        assert torch.allclose(exported(x), built(x), atol=1e-6)
    # Paddings are written out: every conv of the file has the padding arch.py resolved.
    convs = [m for m in exported.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.padding[0] for c in convs] == [info.layer.padding for info in arch.convs]


def make_study(tmp_path):
    """A study of hand-made trials: 0 complete, 1 pruned, 2 failed, 3 over budget, 4 running, 5 complete."""
    arch = budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10)
    weights = tmp_path / "w0.pt"
    torch.save(budgetnet.build(arch).state_dict(), weights)
    study = optuna.create_study(direction="maximize", study_name="hand")
    attrs = dict(arch=arch.to_dict(), notation=arch.notation(), macs=1, status="ok", val_accuracy=0.8, epochs=1)
    study.add_trial(optuna.create_trial(value=0.8, user_attrs={**attrs, "weights": str(weights)}))
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED, value=0.1, user_attrs=attrs))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs={**attrs, "status": "error", "error": "boom"}))
    study.add_trial(optuna.create_trial(value=0.0, user_attrs={**attrs, "status": "infeasible"}))
    study.add_trial(optuna.create_trial(state=TrialState.RUNNING, user_attrs=attrs))
    study.add_trial(optuna.create_trial(value=0.7, user_attrs=attrs))
    return study, arch


def test_export_json_py_and_pt_of_the_best_trial(tmp_path, monkeypatch):
    study, arch = make_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert get_trial(study, "best").number == 0
    assert budgetnet.Arch.load(export_trial(study, "best", "json")) == arch  # default name trial0.json
    module = load_module(export_trial(study, 0, "py", tmp_path / "found.py"))
    assert "study 'hand', trial 0: validation accuracy 0.8000 after 1 epoch" in module.__doc__
    net = module.Net()
    net.load_state_dict(torch.load(export_trial(study, "0", "pt", tmp_path / "found.pt"), weights_only=True))
    with torch.no_grad():
        x = torch.randn(2, 1, 8, 8)
        built = budgetnet.build(arch)
        built.load_state_dict(torch.load(tmp_path / "w0.pt", weights_only=True))
        assert torch.equal(net(x), built(x))


@pytest.mark.parametrize(
    "trial, fmt, message",
    [
        (1, "json", r"trial=1 never completed \(PRUNED: pruned\); expected a completed trial inside the budget"),
        (2, "py", r"trial=2 never completed \(FAIL: boom\)"),
        (4, "json", r"trial=4 never completed \(RUNNING: running\)"),
        (3, "py", "trial=3 is over the budget and was never trained"),
        (9, "json", r"trial=9 does not exist; expected 'best' or a number in 0..5"),
        ("first", "json", "trial='first' is invalid; expected 'best' or a trial number"),
        (5, "pt", "trial 5 kept no weights; expected a search run with keep_weights=True"),
        (0, "onnx", "format='onnx' is unknown; expected one of json, py, pt"),
    ],
)
def test_trials_that_cannot_be_exported(tmp_path, trial, fmt, message):
    study, _ = make_study(tmp_path)
    with pytest.raises(ExportError, match=message):
        export_trial(study, trial, fmt, tmp_path / "out")


def test_best_of_a_study_without_a_completed_trial(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="empty")
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED, value=0.1))
    with pytest.raises(ExportError, match="trial='best': study 'empty' has no trial completed inside the budget yet"):
        export_trial(study, "best", "json", tmp_path / "x.json")


def test_weights_missing_on_this_machine(tmp_path):
    study, _ = make_study(tmp_path)
    (tmp_path / "w0.pt").unlink()
    with pytest.raises(ExportError, match=r"trial 0: weights file '.*w0\.pt' is not on this machine"):
        export_trial(study, 0, "pt", tmp_path / "x.pt")
