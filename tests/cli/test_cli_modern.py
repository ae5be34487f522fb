"""``budgetnet show`` and ``budgetnet variants`` on a file that builds a timm model, as a user
with a MobileNetV3 baseline would run them."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

from budgetnet.cli import main
from budgetnet.pytorch.importer import import_torchvision

MODEL_FILE = '''import timm


def build():
    return timm.create_model("mobilenetv3_small_050")
'''


@pytest.fixture(scope="module")
def timm():
    import_torchvision()
    return pytest.importorskip("timm", reason="timm is a test dependency: ./install.sh --dev installs it")


@pytest.fixture
def model_file(tmp_path, timm):
    path = tmp_path / "mynet.py"
    path.write_text(MODEL_FILE)
    return path


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_show_a_timm_model_file(capsys, model_file, timm):
    status, out, err = run(capsys, "show", f"{model_file}:build", "--input", "3x64x64", "--json")
    assert status == 0, err
    report = json.loads(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(timm.create_model("mobilenetv3_small_050").eval(), torch.zeros(1, 3, 64, 64))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert report["conv_macs"] == analysis.by_operator()["conv"]  # Eqn. (1) = fvcore's conv count
    assert report["notation"].startswith("(3,16)/2p1bn@hardswish + (3,16)/2p1dwbn gate[gpool (1,8) (1,16)@hardsigmoid]")
    assert report["mul_ops"] > 0  # the gates' multiplies, reported beside Eqn. (1)


def test_show_a_timm_model_file_in_a_fresh_process(model_file):
    # the file only says "import timm", as a user writes it: budgetnet makes torchvision (which timm
    # imports) importable beside a CPU build of torch before it runs the file
    result = subprocess.run([sys.executable, "-m", "budgetnet", "show", f"{model_file}:build", "--input", "3x64x64",
                             "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["notation"].startswith("(3,16)/2p1bn@hardswish")


def test_variants_of_a_timm_model_file(capsys, model_file):
    status, out, err = run(capsys, "variants", f"{model_file}:build", "--input", "3x64x64", "--steps", "1", "--json")
    assert status == 0, err
    result = json.loads(out)
    rules = {rule for node in result["nodes"] for rule in node["path"]}
    assert len(result["nodes"]) > 1 and rules == {"mbconv_filter", "mbconv_blocks"}  # the MBConv trades
