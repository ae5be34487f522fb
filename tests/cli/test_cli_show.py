"""Tests for ``budgetnet show`` (budgetnet/cli/show.py)."""

import argparse
import json
import shutil
import subprocess
import sys

import pytest

from budgetnet.cli import main, show
from search_spaces.paper import MODELS, NOTATION

# Eqn. (1) of model A by hand: (7,64)/2 maps 224 to 109, 3/3 to 36, (5,128) keeps 36, 2/2 gives 18,
# and the three (3,256) read 128, 256 and 256 channels.
A_MACS = 3 * 49 * 64 * 109**2 + 64 * 25 * 128 * 36**2 + (128 + 256 + 256) * 9 * 256 * 18**2
J_PRIME_MACS = 827_167_424
# "(3,8) 2/2 (2,16)x2 gap" on 1x16x16: 3x3 pad 1 keeps 16; pool -> 8; the 2x2 pair takes pads 0, 1: 7, then 8.
SMALL = "(3,8) 2/2 (2,16)x2 gap"
SMALL_MACS = 1 * 9 * 8 * 16**2 + 8 * 4 * 16 * 7**2 + 16 * 4 * 16 * 8**2


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_zoo_name(capsys):
    assert A_MACS == 854_954_688
    status, out, err = run(capsys, "show", "A")
    assert status == 0 and err == ""
    assert out.startswith(NOTATION["A"] + "   (input 3x224x224, 1000 classes)")
    assert f"conv MACs, Eqn. (1): {A_MACS:,}" in out
    for name in ("conv1", "conv5", "pool2", "spp1", "fc1", "fc2", "fc3"):
        assert f"\n{name} " in out
    assert "ratio to baseline" not in out


def test_notation_with_input_and_classes(capsys):
    status, out, _ = run(capsys, "show", SMALL, "--input", "1x16x16", "--classes", "10")
    assert status == 0
    assert "(input 1x16x16, 10 classes)" in out
    assert f"conv MACs, Eqn. (1): {SMALL_MACS:,}" in out
    assert f"fc MACs:             {16 * 10:,}" in out


def test_json_file(capsys, tmp_path):
    path = MODELS["J'"].save(tmp_path / "j_prime.json")
    status, out, _ = run(capsys, "show", str(path), "--json")
    assert status == 0
    data = json.loads(out)
    assert data["conv_macs"] == J_PRIME_MACS
    assert data["arch"]["notation"] == NOTATION["J'"]
    assert data["fingerprint"] == MODELS["J'"].fingerprint()


def test_baseline_ratio_in_table_and_json(capsys):
    ratio = J_PRIME_MACS / A_MACS
    status, out, _ = run(capsys, "show", "J'", "--baseline", "A")
    assert status == 0
    assert f"ratio to baseline:   {ratio:.4f}" in out
    assert "ratio to baseline:   0.9675" in out
    status, out, _ = run(capsys, "show", "J'", "--baseline", "A", "--json")
    data = json.loads(out)
    assert data["ratio"] == pytest.approx(ratio, rel=1e-12)
    assert data["baseline_conv_macs"] == A_MACS
    assert data["conv_flops"] == 2 * J_PRIME_MACS


