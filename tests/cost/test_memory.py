"""budgetnet.cost.memory: the memory estimate (golden values by hand), the limit, and the refusals
in fit, measure and search before anything is built."""

from __future__ import annotations

import math
import os

import pytest
import torch

import budgetnet
from budgetnet.cost import memory
from budgetnet.training.data import load_data
from budgetnet.errors import MemoryLimitError, TrainingError
from budgetnet.cost.memory import check_fits, device_memory, estimate_memory, format_bytes, parse_bytes
from search_spaces.paper import MODELS

HUGE = "(3,100000000000) gap"


def test_golden_values_of_a_tiny_net():
    # (3,8) gap on 1x4x4, 2 classes: conv 1*9*8 + 8 = 80 weights, classifier 8*2 + 2 = 18.
    # Outputs per image: conv 8*4*4 = 128, gap 8, classifier 2 = 138 values; input 16 values.
    arch = budgetnet.parse("(3,8) gap", input_shape=(1, 4, 4), num_classes=2)
    sgd = estimate_memory(arch, batch_size=2, optimizer="sgd")
    assert (sgd.params, sgd.activations, sgd.input_values) == (98, 138, 16)
    assert (sgd.param_bytes, sgd.activation_bytes) == (98 * 4, 138 * 4)
    per_batch = 2 * (16 * 4 + 2 * 138 * 4)
    assert sgd.training_bytes == 98 * 4 * 3 + per_batch  # weights, gradients, momentum
    assert estimate_memory(arch, 2, "adamw").training_bytes == 98 * 4 * 5 + per_batch  # 2 moments, 1 temporary
    assert estimate_memory(arch, 2, "none").training_bytes == 98 * 4 * 2 + per_batch
    assert sgd.inference_bytes == 98 * 4 + 2 * (16 + 138) * 4
    assert sgd.to_dict() == {
        "param_bytes": 392, "activation_bytes_per_image": 552, "batch_size": 2, "optimizer": "sgd",
        "training_bytes": 3512, "inference_bytes": 1624,
    }  # fmt: skip


