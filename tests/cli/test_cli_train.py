"""The ``budgetnet train`` and ``budgetnet latency`` subcommands."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from budgetnet.cli import main

SPEC = "(3,4) 2/2 (3,8) gap"
TINY = ["--image-size", "8", "--limit", "60", "--epochs", "1", "--batch-size", "16", "--no-progress"]


def test_train_prints_epochs_accuracy_and_time(capsys):
    assert main(["train", SPEC, *TINY, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "data   Dataset('digits', 1x8x8, 10 classes" in out
    assert "model  (3,4) 2/2 (3,8) gap" in out
    assert "epoch 1/2  train loss" in out and "epoch 2/2  train loss" in out
    assert "test accuracy" in out and "images/s on cpu" in out


def test_train_json_with_ten_views_and_a_checkpoint(capsys, tmp_path):
    path = tmp_path / "run.pt"
    assert main(["train", SPEC, *TINY, "--views", "10", "--checkpoint", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fit"]["epochs_run"] == 1 and result["fit"]["device"] == "cpu"
    assert result["test"]["views"] == 5  # digits: 5 crops, no flips
    assert result["data"]["input_shape"] == [1, 8, 8]
    assert result["conv_macs"] == 1 * 9 * 4 * 8 * 8 + 4 * 9 * 8 * 4 * 4  # Eqn. (1) by hand
    assert result["fit"]["arch"]["input_shape"] == [1, 8, 8]
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_train_on_idx_files(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        images = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
        labels = (np.arange(count) % 2).astype(np.uint8)
        with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">BBBBIII", 0, 0, 8, 3, count, 8, 8) + images.tobytes())
        with gzip.open(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">BBBBI", 0, 0, 8, 1, count) + labels.tobytes())
    assert main(["train", SPEC, "--data", f"idx:{tmp_path}", "--epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"]["num_classes"] == 2 and result["test"]["images"] == 10


def test_train_reports_divergence_with_status_1(capsys):
    assert main(["train", SPEC, *TINY, "--recipe", "paper", "--lr", "1e9"]) == 1
    captured = capsys.readouterr()
    assert "diverged" in captured.out and "training diverged" in captured.err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "idx:/no/such/dir"], "data path '/no/such/dir' does not exist"),
        (["--data", "mnist"], "data='mnist' is invalid"),
        (["--batch-size", "0"], "recipe batch_size=0 is invalid; expected an integer >= 1"),
        (["--lr", "0"], "recipe lr=0.0 is invalid; expected a number > 0"),
        (["--lr=-1e-3"], "recipe lr=-0.001 is invalid; expected a number > 0"),
        (["--epochs", "0"], "recipe epochs=0 is invalid; expected an integer >= 1"),
        (["(3,4) 2/2 2/2 spp fc16", "--image-size", "8"],
         "spp level 6 is finer than the 2x2 map it pools (input 1x8x8)"),
        (["--device", "cuda:7"], "device='cuda:7' is not there"),
        (["--image-size", "1"], "the feature map would shrink below 1 pixel"),
    ],
)
def test_train_bad_input_exits_2_with_a_message(capsys, arguments, message):
    if arguments[0] == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    spec, arguments = (SPEC, arguments) if arguments[0].startswith("--") else (arguments[0], arguments[1:])
    options = ["--epochs", "1", "--limit", "30", "--batch-size", "8", "--no-progress"]
    assert main(["train", spec, *options, *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("budgetnet train: error: ") and message in err


def test_latency_prints_time_and_table(capsys, tmp_path):
    arguments = ["latency", SPEC, "--input", "1x8x8", "--classes", "10", "--repeats", "2", "--warmup", "1"]
    assert main([*arguments, "--table", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ms/image" in out and "Eqn. (1) 6.9K MACs per image" in out  # 1*9*4*64 + 4*9*8*16 = 6912
    assert "conv1  conv in=1x8x8 out=4 k=3 s=1 p=1" in out and "predicted" in out and "error" in out
    assert len(list(tmp_path.glob("latency-*.json"))) == 1


def test_latency_json_train_mode(capsys):
    arguments = ["latency", SPEC, "--input", "1x8x8", "--classes", "10", "--repeats", "2", "--mode", "train",
                 "--batch-size", "4", "--json"]  # fmt: skip
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["measurement"]["mode"] == "train" and result["measurement"]["batch_size"] == 4
    assert result["table"] is None and result["conv_macs"] == 1 * 9 * 4 * 64 + 4 * 9 * 8 * 16


def test_latency_bad_batch_size(capsys):
    assert main(["latency", SPEC, "--input", "1x8x8", "--batch-size", "0"]) == 2
    assert "batch_size=0 is invalid" in capsys.readouterr().err


# -- --threads, --val-limit, --norm (issue 19) ----------------------------------------------------------
@pytest.fixture
def torch_threads():
    """--threads changes this process's torch thread count; put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_threads_and_exact_limits(capsys, torch_threads):
    assert main(["train", SPEC, *TINY, "--limit", "37", "--val-limit", "11", "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 1 and torch.get_num_threads() == 1
    assert result["data"]["sizes"]["train"] == 37 and result["data"]["sizes"]["val"] == 11


def test_train_prints_its_threads(capsys, torch_threads):
    assert main(["train", SPEC, *TINY, "--threads", "1"]) == 0
    assert "images/s on cpu (1 CPU thread)" in capsys.readouterr().out


def test_latency_threads_show_in_the_device_name(capsys, torch_threads):
    arguments = ["latency", SPEC, "--input", "1x8x8", "--classes", "10", "--repeats", "2", "--threads", "1"]
    assert main(arguments) == 0
    assert "(1 thread), float32, forward" in capsys.readouterr().out


def test_more_threads_than_cores_is_a_warning(capsys, torch_threads):
    from budgetnet.pytorch.device import available_cores

    cores = available_cores()
    assert main(["train", SPEC, *TINY, "--threads", str(cores + 1)]) == 0
    err = capsys.readouterr().err
    assert f"budgetnet train: warning: threads={cores + 1} is more than the {cores} CPU cores" in err


def test_val_limit_over_the_split_is_a_warning(capsys):
    assert main(["train", SPEC, *TINY, "--val-limit", "5000", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "budgetnet train: warning: val_limit=5000 is more than the" in err
    sizes = json.loads(out)["data"]["sizes"]
    assert f"the {sizes['val']} images of the validation split of 'digits'" in err


@pytest.mark.parametrize("command", ["train", "latency", "search"])
def test_norm_takes_the_same_values_on_every_command(command, capsys):
    from budgetnet.cli import make_parser
    from budgetnet.cli.common import NORM_CHOICES

    parser = make_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    assert "--norm {none,batch}" in capsys.readouterr().out and NORM_CHOICES == ("none", "batch")
    spec = [] if command == "search" else [SPEC]
    assert parser.parse_args([command, *spec, "--norm", "none"]).norm is None  # the library's plain net
    assert parser.parse_args([command, *spec]).norm is None
    assert parser.parse_args([command, *spec, "--norm", "batch"]).norm == "batch"