def test_json_output_parses(capsys):
    status, out, _ = run(capsys, "show", SMALL, "--input", "1x16x16", "--classes", "10", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["conv_macs"] == SMALL_MACS
    assert data["arch"]["input_shape"] == [1, 16, 16]
    assert data["arch"]["num_classes"] == 10
    assert [row["name"] for row in data["layers"]] == ["conv1", "pool1", "conv2", "conv3", "spp1", "fc1"]
    assert [row["padding"] for row in data["layers"] if row["kind"] == "conv"] == [1, 0, 1]
    assert data["ratio"] is None


def test_bad_notation_reports_the_column(capsys):
    status, out, err = run(capsys, "show", "(3,8) 2/x")
    assert status == 2 and out == ""
    assert err.startswith("budgetnet show: error: notation column 8: unexpected '/' after a layer")
    assert "\n  (3,8) 2/x\n         ^" in err


def test_unknown_layer(capsys):
    status, _, err = run(capsys, "show", "(3,8) conv5")
    assert status == 2
    assert "notation column 7: unknown layer 'conv5'" in err


def test_missing_json_file(capsys, tmp_path):
    missing = tmp_path / "nothere.json"
    status, out, err = run(capsys, "show", str(missing))
    assert status == 2 and out == ""
    assert f"SPEC {str(missing)!r}: no such file; expected a JSON file written by budgetnet" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"layers": []}', "field 'input_shape' is missing; expected an Arch spec"),
        ("[1, 2]", "top level is list; expected an object"),
        ("not json at all", "arch JSON: not valid JSON"),
        ('{"input_shape": [3, 8, 8], "layers": [{"type": "lstm"}]}', "layers[0]={'type': 'lstm'}; expected an object"),
    ],
)
def test_json_that_is_not_an_arch(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    status, out, err = run(capsys, "show", str(path))
    assert status == 2 and out == ""
    assert err.startswith(f"budgetnet show: error: {path}: ")
    assert message in err


def test_bad_baseline_and_classes(capsys):
    status, _, err = run(capsys, "show", "A", "--baseline", "(3,8")
    assert status == 2
    assert "notation column 1: malformed conv" in err
    status, _, err = run(capsys, "show", "A", "--classes", "0")
    assert status == 2
    assert "num_classes=0 is invalid; expected an integer >= 1" in err


def test_bad_input_shape_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "A", "--input", "3x0x5"])
    assert exit_info.value.code == 2
    assert "input shape '3x0x5': expected CxHxW such as 3x224x224" in capsys.readouterr().err


class OptionRecorder(argparse.ArgumentParser):
    """An argument parser that notes every option string given to ``add_argument``."""

    def __init__(self):
        self.options = []
        super().__init__(add_help=False)

    def add_argument(self, *names, **settings):
        self.options += [name for name in names if name.startswith("-")]
        return super().add_argument(*names, **settings)


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    parser = OptionRecorder()
    show.add_arguments(parser)
    options = parser.options
    assert set(options) >= {"--baseline", "--input", "--classes", "--json"}
    for option in options:
        assert option in text
    assert "SPEC" in text and "examples:" in text and "budgetnet show \"J'\" --baseline A" in text