def test_model_a_parameters_by_hand():
    # Model A: (7,64)/2 3/3 (5,128) 2/2 (3,256)x3, then SPP 50 bins of 256 maps, fc 4096, fc 4096, fc 1000.
    convs = (3 * 49 * 64 + 64) + (64 * 25 * 128 + 128) + (128 * 9 * 256 + 256) + 2 * (256 * 9 * 256 + 256)
    fcs = (50 * 256 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    estimate = estimate_memory(MODELS["A"], batch_size=1)
    assert estimate.param_bytes == 4 * (convs + fcs)
    # Outputs per image by hand: 64x109x109, pool 64x36x36, 128x36x36, pool 128x18x18, 3 x 256x18x18,
    # SPP 256*50, fc 4096 twice, classifier 1000.
    outputs = (64 * 109**2 + 64 * 36**2 + 128 * 36**2 + 128 * 18**2 + 3 * 256 * 18**2 + 256 * 50
               + 4096 * 2 + 1000)  # fmt: skip
    assert estimate.activations == outputs and estimate.input_values == 3 * 224 * 224


@pytest.mark.parametrize("spec, shape", [("(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1)", (1, 16, 16)),
                                         ("(3,8) 2/2 (2,16)x2 fc32", (3, 12, 12))])  # fmt: skip
def test_what_torch_keeps_for_backward_is_within_the_estimate(spec, shape):
    """Measured independently: the bytes autograd saves for the backward pass, per image,
    parameters left out, are at most the estimate's input plus twice the activations."""
    arch = budgetnet.parse(spec, input_shape=shape, num_classes=10)
    model = budgetnet.build(arch)
    weights = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    batch = 4
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(torch.randn(batch, *shape)).sum()
    estimate = estimate_memory(arch, batch_size=batch)
    per_image = sum(saved.values()) / batch
    assert estimate.activation_bytes <= per_image <= estimate.input_values * 4 + 2 * estimate.activation_bytes


@pytest.mark.parametrize(
    "text, expected",
    [("2048", 2048), (4096, 4096), ("1K", 1024), ("512M", 512 << 20), ("8G", 8 << 30), ("8g", 8 << 30),
     ("1.5GiB", 3 << 29), ("2 GB", 2 << 30), ("1T", 1 << 40), (" 3M ", 3 << 20)],
)  # fmt: skip
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0.1", "-5G", "8X", "G", "8 G B", "eight", "1e3", "\uff18G", True, None, 0])
def test_parse_bytes_refuses_what_is_not_a_size(text):
    with pytest.raises(MemoryLimitError) as error:
        parse_bytes(text)
    assert str(error.value).startswith(f"max_memory={text!r} is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB)")


def test_format_bytes():
    assert [format_bytes(value) for value in (0, 1023, 1024, 5 << 20, 3 << 30, 7 << 40, 2 << 50, 3 << 60)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 GiB", "7.0 TiB", "2.0 PiB", "3.0 EiB"]  # fmt: skip


@pytest.mark.parametrize(
    "arguments, message",
    [({"batch_size": 0}, "memory estimate: batch_size=0 is invalid; expected an integer >= 1"),
     ({"batch_size": 2.0}, "batch_size=2.0 is invalid"),
     ({"optimizer": "adam"}, "memory estimate: optimizer='adam' is invalid; expected one of ['adamw', 'none', 'sgd']")],
)  # fmt: skip
def test_bad_estimate_settings(arguments, message):
    with pytest.raises(MemoryLimitError) as error:
        estimate_memory(MODELS["A"], **arguments)
    assert message in str(error.value)


def test_device_memory_reads_the_machine_and_a_lower_container_limit(tmp_path, monkeypatch):
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit_file = tmp_path / "memory.max"
    monkeypatch.setattr(memory, "_CGROUP_LIMIT", limit_file)
    assert device_memory("cpu") == (total, "the memory of this machine")  # no such file
    limit_file.write_text("max\n")
    assert device_memory(None)[0] == total
    limit_file.write_text("1048576\n")
    assert device_memory("cpu")[0] == min(total, 1 << 20)


def test_check_fits_names_the_estimate_and_the_limit():
    arch = budgetnet.parse("(3,64) gap", input_shape=(1, 8, 8), num_classes=10)
    need = estimate_memory(arch, 16, "adamw").training_bytes
    assert check_fits(arch, 16, "adamw", need).training_bytes == need  # exactly at the limit: fits
    with pytest.raises(MemoryLimitError) as error:
        check_fits(arch, 16, "adamw", need - 1)
    text = str(error.value)
    assert text.startswith(f"(3,64) gap: training at batch 16 needs about {format_bytes(need)} (parameters ")
    assert f"over max_memory={format_bytes(need - 1)} (--max-memory)" in text
    inference = estimate_memory(arch, 16).inference_bytes
    assert check_fits(arch, 16, max_memory=inference, training=False).inference_bytes == inference
    with pytest.raises(MemoryLimitError, match=r"inference at batch 16 needs about .* \(the memory of this machine\)"):
        check_fits(budgetnet.parse(HUGE, input_shape=(1, 8, 8)), 16, training=False)


@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if anything builds a torch module."""
    import budgetnet.pytorch.builder

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(budgetnet.pytorch.builder, "build", refuse)


def test_fit_refuses_before_building(no_build):
    data = load_data("digits", image_size=8, limit=40)
    with pytest.raises(MemoryLimitError, match=r"^\(3,100000000000\) gap: training at batch 40 needs about "):
        budgetnet.fit(budgetnet.parse(HUGE), data, epochs=1, progress=False, batch_size=40)
    with pytest.raises(MemoryLimitError, match=r"over max_memory=1\.0 KiB \(--max-memory\)"):
        budgetnet.fit(budgetnet.parse("(3,4) gap"), data, epochs=1, progress=False, max_memory="1K")


def test_measure_refuses_before_building(no_build):
    with pytest.raises(MemoryLimitError, match=r"training at batch 4 needs about .* \(the memory of this machine\)"):
        budgetnet.measure(budgetnet.parse(HUGE, input_shape=(1, 8, 8)), batch_size=4, mode="train")


def test_a_batch_larger_than_the_training_split():
    data = load_data("digits", image_size=8, limit=30)
    arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(TrainingError) as error:
        budgetnet.fit(arch, data, epochs=1, progress=False, batch_size=31)
    assert str(error.value).startswith("batch_size=31 is larger than the training split (30 images)")
    # The paper recipe's own 128 is cut to the split, with a warning: one step of 30 images per epoch.
    with pytest.warns(UserWarning, match=r"recipe 'paper' batch_size=128 is larger than the training split \(30"):
        result = budgetnet.fit(arch, data, "paper", epochs=2, progress=False, device="cpu")
    assert result.epochs_run == 2 and math.isfinite(result.history[-1]["train_loss"])
    assert budgetnet.fit(arch, data, epochs=1, progress=False, batch_size=30).epochs_run == 1  # at the split: fine


def test_search_refuses_a_baseline_that_cannot_fit_before_the_storage(tmp_path):
    data = load_data("digits", limit=40)
    baseline = r"^\(3,16\) 2/2 \(5,32\) 2/2 \(3,64\)x3 spp\(2,1\): training at batch 32"  # the quick recipe's
    with pytest.raises(MemoryLimitError, match=baseline):
        budgetnet.search("small", data, n_trials=1, epochs=1, storage=str(tmp_path / "s.db"), max_memory="1M",
                         progress=False)  # fmt: skip
    assert not (tmp_path / "s.db").exists()


def test_search_fails_the_candidates_that_cannot_fit(tmp_path):
    import optuna

    from search_spaces.base import get_space

    data = load_data("digits", image_size=8, limit=40)
    space = get_space("small", input_shape=data.input_shape, num_classes=data.num_classes)
    limit = estimate_memory(space.baseline, 32).training_bytes  # the baseline just fits at the quick batch
    study = budgetnet.search(space, data, n_trials=4, epochs=1, seed=3, storage=optuna.storages.InMemoryStorage(),
                             max_memory=limit, progress=False)  # fmt: skip
    assert len(study.trials) == 4
    # seed 3 samples both kinds: candidates over the limit and under it
    assert {trial.state for trial in study.trials} == {optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE}
    for trial in study.trials:
        arch = budgetnet.Arch.from_dict(trial.user_attrs["arch"])
        over = estimate_memory(arch, 32).training_bytes > limit
        if over:
            assert trial.state == optuna.trial.TrialState.FAIL
            assert "training at batch 32 needs about" in trial.user_attrs["error"]
        else:
            assert trial.user_attrs.get("status") in ("ok", "infeasible", "pruned", "diverged")
