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