def test_console_script_runs():
    script = shutil.which("budgetnet")
    command = [script] if script else [sys.executable, "-m", "budgetnet"]
    result = subprocess.run([*command, "show", "A"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"conv MACs, Eqn. (1): {A_MACS:,}" in result.stdout


# -- zoo names and FILE.py:NAME (issue 8) ------------------------------------------------------
# ResNet-50 as in He et al. 2016 (stride on the first 1x1): 3,855,925,248 conv MACs by the stage-by-stage
# arithmetic of tests/test_zoo.py; torchvision's layout (stride on the 3x3) adds 231,211,008.
RESNET50_MACS = 3_855_925_248
RESNET50_V15_MACS = RESNET50_MACS + 231_211_008

MODEL_FILE = '''
import torch
from torch import nn
from helpers import WIDTH  # a sibling module: the file's folder is on sys.path while it runs


def build():
    return nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(WIDTH, 10))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3, padding=1)
        self.fc = nn.Linear(WIDTH, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1), 1))


def broken():
    raise ValueError("no weights here")


def not_a_module():
    return 42


SETTING = 3
'''


@pytest.fixture
def model_file(tmp_path):
    (tmp_path / "helpers.py").write_text("WIDTH = 8\n")
    path = tmp_path / "model.py"
    path.write_text(MODEL_FILE)
    return path


def test_residual_zoo_name(capsys):
    status, out, err = run(capsys, "show", "resnet50")
    assert status == 0 and err == ""
    assert out.startswith("(7,64)/2p3bn 3/2p1 res[(1,64)bn (3,64)bn (1,256)bn@none]x3 res[(1,128)/2bn ")
    assert f"conv MACs, Eqn. (1): {RESNET50_MACS:,}" in out
    assert "\nres16.short.conv1 " not in out and "\nres14.short.conv1 " in out  # projections open stages
    status, out, _ = run(capsys, "show", "resnet50_v1.5", "--baseline", "resnet50", "--json")
    data = json.loads(out)
    assert (data["conv_macs"], data["baseline_conv_macs"]) == (RESNET50_V15_MACS, RESNET50_MACS)


def test_every_command_resolves_zoo_names():
    from budgetnet.cli.common import load_arch
    from budgetnet.graph.zoo import ZOO

    assert load_arch("mobilenet_v2") is ZOO["mobilenet_v2"]
    small = load_arch("small_residual", (3, 32, 32), 100)
    assert (small.input_shape, small.num_classes) == ((3, 32, 32), 100)


def test_python_file_function_and_class(capsys, model_file):
    # (3,8) pad 1 on 3x224x224, then gap and a 10-way classifier: 3 * 9 * 8 * 224^2 MACs.
    status, out, err = run(capsys, "show", f"{model_file}:build", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["conv_macs"] == 3 * 9 * 8 * 224**2 and data["arch"]["input_shape"] == [3, 224, 224]
    assert data["arch"]["num_classes"] == 10
    status, out, err = run(capsys, "show", f"{model_file}:Net", "--input", "3x32x32", "--classes", "5")
    assert status == 0, err
    assert out.startswith("(3,8)p1 gap   (input 3x32x32, 5 classes)")
    assert f"conv MACs, Eqn. (1): {3 * 9 * 8 * 32**2:,}" in out
    assert str(model_file.parent) not in sys.path and "_budgetnet_user_module" not in sys.modules


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "missing is not defined in {file}; expected a function or class returning a torch.nn.Module "
                    "(the file defines: Net, broken, build, not_a_module)"),
        ("SETTING", "SETTING is not callable (type int) in {file}"),
        ("broken", "calling broken() from {file} raised ValueError: no weights here"),
        ("not_a_module", "not_a_module() from {file} returned int; expected a torch.nn.Module"),
        ("", "name='' is invalid; expected FILE.py:NAME with NAME a function or class of the file"),
        ("build()", "name='build()' is invalid; expected FILE.py:NAME"),
    ],
)  # fmt: skip
def test_python_file_errors(capsys, model_file, name, message):
    spec = f"{model_file}:{name}"
    status, out, err = run(capsys, "show", spec)
    assert status == 2 and out == ""
    assert err.startswith(f"budgetnet show: error: SPEC {spec!r}: ")
    assert message.format(file=model_file) in err
    assert "Traceback" not in err


def test_python_file_missing_or_failing_to_import(capsys, tmp_path):
    missing = tmp_path / "absent.py"
    status, out, err = run(capsys, "show", f"{missing}:build")
    assert status == 2 and out == ""
    assert f"SPEC '{missing}:build': no such file '{missing}'; expected a Python file that defines build" in err
    status, _, err = run(capsys, "show", str(missing))
    assert status == 2 and f"SPEC '{missing}': name=None is invalid; expected FILE.py:NAME" in err
    for source, raised in (("def build(:\n", "SyntaxError"), ("import no_such_module_here\n", "ModuleNotFoundError")):
        path = tmp_path / "bad.py"
        path.write_text(source)
        status, out, err = run(capsys, "show", f"{path}:build")
        assert status == 2 and out == ""
        assert f"SPEC '{path}:build': importing {path} raised {raised}" in err and "Traceback" not in err
    path = tmp_path / "bad.py"
    path.write_text("import sys\nsys.exit(3)\n")
    status, out, err = run(capsys, "show", f"{path}:build")
    assert status == 2 and out == ""
    assert f"SPEC '{path}:build': {path} exited (status 3) while being imported" in err and "Traceback" not in err


def test_python_file_module_that_cannot_be_imported(capsys, tmp_path):
    path = tmp_path / "lstm.py"
    path.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.LSTM(4, 4))\n")
    status, out, err = run(capsys, "show", f"{path}:build")
    assert status == 2 and out == ""
    assert err.startswith("budgetnet show: error: ") and "LSTM" in err and "Traceback" not in err


def test_help_explains_the_new_forms(capsys):
    with pytest.raises(SystemExit):
        main(["show", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "resnet50_v1.5" in text and "mobilenet_v2" in text and "FILE.py:NAME" in text
    assert "executed to import it" in text and "budgetnet show my_model.py:build --input 3x32x32" in text


def test_unknown_model_name_lists_the_known_ones(capsys):
    from budgetnet.cli import main

    assert main(["show", "resnet-50"]) == 2
    err = capsys.readouterr().err
    assert "SPEC 'resnet-50' is not a model name (A, B," in err and "resnet50, " in err and "mobilenet_v2" in err
    assert "Traceback" not in err
# SMALL on 1x16x16, 10 classes, by hand: weights 1*9*8+8 + 8*4*16+16 + 16*4*16+16 + 16*10+10 = 1818;
# outputs per image 8*16*16 + 8*8*8 + 16*7*7 + 16*8*8 + 16 + 10 = 4394; input 256 values; 4 bytes each.
SMALL_PARAM_BYTES = 4 * 1818
SMALL_ACTIVATION_BYTES = 4 * 4394
SMALL_TRAINING_128 = SMALL_PARAM_BYTES * 5 + 128 * (4 * 256 + 2 * SMALL_ACTIVATION_BYTES)  # AdamW: 3 buffers


def test_memory_estimate_in_the_table_and_json(capsys):
    assert (SMALL_PARAM_BYTES, SMALL_ACTIVATION_BYTES, SMALL_TRAINING_128) == (7272, 17576, 4666888)
    status, out, _ = run(capsys, "show", SMALL, "--input", "1x16x16", "--classes", "10")
    assert status == 0
    assert "\nmemory, parameters:  7.1 KiB (float32)\n" in out  # 7272 / 1024 = 7.10
    assert "\nmemory, activations: 17.2 KiB per image\n" in out  # 17576 / 1024 = 17.16
    assert "\nmemory, training:    4.5 MiB at batch 128 (adamw; " in out  # 4666888 / 2**20 = 4.45
    assert "(the memory of this machine): training fits" in out
    status, out, _ = run(capsys, "show", SMALL, "--input", "1x16x16", "--classes", "10", "--batch-size", "4",
                         "--max-memory", "64K", "--json")  # fmt: skip
    memory = json.loads(out)["memory"]
    assert memory["training_bytes"] == SMALL_PARAM_BYTES * 5 + 4 * (4 * 256 + 2 * SMALL_ACTIVATION_BYTES)
    assert memory["inference_bytes"] == SMALL_PARAM_BYTES + 4 * (4 * 256 + SMALL_ACTIVATION_BYTES)
    assert (memory["limit_bytes"], memory["fits"], memory["batch_size"]) == (64 * 1024, False, 4)


def test_a_network_that_cannot_fit_is_said_so(capsys):
    status, out, _ = run(capsys, "show", "(3,1000000000000)", "--max-memory", "1T")
    assert status == 0
    verdict = "training does NOT fit; budgetnet train and search refuse it"
    assert f"memory, limit:       1.0 TiB (--max-memory): {verdict}" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--max-memory", "lots"], "max_memory='lots' is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB) such as 512M"),
        (["--max-memory", "0"], "max_memory='0' is invalid"),
        (["--batch-size", "0"], "memory estimate: batch_size=0 is invalid; expected an integer >= 1"),
    ],
)
def test_bad_memory_options(capsys, arguments, message):
    status, out, err = run(capsys, "show", "A", *arguments)
    assert status == 2 and out == ""
    assert err.startswith("budgetnet show: error: ") and message in err
